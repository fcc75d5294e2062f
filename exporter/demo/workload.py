"""Who watches what, from where: the demo's subscribers, their addresses and the cities behind them.

Loopback is all of 127.0.0.0/8, so each city gets a /16 of it (127.1.0.0/16 is Amsterdam, ...) and the
generated GeoIP databases place those ranges where the cities are. A viewer is a line (username and
password, as panels sell them) watching one stream from one address. Some lines are shared across
countries on purpose, and one password is wrong, so sharing and 403s show up in the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.demo.geodb import Place


@dataclass(frozen=True, slots=True)
class City:
    network: str
    """An IPv4 /16 inside 127.0.0.0/8."""
    place: Place

    def address(self, host: int) -> str:
        """A viewer address in this city's range: ``127.<n>.0.<host>``."""
        return self.network.rsplit(".", 2)[0] + f".0.{host}"


CITIES: tuple[City, ...] = (
    City("127.1.0.0/16", Place("NL", "Netherlands", "EU", "Amsterdam", 52.37, 4.90, 64501, "Polder Fiber", 2759794)),
    City("127.2.0.0/16", Place("US", "United States", "NA", "New York", 40.71, -74.01, 64502, "Empire Cable", 5128581)),
    City("127.3.0.0/16", Place("BR", "Brazil", "SA", "São Paulo", -23.55, -46.63, 64503, "Paulista Net", 3448439)),
    City("127.4.0.0/16", Place("JP", "Japan", "AS", "Tokyo", 35.68, 139.69, 64504, "Kanto Hikari", 1850147)),
    City("127.5.0.0/16", Place("NG", "Nigeria", "AF", "Lagos", 6.52, 3.38, 64505, "Lagoon Broadband", 2332459)),
    City("127.6.0.0/16", Place("AU", "Australia", "OC", "Sydney", -33.87, 151.21, 64506, "Harbour Telecom", 2147714)),
    City("127.7.0.0/16", Place("DE", "Germany", "EU", "Berlin", 52.52, 13.40, 64507, "Spree DSL", 2950159)),
    City("127.8.0.0/16", Place("IN", "India", "AS", "Mumbai", 19.08, 72.88, 64508, "Arabian Sea Networks", 1275339)),
)


def networks() -> dict[str, Place]:
    """The cities as ``{CIDR: place}``, what :func:`exporter.demo.geodb.write_dbs` takes."""
    return {c.network: c.place for c in CITIES}


@dataclass(frozen=True, slots=True)
class Line:
    username: str
    password: str


LINES: tuple[Line, ...] = (
    Line("alice", "Secr3t"), Line("bob", "pa55"), Line("carol", "xyz123"), Line("dave", "d4ve"),
    Line("erin", "hunter2"), Line("frank", "f00bar"), Line("grace", "gr4ce"), Line("heidi", "h3idi"),
    Line("ivan", "iv4n"), Line("judy", "jud7"), Line("ken", "k3nny"), Line("lena", "l3na"), Line("mike", "m1ke"),
    Line("nina", "n1na"), Line("oscar", "0scar"), Line("peggy", "p3ggy"),
)


@dataclass(frozen=True, slots=True)
class Viewer:
    address: str
    username: str
    password: str
    stream: str
    agent: str


_AGENTS = ("VLC/3.0.20 LibVLC/3.0.20", "IPTVSmartersPlayer", "okhttp/4.9.2", "Lavf/59.27.100",
           "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36")


def plan(streams: tuple[str, ...]) -> tuple[Viewer, ...]:
    """Two viewers per city, each on a line of their own, spread over the streams; alice also watches from
    Tokyo (one shared line), and one Berlin viewer has a wrong password (403s)."""
    viewers: list[Viewer] = []
    by_user = {line.username: line for line in LINES}
    for i, city in enumerate(CITIES):
        for j in range(2):
            n = 2 * i + j
            line = LINES[n % len(LINES)]
            viewers.append(Viewer(city.address(10 * (j + 1)), line.username, line.password,
                                  streams[n % len(streams)], _AGENTS[n % len(_AGENTS)]))
    alice = by_user["alice"]
    viewers.append(Viewer(CITIES[3].address(99), alice.username, alice.password, streams[0], _AGENTS[0]))
    viewers.append(Viewer(CITIES[6].address(66), "mallory", "guess", streams[-1], _AGENTS[2]))
    return tuple(viewers)
