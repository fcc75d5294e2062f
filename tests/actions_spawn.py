"""Stand-in for a panel's restart command: starts the stream's ffmpeg again, detached, and returns.

Usage: python actions_spawn.py DIR STREAM
Starts ``ffmpeg ... DIR/act_STREAM.m3u8`` (tests.helpers.ffmpeg_hls_argv) in its own session with its
output on /dev/null, appends its pid to DIR/spawned.log, and exits 0 at once - as `systemctl restart`
or a panel's restart script would. Called by the exporter's command runner with an argv list.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import ffmpeg_hls_argv  # noqa: E402 - after the path set-up above


def main(directory: str, stream: str) -> int:
    base = Path(directory)
    proc = subprocess.Popen(ffmpeg_hls_argv(base / f"act_{stream}.m3u8"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    with open(base / "spawned.log", "a", encoding="utf-8") as fh:
        fh.write(f"{proc.pid}\n")
    print(f"started ffmpeg pid {proc.pid} for stream {stream}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
