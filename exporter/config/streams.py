"""``streams:`` — which processes are streams, and the declared inventory."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from exporter.config.base import Regex, Section, require_group
from exporter.config.durations import Duration
from exporter.linear_re import LinearPattern, compile_linear

STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _stream_id(value: str) -> str:
    if not STREAM_ID.fullmatch(value):
        raise ValueError("a stream id is 1-64 letters, digits, '_', '.' or '-' (it becomes a label and an argv item)")
    return value


StreamId = Annotated[str, AfterValidator(_stream_id)]
"""Stream ids become label values and argv items: keep them to a safe, short alphabet."""

@dataclass(frozen=True, slots=True)
class Preset:
    """A panel's stream processes: the program, what its outputs look like, and who runs it.

    ``output`` is matched against each OUTPUT of the command line (see ``exporter.sources.ffmpeg_argv``),
    never against an ``-i`` value: a restream of another panel's ``stream_9.m3u8`` is not stream 9.
    ``users`` are the owners the panel's installer creates, and root (a panel started by hand as root: a
    process only root can start); a process of any other user is refused, so a local user cannot add
    streams (and root-run restarts) by naming a process ``ffmpeg``.
    """

    process: str
    output: str
    users: tuple[str, ...]
    source: str
    """Where in the panel's own code the shape comes from (for docs/inventory.md and reviewers)."""


PRESETS: dict[str, Preset] = {
    # PanelX: <app>/streams/stream_<id>.m3u8 and segments stream_<id>_%03d.ts; its multi-bitrate manager
    # writes one process per stream with an output per rendition: <abr>/stream_<id>/<label>/playlist.m3u8
    # (segments <label>/segment_%03d.ts). The installer runs pm2 as user panelx.
    "panelx": Preset(
        "ffmpeg",
        r"(?:^|/)stream_(?P<stream>\d+)(?:\.m3u8|_%\d*d\.ts|/[^/]+/(?:playlist\.m3u8|segment_%\d*d\.ts))$",
        ("panelx", "root"),
        "server/ffmpegManager.ts buildFfmpegCommand, server/multiBitrateManager.ts buildFFmpegCommand,"
        " autoinstaller.sh (useradd panelx; pm2 as panelx)",
    ),
    # XUI.one / XC_VM: <home>/content/streams/<id>_.m3u8 (-segment_list or the hls muxer's playlist), segments
    # <id>_%d.ts; delayed channels the same names under content/delayed/. Run as user xui / xc_vm.
    "xui": Preset(
        "ffmpeg",
        r"/(?P<stream>\d+)_(?:\.m3u8|%d\.ts)$",
        ("xui", "xc_vm", "root"),
        "includes/xui.php / includes/xc_vm.php startStream (-segment_list STREAMS_PATH<id>_.m3u8"
        " STREAMS_PATH<id>_%d.ts), install (adduser --system xc_vm)",
    ),
    # Xtream Codes 2.x / Xtream UI: /home/xtreamcodes/iptv_xtream_codes/streams/<id>_.m3u8, user xtreamcodes.
    "xtream": Preset(
        "ffmpeg",
        r"/(?P<stream>\d+)_(?:\.m3u8|%d\.ts)$",
        ("xtreamcodes", "root"),
        "includes/stream.php (-segment_list STREAMS_PATH<id>_.m3u8), install.py (chown xtreamcodes)",
    ),
    # Any other ffmpeg writing an HLS playlist: the playlist's base name is the stream id. No panel owns
    # these: by default only root's processes count (name the service user with `user:`).
    "hls": Preset(
        "ffmpeg",
        r"(?:^|/)(?P<stream>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})\.m3u8$",
        ("root",),
        "a plain `ffmpeg -i <source> ... -f hls <dir>/<id>.m3u8` restream",
    ),
}

PresetName = Literal["panelx", "xui", "xtream", "hls"]

USER_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?", re.IGNORECASE)


def _owner(value: str | int) -> str | int:
    if isinstance(value, int):
        if not 0 <= value < 2**32 - 1:
            raise ValueError("a uid is a number from 0 to 4294967294")
        return value
    if not USER_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a user name (letters, digits, '_', '.', '-'; or give a uid)")
    return value


Owner = Annotated[int | str, Field(union_mode="left_to_right"), AfterValidator(_owner)]
"""A user name or a numeric uid."""


