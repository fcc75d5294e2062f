"""A whole IPTV host on loopback: stand-in streams with HLS output, viewer connections, a growing access log.

:class:`Host` builds it and writes the exporter's config for it; the exporter benchmarks run the real
exporter (or its runtime in a probe process) against it.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from pathlib import Path
from types import TracebackType

import yaml

from bench.connfarm import ConnFarm, source_addresses
from bench.nginxlog import generate
from bench.options import Options
from bench.standins import Fleet, build

SEGMENT_BYTES = 1_500_000
SEGMENT_SECONDS = 10.0


def lines_per_second(viewers: int) -> float:
    """Each viewer fetches a 10 s segment and its playlist every 10 s: 0.2 requests per second."""
    return viewers * 2 / SEGMENT_SECONDS


def write_playlists(root: Path, streams: int) -> None:
    """A live playlist per stream with six (sparse) 1.5 MB segments, as ffmpeg's hls muxer leaves them."""
    out = root / "streams"
    out.mkdir(parents=True, exist_ok=True)
    for sid in range(1, streams + 1):
        segs = []
        for n in range(100, 106):
            seg = out / f"stream_{sid}_{n}.ts"
            with open(seg, "wb") as fh:
                fh.truncate(SEGMENT_BYTES)
            segs.append(f"#EXTINF:{SEGMENT_SECONDS:.6f},\nstream_{sid}_{n}.ts\n")
        text = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:100\n"
                + "".join(segs))
        tmp = out / f"stream_{sid}.m3u8.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / f"stream_{sid}.m3u8")


def append_log(path: Path, scratch: Path, lines: int, streams: int, viewers: int, seed: int) -> None:
    """Append ``lines`` requests timed up to now (written whole: the follower never sees half a line)."""
    if lines <= 0:
        return
    generate(scratch, lines, streams, end=time.time(), rate=max(lines_per_second(viewers), 1.0),
             clients=max(viewers, 2), seed=seed)
    with open(path, "ab") as out, open(scratch, "rb") as src:
        out.write(src.read())


class Host:
    """``streams`` stand-in ffmpegs writing PanelX playlists, ``viewers`` connections, an nginx access log."""

    def __init__(self, opts: Options, streams: int, viewers: int, *, name: str = "host") -> None:
        self.opts, self.streams, self.viewers = opts, streams, viewers
        self.dir = opts.tmp / f"{name}-{streams}-{viewers}"
        self.root = self.dir / "webapp"
        self.log = self.dir / "access.log"
        self.config_path = self.dir / "config.yml"
        self._stack = contextlib.ExitStack()
        self.farm: ConnFarm | None = None
        self._writer: threading.Thread | None = None
        self._stop = threading.Event()
        self._seed = 1

    def __enter__(self) -> Host:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_playlists(self.root, self.streams)
        exe = build(self.opts.tmp / "standin")
        self._stack.enter_context(Fleet(exe, self.root, self.streams))
        self.farm = self._stack.enter_context(ConnFarm(source_addresses(2, 100)))
        self.farm.grow_to(self.viewers)
        # A minute of history, so the exporter starts on a log that already has lines (it starts at the end).
        append_log(self.log, self.dir / "chunk.log", int(lines_per_second(self.viewers) * 60), self.streams,
                   self.viewers, seed=0)
        self.config_path.write_text(yaml.safe_dump(self.config()))
        return self

    def config(self, **extra: object) -> dict[str, object]:
        assert self.farm is not None
        cfg: dict[str, object] = {
            "node": "bench",
            "sample_interval": "5s",
            # PanelX's layout, anchored at this workload's root: other ffmpegs on the machine stay out.
            "streams": {"discover": [{
                "process": "ffmpeg", "cmdline": re.escape(f"{self.root}/streams/") + r"stream_(?P<stream>\d+)\.m3u8",
            }]},
            "viewers": {"ports": [self.farm.port],
                        # From the start: the first round takes in the last minute of requests, as if the
                        # exporter had been running, so later rounds see viewers who are already known.
                        "access_log": {"path": str(self.log), "format": "combined", "preset": "panelx",
                                       "from_start": True}},
            "geo": self.opts.geo_config(),
        }
        cfg.update(extra)
        return cfg

    def append(self, seconds: float) -> int:
        """Append the requests of ``seconds`` of viewing; returns the number of lines."""
        lines = int(lines_per_second(self.viewers) * seconds)
        self._seed += 1
        append_log(self.log, self.dir / "chunk.log", lines, self.streams, self.viewers, seed=self._seed)
        return lines

    def start_writer(self, every: float = 1.0) -> None:
        """Append a second's worth of requests every second, in a thread, until exit."""
        def loop() -> None:
            while not self._stop.wait(every):
                self.append(every)

        self._writer = threading.Thread(target=loop, name="log-writer", daemon=True)
        self._writer.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._writer is not None:
            self._writer.join(10)
        self._stack.close()
