"""A typed query for the Infinity datasource plugin (yesoreyeram-infinity-datasource), which the SDK lacks.

The live viewers table reads the exporter's ``GET /api/connections`` (a flat JSON array of objects) through
Infinity's backend parser: each column's selector is a key of a row object. The model follows Infinity's
query type (src/types/query.types.ts of the pinned version): ``type`` json, ``source`` url, ``format``
table, ``parser`` backend, ``columns`` of {selector, text, type}.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as dashboard_model

from exporter.dashboards.variables import DatasourceInput

INFINITY_VERSION = "3.7.1"
"""The plugin version docker-compose.yml installs: the newest whose grafanaDependency (>=10.4.8) admits 11.2."""
INFINITY = DatasourceInput(
    "viewers_api", "Viewers API", "yesoreyeram-infinity-datasource", "Infinity", INFINITY_VERSION, "DS_INFINITY"
)

ColumnType = Literal["string", "number", "timestamp", "timestamp_epoch", "timestamp_epoch_s", "boolean"]


@dataclass(frozen=True)
class Column:
    """One table column: ``selector`` is the key in each row object, ``text`` the column title."""

    selector: str
    text: str
    type: ColumnType

    def to_json(self) -> dict[str, object]:
        return {"selector": self.selector, "text": self.text, "type": self.type}


@dataclass(frozen=True)
class Param:
    """A URL query parameter (Grafana variables in ``value`` are interpolated)."""

    key: str
    value: str

    def to_json(self) -> dict[str, object]:
        return {"key": self.key, "value": self.value}


@dataclass
class InfinityQuery(cogvariants.Dataquery):
    url: str
    columns: list[Column]
    params: list[Param] = field(default_factory=list)
    root_selector: str = ""
    ref_id: str = "A"
    datasource: dashboard_model.DataSourceRef = field(default_factory=lambda: INFINITY.ref)

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": self.datasource,
            "type": "json",
            "source": "url",
            "format": "table",
            "parser": "backend",
            "url": self.url,
            "url_options": {"method": "GET", "data": "", "params": self.params},
            "root_selector": self.root_selector,
            "columns": self.columns,
            "filters": [],
        }


class Infinity(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder for :class:`InfinityQuery`, in the SDK's style (``ref_id`` is set by panels.numbered)."""

    def __init__(self, url: str, columns: Sequence[Column], params: Sequence[Param] = ()) -> None:
        self._internal = InfinityQuery(url=url, columns=list(columns), params=list(params))

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def build(self) -> InfinityQuery:
        return self._internal
