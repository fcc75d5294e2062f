"""Test GeoIP databases written with mmdb-writer, in the GeoLite2 City and ASN layouts geoip2 reads.

Loopback ranges can be mapped to real places, so viewers on 127.x get real geo answers:

    city, asn = write_dbs(tmp_path, {"127.1.0.0/16": PLACES["amsterdam"], "127.2.0.0/16": PLACES["berlin"]})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mmdb_writer import MMDBWriter  # type: ignore[import-untyped]
from netaddr import IPSet  # type: ignore[import-untyped]


@dataclass(frozen=True)
class Place:
    country: str
    country_name: str
    continent: str
    city: str
    latitude: float
    longitude: float
    asn: int
    isp: str
    geoname_id: int = 0


PLACES: dict[str, Place] = {
    "amsterdam": Place("NL", "Netherlands", "EU", "Amsterdam", 52.374, 4.8897, 1136, "KPN B.V.", 2759794),
    "berlin": Place("DE", "Germany", "EU", "Berlin", 52.5244, 13.4105, 3320, "Deutsche Telekom AG", 2950159),
    "paris": Place("FR", "France", "EU", "Paris", 48.8534, 2.3488, 3215, "Orange S.A.", 2988507),
    "madrid": Place("ES", "Spain", "EU", "Madrid", 40.4165, -3.7026, 3352, "Telefonica de Espana", 3117735),
    "new_york": Place("US", "United States", "NA", "New York", 40.7143, -74.006, 7922, "Comcast Cable", 5128581),
    "sao_paulo": Place("BR", "Brazil", "SA", "São Paulo", -23.5475, -46.6361, 28573, "Claro NXT", 3448439),
}

CONTINENTS = {"EU": "Europe", "NA": "North America", "SA": "South America", "AS": "Asia", "AF": "Africa",
              "OC": "Oceania"}


def _city_record(p: Place) -> dict[str, object]:
    return {
        "city": {"geoname_id": p.geoname_id, "names": {"en": p.city}},
        "continent": {"code": p.continent, "names": {"en": CONTINENTS.get(p.continent, p.continent)}},
        "country": {"iso_code": p.country, "names": {"en": p.country_name}},
        "registered_country": {"iso_code": p.country, "names": {"en": p.country_name}},
        "location": {"latitude": p.latitude, "longitude": p.longitude, "accuracy_radius": 20},
    }


def _writer(kind: str) -> MMDBWriter:
    return MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=kind, languages=["en"],
                      description=f"iptv-exporter test {kind}")


def write_city_db(path: Path, networks: Mapping[str, Place]) -> Path:
    """A GeoLite2-City-shaped database mapping each CIDR to its place."""
    w = _writer("GeoLite2-City")
    for cidr, place in networks.items():
        w.insert_network(IPSet([cidr]), _city_record(place))
    w.to_db_file(str(path))
    return path


def write_asn_db(path: Path, networks: Mapping[str, Place]) -> Path:
    """A GeoLite2-ASN-shaped database mapping each CIDR to its network."""
    w = _writer("GeoLite2-ASN")
    for cidr, place in networks.items():
        w.insert_network(IPSet([cidr]), {"autonomous_system_number": place.asn,
                                          "autonomous_system_organization": place.isp})
    w.to_db_file(str(path))
    return path


def write_dbs(directory: Path, networks: Mapping[str, Place]) -> tuple[Path, Path]:
    """``GeoLite2-City.mmdb`` and ``GeoLite2-ASN.mmdb`` in ``directory`` (the names the exporter searches for)."""
    directory.mkdir(parents=True, exist_ok=True)
    return (write_city_db(directory / "GeoLite2-City.mmdb", networks),
            write_asn_db(directory / "GeoLite2-ASN.mmdb", networks))
