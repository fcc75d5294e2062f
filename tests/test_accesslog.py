"""The access-log source on literal lines: formats, URL presets, viewers, sessions, lines, sharing, redaction."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import parse_config
from exporter.geo import NOWHERE, Geo, GeoInfo
from exporter.sources.accesslog import (
    AccessLogResult,
    AccessLogSource,
    log_redactor,
    parse_combined,
    parse_time,
    url_patterns,
)
from tests.mmdb import PLACES, write_dbs

T0 = 1_795_700_000.0  # 2026-11-26T...Z: the tests' "now" is T0 + a few seconds


def clf(t: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))


def line(ip: str, path: str, status: int = 200, nbytes: int | str = 1000, agent: str = "VLC/3.0.20",
         t: float = T0, method: str = "GET") -> bytes:
    return f'{ip} - - [{clf(t)}] "{method} {path} HTTP/1.1" {status} {nbytes} "-" "{agent}"'.encode()


def nowhere(ip: str) -> GeoInfo:
    return NOWHERE


def make(access_log: dict[str, Any] | None = None, *, inventory: tuple[str, ...] = ("5", "7"),
         lookup: Any = nowhere, **viewers: Any) -> AccessLogSource:
    cfg = parse_config({"viewers": {"access_log": {"path": "/nonexistent/access.log", **(access_log or {})},
                                    **viewers}})
    src = AccessLogSource(cfg, lookup)
    src.set_inventory(inventory)
    return src


def run(src: AccessLogSource, lines: list[bytes], now: float = T0 + 5) -> AccessLogResult:
    src.ingest(lines, now)
    return src.result(now)


EXAMPLE = [  # shared/examples/nginx-combined.log, with its passwords
    b'203.0.113.17 - - [26/Nov/2026:14:02:11 +0000] "GET /live/alice/Secr3t/5.m3u8 HTTP/1.1" 200 389 "-" "VLC/3.0.20 LibVLC/3.0.20"',  # noqa: E501
    b'203.0.113.17 - - [26/Nov/2026:14:02:11 +0000] "GET /streams/stream_5_118.ts HTTP/1.1" 200 1534212 "-" "VLC/3.0.20 LibVLC/3.0.20"',  # noqa: E501
    b'198.51.100.4 - - [26/Nov/2026:14:02:12 +0000] "GET /live/bob/pa55/5.ts HTTP/1.1" 200 389 "-" "IPTVSmartersPlayer"',  # noqa: E501
    b'2001:db8::42 - - [26/Nov/2026:14:02:12 +0000] "GET /live/carol/xyz/12.m3u8 HTTP/2.0" 200 412 "http://player.example/" "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36"',  # noqa: E501
    b'198.51.100.4 - - [26/Nov/2026:14:02:14 +0000] "GET /streams/stream_5_119.ts HTTP/1.1" 404 153 "-" "IPTVSmartersPlayer"',  # noqa: E501
    b'192.0.2.200 - - [26/Nov/2026:14:02:15 +0000] "GET /live/dave/wrongpass/5.ts HTTP/1.1" 403 0 "-" "okhttp/4.9.2"',
    b'192.0.2.201 - - [26/Nov/2026:14:02:15 +0000] "GET /player_api.php?username=erin&password=hunter2&action=get_live_streams HTTP/1.1" 200 48211 "-" "okhttp/4.9.2"',  # noqa: E501
    b'10.8.0.6 - - [26/Nov/2026:14:02:16 +0000] "GET /live/frank/f00/12.ts HTTP/1.1" 502 157 "-" "Lavf/58.76.100"',
    b'203.0.113.17 - - [26/Nov/2026:14:02:21 +0000] "GET /streams/stream_5_120.ts HTTP/1.1" 200 1498822 "-" "VLC/3.0.20 LibVLC/3.0.20"',  # noqa: E501
    b'- - - [26/Nov/2026:14:02:22 +0000] "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03" 400 157 "-" "-"',
]
EXAMPLE_NOW = parse_time(b"26/Nov/2026:14:02:30 +0000") or 0.0
PASSWORDS = ["Secr3t", "pa55", "xyz", "wrongpass", "hunter2", "f00"]


def test_example_log() -> None:
    src = make(inventory=("5",))
    r = run(src, list(EXAMPLE), EXAMPLE_NOW)
    five = r.streams["5"]
    assert five.sent_bytes_total == 389 + 1534212 + 389 + 153 + 0 + 1498822
    assert dict(five.responses_total) == {"2xx": 4, "3xx": 0, "4xx": 2, "5xx": 0}
    assert set(r.streams) == {"5"}  # 12 is not in the inventory: no series from a URL
    assert dict(r.viewers) == {"5": 2}  # alice (VLC) and bob; dave's 403 and bob's 404 make no viewer
    assert r.lines_online == 2
    assert (r.lines_total, r.skipped_lines_total) == (10, 0)
    alice = next(c for c in r.clients if c.line == "alice")
    assert (alice.ip, alice.agent, alice.stream) == ("203.0.113.17", "VLC/3.0.20 LibVLC/3.0.20", "5")
    assert alice.last_seen - alice.first_seen == 10.0
    assert not any(p in repr(r) for p in PASSWORDS)


def test_parse_time_forms() -> None:
    assert parse_time(b"26/Nov/2026:14:02:11 +0000") == parse_time(b"26/Nov/2026:16:02:11 +0200")
    assert parse_time(b"26/Nov/2026:14:02:11 +0000") == parse_time(b"2026-11-26T14:02:11+00:00")
    assert parse_time(b"1795700000.123") == 1795700000.123
    for junk in (b"", b"yesterday", b"99/Foo/2026:14:02:11 +0000", b"\xff" * 26):
        assert parse_time(junk) is None


@pytest.mark.parametrize(("preset", "path", "expected"), [
    ("panelx", "/live/alice/pw/5.m3u8", ("5", "alice")),
    ("panelx", "/live/alice/pw/5.ts?token=abc", ("5", "alice")),
    ("panelx", "/streams/stream_5_118.ts", ("5", None)),
    ("panelx", "/streams/stream_7_low_12.ts", ("7", None)),
    ("panelx", "/streams/stream_5.m3u8", ("5", None)),
    ("panelx", "/streams/stream_99_1.ts", (None, None)),
    ("panelx", "/hls/alice/pw/5/1.ts", (None, None)),
    ("xtream", "/live/alice/pw/5.m3u8", ("5", "alice")),
    ("xtream", "/live/alice/pw/5_118.ts", ("5", "alice")),
    ("xtream", "/hls/alice/pw/5/118.ts", ("5", "alice")),
    ("xtream", "/hls/alice/pw/7/tok3n/118.ts", ("7", "alice")),
    ("xtream", "/hlsr/tok3n/alice/pw/7/key/118.ts", ("7", "alice")),
    ("xtream", "/alice/pw/5", ("5", "alice")),
    ("xtream", "/alice/pw/5.ts", ("5", "alice")),
    ("xtream", "/movie/alice/pw/5.mkv", (None, None)),
    ("xtream", "/streams/stream_5_1.ts", (None, None)),
])
def test_url_presets(preset: str, path: str, expected: tuple[str | None, str | None]) -> None:
    src = make({"preset": preset})
    assert src.resolve(f"GET {path} HTTP/1.1".encode()) == expected
    assert src.resolve(path.encode()) == expected


def test_custom_urls_come_before_the_preset() -> None:
    src = make({"preset": None, "urls": [r"^/tv/(?P<line>\w+)/(?P<password>\w+)/ch(?P<stream>\d+)\.m3u8$"]})
    assert src.resolve(b"/tv/zoe/pw/ch7.m3u8") == ("7", "zoe")
    assert src.resolve(b"/live/alice/pw/5.m3u8") == (None, None)  # no preset


def test_inventory_change_is_picked_up() -> None:
    src = make(inventory=("5",))
    run(src, [line("192.0.2.1", "/live/a/p/9.ts")])
    src.set_inventory(("5", "9"))
    r = run(src, [line("192.0.2.1", "/live/a/p/9.ts", nbytes=77)])
    assert r.streams["9"].sent_bytes_total == 77  # the earlier request, before 9 existed, is not counted


def test_sessions_window_and_histogram() -> None:
    src = make(window=60)
    a, b = "192.0.2.1", "192.0.2.2"
    r = run(src, [line(a, "/live/u/p/5.m3u8", t=T0), line(a, "/streams/stream_5_1.ts", t=T0 + 10),
                  line(b, "/live/v/p/5.m3u8", t=T0 + 5)], now=T0 + 20)
    assert dict(r.viewers) == {"5": 2} and r.sessions.count == 0
    r = src.result(T0 + 69)  # a's last request 59 s ago, b's 64 s ago: b's session ended
    assert dict(r.viewers) == {"5": 1}
    assert (r.sessions.count, r.sessions.sum) == (1, 0.0)
    r = run(src, [line(a, "/streams/stream_5_2.ts", t=T0 + 200)], now=T0 + 200)  # a gap > window: a new session
    assert (r.sessions.count, r.sessions.sum) == (2, 10.0)
    assert dict(r.sessions.buckets)[10.0] == 2 and dict(r.sessions.buckets)[float("inf")] == 2
    assert dict(r.viewers) == {"5": 1}


def test_a_line_stays_online_while_any_of_its_clients_sessions_does() -> None:
    src = make(window=60)
    a = "192.0.2.1"
    r1 = run(src, [line(a, "/live/u/p/5.m3u8", t=T0), line(a, "/streams/stream_7_1.ts", t=T0 + 30)], now=T0 + 30)
    assert r1.lines_online == 1 and dict(r1.viewers) == {"5": 1, "7": 1}
    r2 = src.result(T0 + 80)  # the session on 5 ended, the one on 7 (same client, no line in its URL) goes on
    assert r2.lines_online == 1 and dict(r2.viewers) == {"7": 1}
    assert [(c.stream, c.line) for c in r2.clients] == [("7", "u")]
    r3 = src.result(T0 + 100)  # both ended: the line is offline
    assert r3.lines_online == 0 and r3.clients == ()
    # An earlier round's result is what that round saw, whatever came after it.
    assert sorted((c.stream, c.line, c.last_seen) for c in r1.clients) == [("5", "u", T0), ("7", "u", T0 + 30)]


def test_same_ip_different_agents_are_different_viewers() -> None:
    r = run(make(), [line("192.0.2.1", "/live/u/p/5.m3u8", agent="VLC"),
                     line("192.0.2.1", "/live/w/p/5.m3u8", agent="Kodi"),
                     line("192.0.2.1", "/streams/stream_5_1.ts", agent="VLC")])
    assert dict(r.viewers) == {"5": 2} and r.lines_online == 2


def test_segment_requests_belong_to_the_clients_line() -> None:
    r = run(make(), [line("192.0.2.1", "/live/bob/p/7.m3u8", t=T0), line("192.0.2.1", "/streams/stream_5_1.ts")])
    assert {(c.stream, c.line) for c in r.clients} == {("7", "bob"), ("5", "bob")}
    assert r.lines_online == 1


@pytest.fixture
def geo(tmp_path: Path) -> Iterator[Geo]:
    city, asn = write_dbs(tmp_path / "geoip", {"192.0.2.0/25": PLACES["amsterdam"], "192.0.2.128/25": PLACES["berlin"]})
    g = Geo(parse_config({"geo": {"city_db": str(city), "asn_db": str(asn)}}).geo)
    yield g
    g.close()


def test_sharing_by_ips_and_by_countries(geo: Geo) -> None:
    src = make(lookup=geo.lookup, sharing={"max_ips": 2, "max_countries": 1})
    r = run(src, [
        line("192.0.2.1", "/live/many/p/5.m3u8"), line("192.0.2.2", "/live/many/p/5.m3u8"),
        line("192.0.2.3", "/live/many/p/7.m3u8"),  # three IPs, one country
        line("192.0.2.10", "/live/travel/p/5.m3u8"), line("192.0.2.200", "/live/travel/p/5.m3u8"),  # NL + DE
        line("192.0.2.20", "/live/home/p/5.m3u8"), line("192.0.2.21", "/live/home/p/5.m3u8"),  # two IPs in NL
    ])
    by_line = {s.line: s for s in r.sharing}
    assert set(by_line) == {"many", "travel"}
    assert by_line["many"].ips == ("192.0.2.1", "192.0.2.2", "192.0.2.3") and by_line["many"].streams == ("5", "7")
    assert by_line["travel"].countries == ("DE", "NL")
    assert r.lines_online == 3


def test_json_format() -> None:
    src = make({"format": "json"})
    rows = [
        {"remote_addr": "192.0.2.1", "time_iso8601": "2026-11-26T14:02:11+00:00",
         "request": "GET /live/alice/pw/5.m3u8?x=1 HTTP/1.1", "status": 200, "body_bytes_sent": 389,
         "http_user_agent": "VLC"},
        {"remote_addr": "192.0.2.1", "msec": "1795700001.5", "request_uri": "/streams/stream_5_1.ts",
         "status": "404", "body_bytes_sent": "153", "http_user_agent": "VLC"},
    ]
    lines = [json.dumps(r).encode() for r in rows] + [b"{not json", b"[1, 2]", b'{"status": 200}']
    r = run(src, lines, now=T0 + 5)
    assert r.streams["5"].sent_bytes_total == 542
    assert dict(r.streams["5"].responses_total)["4xx"] == 1
    assert (r.lines_total, r.skipped_lines_total, r.lines_online) == (5, 3, 1)


def test_custom_regex_format() -> None:
    src = make({"format": "regex",
                "regex": r'^(?P<ip>\S+) (?P<status>\d{3}) (?P<bytes>\d+|-) (?P<path>\S+) "(?P<agent>[^"]*)"'})
    r = run(src, [b'192.0.2.1 200 100 /live/a/p/5.ts "VLC"', b'192.0.2.1 200 - /streams/stream_5_1.ts "VLC"',
                  b"garbage"])
    assert r.streams["5"].sent_bytes_total == 100
    assert dict(r.viewers) == {"5": 1} and r.skipped_lines_total == 1


def test_lines_with_other_quoting_go_through_the_regex() -> None:
    main_format = line("192.0.2.1", "/live/a/p/5.ts", nbytes=10) + b' "203.0.113.9"'  # + $http_x_forwarded_for
    r = run(make(), [main_format, line("192.0.2.1", "/streams/stream_5_1.ts", nbytes="-"),
                     b'192.0.2.9 - - [x] "GET /live/a/p/5.ts HTTP/1.1 400 7 "-" "odd quotes'])
    assert r.streams["5"].sent_bytes_total == 10
    assert (r.lines_total, r.skipped_lines_total) == (3, 1)


def test_redaction() -> None:
    red = log_redactor([u.pattern for u in url_patterns(make({"preset": "xtream"})._cfg)])
    cases = {
        'x "GET /live/alice/S3cret/5.ts HTTP/1.1"': 'x "GET /live/alice/***/5.ts HTTP/1.1"',
        "/hls/bob/hunter2/7/118.ts": "/hls/bob/***/7/118.ts",
        "/hlsr/tok/bob/hunter2/7/key/1.ts": "/hlsr/tok/bob/***/7/key/1.ts",
        "/bob/hunter2/7": "/bob/***/7",
        "/live/alice/S3cret/whatever/else": "/live/alice/***/whatever/else",
        "/player_api.php?username=erin&password=hunter2&x=1": "/player_api.php?username=erin&password=***&x=1",
    }
    for text, want in cases.items():
        assert red.redact(text) == want


def test_skipped_lines_are_logged_without_passwords(caplog: pytest.LogCaptureFixture) -> None:
    src = make()
    with caplog.at_level(logging.DEBUG, logger="exporter.sources.accesslog"):
        run(src, [b'garbage "GET /live/alice/Secr3tPw/5.ts HTTP/1.1 and more'])
    text = caplog.text
    assert "/live/alice/***/5.ts" in text and "Secr3tPw" not in text


def test_follows_the_file_from_its_end(tmp_path: Path) -> None:
    from exporter.sources import SampleContext

    path = tmp_path / "access.log"
    path.write_bytes(line("192.0.2.1", "/live/old/p/5.ts") + b"\n")
    cfg = parse_config({"viewers": {"access_log": {"path": str(path)}}})
    src = AccessLogSource(cfg, nowhere)
    try:
        from types import MappingProxyType

        from exporter.sources import StreamRef

        ctx = SampleContext(T0 + 5, MappingProxyType({"5": StreamRef("5", "5", True)}))
        assert src.sample(ctx).lines_total == 0  # what was there before the exporter started is history
        with path.open("ab") as fh:
            fh.write(line("192.0.2.1", "/live/new/p/5.ts", nbytes=5) + b"\n" + b"partial")
        r = src.sample(ctx)
        assert (r.lines_total, r.streams["5"].sent_bytes_total) == (1, 5)
    finally:
        src.close()


def test_max_clients_bounds_sessions() -> None:
    src = make(max_clients=100)
    r = run(src, [line(f"192.0.{i // 250}.{i % 250}", "/streams/stream_5_1.ts", t=T0 + i / 100) for i in range(150)])
    assert dict(r.viewers) == {"5": 100}


# -- properties ------------------------------------------------------------------------------------------

_valid = st.builds(
    line,
    ip=st.sampled_from(["192.0.2.1", "192.0.2.2", "2001:db8::1", "-"]),
    path=st.sampled_from(["/live/a/p/5.m3u8", "/live/b/p/7.ts", "/streams/stream_5_3.ts", "/live/c/p/9.ts",
                          "/player_api.php?password=x", "/", "/streams/stream_7_low_1.ts?x=\"y"]),
    status=st.sampled_from([200, 206, 304, 403, 404, 499, 502]),
    nbytes=st.one_of(st.integers(0, 10**9), st.just("-")),
    agent=st.sampled_from(["VLC", "Kodi", "", "Mozilla/5.0 (X11; Linux x86_64)"]),
    t=st.floats(T0 - 120, T0 + 10),
)
_garbage = st.binary(max_size=200).map(lambda b: b.replace(b"\n", b""))


def _expected_bytes(lines: list[bytes]) -> int:
    total = 0
    for ln in lines:
        for _ip, _t, path, _s, nb, _a in parse_combined(ln):
            if path.startswith((b"/live/a/", b"/live/b/", b"/streams/stream_5_", b"/streams/stream_7_")):
                total += 0 if nb == b"-" else int(nb)
    return total


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_valid, _garbage), max_size=40))
def test_no_garbage_breaks_the_parser(lines: list[bytes]) -> None:
    custom = r"(?P<ip>\S+) (?P<path>\S+) (?P<status>\d+) (?P<bytes>\S+)"
    for fmt in ({}, {"format": "json"}, {"format": "regex", "regex": custom}):
        src = make(fmt)
        r = run(src, lines, now=T0 + 10)
        assert r.lines_total == len(lines) and 0 <= r.skipped_lines_total <= len(lines)
    src = make()
    r = run(src, lines, now=T0 + 10)
    assert sum(s.sent_bytes_total for s in r.streams.values()) == _expected_bytes(lines)


@settings(max_examples=100, deadline=None)
@given(st.lists(_valid, max_size=40))
def test_ingest_is_folding_the_parsed_rows(lines: list[bytes]) -> None:
    fast, slow = make(), make()
    fast.ingest(lines, T0 + 10)
    slow.fold(parse_combined(b"\n".join(lines)), T0 + 10)
    a, b = fast.result(T0 + 10), slow.result(T0 + 10)
    assert {k: (v.sent_bytes_total, dict(v.responses_total)) for k, v in a.streams.items()} == {
        k: (v.sent_bytes_total, dict(v.responses_total)) for k, v in b.streams.items()}
    assert sorted(a.clients) == sorted(b.clients)
    assert a.lines_online == b.lines_online


def test_open_and_close_hold_the_file_once(tmp_path: Path) -> None:
    """The sampler opens a source before its first round and closes it when it stops (exporter.sources.Source):
    the log is held from open() to close(), close() is idempotent, and a closed source holds no file."""
    from types import MappingProxyType

    from exporter.sources import SampleContext

    path = tmp_path / "access.log"
    path.write_bytes(line("192.0.2.1", "/live/old/p/5.ts") + b"\n")
    src = AccessLogSource(parse_config({"viewers": {"access_log": {"path": str(path)}}}), nowhere)
    src.open()
    follower = src._follower
    assert follower is not None and follower.exists
    src.open()  # opening again keeps the same file and offset
    assert src._follower is follower
    with path.open("ab") as fh:
        fh.write(line("192.0.2.1", "/live/new/p/5.ts") + b"\n")
    assert src.sample(SampleContext(T0, MappingProxyType({}))).lines_total == 1
    src.close()
    src.close()
    assert not follower.exists


def test_a_log_that_cannot_be_opened_is_tried_again_at_the_next_round(tmp_path: Path) -> None:
    from types import MappingProxyType

    from exporter.sources import SampleContext

    missing_dir = tmp_path / "not-yet"
    src = AccessLogSource(parse_config({"viewers": {"access_log": {"path": str(missing_dir / "access.log")}}}),
                          nowhere)
    try:
        src.open()  # a missing log is not an error: it is read from its start once it appears
        ctx = SampleContext(T0 + 5, MappingProxyType({}))
        assert src.sample(ctx).lines_total == 0
        missing_dir.mkdir()
        (missing_dir / "access.log").write_bytes(line("192.0.2.1", "/live/a/p/5.ts") + b"\n")
        assert src.sample(ctx).lines_total == 1
    finally:
        src.close()


# -- the line parser against the batch regex it replaced ------------------------------------------------------

BATCH_COMBINED = re.compile(
    rb'^(\S+) \S+ \S+ \[([^\]\n]*)\] "(?:[A-Z]+ +)?([^ "?\n]*)[^"\n]*" ([1-5]\d\d) (\d+|-) "[^"\n]*" "([^"\n]*)"',
    re.M,
)
"""The combined regex as it ran before (``findall`` over a batch joined by newlines): the reference for the
per-line one, which must accept the same lines and take the same fields."""

def _combined(head: str, t: str, request: str, mid: str, ref: str, sep: str, agent: str, tail: str) -> bytes:
    return f'{head} {t} "{request}"{mid}"{ref}"{sep}"{agent}"{tail}'.encode()


_PATHS = ["/live/a/p/5.m3u8", "/live/b/p/7.ts", "/live/a_1/p_2/5.ts", "/streams/stream_5_3.ts",
          "/streams/stream_5_4.ts", "/streams/stream_55_3.ts", "/streams/stream_7_low_1.ts", "/streams/stream_5.m3u8",
          "/streams/stream_7.m3u8", "/streams/stream_5_.ts", "/live/c/p/9.ts", "/player_api.php", "/", "",
          "/x/live/a/p/5.ts", "live/a/p/5.ts"]
_odd_lines = st.builds(
    _combined,
    head=st.sampled_from(["192.0.2.1 - -", "192.0.2.2 - alice", "2001:db8::1 - -", "- - -", "192.0.2.1 - a b",
                          "192.0.2.1  - -", "192.0.2.1\t- -", "192.0.2.1 -", "x[1] - -"]),
    t=st.one_of(st.floats(T0 - 120, T0 + 10).map(lambda t: f"[{clf(t)}]"),
                st.sampled_from(["[2026-11-26T14:02:11+00:00]", "[x]", "[]", "[99/Foo/2026:14:02:11 +0000]"])),
    request=st.builds(lambda m, p, q, v: m + p + q + v, st.sampled_from(["GET ", "HEAD ", "", "get ", "GET  "]),
                      st.sampled_from(_PATHS), st.sampled_from(["", "?x=1", "?token=a_12"]),
                      st.sampled_from([" HTTP/1.1", "", " HTTP/2.0"])),
    mid=st.one_of(st.builds(" {} {} ".format, st.sampled_from([200, 206, 304, 404, 502, 101]),
                            st.one_of(st.integers(0, 10**9), st.just("-"))),
                  st.sampled_from([" 200 +5 ", " 200 1_0 ", " 200  5 ", " 2x0 5 ", " 600 5 ", " 200 5", " 200 -5 ",
                                   " 099 5 ", "  200 5 ", " 200 ", " 200 5\t", "200 5 "])),
    ref=st.sampled_from(["-", "http://player.example/", ""]),
    sep=st.sampled_from([" ", " ", "", "  "]),  # repeats: the usual case drawn more often
    agent=st.sampled_from(["VLC", "", "Kodi 20", "a\\x22b"]),
    tail=st.sampled_from(["", "", ' "203.0.113.9"', " 0.012", ' "-" 0.5', '"']),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_valid, _odd_lines, _garbage), max_size=40))
def test_the_line_parser_is_the_batch_regex_line_for_line(lines: list[bytes]) -> None:
    """Whatever the lines (other quoting, odd heads and times, garbage statuses and bytes), ingesting them
    gives what the batch regex's rows give, skipped lines included."""
    fast, slow = make(), make()
    fast.ingest(lines, T0 + 10)
    rows = BATCH_COMBINED.findall(b"\n".join(lines))
    assert parse_combined(b"\n".join(lines)) == rows
    slow.fold(rows, T0 + 10)
    a, b = fast.result(T0 + 10), slow.result(T0 + 10)
    assert {k: (v.sent_bytes_total, dict(v.responses_total)) for k, v in a.streams.items()} == {
        k: (v.sent_bytes_total, dict(v.responses_total)) for k, v in b.streams.items()}
    assert sorted(a.clients) == sorted(b.clients)
    assert (a.lines_online, a.sessions) == (b.lines_online, b.sessions)
    assert a.skipped_lines_total == len(lines) - len(rows)


