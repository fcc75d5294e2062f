"""Simulated viewers: players on loopback addresses around the (generated) world, watching HLS for real.

``python -m exporter.demo.viewers --data-dir DIR --origin URL`` runs one thread per viewer of the plan
(``etc/viewers.json``). Each binds its own source address (127.<city>.0.<n>), keeps one HTTP/1.1
connection open like a player, asks for ``/live/<user>/<pass>/<id>.m3u8`` every segment duration and
fetches the segments it has not seen. The exporter sees established sockets and access-log lines, and
the GeoIP databases place each address in its city.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import httpx

from exporter.demo.layout import Layout
from exporter.demo.workload import Viewer

VIEWERS_FILE = "viewers.json"


def write_plan(layout: Layout, viewers: Sequence[Viewer]) -> Path:
    path = layout.etc / VIEWERS_FILE
    path.write_text(json.dumps([asdict(v) for v in viewers], indent=2) + "\n")
    return path


def read_plan(layout: Layout) -> list[Viewer]:
    return [Viewer(**v) for v in json.loads((layout.etc / VIEWERS_FILE).read_text())]


def viewers_argv(layout: Layout, origin: str) -> list[str]:
    return [sys.executable, "-m", "exporter.demo.viewers", "--data-dir", str(layout.root), "--origin", origin]


def segments(playlist: str) -> tuple[list[str], float]:
    """Segment URIs of a media playlist and its target duration (seconds)."""
    uris = [line.strip() for line in playlist.splitlines() if line.strip() and not line.startswith("#")]
    target = 2.0
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.split(":", 1)[1])
    return uris, target


def watch(viewer: Viewer, origin: str, stop: threading.Event) -> None:
    """Play one stream until ``stop``: playlist, new segments, wait a segment, again. Errors back off."""
    transport = httpx.HTTPTransport(local_address=viewer.address)
    url = f"{origin}/live/{viewer.username}/{viewer.password}/{viewer.stream}.m3u8"
    seen: set[str] = set()
    rng = random.Random(viewer.address)
    stop.wait(rng.uniform(0, 2))  # players do not all start in the same millisecond
    with httpx.Client(transport=transport, headers={"User-Agent": viewer.agent}, timeout=10) as client:
        while not stop.is_set():
            wait = 2.0
            try:
                response = client.get(url)
                if response.status_code != 200:
                    wait = 10.0  # a refused line retries now and then, as players do
                else:
                    uris, wait = segments(response.text)
                    fresh = [u for u in uris[-3:] if u not in seen]
                    for uri in fresh:
                        if stop.is_set():
                            break
                        client.get(uri if uri.startswith("http") else origin + uri)
                        seen.add(uri)
                    if len(seen) > 100:
                        seen = set(uris)
            except httpx.HTTPError:
                wait = 3.0  # origin restarting or stream gone: try again shortly
            stop.wait(wait * rng.uniform(0.8, 1.0))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="viewers", description="simulated HLS viewers on loopback addresses")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--origin", required=True, help="http://127.0.0.1:PORT")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = [threading.Thread(target=watch, args=(v, args.origin.rstrip("/"), stop), daemon=True,
                                name=f"viewer-{v.address}") for v in read_plan(Layout(args.data_dir))]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
