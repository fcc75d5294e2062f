"""What every dashboard module shares: the Grafana version, the grid, the Prometheus datasource reference."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import dashboard as dashboard_model

Json = dict[str, Any]

GRAFANA_VERSION = "11.2.2"
"""The Grafana image docker-compose.yml runs; grafana-foundation-sdk is pinned to its minor (11.2)."""
GRID_COLUMNS = 24
TAG = "iptv"
PROMETHEUS = "prometheus"
DATASOURCE = dashboard_model.DataSourceRef(type_val=PROMETHEUS, uid="${datasource}")
"""Every Prometheus panel, target, variable and annotation queries the dashboard's `datasource` variable."""
REFRESH = "30s"
REFRESH_INTERVALS = ["5s", "10s", "30s", "1m", "5m", "15m", "30m", "1h"]
"""5 s is the "live" choice (the exporter samples every 5 s); 30 s is the default."""