_URL_PIECES = ["/live/", "/hls/", "/hlsr/", "/streams/", "/movie/", "stream_", "a", "a_1", "pw", "5", "7", "12",
               "5_118", "low", "_", "/", ".ts", ".m3u8", ".m3u", ".ch", ".m4s", "?x=1", "?token=a_12"]


@pytest.mark.parametrize("preset", ["panelx", "xtream"])
@settings(max_examples=200, deadline=None)
@given(paths=st.lists(st.lists(st.sampled_from(_URL_PIECES), max_size=9).map("".join), max_size=20))
def test_preset_patterns_answer_as_under_re2(preset: str, paths: list[str]) -> None:
    """The presets run under ``re`` (our own patterns: no RE2 needed, and 30x cheaper per new path); they
    answer as RE2 does, which ran them before."""
    from exporter.linear_re import compile_linear
    from exporter.sources.accesslog.urls import PRESETS

    src = make({"preset": preset}, inventory=("5", "7", "12"))
    for path in paths:
        path = path.split("?", 1)[0]  # a request's path ends at its query
        expected: tuple[str | None, str | None] = (None, None)
        for prefix, pattern in PRESETS[preset]:
            m = compile_linear(pattern).fullmatch(path) if path.startswith(prefix) else None
            if m is not None:
                stream = m.group("stream")
                named = m.group("line") if "line" in m.re.groupindex else None
                expected = (stream, named or None) if stream in ("5", "7", "12") else (None, None)
                break
        assert src.resolve(path.encode()) == expected, path


