"""IPTV / Node: the host under the streams (node_exporter) next to IPTV egress, and the exporter itself.

node_exporter's series carry the same `node` target label as the exporter's (prometheus/prometheus.yml
relabels both jobs alike), so host and IPTV figures join on `node`.
"""

from __future__ import annotations

from exporter.dashboards import links
from exporter.dashboards.base import Json
from exporter.dashboards.core import dashboard
from exporter.dashboards.panels import Cell, override, prop, table, target, timeseries
from exporter.dashboards.promql import NODE, RATE, node_variable, rate, sel
from exporter.dashboards.variables import datasource_variable

UID = "iptv-node"

NIC = f'{NODE}, device!~"lo|veth.*|docker.*|br-.*|virbr.*|cni.*|flannel.*"'
"""Physical and bonded interfaces: loopback and container bridges carry no viewer traffic off the host."""
FILESYSTEMS = f'{NODE}, fstype!~"tmpfs|devtmpfs|overlay|squashfs|ramfs|nsfs|fuse.*"'


def nic(direction: str) -> str:
    """Bits per second the node's NICs send (``transmit``) or receive, per node."""
    return f"sum by (node) (rate(node_network_{direction}_bytes_total{{{NIC}}}[{RATE}])) * 8"


CAPACITY = f"max by (node) ({sel('iptv_node_egress_capacity_bytes_per_second', stream=False)}) * 8"
SOCKET_EGRESS = f"sum by (node) ({rate('iptv_connections_sent_bytes_total', stream=False)}) * 8"


def uplink_panels() -> list[Cell]:
    return [
        timeseries(
            "NIC transmit, IPTV egress and capacity",
            "Per node: bits per second all NICs transmit (node_exporter), what the exporter counted to viewers "
            "(kernel bytes on the viewer ports), and the configured uplink capacity. The gap between NIC and "
            "IPTV is everything else the host sends (origin pulls, other services).",
            [
                target(nic("transmit"), "{{node}} NIC transmit"),
                target(SOCKET_EGRESS, "{{node}} IPTV egress"),
                target(CAPACITY, "{{node}} capacity"),
            ],
            unit="bps",
            size=(16, 9),
            links=[links.SERIES_NODE],
        ),
        timeseries(
            "NIC utilisation",
            "NIC transmit as a share of the configured uplink capacity (`egress_capacity_bits_per_second`); "
            "absent for nodes without one.",
            [target(f"{nic('transmit')} / on (node) {CAPACITY}", "{{node}}")],
            unit="percentunit",
            size=(8, 9),
            links=[links.SERIES_NODE],
        ),
    ]


def host_panels() -> list[Cell]:
    cpus = f'count by (node) (rate(node_cpu_seconds_total{{{NODE}, mode="idle"}}[{RATE}]))'
    return [
        timeseries(
            "CPU busy",
            "Share of the node's CPU time not idle, and the share used by stream processes (their CPU seconds "
            "over the node's cores).",
            [
                target(f'1 - avg by (node) (rate(node_cpu_seconds_total{{{NODE}, mode="idle"}}[{RATE}]))',
                       "{{node}} all"),
                target(f"sum by (node) ({rate('iptv_stream_cpu_seconds_total', stream=False)}) / on (node) {cpus}",
                       "{{node}} streams"),
            ],
            unit="percentunit",
            size=(8, 8),
            links=[links.SERIES_NODE],
        ),
        timeseries(
            "Memory used",
            "Share of memory not available (MemAvailable over MemTotal), and the share resident in stream "
            "processes.",
            [
                target(f"1 - sum by (node) (node_memory_MemAvailable_bytes{{{NODE}}}) / "
                       f"sum by (node) (node_memory_MemTotal_bytes{{{NODE}}})", "{{node}} all"),
                target(f"sum by (node) ({sel('iptv_stream_resident_memory_bytes', stream=False)}) / on (node) "
                       f"sum by (node) (node_memory_MemTotal_bytes{{{NODE}}})", "{{node}} streams"),
            ],
            unit="percentunit",
            size=(8, 8),
            links=[links.SERIES_NODE],
        ),
        timeseries(
            "Disk used",
            "Share of each file system in use (HLS segments and logs fill disks), by mount point.",
            [target(f"max by (node, mountpoint) (1 - node_filesystem_avail_bytes{{{FILESYSTEMS}}} / "
                    f"node_filesystem_size_bytes{{{FILESYSTEMS}}})", "{{node}} {{mountpoint}}")],
            unit="percentunit",
            size=(8, 8),
            links=[links.SERIES_NODE],
        ),
        timeseries(
            "NIC receive and ingest",
            "Bits per second all NICs receive (node_exporter) next to what the stream processes read from "
            "their sources.",
            [
                target(nic("receive"), "{{node}} NIC receive"),
                target(f"sum by (node) ({rate('iptv_stream_read_bytes_total', stream=False)}) * 8",
                       "{{node}} stream ingest"),
            ],
            unit="bps",
            size=(12, 8),
            links=[links.SERIES_NODE],
        ),
        timeseries(
            "Disk writes",
            "Bytes per second written to disk (segments, logs) per node.",
            [target(f"sum by (node) (rate(node_disk_written_bytes_total{{{NODE}}}[{RATE}]))", "{{node}}")],
            unit="Bps",
            size=(12, 8),
            links=[links.SERIES_NODE],
        ),
    ]


