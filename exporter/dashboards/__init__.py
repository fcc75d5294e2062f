"""Grafana dashboards, built with grafana-foundation-sdk and committed as JSON under grafana/dashboards/.

``python -m exporter.dashboards`` writes the files; ``--check`` compares instead and exits 1 listing every
difference (the drift check). Each dashboard is one module with a ``build()``, made of the SDK builders in
panels.py, variables.py, annotations.py and infinity.py, assembled by core.py. The SDK is a dependency of
this generator only (the ``dashboards`` extra), never of the exporter at run time.
"""

from __future__ import annotations

import json
from pathlib import Path

from exporter.dashboards import bandwidth, live_viewers, node, overview, stream_health, viewers_map
from exporter.dashboards.base import Json

OUTPUT_DIR = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
"""grafana/dashboards in the source tree (docker-compose mounts it into Grafana)."""

BUILDERS = (
    overview.build, bandwidth.build, viewers_map.build, stream_health.build, node.build, live_viewers.build
)


def build_all() -> dict[str, Json]:
    """File name (``<uid>.json``) to dashboard."""
    boards = [build() for build in BUILDERS]
    return {f"{board['uid']}.json": board for board in boards}


def render(board: Json) -> str:
    """Stable JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
