"""Per-stream process metrics: inventory, up, start time, restarts and resource use."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.snapshot import Snapshot


def collect(snap: Snapshot) -> Iterator[Metric]:
    # `origin` lets the alert rules page only for declared streams going down: a discovered stream
    # without a process is one the panel stopped (removed, or an on-demand channel nobody watches).
    info = GaugeMetricFamily(
        "iptv_stream_info", "A stream in the inventory (declared or discovered); always 1.",
        labels=["stream", "name", "origin"],
    )
    for ref in snap.streams.values():
        info.add_metric([ref.id, ref.name, "declared" if ref.declared else "discovered"], 1)
    yield info

    procs = snap.processes
    if procs is None and snap.complete:
        return  # the source failed: absent series rather than a false "down" (source_up says why)
    L = ["stream"]
    up = GaugeMetricFamily("iptv_stream_up", "1 if at least one process of the stream runs, else 0.", labels=L)
    start = GaugeMetricFamily(
        "iptv_stream_start_time_seconds", "Start time of the stream's oldest process, Unix seconds.", labels=L
    )
    restarts = CounterMetricFamily(
        "iptv_stream_restarts", "Starts of a stream's processes after its first, while the exporter runs.",
        labels=L,
    )
    cpu = CounterMetricFamily("iptv_stream_cpu", "CPU time of the stream's processes, user + system.",
                              labels=L, unit="seconds")
    mem = GaugeMetricFamily("iptv_stream_resident_memory_bytes", "Resident memory of the stream's processes.",
                            labels=L)
    read = CounterMetricFamily(
        "iptv_stream_read_bytes",
        "Bytes the stream took in: TCP bytes received on its processes' input sockets, rchar for file inputs.",
        labels=L,
    )
    fds = GaugeMetricFamily("iptv_stream_open_fds", "Open file descriptors of the stream's processes.", labels=L)
    threads = GaugeMetricFamily("iptv_stream_threads", "Threads of the stream's processes.", labels=L)
    procs_n = GaugeMetricFamily("iptv_stream_processes", "Processes serving the stream (a ladder has several).",
                                labels=L)
    seen = procs.streams if procs else {}
    for stream in sorted(snap.streams):
        p = seen.get(stream)
        up.add_metric([stream], 1 if p is not None and p.up else 0)
        procs_n.add_metric([stream], len(p.pids) if p else 0)
        if p is None:
            continue
        restarts.add_metric([stream], p.restarts_total)
        cpu.add_metric([stream], p.cpu_seconds_total)
        if p.read_bytes_total is not None:
            read.add_metric([stream], p.read_bytes_total)
        if p.up and p.start_time is not None:
            start.add_metric([stream], p.start_time)
            mem.add_metric([stream], p.resident_memory_bytes)
            fds.add_metric([stream], p.open_fds)
            threads.add_metric([stream], p.threads)
    yield from (up, start, restarts, cpu, mem, read, fds, threads, procs_n)
    if procs is None:
        return
    refused = CounterMetricFamily(
        "iptv_discovery_refused_processes",
        "Processes that matched a discovery rule but were refused as streams: reason owner (a user the rules"
        " do not allow) or cap (streams.max_discovered reached).", labels=["reason"],
    )
    for reason, count in sorted(procs.refused_total.items()):
        refused.add_metric([reason], count)
    forgotten = CounterMetricFamily(
        "iptv_discovery_forgotten_streams",
        "Discovered streams that left the inventory after streams.forget_after without a process.",
    )
    forgotten.add_metric([], procs.forgotten_total)
    events = GaugeMetricFamily(
        "iptv_exporter_process_events_up",
        "1 if the kernel's process events count every start and exit of stream processes; 0: sampling only.",
    )
    events.add_metric([], 1 if procs.events else 0)
    yield from (refused, forgotten, events)
