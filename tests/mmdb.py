"""Test GeoIP databases written with mmdb-writer, in the GeoLite2 City and ASN layouts geoip2 reads.

Loopback ranges can be mapped to real places, so viewers on 127.x get real geo answers:

    city, asn = write_dbs(tmp_path, {"127.1.0.0/16": PLACES["amsterdam"], "127.2.0.0/16": PLACES["berlin"]})
"""

from __future__ import annotations

from exporter.demo.geodb import CONTINENT_NAMES as CONTINENTS
from exporter.demo.geodb import Place, write_asn_db, write_city_db, write_dbs

__all__ = ["CONTINENTS", "PLACES", "Place", "write_asn_db", "write_city_db", "write_dbs"]

# The writing code lives in exporter/demo/geodb.py (the demo needs it at run time); tests keep their places.
PLACES: dict[str, Place] = {
    "amsterdam": Place("NL", "Netherlands", "EU", "Amsterdam", 52.374, 4.8897, 1136, "KPN B.V.", 2759794),
    "berlin": Place("DE", "Germany", "EU", "Berlin", 52.5244, 13.4105, 3320, "Deutsche Telekom AG", 2950159),
    "paris": Place("FR", "France", "EU", "Paris", 48.8534, 2.3488, 3215, "Orange S.A.", 2988507),
    "madrid": Place("ES", "Spain", "EU", "Madrid", 40.4165, -3.7026, 3352, "Telefonica de Espana", 3117735),
    "new_york": Place("US", "United States", "NA", "New York", 40.7143, -74.006, 7922, "Comcast Cable", 5128581),
    "sao_paulo": Place("BR", "Brazil", "SA", "São Paulo", -23.5475, -46.6361, 28573, "Claro NXT", 3448439),
}

