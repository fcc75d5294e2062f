"""Payload parsing and the config's template allowlist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exporter.actions.errors import PayloadError
from exporter.actions.payload import parse_notification
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
