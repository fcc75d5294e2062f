"""``--web.listen-address`` values, as Prometheus writes them."""

from __future__ import annotations

import argparse


def parse_listen_address(text: str) -> tuple[str, int]:
    """``:9756`` (all interfaces), ``127.0.0.1:9756`` or ``[::1]:9756``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"invalid listen address {text!r}: use HOST:PORT or :PORT")
    return host.strip("[]") or "0.0.0.0", int(port)
