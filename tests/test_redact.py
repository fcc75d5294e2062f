"""Password redaction on literal text: URL userinfo, panel paths, query parameters, headers, extra patterns."""

from __future__ import annotations

import json
import re

from exporter.redact import Redactor, redact


def test_redact() -> None:
    assert redact("GET http://bob:hunter2@panel/x") == "GET http://<redacted>@panel/x"
    assert redact("/live/alice/pa55/7.ts") == "/live/<redacted>/<redacted>/7.ts"
    assert redact("?username=a&password=b&x=1") == "?username=a&password=<redacted>&x=1"


def test_ffmpeg_command_lines_and_headers() -> None:
    argv = ["ffmpeg", "-headers", "Authorization: Bearer s3cr3t", "-i", "http://prov:pw1@origin/movie/u1/pw2/9.mkv",
            "-i", "http://origin/timeshifts/u2/pw3/60/2024-01-01:10-00/7.ts", "-i", "http://origin/x.m3u8?token=pw4",
            "/streams/stream_7.m3u8"]
    text = redact(json.dumps(argv))
    for secret in ("s3cr3t", "prov", "pw1", "u1", "pw2", "u2", "pw3", "pw4"):
        assert secret not in text, text
    assert json.loads(text)[-1] == "/streams/stream_7.m3u8"


def test_a_user_named_like_the_password_is_not_the_part_masked() -> None:
    keep = Redactor(mask="***", keep_user=True)
    assert keep.redact("/live/bob/bob/7.ts") == "/live/bob/***/7.ts"
    assert keep.redact("http://bob:bob@panel/") == "http://bob:***@panel/"


def test_extra_patterns_keep_user_and_already_redacted_text() -> None:
    short = re.compile(r"/(?P<line>[^/]+)/(?P<password>[^/]+)/(?P<stream>\d+)(?:\.ch|\.ts)?")
    keep = Redactor([short], mask="***", keep_user=True)
    assert keep.redact('"GET /bob/hunter2/7 HTTP/1.1"') == '"GET /bob/***/7 HTTP/1.1"'
    assert keep.redact("/live/alice/S3cret/whatever/else") == "/live/alice/***/whatever/else"
    assert Redactor([short]).redact("/bob/hunter2/7") == "/<redacted>/<redacted>/7"
    # Text redacted once keeps its form when it passes through again (a log line through the formatter).
    assert redact("/live/alice/***/7.ts") == "/live/alice/***/7.ts"
    assert redact(redact("http://a:b@h/live/u/p/1.ts")) == redact("http://a:b@h/live/u/p/1.ts")


def test_query_keys_are_matched_whole_wherever_they_stand() -> None:
    text = "url=http://h/x.m3u8?token=t1&PASSWORD=t2&bypass=keep&api_key=t3==&pwd=a=b"
    assert redact(text) == ("url=http://h/x.m3u8?token=<redacted>&PASSWORD=<redacted>&bypass=keep"
                            "&api_key=<redacted>&pwd=<redacted>")
    assert redact("a=1 b=2, no secret here") == "a=1 b=2, no secret here"
