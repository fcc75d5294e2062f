"""GeoIP databases written on the spot, in the GeoLite2 City and ASN shapes, for loopback viewers.

The demo (and the tests) cannot download MaxMind's databases, and loopback addresses are in none of them.
So the workload's cities get MaxMind-format files of their own, read by the exporter through geoip2
exactly like the real ones: real lookups, real answers, on addresses that never leave the machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet

from exporter.demo.workload import CITIES, City

CONTINENT_NAMES = {"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
                   "OC": "Oceania", "SA": "South America"}


def city_record(city: City, geoname_id: int) -> dict[str, Any]:
    """One network's answer in the GeoLite2-City layout (what ``geoip2``'s ``Reader.city`` reads)."""
    country = {"geoname_id": MmdbU32(geoname_id * 10), "iso_code": city.country,
               "names": {"en": city.country_name}}
    return {
        "city": {"geoname_id": MmdbU32(geoname_id), "names": {"en": city.city}},
        "continent": {"code": city.continent, "geoname_id": MmdbU32(geoname_id * 100),
                      "names": {"en": CONTINENT_NAMES[city.continent]}},
        "country": country,
        "registered_country": country,
        "location": {"accuracy_radius": 20, "latitude": city.latitude, "longitude": city.longitude},
    }


def asn_record(city: City) -> dict[str, Any]:
    return {"autonomous_system_number": MmdbU32(city.asn), "autonomous_system_organization": city.isp}


def write_city_db(path: Path, cities: Iterable[City] = CITIES) -> Path:
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-City", languages=["en"],
                        description="iptv-exporter demo cities on loopback")
    for n, city in enumerate(cities, start=1):
        writer.insert_network(IPSet([city.network]), city_record(city, 1000 + n))
    return _save(writer, path)


def write_asn_db(path: Path, cities: Iterable[City] = CITIES) -> Path:
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-ASN", languages=["en"],
                        description="iptv-exporter demo ISPs on loopback")
    for city in cities:
        writer.insert_network(IPSet([city.network]), asn_record(city))
    return _save(writer, path)


def _save(writer: MMDBWriter, path: Path) -> Path:
    """Written beside and renamed over: a reader never sees half a database (the exporter reopens on change)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    writer.to_db_file(str(tmp))
    tmp.replace(path)
    return path