def test_new_segments_take_the_known_shape() -> None:
    src = make(inventory=("5", "55", "7"))
    r = run(src, [line("192.0.2.1", p, nbytes=n) for p, n in [
        ("/streams/stream_5_1.ts", 1), ("/streams/stream_5_2.ts", 2), ("/streams/stream_55_1.ts", 4),
        ("/streams/stream_5.m3u8", 8), ("/streams/stream_7.m3u8", 16), ("/streams/stream_99_1.ts", 32),
        ("/streams/stream_5_3.ts", 64), ("/streams/stream_99_2.ts", 128), ("/streams/stream_5_.ts", 256)]])
    assert {k: v.sent_bytes_total for k, v in r.streams.items()} == {"5": 1 + 2 + 8 + 64, "55": 4, "7": 16}


def test_trailing_fields_keep_each_lines_client() -> None:
    """nginx's ``main`` format adds ``"$http_x_forwarded_for"``; others add an unquoted ``$request_time``."""
    xff = [line(f"192.0.2.{i}", "/streams/stream_5_1.ts") + b' "203.0.113.9"' for i in range(3)]
    timed = [line(f"192.0.2.{i}", "/streams/stream_7_1.ts") + b" 0.012" for i in range(3)]
    r = run(make(), xff + timed)
    assert dict(r.viewers) == {"5": 3, "7": 3}
    assert {c.ip for c in r.clients} == {"192.0.2.0", "192.0.2.1", "192.0.2.2"}
    assert r.skipped_lines_total == 0


