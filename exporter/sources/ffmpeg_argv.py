"""What an ffmpeg command line reads and writes: its inputs, its outputs and its ``-progress`` target.

The stream a process serves is named by what it WRITES: a restream of ``http://origin/hls/index.m3u8``
writing ``/srv/hls/bbc1.m3u8`` is stream ``bbc1``, and a PanelX stream whose source is another panel's
``/streams/stream_9.m3u8`` is the stream of its own output. So the discovery presets look only at the
outputs found here, never at an ``-i`` value.

ffmpeg's own parser knows, for every option, whether it takes a value; this one knows the handful of
value-less options the panels use (``-y``, ``-nostdin``, ``-re``, ...) and treats every other option as
taking one, which is what the panels' command lines need: the outputs are

- the values of ``-hls_segment_filename`` and ``-segment_list`` (the segment pattern and the playlist a
  segment muxer writes),
- every positional argument (one not consumed as an option's value): the output files, in order. The
  last argument of an ffmpeg command line is always one of them.

Pure (a tuple of arguments in, a frozen dataclass out), tested with the panels' literal command lines.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

FLAGS = frozenset({
    "-y", "-n", "-nostdin", "-stdin", "-hide_banner", "-re", "-vn", "-an", "-sn", "-dn", "-copyts",
    "-start_at_zero", "-copy_unknown", "-shortest", "-nostats", "-stats", "-accurate_seek",
    "-noaccurate_seek", "-ignore_unknown", "-xerror", "-benchmark", "-dump", "-hex", "-report",
    "-nofix_dts", "-autorotate", "-noautorotate", "-stream_loop_forever",
})
"""Options that take no value (from ffmpeg's ``fftools/ffmpeg_opt.c`` and ``cmdutils.c`` tables): the
ones panels put before an output; every other option is taken to have one."""

OUTPUT_VALUES = frozenset({"-hls_segment_filename", "-segment_list"})
"""Options whose value is a file the process writes."""


@dataclass(frozen=True, slots=True)
class FfmpegArgs:
    inputs: tuple[str, ...]
    """``-i`` values: what the process reads."""
    outputs: tuple[str, ...]
    """Files and URLs it writes: segment lists and segment patterns first, then positional outputs."""
    progress: str | None
    """The ``-progress`` target (a file or an ``http://`` URL the panel listens on)."""

    @property
    def playlist(self) -> str | None:
        """The first HLS playlist written to a local path (where the hls source reads the stream)."""
        return next((o for o in self.outputs if o.endswith(".m3u8") and o.startswith("/")), None)

    @property
    def network_input(self) -> bool:
        """Whether any input comes over the network (then its bytes are socket bytes, not ``rchar``)."""
        return any(_is_network(i) for i in self.inputs)


def _is_network(target: str) -> bool:
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    return scheme not in {"", "file", "pipe", "fd", "cache"}


def parse_ffmpeg_argv(argv: Sequence[str]) -> FfmpegArgs:
    """Inputs, outputs and progress target of ``argv`` (argv[0] is the program)."""
    inputs: list[str] = []
    written: list[str] = []
    positional: list[str] = []
    progress = None
    i, n = 1, len(argv)
    while i < n:
        arg = argv[i]
        if len(arg) > 1 and arg.startswith("-"):
            if arg in FLAGS or i + 1 >= n:
                i += 1
                continue
            value = argv[i + 1]
            if arg == "-i":
                inputs.append(value)
            elif arg in OUTPUT_VALUES:
                written.append(value)
            elif arg == "-progress":
                progress = value
            i += 2
            continue
        positional.append(arg)
        i += 1
    return FfmpegArgs(tuple(inputs), tuple(written + positional), progress)


@functools.lru_cache(maxsize=4096)
def args_of(cmdline: tuple[str, ...]) -> FfmpegArgs:
    """:func:`parse_ffmpeg_argv`, remembered: the sampler asks about the same running processes every round."""
    return parse_ffmpeg_argv(cmdline)


def peer_of(url: str) -> tuple[str, int] | None:
    """(host, port) an ``http(s)``/``rtmp``/``tcp``/... URL connects to, or None for a file or a bad URL.

    The ingest meter leaves connections to these peers out: they carry what the process sends (its
    ``-progress`` push, its outputs), not what it reads.
    """
    if "://" not in url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if not host:
        return None
    default = {"http": 80, "https": 443, "rtmp": 1935, "rtmps": 443}.get(parts.scheme.lower())
    port = port if port is not None else default
    return None if port is None else (host, port)