class DiscoverRule(Section):
    """A process whose name is ``process`` and whose command line matches ``cmdline`` is a stream.

    A preset matches its pattern against the process's outputs; a custom rule against the whole command
    line (arguments joined by single spaces). Either way only processes of ``user`` count.
    """

    preset: PresetName | None = None
    process: str | None = Field(default=None, min_length=1)
    cmdline: Regex | None = None
    user: list[Owner] | None = Field(default=None, min_length=1)
    """Owners (user names or uids) whose processes may become streams; default: the preset's panel user,
    or root for a custom rule and for ``hls``."""
    paths: list[Path] | None = Field(default=None, min_length=1)
    """For a preset: the folders the panel writes its streams to; an output elsewhere does not match
    (default: anywhere). Narrows discovery; the owner, not the path, is what keeps other users out."""

    @field_validator("paths")
    @classmethod
    def _absolute(cls, paths: list[Path] | None) -> list[Path] | None:
        for path in paths or ():
            if not path.is_absolute():
                raise ValueError(f"{path}: give an absolute folder")
        return paths

    @model_validator(mode="after")
    def _one_form(self) -> DiscoverRule:
        if self.preset is not None:
            if self.process is not None or self.cmdline is not None:
                raise ValueError("give either preset or process + cmdline, not both")
            return self
        if self.paths is not None:
            raise ValueError("paths narrows a preset; a custom rule says where in its cmdline regex")
        if self.cmdline is None:
            raise ValueError("give a preset (panelx, xui, xtream, hls) or a cmdline regex")
        require_group(self.cmdline, "stream")
        return self

    def resolved(self) -> tuple[str | None, LinearPattern[str]]:
        """The process name (None: any) and compiled command-line pattern this rule stands for."""
        if self.preset is not None:
            preset = PRESETS[self.preset]
            return preset.process, compile_linear(preset.output)
        if self.cmdline is None:  # the validator above refuses this; model_construct() does not validate
            raise ValueError("a discovery rule needs a preset or a cmdline regex")
        return self.process, compile_linear(self.cmdline)

    @property
    def owners(self) -> tuple[str | int, ...]:
        """The owners this rule accepts (its ``user``, else the preset's, else root)."""
        if self.user is not None:
            return tuple(self.user)
        return PRESETS[self.preset].users if self.preset is not None else ("root",)


class StaticStream(Section):
    """A declared stream: exported from the first scrape, ``iptv_stream_up 0`` while not running."""

    id: StreamId
    name: str | None = None
    cmdline: Regex | None = None
    user: list[Owner] | None = Field(default=None, min_length=1)
    """Owners whose processes may match ``cmdline``; default: every owner the discovery rules allow."""
    playlist: Path | None = None
    progress: Path | None = None


class NamesSource(Section):
    """Where stream names come from: a CSV file of ``id,name`` rows."""

    file: Path


def _default_discover() -> list[DiscoverRule]:
    return [DiscoverRule(preset="panelx"), DiscoverRule(preset="xui"), DiscoverRule(preset="xtream"),
            DiscoverRule(preset="hls")]


class Streams(Section):
    discover: list[DiscoverRule] = Field(default_factory=_default_discover)
    static: list[StaticStream] = Field(default_factory=list)
    names: NamesSource | None = None
    playlist: str | None = None
    """Pattern with ``{stream}`` for playlists of streams that name none (default: taken from the cmdline)."""
    progress: str | None = None
    """Pattern with ``{stream}`` for ffmpeg ``-progress`` files of streams that name none."""
    forget_after: Duration = 900.0
    """A discovered stream without a process leaves the inventory after this long (removed and on-demand
    channels); declared streams never do."""
    max_discovered: int = Field(default=1000, ge=1)
    """Discovered streams at most; processes of further stream ids are refused (and counted)."""
    state_file: Path | None = None
    """Where discovered streams are remembered across exporter restarts; default: ``streams.json`` next
    to ``actions.journal`` (none without actions)."""
    process_events: Literal["auto", "on", "off"] = "auto"
    """The kernel's process events (netlink connector, needs CAP_NET_ADMIN): every start and exit of a
    stream process, however short. ``auto`` falls back to sampling where they cannot be had; ``on``
    makes that an error."""

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
