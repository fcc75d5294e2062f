"""The whole pipeline on a known host, diffed against a committed /metrics (node_exporter's end-to-end test).

The host lives in tests/golden/host: a captured-then-edited /proc (two PanelX ffmpeg processes with the panel's
own argv and an nginx worker), the panel's HLS directory, an ffmpeg ``-progress`` file, an nginx access log
in the PanelX URL flow, the panel's pm2 logs; tests/golden/sockdiag.bin is a sock_diag dump recorded from
the kernel (tests/golden/record_sockdiag.py made it). No Debian package is needed: every part runs as in
production except that the sources read these files, through the same seams the runtime exposes
(``build_runtime(proc_root=, socket_dump=, clock=)``).

A change to any metric shows here as a diff of tests/golden/metrics.prom. After an intended change:

    .venv/bin/python -m pytest tests/test_golden.py --update-golden

and review ``git diff tests/golden/metrics.prom`` like code.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path

import pytest

from exporter.config import parse_config
from exporter.runtime import build_runtime
from exporter.sources.sockets import RawSocket, parse_dump
from tests.mmdb import PLACES, write_dbs

GOLDEN = Path(__file__).parent / "golden"
EXPECTED = GOLDEN / "metrics.prom"
NOW = 1796541366.0
"""The golden clock: the access log, pm2 logs and file times are written around it."""

VOLATILE = re.compile(
    r"^(# (HELP|TYPE) )?(process_|python_|iptv_exporter_source_duration_seconds|iptv_exporter_build_info"
    r"|iptv_geoip_database_info|iptv_geoip_database_build_timestamp_seconds)"
    r"|_created[ {]"
)
"""Lines that differ from run to run or machine to machine: the exporter's own process, how long a source
took, the build's revision, the test GeoIP databases' build time, and when a counter was created. Everything
else must be reproducible."""


def recorded_dump(path: Path) -> tuple[int, list[RawSocket]]:
    """The viewer port and the sockets of the recorded dump, parsed by the production parser."""
    data = path.read_bytes()
    out: list[RawSocket] = []
    port, off = struct.unpack_from("!H", data)[0], 2
    while off < len(data):
        n = struct.unpack_from("!I", data, off)[0]
        parse_dump(data[off + 4: off + 4 + n], n, out)
        off += 4 + n
    return port, out


def build_host(tmp: Path) -> Path:
    """Copy the host to ``tmp``: command lines name its real paths, file times sit just before NOW."""
    root = tmp / "host"
    shutil.copytree(GOLDEN / "host", root, symlinks=True)
    for template in (root / "proc").glob("*/cmdline.in"):
        template.with_name("cmdline").write_bytes(template.read_bytes().replace(b"@ROOT@", str(root).encode()))
    for path, age in [*((p, 3.0) for p in (root / "streams").iterdir()), (root / "progress" / "5.progress", 1.0)]:
        os.utime(path, (NOW - age, NOW - age))
    return root


def render(tmp: Path) -> str:
    root = build_host(tmp)
    port, sockets = recorded_dump(GOLDEN / "sockdiag.bin")
    city_db, asn_db = write_dbs(tmp, {"127.1.0.0/16": PLACES["amsterdam"], "127.2.0.0/16": PLACES["berlin"],
                                      "127.6.0.0/16": PLACES["sao_paulo"]})
    config = parse_config({
        "node": "golden-1",
        "egress_capacity_bits_per_second": 1_000_000_000,
        "streams": {
            "discover": [{"preset": "panelx", "user": [1001]}],  # the panel user of the captured host
            "static": [
                {"id": "5", "name": "BBC One", "progress": str(root / "progress" / "5.progress")},
                {"id": "9", "name": "Declared, not running"},
            ],
        },
        "viewers": {
            "ports": [port],
            "access_log": {"path": str(root / "nginx" / "access.log"), "preset": "panelx", "from_start": True},
        },
        "geo": {"city_db": str(city_db), "asn_db": str(asn_db)},
        "errors": {"logs": [{"preset": "panelx", "path": str(root / "logs" / "error.log"), "from_start": True}]},
    })
    runtime = build_runtime(config, proc_root=str(root / "proc"), socket_dump=lambda ports: list(sockets),
                            clock=lambda: NOW)
    try:
        runtime.sampler.sample_once()
        body, _ = runtime.registry.render()
    finally:
        runtime.sampler.close()
    text = body.decode()
    return "".join(line + "\n" for line in text.splitlines() if not VOLATILE.search(line))


def test_metrics_of_a_known_host(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    got = render(tmp_path)
    if request.config.getoption("--update-golden"):
        EXPECTED.write_text(got)
    want = EXPECTED.read_text()
    assert str(tmp_path) not in got, "a path of the test's temporary host leaked into /metrics"
    assert got == want, "/metrics changed; if intended, run with --update-golden and review the diff"


def test_the_golden_host_is_the_panel_shape(tmp_path: Path) -> None:
    """Guards the fixture itself: the metrics above mean something only if the host is what it claims."""
    got = render(tmp_path)
    assert 'iptv_stream_up{stream="5"} 1.0' in got and 'iptv_stream_up{stream="7"} 1.0' in got
    assert 'iptv_stream_up{stream="9"} 0.0' in got
    assert "Secr3t" not in got and "Fe3dP4ss" not in got and "alice" not in got and "127.1.0.10" not in got
