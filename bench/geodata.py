"""GeoIP test databases for the benchmark's loopback viewers (MaxMind format, written with mmdb-writer).

Each /24 of the benchmark's client ranges maps to one of a few dozen real cities and ISPs, so geo lookups,
the city and ISP top-N and their ``other`` rows all do real work. The access log's clients come from
198.18.0.0/15 (the range set aside for benchmarks) and 2001:db8::/32 (documentation): text only, no traffic.
"""

from __future__ import annotations

from pathlib import Path

CITIES: list[tuple[str, str, float, float]] = [
    ("DE", "Berlin", 52.52, 13.40), ("DE", "Hamburg", 53.55, 9.99), ("NL", "Amsterdam", 52.37, 4.90),
    ("GB", "London", 51.51, -0.13), ("GB", "Manchester", 53.48, -2.24), ("FR", "Paris", 48.86, 2.35),
    ("FR", "Lyon", 45.76, 4.84), ("ES", "Madrid", 40.42, -3.70), ("IT", "Rome", 41.90, 12.50),
    ("IT", "Milan", 45.46, 9.19), ("PL", "Warsaw", 52.23, 21.01), ("RO", "Bucharest", 44.43, 26.10),
    ("TR", "Istanbul", 41.01, 28.98), ("US", "New York", 40.71, -74.01), ("US", "Chicago", 41.88, -87.63),
    ("CA", "Toronto", 43.65, -79.38), ("BR", "Sao Paulo", -23.55, -46.63), ("MA", "Casablanca", 33.57, -7.59),
    ("DZ", "Algiers", 36.75, 3.06), ("SE", "Stockholm", 59.33, 18.07), ("AE", "Dubai", 25.20, 55.27),
    ("IN", "Mumbai", 19.08, 72.88), ("PT", "Lisbon", 38.72, -9.14), ("BE", "Brussels", 50.85, 4.35),
]
ISPS = [(3320 + i, f"Bench ISP {i}") for i in range(60)]


def write(directory: Path) -> tuple[Path, Path] | None:
    """City and ASN databases under ``directory``; None when mmdb-writer is not installed."""
    try:
        from mmdb_writer import MMDBWriter
        from netaddr import IPSet
    except ImportError:
        return None
    city = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"],
                      description="iptv-exporter benchmark")
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN", languages=["en"],
                     description="iptv-exporter benchmark")
    nets: list[str] = [f"127.{b}.{c}.0/24" for b in (1, 2, 3) for c in range(64)]
    nets += [f"198.{18 + c // 256}.{c % 256}.0/24" for c in range(512)]
    nets += [f"2001:db8:{c:x}::/48" for c in range(64)]
    for i, net in enumerate(nets):
        country, name, lat, lon = CITIES[i % len(CITIES)]
        number, org = ISPS[(i * 7) % len(ISPS)]
        city.insert_network(IPSet([net]), {
            "country": {"iso_code": country, "names": {"en": country}},
            "city": {"names": {"en": name}},
            "location": {"latitude": lat, "longitude": lon},
        })
        asn.insert_network(IPSet([net]), {"autonomous_system_number": number, "autonomous_system_organization": org})
    directory.mkdir(parents=True, exist_ok=True)
    city_path, asn_path = directory / "GeoLite2-City.mmdb", directory / "GeoLite2-ASN.mmdb"
    city.to_db_file(str(city_path))
    asn.to_db_file(str(asn_path))
    return city_path, asn_path
