"""IPTV / Viewers map: where viewers connect from, by country, city and ISP.

Region filters: `continent` is a custom variable whose values are regular expressions of country codes
(see continents.py), `country` lists the countries seen in that continent. Queries apply both, as two
matchers on the same label. ISP series carry no country, so the ISP table ignores the region filters.
"""

from __future__ import annotations

from exporter.dashboards.continents import continent_regexes
from exporter.dashboards.core import (
    GREEN,
    Json,
    custom_variable,
    dashboard,
    datasource_variable,
    panel,
    query_variable,
    stat,
    table,
    target,
    timeseries,
)
from exporter.dashboards.promql import NODE, sel

UID = "iptv-viewers-map"

REGION = f'{NODE}, country=~"${{continent:raw}}", country=~"$country"'
VALUE = "connections"


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


def geomap() -> Json:
    """Countries as circles at the gazetteer's centroid, cities as circles at their coordinates.

    Query A (countries) feeds the first layer, query B (cities) the second; both are instant tables whose
    value column is renamed to ``connections`` so the layers size and colour by it. Latitude and longitude
    arrive as label strings and are converted to numbers.
    """
    countries_layer = {
        "type": "markers",
        "name": "Countries",
        "tooltip": True,
        "filterData": {"id": "byRefId", "options": "A"},
        "location": {"mode": "lookup", "lookup": "country", "gazetteer": "public/gazetteer/countries.json"},
        "config": {"showLegend": True, "style": marker_style("country", max_size=40, opacity=0.4)},
    }
    cities_layer = {
        "type": "markers",
        "name": "Cities",
        "tooltip": True,
        "filterData": {"id": "byRefId", "options": "B"},
        "location": {"mode": "coords", "latitude": "latitude", "longitude": "longitude"},
        "config": {"showLegend": False, "style": marker_style("city", max_size=16, opacity=0.8)},
    }
    rename = {name: VALUE for name in ("Value", "Value #A", "Value #B")}
    return panel(
        "geomap",
        "Viewers map",
        "Connections per country (circle at the country's centre, sized and coloured by connections) and "
        "per city (top cities by connections, at their coordinates).",
        [target(COUNTRIES, table=True), target(CITIES, table=True)],
        unit="short",
        size=(16, 14),
        defaults={"color": {"mode": "continuous-GrYlRd"}, "thresholds": GREEN},
        options={
            "view": {"id": "zero", "lat": 30, "lon": 10, "zoom": 1.5, "allLayers": True},
            "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True},
            "basemap": {"type": "default", "name": "Basemap", "config": {}},
            "layers": [countries_layer, cities_layer],
            "tooltip": {"mode": "details"},
        },
        transformations=[
            {
                "id": "convertFieldType",
                "options": {
                    "fields": {},
                    "conversions": [
                        {"targetField": "latitude", "destinationType": "number"},
                        {"targetField": "longitude", "destinationType": "number"},
                    ],
                },
            },
            {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": rename}},
        ],
    )


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
    )
    over_time = timeseries(
        "Connections by country over time",
        "Viewer connections per country, stacked.",
        [target(COUNTRIES, "{{country}}")],
        unit="short",
        stacked=True,
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
    )
    variables = [
        datasource_variable(),
        query_variable("node", "Node", "label_values(iptv_exporter_build_info, node)"),
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
        rows=[stats, [geomap(), countries], [over_time, isps], [cities]],
    )

