"""``progress:`` and ``errors:`` — how ffmpeg reports progress to us, and which logs hold its errors."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, IPvAnyNetwork, model_validator

from exporter.config.base import Regex, Section, require_group
from exporter.config.streams import StreamId
from exporter.linear_re import compile_linear

LOOPBACK: list[IPvAnyNetwork] = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


class Progress(Section):
    """ffmpeg ``-progress``: files are read from each stream's ``progress`` path; URLs push to us."""

    push: bool = True
    """Accept ``POST /progress/{stream}`` and ``POST /progress.php?stream_id=<id>`` (Xtream's form)."""
    allow_from: list[IPvAnyNetwork] = Field(default_factory=lambda: list(LOOPBACK))
    """Clients allowed to push. Loopback only by default: the endpoint has no other authentication."""
    max_streams: int = Field(default=10000, ge=1)
    """Distinct stream ids the push receiver remembers; more are refused, so memory stays bounded."""
    max_line: int = Field(default=4096, ge=256)
    """Longer lines in a pushed body are skipped (a client that never sends a newline cannot grow memory)."""


# Presets for well-known panels. ``path`` is only a default: PanelX's pm2 log location varies per install.
LOG_PRESETS: dict[str, dict[str, str]] = {
    # Xtream Codes / XUI: one ffmpeg stderr file per stream, streams/<id>_.errors
    "xtream": {
        "path": "/home/xtreamcodes/iptv_xtream_codes/streams/*_.errors",
        "stream_from_path": r"(?P<stream>\d+)_\.errors$",
    },
    # PanelX: ffmpeg stderr relayed into the pm2 log as "[FFmpeg <id>] <line>"
    "panelx": {"line": r"\[FFmpeg (?P<stream>\d+)\]\s?(?P<message>.*)"},
}


class ErrorLog(Section):
    """One log file (or glob) with ffmpeg errors, and how each line names its stream."""

    preset: Literal["xtream", "panelx"] | None = None
    path: str | None = None
    """A file or a glob (``/srv/streams/*_.errors``); globs are expanded again every sample."""
    stream: StreamId | None = None
    """Every line of the file belongs to this stream."""
    stream_from_path: Regex | None = None
    """Regex on the file's path whose group ``stream`` is the stream id (per-stream files)."""
    line: Regex | None = None
    """Only lines matching this count. Group ``stream``: the stream id; group ``message``: the part classified."""
    ignore: Regex | None = None
    """Lines matching this are not errors (searched in the message)."""
    from_start: bool = False
    """Read files that exist at start-up from their beginning (default: only what is written from now on)."""

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: object) -> object:
        """A preset fills in what the entry leaves out; anything given explicitly wins."""
        if isinstance(data, dict) and data.get("preset") in LOG_PRESETS:
            defaults = LOG_PRESETS[str(data["preset"])]
            data = {**{k: v for k, v in defaults.items() if k not in data}, **data}
        return data

    @model_validator(mode="after")
    def _check(self) -> ErrorLog:
        if self.path is None:
            raise ValueError("path is required" + (" for preset panelx (its pm2 log)" if self.preset else ""))
        if self.stream_from_path is not None:
            require_group(self.stream_from_path, "stream")
        line_names_stream = self.line is not None and "stream" in compile_linear(self.line).groupindex
        if self.stream is None and self.stream_from_path is None and not line_names_stream:
            raise ValueError(
                "say whose errors these are: stream, stream_from_path, or a line regex with (?P<stream>...)"
            )
        return self


class Errors(Section):
    """``iptv_stream_errors_total``: process exits seen by the sampler, plus classified log lines."""

    exits: bool = True
    """Count processes of a stream that exited (kind ``exit``)."""
    logs: list[ErrorLog] = Field(default_factory=list)
