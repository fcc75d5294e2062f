"""Events drawn on every stream-level dashboard: restarts, automatic actions, restart circuits opening."""

from __future__ import annotations

from exporter.dashboards.core import PromAnnotation
from exporter.dashboards.promql import sel


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
