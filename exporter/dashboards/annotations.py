"""Annotations: the SDK's model plus what Grafana's Prometheus annotation editor saves, and the events drawn
on every stream-level dashboard (restarts, automatic actions, restart circuits opening)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dashboard_model

from exporter.dashboards.base import DATASOURCE
from exporter.dashboards.promql import sel


class _PromAnnotationQuery(dashboard_model.AnnotationQuery):
    """The SDK's annotation model plus the fields Grafana's Prometheus annotation editor saves."""

    def __init__(self, *, title_format: str, text_format: str, tag_keys: str, step: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title_format = title_format
        self.text_format = text_format
        self.tag_keys = tag_keys
        self.step = step

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update(
            titleFormat=self.title_format,
            textFormat=self.text_format,
            tagKeys=self.tag_keys,
            step=self.step,
            useValueForTime=False,
        )
        return payload


@dataclass(frozen=True)
class PromAnnotation(cogbuilder.Builder[dashboard_model.AnnotationQuery]):
    """A Prometheus annotation: one event (or a region, when several steps in a row match) per series."""

    name: str
    expr: str
    title: str
    text: str
    color: str
    tag_keys: str
    step: str = "1m"

    def build(self) -> dashboard_model.AnnotationQuery:
        return _PromAnnotationQuery(
            name=self.name,
            datasource=DATASOURCE,
            enable=True,
            hide=False,
            icon_color=self.color,
            expr=self.expr,
            title_format=self.title,
            text_format=self.text,
            tag_keys=self.tag_keys,
            step=self.step,
        )


def builtin_annotation() -> dashboard_builder.AnnotationQuery:
    return (
        dashboard_builder.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(dashboard_model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .built_in(1)
    )



def stream_events() -> list[PromAnnotation]:
    return [
        PromAnnotation(
            "Restarts",
            f"changes({sel('iptv_stream_restarts_total')}[2m]) > 0",
            title="Restart {{stream}}",
            text="Stream {{stream}} on {{node}} got a new process",
            color="orange",
            tag_keys="node,stream",
        ),
        PromAnnotation(
            "Actions",
            f"changes({sel('iptv_actions_total')}[2m]) > 0",
            title="{{action}} {{stream}}: {{result}}",
            text="Automatic {{action}} of stream {{stream}} on {{node}} ended {{result}}",
            color="purple",
            tag_keys="node,stream,action,result",
        ),
        PromAnnotation(
            "Restart circuit open",
            f"max by (node, stream) ({sel('iptv_restart_circuit_open')}) == 1",
            title="Circuit open {{stream}}",
            text="Restart budget of stream {{stream}} on {{node}} spent: no automatic restart until the window "
            "passes",
            color="red",
            tag_keys="node,stream",
        ),
    ]
