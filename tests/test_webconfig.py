"""--web.config.file: exporter-toolkit TLS and basic auth, against the real exporter process."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.helpers import REPO, Exporter

pytestmark = pytest.mark.slow

CONFIG = "sample_interval: 1s\nstreams: {discover: []}\nviewers: {ports: [], access_log: null}\n"


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def test_bad_web_config_exits_1_with_reasons(tmp_path: Path) -> None:
    web = write(tmp_path, "web.yml", "basic_auth_users:\n  alice: plaintext\nbogus: 1\n")
    out = subprocess.run([sys.executable, "-m", "exporter", f"--web.config.file={web}",
                          "--web.listen-address=127.0.0.1:1"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 1
    assert "basic_auth_users: Value error, password of 'alice' must be a bcrypt hash" in out.stderr or \
        "basic_auth_users: password of 'alice' must be a bcrypt hash" in out.stderr
    assert f"{web}: bogus: unknown key" in out.stderr


def test_missing_tls_files_are_reported(tmp_path: Path) -> None:
    web = write(tmp_path, "web.yml", "tls_server_config:\n  cert_file: /nope.crt\n  key_file: /nope.key\n")
    out = subprocess.run([sys.executable, "-m", "exporter", f"--web.config.file={web}"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 1 and "tls_server_config" in out.stderr


def test_basic_auth_protects_metrics(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=6)).decode()
    web = write(tmp_path, "web.yml", f"basic_auth_users:\n  prom: '{hashed}'\n"
                "http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    exp = Exporter(write(tmp_path, "c.yml", CONFIG), tmp_path, args=(f"--web.config.file={web}",),
                   client={"auth": ("prom", "s3cret")}).start()
    try:
        denied = httpx.get(exp.url + "/metrics")
        assert denied.status_code == 401 and denied.json() == {"error": "missing or wrong basic auth credentials"}
        assert denied.headers["www-authenticate"] == 'Basic realm="iptv-exporter"'
        assert httpx.get(exp.url + "/metrics", auth=("prom", "wrong")).status_code == 401
        assert httpx.get(exp.url + "/metrics", auth=("nobody", "s3cret")).status_code == 401
        ok = httpx.get(exp.url + "/metrics", auth=("prom", "s3cret"))
        assert ok.status_code == 200 and "iptv_exporter_build_info" in ok.text
        assert ok.headers["x-frame-options"] == "deny"
    finally:
        exp.stop()


def test_tls(tmp_path: Path) -> None:
    key, crt = tmp_path / "tls.key", tmp_path / "tls.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    web = write(tmp_path, "web.yml", f"tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n")
    ctx = ssl.create_default_context(cafile=str(crt))
    exp = Exporter(write(tmp_path, "c.yml", CONFIG), tmp_path, args=(f"--web.config.file={web}",),
                   scheme="https", client={"verify": ctx}).start()
    try:
        assert "iptv_exporter_build_info" in httpx.get(exp.url + "/metrics", verify=ctx).text
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{exp.port}/metrics", timeout=3)  # plain HTTP is refused
    finally:
        exp.stop()


@pytest.mark.parametrize("argv", [
    ["--web.listen-address=127.0.0.1:9999", "run"],
    ["run", "--web.listen-address=127.0.0.1:9999"],
    ["--web.listen-address=127.0.0.1:9999", "demo"],
    ["demo", "--web.listen-address=127.0.0.1:9999"],
])
def test_listen_address_before_or_after_the_subcommand(argv: list[str]) -> None:
    from exporter.cli import build_parser

    assert build_parser().parse_args(argv).listen == ("127.0.0.1", 9999)


def test_listen_address_forms() -> None:
    from exporter.web.address import parse_listen_address

    assert parse_listen_address(":9756") == ("0.0.0.0", 9756)
    assert parse_listen_address("[::1]:9756") == ("::1", 9756)
    with pytest.raises(Exception, match="invalid listen address"):
        parse_listen_address("9756")
