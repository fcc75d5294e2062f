"""Payload parsing and the config's template allowlist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from exporter.actions.errors import PayloadError
from exporter.actions.payload import Notification, _parse_slowly, parse_notification
from exporter.config import ConfigError, parse_config
from tests.actions_support import alert, notification

EXAMPLE = Path(__file__).resolve().parent.parent.parent / "shared" / "examples" / "alertmanager-webhook.json"


def test_example_and_nanosecond_times() -> None:
    body = EXAMPLE.read_bytes() if EXAMPLE.exists() else json.dumps(notification(alert("5"))).encode()
    n = parse_notification(body)
    assert n.version == "4" and n.alerts[0].labels["stream"] == "5"
    a = alert("7", starts_at="2026-11-26T14:05:31.512345678Z", fingerprint="3c8e8f0a9b1d2e44")
    assert parse_notification(json.dumps(notification(a)).encode()).alerts[0].dedup_key == \
        ("3c8e8f0a9b1d2e44", "2026-11-26T14:05:31.512345678Z")


@pytest.mark.parametrize("body", [b"\xff\xfe{\x00}\x00", b"null", b"1e999999", b'{"version": "4"}'])
def test_refused(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_notification(body)


@pytest.mark.parametrize(("restart", "problem"), [
    ({"type": "command", "argv": ["{stream}"]}, "argv[0]"),
    ({"type": "command", "argv": ["x", "{stream.__class__}"]}, "may only use"),
    ({"type": "command", "argv": ["x", "{stream!r}"]}, "may only use"),
    ({"type": "command", "argv": ["x", "{stream:>9}"]}, "may only use"),
    ({"type": "command", "argv": ["x", "{labels}"]}, "may only use"),
    ({"type": "command", "argv": ["x", "{"]}, "invalid template"),
    ({"type": "command", "argv": ["x", "a\x00b"]}, "NUL"),
    ({"type": "systemd", "unit": "iptv@{name}.service"}, "not {name}"),
    ({"type": "systemd", "unit": "--force"}, "must not start with '-'"),
    ({"type": "signal", "grace": "30s", "timeout": "10s"}, "grace must be shorter"),
    ({"type": "http", "url": "http://x/{0}"}, "may only use"),
    ({"type": "http", "url": "file:///etc/passwd"}, "pattern"),
])
def test_config_refuses_unsafe_templates(restart: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"actions": {"dry_run": True, "restart": restart}})
    assert problem in str(err.value)


def test_config_accepts_the_documented_forms() -> None:
    for restart in ({"type": "command", "argv": ["systemctl", "restart", "iptv-stream@{stream}", "{{literal}}"]},
                    {"type": "systemd", "unit": "iptv-stream@{stream}.service"},
                    {"type": "signal"}, {"type": "http", "url": "http://127.0.0.1:5000/api/streams/{stream}/restart"}):
        cfg = parse_config({"actions": {"dry_run": True, "restart": restart}})
        assert cfg.actions is not None and set(cfg.actions.configured()) == {"restart"}


_HUGE = "9" * 4400  # past int()'s digit limit
_TOKENS = ['"4"', "4", '"firing"', '"resolved"', "null", "true", "NaN", "Infinity", "-0", "1e999", _HUGE,
           "01", "1.", '"\\udc80"', '"\\ud83d\\ude00"', '"caf\\u00e9"', '"\\x41"', '"a\tb"', '"2026-01-01T00:00:00Z"',
           '"yesterday"', '"0123456789abcdef"', '"../x"', "[]", "{}", '{"a": "b"}', "[[[[[[]]]]]]"]
_KEYS = ["version", "status", "alerts", "labels", "startsAt", "fingerprint", "truncatedAlerts", "receiver", "x"]


def _texts() -> st.SearchStrategy[bytes]:
    """JSON-ish bodies: valid notifications, the same with one value or key swapped for an odd token, and
    raw bytes with multi-byte and invalid UTF-8 sequences."""
    valid = st.builds(lambda fp, stream: json.dumps(notification(alert(stream, fingerprint=fp))),
                      st.text("0123456789abcdef", min_size=1, max_size=20), st.sampled_from(["7", "x", "é"]))

    def swap(text: str, key: str, token: str) -> str:
        return re.sub(rf'"{key}": ("[^"]*"|\d+|\[\]|\{{\}})', lambda _: f'"{key}": {token}', text, count=1)

    swapped = st.builds(swap, valid, st.sampled_from(_KEYS), st.sampled_from(_TOKENS))
    return st.one_of(valid.map(str.encode), swapped.map(str.encode),
                     swapped.map(lambda t: t.encode("latin-1", "replace")),
                     st.binary(max_size=64), st.builds(lambda t, b: t.encode()[:40] + b + t.encode()[40:],
                                                       valid, st.binary(min_size=1, max_size=4)))


@settings(max_examples=400, deadline=None)
@given(body=_texts())
def test_fast_path_is_never_laxer_than_the_explaining_one(body: bytes) -> None:
    """pydantic's JSON parser accepts nothing that json + our checks refuse, and reads the same thing."""
    try:
        fast = Notification.model_validate_json(body)
    except ValidationError:
        return  # refused: parse_notification asks the slow path, so the answer is the slow path's
    slow = _parse_slowly(body)  # raises PayloadError if the fast path was laxer
    assert fast.model_dump_json() == slow.model_dump_json() == parse_notification(body).model_dump_json()


def test_deep_nesting_in_an_ignored_field_is_accepted_as_before() -> None:
    body = json.dumps(notification(alert("7"))).encode()[:-1] + b', "deep": ' + b"[" * 300 + b"]" * 300 + b"}"
    with pytest.raises(ValidationError):
        Notification.model_validate_json(body)  # beyond pydantic's nesting limit ...
    assert parse_notification(body).alerts[0].labels["stream"] == "7"  # ... the slow path takes it
