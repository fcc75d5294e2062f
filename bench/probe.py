"""``python -m bench.probe CONFIG ROUNDS`` — the exporter's runtime in a clean process, measured from inside.

Builds the runtime exactly as ``iptv-exporter`` does, then for each round: the parent appends a round's
worth of access-log lines (untimed; it waits for our "next" on stdout and answers on stdin), we time one
``sampler.sample_once()`` by this process's CPU clock, and finally time the /metrics render. Prints JSON.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from typing import Any

from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from bench.measure import rss_bytes


def _wire_missing(rt: object) -> list[str]:
    """Viewer sources the runtime does not build yet are added here the way it will (noted in the report)."""
    from exporter.geo import Geo
    from exporter.sources.accesslog import AccessLogSource
    from exporter.sources.sockets import SocketsSource

    sampler = rt.sampler  # type: ignore[attr-defined]
    config = rt.config  # type: ignore[attr-defined]
    names = {s.name for s in sampler.sources}
    added = []
    geo = None
    if "sockets" not in names and config.viewers.ports:
        geo = Geo(config.geo)
        sampler.sources.append(SocketsSource(config, geo.lookup, geo.refresh))
        added.append("sockets")
    if "accesslog" not in names and config.viewers.access_log is not None:
        geo = geo or Geo(config.geo)
        sampler.sources.append(AccessLogSource(config, geo.lookup))
        added.append("accesslog")
    return added


class CpuTimed:
    """Wraps a source to add up the CPU time its ``sample`` takes (the sampler only records wall time)."""

    def __init__(self, source: Any, spent: dict[str, list[float]]) -> None:
        self.source = source
        self.name = source.name
        self.spent = spent

    def sample(self, ctx: Any) -> Any:
        c0 = time.process_time()
        try:
            return self.source.sample(ctx)
        finally:
            self.spent.setdefault(self.name, []).append(time.process_time() - c0)


def main(config_path: str, rounds: int, want_profile: bool = False) -> None:
    import os

    from exporter.config import load_config
    from exporter.runtime import build_runtime

    config = load_config(config_path)
    rt = build_runtime(config)
    added = _wire_missing(rt)
    source_cpu: dict[str, list[float]] = {}
    rt.sampler.processes = CpuTimed(rt.sampler.processes, source_cpu)  # type: ignore[assignment]
    rt.sampler.sources = [CpuTimed(src, source_cpu) for src in rt.sampler.sources]
    samples = []
    sources: dict[str, list[float]] = {}
    for i in range(rounds + 1):
        print("next", flush=True)
        sys.stdin.readline()  # the parent has appended this round's log lines
        c0, w0 = time.process_time(), time.perf_counter()
        snap = rt.sampler.sample_once()
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        samples.append({"cpu": cpu, "wall": wall})
        if i > 0:
            for st in snap.statuses:
                sources.setdefault(st.name, []).append(st.duration_seconds)
    prof: tuple[str, list[str]] = ("", [])
    render_prof: tuple[str, list[str]] = ("", [])
    if want_profile:
        from bench.profiling import profile

        print("next", flush=True)
        sys.stdin.readline()
        prof = profile(rt.sampler.sample_once, repeat=1)
        render_prof = profile(lambda: generate_latest(rt.registry), repeat=3)
    statuses = {st.name: {"up": st.up, "error": st.error} for st in snap.statuses}
    renders, text = [], b""
    for _ in range(rounds + 1):
        c0, w0 = time.process_time(), time.perf_counter()
        text = generate_latest(rt.registry)
        renders.append({"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0})
    collects = []
    for _ in range(rounds):
        c0 = time.process_time()
        list(rt.registry.collect())
        collects.append(time.process_time() - c0)
    c0 = time.process_time()
    om = generate_openmetrics(rt.registry)  # type: ignore[no-untyped-call]
    om_cpu = time.process_time() - c0
    c0 = time.process_time()
    gz = gzip.compress(text, compresslevel=5)
    gz_cpu = time.process_time() - c0
    status = {}
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith(("VmHWM:", "VmRSS:")):
                status[line.split(":")[0]] = int(line.split()[1]) * 1024
    print(json.dumps({
        "first": samples[0], "samples": samples[1:], "renders": renders[1:], "openmetrics_cpu": om_cpu,
        "gzip_cpu": gz_cpu, "size": len(text), "gzip_size": len(gz), "openmetrics_size": len(om),
        "rss": rss_bytes(os.getpid()), "hwm": status.get("VmHWM", 0), "sources": sources,
        "statuses": statuses, "added": added, "streams": len(snap.streams),
        "metrics": text.decode("utf-8"), "profile": list(prof), "collect_cpu": collects,
        "source_cpu": {k: v[1:] for k, v in source_cpu.items()}, "render_profile": list(render_prof),
    }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), len(sys.argv) > 3 and sys.argv[3] == "profile")
