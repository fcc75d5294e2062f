"""``python -m exporter.demo.streamctl --data-dir DIR {start,stop,restart,kill} STREAM``.

The demo's stand-in for ``systemctl restart iptv-stream@{stream}`` or a panel's restart API: the
exporter's ``command`` restart action runs it. It prints the stream's pid (start, restart) and exits at
once, leaving the stream running detached.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from exporter.demo import streams
from exporter.demo.layout import Layout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamctl", description="start, stop or restart a demo stream")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("command", choices=["start", "stop", "restart", "kill"])
    parser.add_argument("stream")
    args = parser.parse_args(argv)
    layout = Layout(args.data_dir)
    if args.stream not in streams.read_specs(layout):
        print(f"streamctl: unknown stream {args.stream!r}", file=sys.stderr)
        return 2
    if args.command == "start":
        print(streams.spawn(layout, args.stream))
    elif args.command == "restart":
        print(streams.restart(layout, args.stream))
    elif args.command == "stop":
        streams.stop(layout, args.stream)
    else:
        streams.kill(layout, args.stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
