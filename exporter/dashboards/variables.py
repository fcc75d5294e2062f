"""Template variables: datasource (with its grafana.com import input), Prometheus query, custom, text box."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models import dashboard as dashboard_model

from exporter.dashboards.base import DATASOURCE, PROMETHEUS


@dataclass(frozen=True)
class DatasourceInput:
    """A datasource variable and the grafana.com import input that fills it."""

    variable: str
    label: str
    plugin_id: str
    plugin_name: str
    plugin_version: str
    input_name: str

    @property
    def ref(self) -> dashboard_model.DataSourceRef:
        return dashboard_model.DataSourceRef(type_val=self.plugin_id, uid="${" + self.variable + "}")


PROMETHEUS_INPUT = DatasourceInput("datasource", "Data source", PROMETHEUS, "Prometheus", "1.0.0", "DS_PROMETHEUS")


def datasource_variable(source: DatasourceInput = PROMETHEUS_INPUT) -> dashboard_builder.DatasourceVariable:
    """A datasource variable; on import from grafana.com its current value is the input the user chose.

    Provisioned as it is, Grafana finds no datasource named ``${DS_...}`` and takes the default of the type.
    """
    placeholder = "${" + source.input_name + "}"
    return (
        dashboard_builder.DatasourceVariable(source.variable)
        .label(source.label)
        .type(source.plugin_id)
        .current(dashboard_model.VariableOption(selected=False, text=placeholder, value=placeholder))
        .multi(False)
        .include_all(False)
    )


def query_variable(
    name: str,
    label: str,
    query: str,
    *,
    multi: bool = True,
    include_all: bool = True,
    regex: str = "",
    query_type: int = 1,
) -> dashboard_builder.QueryVariable:
    """A Prometheus query variable. ``query_type`` is the editor's qryType: 1 label values, 3 query result.

    Grafana runs ``query``; for a query result the editor also keeps the inner expression as ``varQuery``.
    """
    model: dict[str, object] = {
        "qryType": query_type,
        "query": query,
        "refId": "PrometheusVariableQueryEditor-VariableQuery",
    }
    if query_type == 3:
        if not (query.startswith("query_result(") and query.endswith(")")):
            raise ValueError(f"a query-result variable needs query_result(...), got {query!r}")
        model["varQuery"] = query[len("query_result(") : -1]
    variable = (
        dashboard_builder.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(model)
        .refresh(dashboard_model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_model.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(include_all)
        .regex(regex)
    )
    if include_all:
        variable = variable.all_value(".*").current(
            dashboard_model.VariableOption(selected=True, text=["All"], value=["$__all"])
        )
    return variable


def custom_variable(
    name: str,
    label: str,
    choices: Sequence[tuple[str, str]],
    *,
    all_value: str | None = ".*",
    default: str | None = None,
    description: str = "",
) -> dashboard_builder.CustomVariable:
    """A single-choice custom variable of ``text : value`` pairs; with ``all_value``, "All" maps to it.

    Reference it as ``${name:raw}`` when its values are regular expressions: Grafana regex-escapes the
    values of variables that have an "All" option.
    """
    current = next(((t, v) for t, v in choices if v == default), None)
    options = [
        dashboard_model.VariableOption(selected=(t, v) == current, text=t, value=v) for t, v in choices
    ]
    variable = (
        dashboard_builder.CustomVariable(name)
        .label(label)
        .description(description)
        .values(",".join(f"{text} : {value}" for text, value in choices))
        .multi(False)
        .include_all(all_value is not None)
    )
    if all_value is not None:
        options.insert(0, dashboard_model.VariableOption(selected=current is None, text="All", value="$__all"))
        variable = variable.all_value(all_value)
    selected = current or ("All", "$__all")
    return variable.options(options).current(
        dashboard_model.VariableOption(selected=True, text=selected[0], value=selected[1])
    )


def textbox_variable(name: str, label: str, description: str) -> dashboard_builder.TextBoxVariable:
    """A free-text variable, empty by default (links from other dashboards fill it)."""
    return (
        dashboard_builder.TextBoxVariable(name)
        .label(label)
        .description(description)
        .default_value("")
        .current(dashboard_model.VariableOption(selected=False, text="", value=""))
    )


