"""exporter.linear_re: RE2 with the parts of ``re`` the sources use, for str and bytes patterns."""

from __future__ import annotations

import time

import pytest

from exporter.linear_re import LinearRegexError, compile_linear


def test_named_groups_for_str_and_bytes() -> None:
    m = compile_linear(r"/live/(?P<line>[^/]+)/(?P<password>[^/]+)/(?P<stream>\d+)").search("x/live/a/b/12.ts")
    assert m is not None
    assert (m.group("stream"), m.span("password"), m.start(), m.end("stream")) == ("12", (9, 10), 1, 13)
    assert m.groupdict() == {"line": "a", "password": "b", "stream": "12"}
    assert m.re.groupindex == {"line": 1, "password": 2, "stream": 3}
    b = compile_linear(rb"(?P<ip>\S+) (?P<path>/\S*)(?: (?P<agent>\S+))?").search(b"1.2.3.4 /x")
    assert b is not None and b.groupdict() == {"ip": b"1.2.3.4", "path": b"/x", "agent": None}
    assert b.group("ip") == b"1.2.3.4"


def test_match_fullmatch_search() -> None:
    p = compile_linear(r"stream_(?P<stream>\d+)\.m3u8")
    assert p.fullmatch("stream_5.m3u8") is not None
    assert p.fullmatch("/x/stream_5.m3u8") is None
    assert p.match("/x/stream_5.m3u8") is None
    assert p.search("/x/stream_5.m3u8") is not None


def test_nested_quantifiers_run_in_linear_time() -> None:
    p = compile_linear(r"^/(?P<stream>(a+)+)b$")
    started = time.perf_counter()
    assert p.search("/" + "a" * 100_000) is None  # Python's re: 2**100000 steps
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(("pattern", "why"), [
    (r"(?P<stream>\d+)(?=_\.m3u8)", "not for RE2"),
    (r"(a)\1", "not for RE2"),
    (r"(?<!x)a", "not for RE2"),
    (r"stream_(7\.m3u8", "missing ), unterminated subpattern at position 7"),  # Python's own message
])
def test_refused_patterns_say_why(pattern: str, why: str) -> None:
    with pytest.raises(LinearRegexError) as err:
        compile_linear(pattern)
    assert why in str(err.value)
