"""GeoIP databases written on the spot, in the GeoLite2 City and ASN layouts that geoip2 reads.

The demo, bench/ and tests/ cannot download MaxMind's databases, and loopback addresses are in none of them.
So any CIDR, 127.1.0.0/16 included, can be given a real place here, and the exporter reads the files
through geoip2 exactly like the real ones: real lookups, real answers, on addresses that never leave
the machine. IPv6 databases with the IPv4 space mapped in, like MaxMind's own::

    city_db, asn_db = write_dbs(directory, {"127.1.0.0/16": Place("NL", "Netherlands", "EU", "Amsterdam",
                                                                    52.37, 4.90, 64501, "Polder Fiber")})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet

CONTINENT_NAMES = {"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
                   "OC": "Oceania", "SA": "South America"}


@dataclass(frozen=True, slots=True)
class Place:
    """What a database answers for a network: where it is and whose network it is."""

    country: str
    """ISO 3166-1 alpha-2."""
    country_name: str
    continent: str
    """Two-letter continent code (EU, NA, ...)."""
    city: str
    latitude: float
    longitude: float
    asn: int
    isp: str
    geoname_id: int = 0


def city_record(place: Place) -> dict[str, Any]:
    """One network's answer in the GeoLite2-City layout (what ``geoip2``'s ``Reader.city`` reads)."""
    country = {"iso_code": place.country, "names": {"en": place.country_name}}
    return {
        "city": {"geoname_id": MmdbU32(place.geoname_id), "names": {"en": place.city}},
        "continent": {"code": place.continent, "names": {"en": CONTINENT_NAMES.get(place.continent, place.continent)}},
        "country": country,
        "registered_country": country,
        "location": {"accuracy_radius": 20, "latitude": place.latitude, "longitude": place.longitude},
    }


def asn_record(place: Place) -> dict[str, Any]:
    """One network's answer in the GeoLite2-ASN layout."""
    return {"autonomous_system_number": MmdbU32(place.asn), "autonomous_system_organization": place.isp}


def _writer(kind: str) -> MMDBWriter:
    return MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=kind, languages=["en"],
                      description=f"iptv-exporter generated {kind}")


def write_city_db(path: Path, networks: Mapping[str, Place]) -> Path:
    """A GeoLite2-City-shaped database mapping each CIDR to its place."""
    writer = _writer("GeoLite2-City")
    for cidr, place in networks.items():
        writer.insert_network(IPSet([cidr]), city_record(place))
    return _save(writer, path)


def write_asn_db(path: Path, networks: Mapping[str, Place]) -> Path:
    """A GeoLite2-ASN-shaped database mapping each CIDR to its network."""
    writer = _writer("GeoLite2-ASN")
    for cidr, place in networks.items():
        writer.insert_network(IPSet([cidr]), asn_record(place))
    return _save(writer, path)


def write_dbs(directory: Path, networks: Mapping[str, Place]) -> tuple[Path, Path]:
    """``GeoLite2-City.mmdb`` and ``GeoLite2-ASN.mmdb`` in ``directory`` (the names the exporter looks for)."""
    directory.mkdir(parents=True, exist_ok=True)
    return (write_city_db(directory / "GeoLite2-City.mmdb", networks),
            write_asn_db(directory / "GeoLite2-ASN.mmdb", networks))


def _save(writer: MMDBWriter, path: Path) -> Path:
    """Written beside and renamed over: a reader never sees half a database (the exporter reopens on change)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    writer.to_db_file(str(tmp))
    tmp.replace(path)
    return path
