"""``iptv-exporter demo``: a live IPTV workload on loopback, watched by the exporter.

Streams (ffmpeg, or a built-in stand-in), an origin writing nginx's access log (nginx, or a Python one),
viewers from addresses that generated GeoIP databases place around the world, streams that crash now and
then, and, when Prometheus and Alertmanager are installed, the repository's alerts restarting them through
the exporter's webhook. This module only declares the command line; :mod:`exporter.demo.runner` runs it.
"""

from __future__ import annotations

import argparse
import importlib.util

from exporter.errors import ExporterError

DEFAULT_LISTEN = "127.0.0.1:9756"
EXTRA_MODULES = ("mmdb_writer", "netaddr")
"""What the ``demo`` extra installs (exporter/demo/geodb.py writes its GeoIP databases with them)."""


def require_extra() -> None:
    """Fail with the command that fixes it when the ``demo`` extra is not installed.

    The demo ships in the wheel (its code is small and pure Python), but the exporter itself never needs
    mmdb-writer, so that is an extra; without this check the demo would die on an ImportError deep inside.
    """
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ExporterError(f"iptv-exporter demo needs the 'demo' extra (missing: {', '.join(missing)}); "
                            "install it with: pip install 'iptv-exporter[demo]'")


def add_arguments(parser: argparse.ArgumentParser, listen_type: object) -> None:
    parser.add_argument("--web.listen-address", dest="listen", default=argparse.SUPPRESS, type=listen_type,  # type: ignore[arg-type]
                        metavar="HOST:PORT", help=f"where the exporter serves (default {DEFAULT_LISTEN})")
    parser.add_argument("--data-dir", dest="data_dir", metavar="PATH",
                        help="keep the demo's files here (default: a temporary directory, removed at exit)")
    parser.add_argument("--streams", dest="stream_count", type=int, default=4, choices=range(1, 9),
                        metavar="N", help="how many streams (1-8, default 4)")
    parser.add_argument("--chaos.interval", dest="chaos_interval", default="60s", metavar="DURATION",
                        help="kill one stream this often (default 60s; 0 turns it off)")
    parser.add_argument("--no-monitoring", dest="monitoring", action="store_false",
                        help="do not start Prometheus and Alertmanager even if installed")
    parser.add_argument("--builtin", action="store_true",
                        help="use the built-in stand-in streams and Python origin even if ffmpeg and nginx are "
                             "installed (lighter; no video)")
    parser.add_argument("--free-ports", dest="free_ports", action="store_true",
                        help="any free loopback ports for the origin, Prometheus and Alertmanager "
                             "(default: 8080, 9090, 9093 when free)")
