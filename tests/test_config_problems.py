"""exporter.config.problems: one format for every pydantic validation problem, each with its key path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exporter.actions.errors import PayloadError
from exporter.actions.payload import parse_notification
from exporter.config import ConfigError, parse_config
from exporter.config.problems import key_path
from exporter.errors import WebConfigError
from exporter.web.webconfig import read_web_config


def test_key_path() -> None:
    assert key_path(("streams", "static", 2, "id")) == "streams.static[2].id"
    assert key_path(("actions", "restart", "function-after[_check]", "argv")) == "actions.restart.argv"
    assert key_path(()) == "(top level)"


def test_config_file_problems_keep_their_key_paths() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"streams": {"static": [{"id": "7"}, {"id": "8", "colour": "red"}]}, "sample_interval": "1ms"})
    assert sorted(err.value.problems) == [
        "sample_interval: must be between 100ms and 1h, not 1ms",
        "streams.static[1].colour: unknown key",
    ]


def test_web_config_problems_in_the_same_format(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("http_server_config:\n  http2: false\n  colour: red\ntls_server_config:\n"
                   "  cert_file: /s.crt\n  key_file: /s.key\n  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA, x]\n")
    with pytest.raises(WebConfigError) as err:
        read_web_config(web)
    lines = str(err.value).splitlines()
    assert f"{web}: http_server_config.colour: unknown key" in lines
    assert any(line.startswith(f"{web}: tls_server_config.cipher_suites") for line in lines), lines


def test_webhook_payload_problems_in_the_same_format() -> None:
    body = {"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": "not a mapping"}]}
    with pytest.raises(PayloadError) as err:
        parse_notification(json.dumps(body).encode())
    assert err.value.reason.startswith("invalid payload: alerts[0].labels: ")
