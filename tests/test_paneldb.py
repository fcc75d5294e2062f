"""The panel DB viewers source against a real MariaDB with the panels' own tables (tests/mariadb.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pymysql
import pytest

from exporter.config import parse_config
from exporter.geo import GeoInfo
from exporter.inventory import Inventory
from exporter.metrics.viewers import collect
from exporter.sampler import Sampler
from exporter.snapshot import Snapshot
from exporter.sources import SampleContext, StreamRef
from exporter.sources.accesslog import AccessLogResult
from exporter.sources.paneldb import PanelDbError, PanelDbSource, parse_rows, query
from exporter.sources.processes import ProcessesSource
from tests.mariadb import EXPORTER_PASSWORD, EXPORTER_USER, MariaDB, mariadb

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    with mariadb(tmp_path_factory.mktemp("mariadb")) as server:
        server.panel("xui", "xui")
        server.panel("xtream", "xtream_iptvpro")
        yield server


def _lookup(ip: str) -> GeoInfo:
    country = "NL" if ip.startswith("127.1.") else "DE" if ip.startswith("127.2.") else "unknown"
    return GeoInfo(country, "", None, None, None, "")


def _config(tmp: Path, db: MariaDB, schema: str, **extra: object) -> dict[str, object]:
    (tmp / "db.pass").write_text(EXPORTER_PASSWORD + "\n")
    return {"streams": {"discover": [], "static": [{"id": "31"}, {"id": "32"}]},
            "viewers": {"ports": [], "panel_db": {"schema": schema, "socket": str(db.socket), "user": EXPORTER_USER,
                                                  "password_file": str(tmp / "db.pass"), **extra}}}


INVENTORY = MappingProxyType({s: StreamRef(s, s, True) for s in ("31", "32")})


def _sample(source: PanelDbSource, now: float) -> AccessLogResult:
    return source.sample(SampleContext(now, INVENTORY))


@pytest.mark.parametrize(("schema", "database", "live", "users"), [
    ("xui", "xui", "lines_live", "lines"), ("xtream", "xtream_iptvpro", "user_activity_now", "users")])
def test_viewers_lines_sharing_from_the_live_table(tmp_path: Path, db: MariaDB, schema: str, database: str,
                                                   live: str, users: str) -> None:
    now = time.time()
    db.execute(f"DELETE FROM `{live}`", database=database)
    db.execute(f"DELETE FROM `{users}`", database=database)
    db.execute(f"INSERT INTO `{users}` (`id`, `username`, `password`) VALUES (1, 'alice', 'al1ce-pa55'), "
               "(2, 'bob', 'b0b-pa55')", database=database)
    rows = [
        # user, stream, server, agent, ip, start, hls_end
        (1, 31, 1, "VLC/3.0", "127.1.0.5", now - 100, 0),
        (1, 31, 1, "VLC/3.0", "127.1.0.6", now - 90, 0),
        (1, 32, 1, "Kodi/20", "127.2.0.7", now - 80, 0),   # alice from 3 IPs in 2 countries: sharing
        (2, 31, 1, "IPTVSmarters", "127.1.0.9", now - 70, 0),
        (2, 31, 1, "IPTVSmarters", "127.1.0.9", now - 60, 0),  # the same client twice: one viewer
        (2, 32, 1, "IPTVSmarters", "127.1.0.9", now - 50, 1),  # hls_end = 1: ended, not counted
        (2, 32, 2, "IPTVSmarters", "127.1.0.10", now - 40, 0),  # another server's viewer
        (2, 99, 1, "IPTVSmarters", "127.1.0.9", now - 30, 0),   # not a stream of ours: no series
    ]
    extra = ("`container`, `geoip_country_code`, `isp`, `external_device`, " if schema == "xtream" else "")
    for user, stream, server, agent, ip, start, ended in rows:
        db.execute(f"INSERT INTO `{live}` (`user_id`, `stream_id`, `server_id`, `user_agent`, `user_ip`, {extra}"
                   "`date_start`, `hls_end`) VALUES (%s, %s, %s, %s, %s, " + ("'hls', '', '', '', " if extra else "")
                   + "%s, %s)", [user, stream, server, agent, ip, int(start), ended], database=database)
    cfg = parse_config(_config(tmp_path, db, schema, server_id=1))
    source = PanelDbSource(cfg, _lookup)
    try:
        r = _sample(source, now)
        assert dict(r.viewers) == {"31": 3, "32": 1}
        assert r.lines_online == 2 and r.sharing_lines == frozenset({"alice"})
        (alice,) = r.sharing
        assert alice.ips == ("127.1.0.5", "127.1.0.6", "127.2.0.7") and alice.countries == ("DE", "NL")
        assert dict(r.streams) == {}  # no bytes in the table: none reported
        families = {f.name: f for f in collect(Snapshot(now, True, INVENTORY, (), paneldb=r))}
        assert [(s.labels, s.value) for s in families["iptv_stream_viewers"].samples] == [
            ({"stream": "31"}, 3), ({"stream": "32"}, 1)]
        assert families["iptv_lines_sharing_suspected"].samples[0].value == 1
        assert "iptv_stream_sent_bytes" not in families  # a 0 there would claim nothing was served
        assert families["iptv_paneldb_rows"].samples[0].value == 6  # this server, hls_end 0, stream 99 too

        # A viewer leaves (the panel deletes its row): one ended session, as long as it was open.
        db.execute(f"DELETE FROM `{live}` WHERE `user_ip` = '127.2.0.7'", database=database)
        r = _sample(source, now + 10)
        assert dict(r.viewers) == {"31": 3} and r.sessions.count == 1
        assert r.sessions.sum == pytest.approx(80, abs=1)  # start to last seen
    finally:
        source.close()


def test_bounded_query_read_only_account_and_no_password_read(tmp_path: Path, db: MariaDB) -> None:
    sql, args = query(parse_config(_config(tmp_path, db, "xui", max_rows=2)).viewers.panel_db)  # type: ignore[arg-type]
    assert sql.endswith("LIMIT %s") and args == (2,) and "password" not in sql
    with pymysql.connect(unix_socket=str(db.socket), user=EXPORTER_USER, password=EXPORTER_PASSWORD,
                         database="xui") as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        assert len(cur.fetchall()) <= 2
        with pytest.raises(pymysql.err.OperationalError):  # the account the docs give can only read
            cur.execute("DELETE FROM `lines_live`")
        with pytest.raises(pymysql.err.OperationalError):  # ...and never sees the subscribers' passwords
            cur.execute("SELECT `password` FROM `lines`")


def test_database_down_marks_only_this_source_down(tmp_path: Path, db: MariaDB) -> None:
    cfg = parse_config(_config(tmp_path, db, "xui"))
    (tmp_path / "db.pass").write_text("wr0ng\n")
    source = PanelDbSource(cfg, _lookup)
    with pytest.raises(PanelDbError, match=f"panel database {EXPORTER_USER}@.*/xui.lines_live: OperationalError"):
        _sample(source, time.time())
    sampler = Sampler(cfg, ProcessesSource(cfg), Inventory(cfg), [source])
    snap = sampler.sample_once()
    status = {s.name: s.up for s in snap.statuses}
    assert status == {"processes": True, "paneldb": False}
    assert "wr0ng" not in str([s.error for s in snap.statuses])
    (tmp_path / "db.pass").write_text(EXPORTER_PASSWORD + "\n")  # fixed: the next round reconnects
    assert {s.name: s.up for s in sampler.sample_once().statuses}["paneldb"] is True
    # The server drops the kept connection (a restart, wait_timeout): the round opens a new one and goes on.
    with db.root() as conn, conn.cursor() as cur:
        cur.execute("SELECT `ID` FROM information_schema.PROCESSLIST WHERE `USER` = %s", [EXPORTER_USER])
        for (ident,) in cur.fetchall():
            cur.execute(f"KILL {int(ident)}")
    assert {s.name: s.up for s in sampler.sample_once().statuses}["paneldb"] is True
    sampler.close()


def test_query_and_rows_are_pure_and_bounded() -> None:
    cfg = parse_config({"viewers": {"ports": [], "panel_db": {
        "schema": "xtream", "user": "ro", "password_file": "/p", "server_id": 3, "max_rows": 50}}}).viewers.panel_db
    assert cfg is not None
    sql, args = query(cfg)
    assert "FROM `user_activity_now` l LEFT JOIN `users` u" in sql and "l.`server_id` = %s" in sql
    assert args == (3, 50)
    rows, skipped = parse_rows([(1, 31, "127.1.0.5", "VLC", "alice", 100), (2, None, "127.1.0.6", "VLC", "bob", 100),
                                (3, 31, "", "VLC", "bob", 100), (4, 32, "127.1.0.7", None, None, None)])
    assert skipped == 2
    assert [(r.stream, r.ip, r.agent, r.line, r.started) for r in rows] == [
        ("31", "127.1.0.5", "VLC", "alice", 100.0), ("32", "127.1.0.7", "", None, 0.0)]
