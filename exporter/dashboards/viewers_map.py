"""IPTV / Viewers map: where viewers connect from, by country, city and ISP.

Region filters: `continent` is a custom variable whose values are regular expressions of country codes
(see continents.py), `country` lists the countries seen in that continent. Queries apply both, as two
matchers on the same label. ISP series carry no country, so the ISP table ignores the region filters.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import geomap as geomap_builder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as dashboard_model
from grafana_foundation_sdk.models import geomap as geomap_model

from exporter.dashboards import links
from exporter.dashboards.base import DATASOURCE, Json
from exporter.dashboards.continents import continent_regexes
from exporter.dashboards.core import dashboard
from exporter.dashboards.panels import Cell, as_builder, colour, numbered, stat, table, target, thresholds, timeseries
from exporter.dashboards.promql import NODE, node_variable, rate, sel
from exporter.dashboards.variables import custom_variable, datasource_variable, query_variable

UID = "iptv-viewers-map"

REGION = f'{NODE}, country=~"${{continent:raw}}", country=~"$country"'
VALUE = "connections"
SESSIONS = "iptv_viewer_session_duration_seconds"


def geo(metric: str) -> str:
    return f"{metric}{{{REGION}}}"


COUNTRIES = f"sum by (country) ({geo('iptv_connections')})"
CITIES = f"sum by (country, city, latitude, longitude) ({geo('iptv_connections_city')})"


def marker_style(text_field: str, *, max_size: int, opacity: float) -> Json:
    return {
        "color": {"field": VALUE, "fixed": "dark-green"},
        "size": {"field": VALUE, "fixed": 5, "min": 4, "max": max_size},
        "opacity": opacity,
        "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
        "symbolAlign": {"horizontal": "center", "vertical": "center"},
        "rotation": {"fixed": 0, "min": -360, "max": 360, "mode": "mod"},
        "text": {"mode": "field", "field": text_field, "fixed": ""},
        "textConfig": {"fontSize": 11, "offsetX": 0, "offsetY": 0, "textAlign": "center", "textBaseline": "middle"},
    }


def markers(name: str, ref: str, location: common_builder.FrameGeometrySource, style: Json, *,
            legend: bool) -> common_builder.MapLayerOptions:
    return (
        common_builder.MapLayerOptions()
        .type("markers")
        .name(name)
        .tooltip(True)
        .filter_data({"id": "byRefId", "options": ref})
        .location(location)
        .config({"showLegend": legend, "style": style})
    )


def geomap() -> Cell:
    """Countries as circles at the gazetteer's centroid, cities as circles at their coordinates.

    Query A (countries) feeds the first layer, query B (cities) the second; both are instant tables whose
    value column is renamed to ``connections`` so the layers size and colour by it. Latitude and longitude
    arrive as label strings and are converted to numbers. A click on a country offers its live viewers.
    """
    countries_layer = markers(
        "Countries",
        "A",
        common_builder.FrameGeometrySource()
        .mode(common_model.FrameGeometrySourceMode.LOOKUP)
        .lookup("country")
        .gazetteer("public/gazetteer/countries.json"),
        marker_style("country", max_size=40, opacity=0.4),
        legend=True,
    )
    cities_layer = markers(
        "Cities",
        "B",
        common_builder.FrameGeometrySource()
        .mode(common_model.FrameGeometrySourceMode.COORDS)
        .latitude("latitude")
        .longitude("longitude"),
        marker_style("city", max_size=16, opacity=0.8),
        legend=False,
    )
    rename = {name: VALUE for name in ("Value", "Value #A", "Value #B")}
    panel = (
        geomap_builder.Panel()
        .title("Viewers map")
        .description(
            "Connections per country (circle at the country's centre, sized and coloured by connections) and "
            "per city (top cities by connections, at their coordinates). Click a country for who watches "
            "from there now."
        )
        .datasource(DATASOURCE)
        .targets(numbered([target(COUNTRIES, table=True), target(CITIES, table=True)]))
        .unit("short")
        .color_scheme(colour(dashboard_model.FieldColorModeId.CONTINUOUS_GR_YL_RD))
        .thresholds(thresholds((None, "green")))
        .data_links([as_builder(links.to_viewers("${__data.fields.country}"))])
        .view(geomap_builder.MapViewConfig().id("zero").lat(30).lon(10).zoom(2).all_layers(True))
        .controls(geomap_builder.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True).show_attribution(True))
        .basemap(common_builder.MapLayerOptions().type("default").name("Basemap").config({}))
        .layers([countries_layer, cities_layer])
        .tooltip(geomap_builder.TooltipOptions().mode(geomap_model.TooltipMode.DETAILS))
        .transformations(
            [
                dashboard_model.DataTransformerConfig(
                    id_val="convertFieldType",
                    options={
                        "fields": {},
                        "conversions": [
                            {"targetField": "latitude", "destinationType": "number"},
                            {"targetField": "longitude", "destinationType": "number"},
                        ],
                    },
                ),
                dashboard_model.DataTransformerConfig(
                    id_val="organize", options={"excludeByName": {"Time": True}, "renameByName": rename}
                ),
            ]
        )
    )
    return Cell(panel, 16, 14)


def session_panels() -> list[Cell]:
    def quantile(q: str) -> str:
        return f"histogram_quantile({q}, sum by (le) ({rate(SESSIONS + '_bucket', stream=False)}))"

    return [
        timeseries(
            "Session duration",
            "How long ended viewing sessions lasted (a client on a stream from its first request until the "
            "viewer window passed without one): median, 90th percentile and mean.",
            [
                target(quantile("0.5"), "median"),
                target(quantile("0.9"), "90th percentile"),
                target(f"sum({rate(SESSIONS + '_sum', stream=False)}) / sum({rate(SESSIONS + '_count', stream=False)})",
                       "mean"),
            ],
            unit="s",
        ),
        timeseries(
            "Sessions ended",
            "Viewing sessions that ended per minute, per node.",
            [target(f"sum by (node) ({rate(SESSIONS + '_count', stream=False)}) * 60", "{{node}}")],
            unit="cpm",
            links=[links.SERIES_NODE],
        ),
    ]


def build() -> Json:
    stats = [
        stat(
            "Connections",
            "Established viewer connections in the selected region (iptv_connections).",
            [target(f"sum({geo('iptv_connections')})")],
            unit="short",
            size=(6, 4),
        ),
        stat(
            "Countries",
            "Countries with at least one viewer connection now.",
            [target(f"count({COUNTRIES} > 0) or vector(0)")],
            unit="short",
            size=(6, 4),
        ),
        stat(
            "ISPs",
            "Networks (autonomous systems) with viewers now; the top ISPs are named, the rest is 'other'.",
            [target(f"count(sum by (asn) ({sel('iptv_connections_isp', stream=False)}) > 0) or vector(0)")],
            unit="short",
            size=(6, 4),
        ),
        stat(
            "Lines sharing",
            "Lines seen from several IPs or countries at once (iptv_lines_sharing_suspected).",
            [target(f"sum({sel('iptv_lines_sharing_suspected', stream=False)})")],
            unit="short",
            size=(6, 4),
            steps=((None, "green"), (1, "orange")),
        ),
    ]
    countries = table(
        "Connections by country",
        "Viewer connections per country now, most first.",
        [target(COUNTRIES)],
        unit="short",
        size=(8, 14),
        columns={"country": "Country", "Value": "Connections"},
        sort_by="Connections",
        overrides=[links.country_column()],
    )
    over_time = timeseries(
        "Connections by country over time",
        "Viewer connections per country, stacked.",
        [target(COUNTRIES, "{{country}}")],
        unit="short",
        stacked=True,
        links=[links.SERIES_COUNTRY],
    )
    isps = table(
        "Connections by ISP",
        "Viewer connections per network now (GeoIP ASN database); not filtered by region.",
        [target(f"sum by (asn, isp) ({sel('iptv_connections_isp', stream=False)})")],
        unit="short",
        columns={"asn": "ASN", "isp": "ISP", "Value": "Connections"},
        sort_by="Connections",
    )
    cities = table(
        "Connections by city",
        "Viewer connections per city now (top cities; the rest is summed as 'other').",
        [target(CITIES)],
        unit="short",
        size=(24, 8),
        columns={
            "country": "Country",
            "city": "City",
            "latitude": "Latitude",
            "longitude": "Longitude",
            "Value": "Connections",
        },
        sort_by="Connections",
        overrides=[links.country_column()],
    )
    variables = [
        datasource_variable(),
        node_variable(),
        custom_variable(
            "continent",
            "Continent",
            continent_regexes(),
            description="A regular expression of the country codes on the chosen continent.",
        ),
        query_variable(
            "country",
            "Country",
            f'label_values(iptv_connections{{{NODE}, country=~"${{continent:raw}}"}}, country)',
        ),
    ]
    return dashboard(
        uid=UID,
        title="IPTV / Viewers map",
        description="Where viewers connect from: countries, cities and networks, filtered by region.",
        tags=["viewers", "geo"],
        variables=variables,
        rows=[stats, [geomap(), countries], [over_time, isps], [cities], session_panels()],
    )

