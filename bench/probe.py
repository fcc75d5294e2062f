"""``python -m bench.probe CONFIG ROUNDS`` — the exporter's runtime in a clean process, measured from inside.

Builds the runtime exactly as ``iptv-exporter`` does, then for each round: the parent appends a round's
worth of access-log lines (untimed; it waits for our "next" on stdout and answers on stdin), we time one
``sampler.sample_once()`` by this process's CPU clock, then the /metrics bodies of that snapshot as
``GET /metrics`` makes them (``registry.render``): the first scrape of the snapshot (it encodes the
snapshot), a second one (cached), OpenMetrics and gzip. Prints JSON.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

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

    def open(self) -> None:
        self.source.open()

    def close(self) -> None:
        self.source.close()

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
    rt = build_runtime(config, freeze_heap=True)  # as `iptv-exporter run` builds it
    added = _wire_missing(rt)
    source_cpu: dict[str, list[float]] = {}
    rt.sampler.processes = CpuTimed(rt.sampler.processes, source_cpu)
    rt.sampler.sources = [CpuTimed(src, source_cpu) for src in rt.sampler.sources]
    samples = []
    sources: dict[str, list[float]] = {}
    renders, again, om_cpu, gz_cpu = [], [], [], []
    text, om, gz = b"", b"", b""
    for i in range(rounds + 1):
        print("next", flush=True)
        sys.stdin.readline()  # the parent has appended this round's log lines
        c0, w0 = time.process_time(), time.perf_counter()
        snap = rt.sampler.sample_once()
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        samples.append({"cpu": cpu, "wall": wall})
        c0, w0 = time.process_time(), time.perf_counter()
        text, _ = rt.registry.render()  # the first scrape of this snapshot encodes it
        renders.append({"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0})
        c0 = time.process_time()
        rt.registry.render()
        again.append(time.process_time() - c0)
        c0 = time.process_time()
        om, _ = rt.registry.render("application/openmetrics-text; version=1.0.0")
        om_cpu.append(time.process_time() - c0)
        c0 = time.process_time()
        gz, _ = rt.registry.render("", "gzip")
        gz_cpu.append(time.process_time() - c0)
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
        render_prof = profile(rt.registry.render, repeat=1)  # the new snapshot's first scrape
    statuses = {st.name: {"up": st.up, "error": st.error} for st in snap.statuses}
    collects = []
    for _ in range(rounds):
        c0 = time.process_time()
        list(rt.registry.collect())
        collects.append(time.process_time() - c0)
    status = {}
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith(("VmHWM:", "VmRSS:")):
                status[line.split(":")[0]] = int(line.split()[1]) * 1024
    print(json.dumps({
        "first": samples[0], "samples": samples[1:], "renders": renders[1:], "render_again_cpu": again[1:],
        "openmetrics_cpu": om_cpu[1:], "gzip_cpu": gz_cpu[1:], "size": len(text), "gzip_size": len(gz),
        "openmetrics_size": len(om),
        "rss": rss_bytes(os.getpid()), "hwm": status.get("VmHWM", 0), "sources": sources,
        "statuses": statuses, "added": added, "streams": len(snap.streams),
        "metrics": text.decode("utf-8"), "profile": list(prof), "collect_cpu": collects,
        "source_cpu": {k: v[1:] for k, v in source_cpu.items()}, "render_profile": list(render_prof),
    }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), len(sys.argv) > 3 and sys.argv[3] == "profile")
