"""Log formatters: one record per line, and no password of a stream URL in messages or tracebacks."""

from __future__ import annotations

import json
import logging
import sys

from exporter.logs import JSONFormatter, LogfmtFormatter

URL = "http://prov:pw1@origin/live/u1/pw2/1.ts?token=pw3"


def _record() -> logging.LogRecord:
    try:
        raise OSError(f"cannot open {URL}")
    except OSError:
        exc_info = sys.exc_info()
    return logging.LogRecord("exporter.x", logging.ERROR, __file__, 1, "source failed url=%s", (URL,), exc_info)


def test_logfmt_and_json_lines_are_redacted() -> None:
    logfmt = LogfmtFormatter().format(_record())
    as_json = JSONFormatter().format(_record())
    for text in (logfmt, as_json):
        assert "\n" not in text
        assert not any(secret in text for secret in ("pw1", "pw2", "pw3", "u1")), text
    assert 'msg="source failed url=http://<redacted>@origin/live/<redacted>/<redacted>/1.ts?token=<redacted>"' in logfmt
    parsed = json.loads(as_json)
    assert parsed["level"] == "error" and "<redacted>" in parsed["exc"] and "OSError" in parsed["exc"]
