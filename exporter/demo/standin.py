"""A stand-in for ffmpeg when none is installed: same arguments, same files, at real pace.

``python -m exporter.demo.standin <ffmpeg HLS arguments>`` writes what ``ffmpeg -f hls`` would: MPEG-TS
segments (null packets at the ``-b:v`` rate) every ``-hls_time`` seconds, a sliding playlist of
``-hls_list_size`` entries with ``-hls_base_url``, old segments deleted, and a ``-progress`` block every
``-stats_period``. It names itself ``ffmpeg`` (``/proc/<pid>/comm``), so the exporter's discovery presets
match it exactly as they match a panel's ffmpeg. Nothing is encoded: it costs almost no CPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

PR_SET_NAME = 15
FPS = 25
TS_PACKET = b"\x47\x1f\xff\x10" + b"\xff" * 184
"""An MPEG-TS null packet (PID 0x1FFF): valid TS that players skip."""


@dataclass(frozen=True, slots=True)
class Options:
    playlist: Path
    segment_pattern: str
    base_url: str
    segment_seconds: float
    list_size: int
    bitrate_bps: int
    progress: Path | None
    stats_period: float
    append: bool


def _rate(text: str) -> int:
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", text)
    if not found:
        raise ValueError(f"bad bitrate {text!r}")
    scale = {"": 1, "k": 1000, "m": 1_000_000}[found.group(2).lower()]
    return int(float(found.group(1)) * scale)


def parse_args(argv: Sequence[str]) -> Options:
    """The few ffmpeg options that decide what is written; the others are accepted and ignored."""
    opts: dict[str, str] = {}
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag.startswith("-"):
            opts.setdefault(flag, value)
    if not argv or not argv[-1].endswith(".m3u8"):
        raise ValueError("the last argument must be the HLS playlist (.m3u8)")
    playlist = Path(argv[-1])
    stem = playlist.name.removesuffix(".m3u8")
    return Options(
        playlist=playlist,
        segment_pattern=opts.get("-hls_segment_filename", str(playlist.with_name(stem + "%d.ts"))),
        base_url=opts.get("-hls_base_url", ""),
        segment_seconds=float(opts.get("-hls_time", "2")),
        list_size=int(opts.get("-hls_list_size", "5")),
        bitrate_bps=_rate(opts.get("-b:v", "200k")),
        progress=Path(opts["-progress"]) if "-progress" in opts else None,
        stats_period=float(opts.get("-stats_period", "0.5")),
        append="append_list" in opts.get("-hls_flags", ""),
    )


def name_process(name: str) -> None:
    """Set ``/proc/self/comm`` (what ``ps`` and psutil call the process name)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()), 0, 0, 0)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _last_sequence(playlist: Path) -> int:
    """With ``append_list``, carry on after the numbers the previous process left (as ffmpeg does)."""
    try:
        text = playlist.read_text()
    except FileNotFoundError:
        return -1
    numbers = [int(n) for n in re.findall(r"_(\d+)\.ts\s*$", text, re.MULTILINE)]
    return max(numbers, default=-1)


class Writer:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.window: list[tuple[int, float]] = []
        self.next_number = _last_sequence(opts.playlist) + 1 if opts.append else 0
        self.frames = 0
        self.total_bytes = 0

    def segment_path(self, number: int) -> Path:
        return Path(self.opts.segment_pattern.replace("%d", str(number)))

    def write_segment(self, seconds: float) -> None:
        size = max(1, int(self.opts.bitrate_bps * seconds / 8 / len(TS_PACKET)))
        number = self.next_number
        self.next_number += 1
        _write_atomic(self.segment_path(number), TS_PACKET * size)
        self.total_bytes += size * len(TS_PACKET)
        self.window.append((number, seconds))
        while len(self.window) > self.opts.list_size:
            old, _ = self.window.pop(0)
            # ffmpeg keeps one extra segment for players still reading it (hls_delete_threshold=1)
            stale = self.segment_path(old - 1)
            if stale.exists():
                stale.unlink()
        self.write_playlist()

    def write_playlist(self, ended: bool = False) -> None:
        target = max(int(self.opts.segment_seconds + 0.999), 1)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}",
                 f"#EXT-X-MEDIA-SEQUENCE:{self.window[0][0] if self.window else 0}"]
        for number, seconds in self.window:
            lines += [f"#EXTINF:{seconds:.6f},", self.opts.base_url + self.segment_path(number).name]
        if ended:
            lines.append("#EXT-X-ENDLIST")
        _write_atomic(self.opts.playlist, ("\n".join(lines) + "\n").encode())

    def progress_block(self, elapsed: float, end: bool = False) -> str:
        self.frames = int(elapsed * FPS)
        us = int(elapsed * 1_000_000)
        hms = time.strftime("%H:%M:%S", time.gmtime(elapsed)) + f".{us % 1_000_000:06d}"
        kbits = self.total_bytes * 8 / 1000 / elapsed if elapsed > 0 else 0.0
        return (
            f"frame={self.frames}\nfps={FPS:.2f}\nstream_0_0_q=-1.0\nbitrate={kbits:.1f}kbits/s\n"
            f"total_size={self.total_bytes}\nout_time_us={us}\nout_time_ms={us}\nout_time={hms}\n"
            f"dup_frames=0\ndrop_frames=0\nspeed=1.00x\nprogress={'end' if end else 'continue'}\n"
        )


def run(opts: Options) -> int:
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    writer = Writer(opts)
    progress = opts.progress.open("a", buffering=1) if opts.progress else None
    started = time.monotonic()
    next_segment = started + opts.segment_seconds
    next_stats = started + opts.stats_period
    try:
        while not stopping:
            now = time.monotonic()
            if now >= next_segment:
                writer.write_segment(opts.segment_seconds)
                next_segment += opts.segment_seconds
            if progress is not None and now >= next_stats:
                progress.write(writer.progress_block(now - started))
                next_stats += opts.stats_period
            time.sleep(max(0.0, min(next_segment, next_stats) - time.monotonic()))
        if progress is not None:
            progress.write(writer.progress_block(time.monotonic() - started, end=True))
    finally:
        if progress is not None:
            progress.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = parse_args(args)
    except ValueError as exc:
        print(f"standin: {exc}", file=sys.stderr)
        return 1
    name_process("ffmpeg")
    return run(opts)


if __name__ == "__main__":
    sys.exit(main())
