"""GeoIP test databases for the benchmark's loopback viewers, written by the demo's writer (exporter/demo/geodb.py).

Each /24 of the benchmark's client ranges maps to one of a few dozen real cities and ISPs, so geo lookups,
the city and ISP top-N and their ``other`` rows all do real work. The access log's clients come from
198.18.0.0/15 (the range set aside for benchmarks) and 2001:db8::/32 (documentation): text only, no traffic.
"""

from __future__ import annotations

from pathlib import Path

from exporter.demo.geodb import Place, write_dbs

CITIES: list[tuple[str, str, str, float, float]] = [
    ("DE", "EU", "Berlin", 52.52, 13.40), ("DE", "EU", "Hamburg", 53.55, 9.99), ("NL", "EU", "Amsterdam", 52.37, 4.90),
    ("GB", "EU", "London", 51.51, -0.13), ("GB", "EU", "Manchester", 53.48, -2.24), ("FR", "EU", "Paris", 48.86, 2.35),
    ("FR", "EU", "Lyon", 45.76, 4.84), ("ES", "EU", "Madrid", 40.42, -3.70), ("IT", "EU", "Rome", 41.90, 12.50),
    ("IT", "EU", "Milan", 45.46, 9.19), ("PL", "EU", "Warsaw", 52.23, 21.01), ("RO", "EU", "Bucharest", 44.43, 26.10),
    ("TR", "AS", "Istanbul", 41.01, 28.98), ("US", "NA", "New York", 40.71, -74.01),
    ("US", "NA", "Chicago", 41.88, -87.63), ("CA", "NA", "Toronto", 43.65, -79.38),
    ("BR", "SA", "Sao Paulo", -23.55, -46.63), ("MA", "AF", "Casablanca", 33.57, -7.59),
    ("DZ", "AF", "Algiers", 36.75, 3.06), ("SE", "EU", "Stockholm", 59.33, 18.07), ("AE", "AS", "Dubai", 25.20, 55.27),
    ("IN", "AS", "Mumbai", 19.08, 72.88), ("PT", "EU", "Lisbon", 38.72, -9.14), ("BE", "EU", "Brussels", 50.85, 4.35),
]
ISPS = [(3320 + i, f"Bench ISP {i}") for i in range(60)]


def networks() -> dict[str, Place]:
    """Every /24 (and IPv6 /48) the benchmark's viewers come from, with its city and ISP."""
    nets: list[str] = [f"127.{b}.{c}.0/24" for b in (1, 2, 3) for c in range(64)]
    nets += [f"198.{18 + c // 256}.{c % 256}.0/24" for c in range(512)]
    nets += [f"2001:db8:{c:x}::/48" for c in range(64)]
    places: dict[str, Place] = {}
    for i, net in enumerate(nets):
        country, continent, city, lat, lon = CITIES[i % len(CITIES)]
        asn, isp = ISPS[(i * 7) % len(ISPS)]
        places[net] = Place(country, country, continent, city, lat, lon, asn, isp)
    return places


def write(directory: Path) -> tuple[Path, Path]:
    """City and ASN databases under ``directory`` (``make bench`` installs the ``demo`` extra that writes them)."""
    return write_dbs(directory, networks())
