"""``streams:`` — which processes are streams, and the declared inventory."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from exporter.config.base import Regex, Section, require_group
from exporter.linear_re import LinearPattern, compile_linear

STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _stream_id(value: str) -> str:
    if not STREAM_ID.fullmatch(value):
        raise ValueError("a stream id is 1-64 letters, digits, '_', '.' or '-' (it becomes a label and an argv item)")
    return value


StreamId = Annotated[str, AfterValidator(_stream_id)]
"""Stream ids become label values and argv items: keep them to a safe, short alphabet."""

# Built-in discovery presets. A joined command line (arguments separated by single spaces) is matched, so
# arguments with spaces (PanelX passes browser user agents) do not matter: the output path is one token.
PRESETS: dict[str, tuple[str, str]] = {
    # PanelX: .../streams/stream_<id>.m3u8 (a ladder adds a suffix: stream_<id>_low.m3u8)
    "panelx": ("ffmpeg", r"(?:^|[\s/])stream_(?P<stream>\d+)(?:_[A-Za-z0-9]+)?\.m3u8(?:\s|$)"),
    # Xtream Codes / XUI: .../streams/<id>_.m3u8
    "xtream": ("ffmpeg", r"(?:^|[\s/])(?P<stream>\d+)_\.m3u8(?:\s|$)"),
    # Any other ffmpeg writing an HLS playlist: the playlist's base name is the stream id.
    "hls": ("ffmpeg", r"(?:^|[\s/])(?P<stream>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})\.m3u8(?:\s|$)"),
}


class DiscoverRule(Section):
    """A process whose name is ``process`` and whose command line matches ``cmdline`` is a stream."""

    preset: Literal["panelx", "xtream", "hls"] | None = None
    process: str | None = Field(default=None, min_length=1)
    cmdline: Regex | None = None

    @model_validator(mode="after")
    def _one_form(self) -> DiscoverRule:
        if self.preset is not None:
            if self.process is not None or self.cmdline is not None:
                raise ValueError("give either preset or process + cmdline, not both")
            return self
        if self.cmdline is None:
            raise ValueError("give a preset (panelx, xtream, hls) or a cmdline regex")
        require_group(self.cmdline, "stream")
        return self

    def resolved(self) -> tuple[str | None, LinearPattern[str]]:
        """The process name (None: any) and compiled command-line pattern this rule stands for."""
        if self.preset is not None:
            name, pattern = PRESETS[self.preset]
            return name, compile_linear(pattern)
        if self.cmdline is None:  # the validator above refuses this; model_construct() does not validate
            raise ValueError("a discovery rule needs a preset or a cmdline regex")
        return self.process, compile_linear(self.cmdline)


class StaticStream(Section):
    """A declared stream: exported from the first scrape, ``iptv_stream_up 0`` while not running."""

    id: StreamId
    name: str | None = None
    cmdline: Regex | None = None
    playlist: Path | None = None
    progress: Path | None = None


class NamesSource(Section):
    """Where stream names come from: a CSV file of ``id,name`` rows."""

    file: Path


def _default_discover() -> list[DiscoverRule]:
    return [DiscoverRule(preset="panelx"), DiscoverRule(preset="xtream"), DiscoverRule(preset="hls")]


class Streams(Section):
    discover: list[DiscoverRule] = Field(default_factory=_default_discover)
    static: list[StaticStream] = Field(default_factory=list)
    names: NamesSource | None = None
    playlist: str | None = None
    """Pattern with ``{stream}`` for playlists of streams that name none (default: taken from the cmdline)."""
    progress: str | None = None
    """Pattern with ``{stream}`` for ffmpeg ``-progress`` files of streams that name none."""

    @model_validator(mode="after")
    def _unique_ids(self) -> Streams:
        seen: set[str] = set()
        for stream in self.static:
            if stream.id in seen:
                raise ValueError(f"stream id {stream.id!r} is declared twice in static")
            seen.add(stream.id)
        for key in ("playlist", "progress"):
            pattern = getattr(self, key)
            if pattern is not None and "{stream}" not in pattern:
                raise ValueError(f"{key} pattern must contain {{stream}}")
        return self