def exporter_panels() -> list[Cell]:
    def per_node(metric: str, by: str = "node") -> str:
        return f"sum by ({by}) ({rate(metric, stream=False)})"

    return [
        table(
            "Exporter",
            "Per node: the exporter's version, seconds since the snapshot it serves was taken (stays below "
            "the sample interval), and the ffmpeg error logs it follows.",
            [
                target(f"max by (node, version) ({sel('iptv_exporter_build_info', stream=False)})"),
                target(f"max by (node) (time() - {sel('iptv_exporter_last_sample_timestamp_seconds', stream=False)})"),
                target(f"max by (node) ({sel('iptv_error_log_files', stream=False)})"),
            ],
            unit="short",
            size=(10, 8),
            columns={"node": "Node", "version": "Version", "Value #A": "Running", "Value #B": "Sample age",
                     "Value #C": "Error logs"},
            overrides=[override("Sample age", prop("unit", "s")), links.node_column()],
        ),
        timeseries(
            "Access log",
            "Access log lines read and skipped (not in the configured format) per second, rotations "
            "followed, and lines over 64 KiB dropped unread. Skipped lines above zero mean the log format does "
            "not match the preset; overlong ones, something other than nginx writes to the file.",
            [
                target(per_node("iptv_accesslog_lines_total"), "{{node}} read"),
                target(per_node("iptv_accesslog_skipped_lines_total"), "{{node}} skipped"),
                target(f"sum by (node) (increase({sel('iptv_accesslog_rotations_total', stream=False)}[{RATE}]))",
                       "{{node}} rotations"),
                target(per_node("iptv_accesslog_overlong_lines_total"), "{{node}} overlong"),
            ],
            unit="short",
            size=(14, 8),
            links=[links.SERIES_NODE],
        ),
        timeseries(
            "Progress input problems",
            "ffmpeg -progress lines that did not parse per second (by `via`: file or push), and progress "
            "pushes refused (by reason: forbidden, bad_stream, full).",
            [
                target(per_node("iptv_progress_skipped_lines_total", by="node, via"), "{{node}} skipped {{via}}"),
                target(per_node("iptv_progress_push_rejected_total", by="node, reason"),
                       "{{node}} rejected {{reason}}"),
            ],
            unit="cps",
            size=(12, 8),
            links=[links.SERIES_NODE],
        ),
        timeseries(
            "Exporter web server",
            "Open HTTP connections against the cap (--web.max-connections), connections dropped per second "
            "by reason (over the cap, a request head that never ended), and metric families that could "
            "not be rendered per second (each is logged; a scrape still serves the rest).",
            [
                target(f"max by (node) ({sel('iptv_exporter_http_connections', stream=False)})", "{{node}} open"),
                target(f"max by (node) ({sel('iptv_exporter_http_connections_max', stream=False)})", "{{node}} cap"),
                target(per_node("iptv_exporter_http_connections_dropped_total", by="node, reason"),
                       "{{node}} dropped {{reason}}"),
                target(per_node("iptv_exporter_render_errors_total", by="node, family"),
                       "{{node}} unrenderable {{family}}"),
            ],
            unit="short",
            size=(12, 8),
            links=[links.SERIES_NODE],
        ),
        timeseries(
            "Source duration",
            "How long each exporter source took on its last run; a source near the sample interval delays "
            "every figure.",
            [target(f"max by (node, source) ({sel('iptv_exporter_source_duration_seconds', stream=False)})",
                    "{{node}} {{source}}")],
            unit="s",
            size=(12, 8),
            links=[links.SERIES_NODE],
        ),
    ]


def build() -> Json:
    host, exporter = host_panels(), exporter_panels()
    return dashboard(
        uid=UID,
        title="IPTV / Node",
        description="The host under the streams (node_exporter: NIC, CPU, memory, disk) next to IPTV egress and "
        "ingest, and the exporter's own health.",
        tags=["node"],
        variables=[datasource_variable(), node_variable()],
        rows=[uplink_panels(), host[:3], host[3:], exporter[:2], exporter[2:4], exporter[4:]],
    )
