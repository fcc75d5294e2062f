"""``progress:`` and ``errors:`` — how ffmpeg reports progress to us, and which logs hold its errors."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, IPvAnyNetwork, field_validator, model_validator

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
    stats_log: str | None = None
    """Pattern with ``{stream}`` for each stream's ffmpeg stderr log, read for its statistics lines
    (``frame= ... speed=1x``): progress for ffmpegs without ``-progress`` (sources/statslog.py). Off when unset."""

    @field_validator("stats_log")
    @classmethod
    def _stream_in_pattern(cls, pattern: str | None) -> str | None:
        if pattern is not None and "{stream}" not in pattern:
            raise ValueError("pattern must contain {stream}")
        return pattern


PM2_RECORD = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:?\d\d: "
"""The prefix pm2 puts before every write with ``log_date_format: 'YYYY-MM-DD HH:mm:ss Z'`` (PanelX's
ecosystem.config.cjs); a message of several lines has it on its first line only."""

# Presets for the panels, from their source (docs/sources.md names the files). ``path`` is a default.
LOG_PRESETS: dict[str, dict[str, str]] = {
    # Xtream Codes / Xtream UI: ffmpeg's stderr per stream, "2>> <streams>/<id>.errors" (includes/stream.php)
    "xtream": {
        "path": "/home/xtreamcodes/iptv_xtream_codes/streams/*.errors",
        "stream_from_path": r"/(?P<stream>\d+)\.errors$",
    },
    # XUI.one / XC_VM: the same, under the panel's home (XC_VM: /home/xc_vm/content/streams/, includes/xc_vm.php)
    "xui": {
        "path": "/home/xui/content/streams/*.errors",
        "stream_from_path": r"/(?P<stream>\d+)\.errors$",
    },
    # PanelX: ffmpeg's stderr chunks that contain "error" go to pm2's error.log as "[FFmpeg <id>] ERROR: <chunk>"
    # (server/ffmpegManager.ts); a chunk's further lines follow without a prefix.
    "panelx": {
        "path": "/home/panelx/logs/error.log",
        "line": r"\[FFmpeg (?P<stream>\d+)\] ERROR: (?P<message>.*)",
        "record_start": PM2_RECORD,
    },
    # PanelX: exits are "[FFmpeg <id>] Process exited with code <code>, signal <signal>" in pm2's out.log, among
    # status lines that are not errors (viewer counts, "HLS output started"). Code 0 is a clean exit.
    "panelx_exits": {
        "path": "/home/panelx/logs/out.log",
        "line": r"\[FFmpeg (?P<stream>\d+)\] (?P<message>Process exited with code (?:[1-9]\d*|null)\b.*)",
    },
}


class ErrorLog(Section):
    """One log file (or glob) with ffmpeg errors, and how each line names its stream."""

    preset: Literal["xtream", "xui", "panelx", "panelx_exits"] | None = None
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
    record_start: Regex | None = None
    """Where a log writes one message over several lines: the regex the first line of a message matches.
    Other lines continue the previous message and belong to its stream (pm2's timestamp prefix, for PanelX)."""
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
            raise ValueError("path is required")
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