def test_the_collector_is_left_as_it_was() -> None:
    import gc

    src = make()
    assert gc.isenabled()
    src.ingest([line("192.0.2.1", "/live/a/p/5.ts")], T0)
    assert gc.isenabled()
    gc.disable()
    try:
        src.ingest([line("192.0.2.1", "/live/a/p/5.ts")], T0)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_lines_within_both_bounds_need_no_geo_lookup() -> None:
    looked_up: list[str] = []

    def lookup(ip: str) -> GeoInfo:
        looked_up.append(ip)
        return NOWHERE

    src = make(lookup=lookup, sharing={"max_ips": 2, "max_countries": 1})
    r = run(src, [line("192.0.2.1", "/live/solo/p/5.m3u8"), line("192.0.2.2", "/live/pair/p/5.m3u8"),
                  line("192.0.2.3", "/live/pair/p/5.m3u8")])
    assert sorted(looked_up) == ["192.0.2.2", "192.0.2.3"]  # "solo" cannot be suspected: no lookup
    assert r.lines_online == 2 and r.sharing == ()


def test_the_url_map_forgets_its_older_half_past_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Distinct paths are remembered up to a cap (segment URLs never come back); past it the older half goes,
    and a forgotten path is matched again with the same answer."""
    from exporter.sources.accesslog import urls

    monkeypatch.setattr(urls, "URL_CACHE_SIZE", 10)
    src = make(inventory=("5",))
    segments = [line("192.0.2.1", f"/streams/stream_5_{n}.ts", nbytes=1) for n in range(12)]
    run(src, segments[:11])
    run(src, [segments[11]])  # the batch starts by trimming the 11 known paths to the newest 6
    assert list(src.urls.known) == [f"/streams/stream_5_{n}.ts".encode() for n in range(5, 12)]
    r = run(src, [segments[0]])  # forgotten, matched again
    assert r.streams["5"].sent_bytes_total == 13 and src.urls.known[b"/streams/stream_5_0.ts"] == ("5", None)


def test_a_logged_path_is_read_from_its_first_slash() -> None:
    # A log format that writes the host before the path ($host$request_uri): the URL starts at the first '/',
    # as StreamUrls.resolve reads a request, and a path with no '/' is no stream URL (a custom pattern neither).
    host_first = r'^(?P<ip>\S+) (?P<status>\d{3}) (?P<bytes>\d+|-) (?P<path>\S+) "(?P<agent>[^"]*)"'
    src = make({"format": "regex", "regex": host_first, "urls": [r"(?P<stream>\d+)\.m3u8"]})
    r = run(src, [b'192.0.2.1 200 100 tv.example.com/live/alice/pw/5.ts "VLC"', b'192.0.2.2 200 7 7.m3u8 "VLC"'])
    assert dict(r.viewers) == {"5": 1} and r.streams["5"].sent_bytes_total == 100
    assert dict(r.client_lines) == {(b"192.0.2.1", b"VLC"): "alice"}
    assert "7" not in r.streams
