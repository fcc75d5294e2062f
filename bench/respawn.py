"""A panel's restart command, for the fleet benchmarks: ``python respawn.py STREAM DIR`` starts the stream's
ffmpeg again (``DIR/stream_STREAM.m3u8``), detached, and exits 0 at once, as ``systemctl restart`` would."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fleetstack import spawn_ffmpeg  # noqa: E402 - after the path set-up above

if __name__ == "__main__":
    proc = spawn_ffmpeg(Path(sys.argv[2]) / f"stream_{sys.argv[1]}.m3u8")
    print(f"started ffmpeg pid {proc.pid} for stream {sys.argv[1]}")
