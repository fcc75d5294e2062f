"""Geo lookups against test databases written with mmdb-writer: answers, overrides, reloads, missing DBs."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.config.viewers import Geo as GeoConfig
from exporter.geo import NOWHERE, UNKNOWN, Geo
from tests.mmdb import PLACES, write_city_db, write_dbs

NETWORKS = {
    "127.1.0.0/16": PLACES["amsterdam"],
    "127.2.0.0/16": PLACES["berlin"],
    "2001:db8:1::/48": PLACES["paris"],
}


@pytest.fixture
def dbs(tmp_path: Path) -> tuple[Path, Path]:
    return write_dbs(tmp_path / "geoip", NETWORKS)


@pytest.fixture
def make_geo() -> Iterator[type[Geo]]:
    made: list[Geo] = []

    class Closing(Geo):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, **kw)  # type: ignore[arg-type]
            made.append(self)

    yield Closing
    for g in made:
        g.close()


def test_city_and_asn_answers(dbs: tuple[Path, Path], make_geo: type[Geo]) -> None:
    geo = make_geo(GeoConfig(city_db=dbs[0], asn_db=dbs[1]))
    g = geo.lookup("127.1.0.10")
    assert (g.country, g.city, g.asn, g.isp) == ("NL", "Amsterdam", 1136, "KPN B.V.")
    assert g.latitude == pytest.approx(52.374) and g.longitude == pytest.approx(4.8897)
    assert geo.lookup("127.2.3.4").city == "Berlin"
    assert geo.lookup("2001:db8:1::42").country == "FR"
    assert geo.lookup("::ffff:127.2.0.20").country == "DE"  # a v4-mapped peer of a dual-stack listener


def test_unknown_for_addresses_not_in_the_database(dbs: tuple[Path, Path], make_geo: type[Geo]) -> None:
    geo = make_geo(GeoConfig(city_db=dbs[0], asn_db=dbs[1]))
    for ip in ("10.0.0.1", "2001:db8:9::1", "not-an-ip", ""):
        g = geo.lookup(ip)
        assert (g.country, g.city, g.isp, g.asn, g.latitude) == (UNKNOWN, UNKNOWN, UNKNOWN, None, None), ip


def test_answers_are_cached_and_interned(dbs: tuple[Path, Path], make_geo: type[Geo]) -> None:
    geo = make_geo(GeoConfig(city_db=dbs[0], asn_db=dbs[1], cache_size=16))
    a, b = geo.lookup("127.1.0.10"), geo.lookup("127.1.9.9")
    assert a is b  # one object per distinct answer: the sockets source counts by identity
    assert geo.lookup.cache_info().hits == 0  # type: ignore[attr-defined]
    geo.lookup("127.1.0.10")
    assert geo.lookup.cache_info().hits == 1  # type: ignore[attr-defined]
    assert geo.lookup("10.9.9.9") is NOWHERE


def test_overrides_come_first_most_specific_wins(dbs: tuple[Path, Path], make_geo: type[Geo]) -> None:
    geo = make_geo(GeoConfig.model_validate({
        "city_db": str(dbs[0]), "asn_db": str(dbs[1]),
        "overrides": [
            {"cidr": "127.1.0.0/16", "country": "ES", "city": "Madrid", "latitude": 40.42, "longitude": -3.70},
            {"cidr": "127.1.5.0/24", "country": "US", "city": "New York", "asn": 64500, "isp": "Office"},
            {"cidr": "10.20.0.0/16", "country": "NL"},
        ],
    }))
    g = geo.lookup("127.1.0.10")
    assert (g.country, g.city, g.latitude) == ("ES", "Madrid", 40.42)
    assert (g.asn, g.isp) == (1136, "KPN B.V.")  # fields the override leaves out still come from the database
    assert (geo.lookup("127.1.5.7").city, geo.lookup("127.1.5.7").isp) == ("New York", "Office")
    assert (geo.lookup("10.20.1.1").country, geo.lookup("10.20.1.1").city) == ("NL", UNKNOWN)


def test_missing_database_warns_once_and_is_picked_up_when_it_appears(
    tmp_path: Path, make_geo: type[Geo], caplog: pytest.LogCaptureFixture
) -> None:
    city = tmp_path / "later" / "GeoLite2-City.mmdb"
    with caplog.at_level(logging.WARNING, logger="exporter.geo"):
        geo = make_geo(GeoConfig(city_db=city, asn_db=tmp_path / "nope.mmdb"))
        for _ in range(3):
            geo.refresh()
        assert geo.lookup("127.1.0.10").country == UNKNOWN
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]  # one per missing database, not per round
    city.parent.mkdir()
    write_city_db(city, NETWORKS)
    geo.refresh()
    assert geo.lookup("127.1.0.10").country == "NL"


def test_database_replaced_on_disk_is_reloaded(tmp_path: Path, make_geo: type[Geo]) -> None:
    city = write_city_db(tmp_path / "GeoLite2-City.mmdb", NETWORKS)
    geo = make_geo(GeoConfig(city_db=city))
    assert geo.lookup("127.1.0.10").city == "Amsterdam"
    fresh = write_city_db(tmp_path / "new.mmdb", {"127.1.0.0/16": PLACES["sao_paulo"]})
    os.replace(fresh, city)  # how geoipupdate installs a new database
    geo.refresh()
    assert (geo.lookup("127.1.0.10").country, geo.lookup("127.1.0.10").city) == ("BR", "São Paulo")


def test_default_search_directories(tmp_path: Path, make_geo: type[Geo]) -> None:
    write_dbs(tmp_path / "var-lib-GeoIP", NETWORKS)
    geo = make_geo(GeoConfig(), search_dirs=[tmp_path / "usr-share-GeoIP", tmp_path / "var-lib-GeoIP"])
    assert geo.lookup("127.2.0.1").isp == "Deutsche Telekom AG"


def test_database_status_and_metrics_loaded_edition_build_date_and_age(
    tmp_path: Path, make_geo: type[Geo], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from prometheus_client import CollectorRegistry, generate_latest

    from exporter.metrics.geoip import GeoIPCollector
    from tests.helpers import metric, parse_metrics

    built = 1767312000  # 2026-01-02 00:00 UTC: what mmdb-writer records as the build time
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: float(built))  # mmdb-writer stamps build_epoch with time.time()
        city = write_city_db(tmp_path / "GeoLite2-City.mmdb", NETWORKS)
    asn = tmp_path / "later" / "GeoLite2-ASN.mmdb"
    geo = make_geo(GeoConfig.model_validate({"city_db": str(city), "asn_db": str(asn), "max_age": "30d"}))
    registry = CollectorRegistry()
    registry.register(GeoIPCollector(geo.databases, 30 * 86400))

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return parse_metrics(generate_latest(registry).decode())

    first = samples()
    assert metric(first, "iptv_geoip_database_loaded", type="city") == 1
    assert metric(first, "iptv_geoip_database_loaded", type="asn") == 0  # not there (yet): no build date
    assert metric(first, "iptv_geoip_database_info", type="city", edition="GeoLite2-City",
                  build_date="2026-01-02") == 1
    assert metric(first, "iptv_geoip_database_build_timestamp_seconds", type="city") == built
    assert metric(first, "iptv_geoip_database_info", type="asn") is None
    assert metric(first, "iptv_geoip_database_max_age_seconds") == 30 * 86400

    asn.parent.mkdir()
    from tests.mmdb import write_asn_db

    write_asn_db(asn, NETWORKS)  # geoipupdate delivers it: picked up on the next refresh
    geo.refresh()
    second = samples()
    assert metric(second, "iptv_geoip_database_loaded", type="asn") == 1
    assert abs((metric(second, "iptv_geoip_database_build_timestamp_seconds", type="asn") or 0) - time.time()) < 600
