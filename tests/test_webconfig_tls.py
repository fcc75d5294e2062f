"""``tls_server_config``, every key, against the real exporter process with real TLS clients (Python's ssl,
``openssl s_client``) and openssl-made certificates: each client_auth_type with and without a certificate,
versions, cipher suites and their order, curves, ALPN, allowed SANs, inline PEM, and changes picked up per
connection without a restart."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.errors import WebConfigError
from exporter.web.webconfig import read_web_config
from tests.helpers import REPO, Exporter, parse_metrics, require_binary, wait_until
from tests.tlscerts import Pair, Pki, make_pki, signed

pytestmark = pytest.mark.slow

CONFIG = "sample_interval: 1s\nstreams: {discover: []}\nviewers: {ports: [], access_log: null}\n"
REFUSED = "refused"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def install(path: Path, doc: dict[str, Any]) -> None:
    """Replace the web config the way an editor or config management does (a new file renamed over it)."""
    new = path.with_suffix(".new")
    new.write_text(yaml.safe_dump(doc))
    os.replace(new, path)


def tls_doc(server: Pair, **tls: Any) -> dict[str, Any]:
    return {"tls_server_config": {"cert_file": str(server.cert), "key_file": str(server.key), **tls}}


def client(pki: Pki, pair: Pair | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if pair is not None:
        ctx.load_cert_chain(pair.cert, pair.key)
    return ctx


def status(url: str, ctx: ssl.SSLContext) -> int | str:
    """The HTTP status a real TLS client gets, or ``refused`` when the handshake (or the first read) fails."""
    try:
        return httpx.get(url + "/-/healthy", verify=ctx, timeout=10).status_code
    except httpx.HTTPError:
        return REFUSED


def handshake(port: int, ctx: ssl.SSLContext) -> tuple[str, str, str | None]:
    """(version, cipher, ALPN protocol) of one real handshake."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        cipher = tls.cipher()
        assert cipher is not None
        return str(tls.version()), cipher[0], tls.selected_alpn_protocol()


def start(tmp_path: Path, web: Path, ctx: ssl.SSLContext) -> Exporter:
    config = tmp_path / "c.yml"
    config.write_text(CONFIG)
    return Exporter(config, tmp_path, args=(f"--web.config.file={web}",), scheme="https",
                    client={"verify": ctx}).start()


def test_each_client_auth_type_with_and_without_a_certificate(tmp_path: Path, pki: Pki) -> None:
    server = Pair(tmp_path / "server.crt", tmp_path / "server.key")
    shutil.copy(pki.server.cert, server.cert)
    shutil.copy(pki.server.key, server.key)
    web = tmp_path / "web.yml"
    install(web, tls_doc(server))
    exp = start(tmp_path, web, client(pki))
    clients = {"none": client(pki), "ca-signed": client(pki, pki.client), "rogue": client(pki, pki.rogue)}
    expected: dict[str, dict[str, int | str]] = {
        "NoClientCert": {"none": 200, "ca-signed": 200, "rogue": 200},
        "RequestClientCert": {"none": 200, "ca-signed": 200, "rogue": 200},  # nothing required or verified
        "VerifyClientCertIfGiven": {"none": 200, "ca-signed": 200, "rogue": REFUSED},
        "RequireAndVerifyClientCert": {"none": REFUSED, "ca-signed": 200, "rogue": REFUSED},
    }
    try:
        for policy, want in expected.items():
            extra = {"client_ca_file": str(pki.ca)} if "Verify" in policy else {}
            install(web, tls_doc(server, client_auth_type=policy, **extra))  # applies from the next connection
            got = {name: status(exp.url, ctx) for name, ctx in clients.items()}
            assert got == want, policy

        # RequireAnyClientCert cannot be honoured: refused, and the last good policy stays in force.
        install(web, tls_doc(server, client_auth_type="RequireAnyClientCert"))
        assert status(exp.url, clients["none"]) == REFUSED
        scrape = httpx.get(exp.url + "/metrics", verify=clients["ca-signed"], timeout=10)
        samples = parse_metrics(scrape.text)
        assert samples[("iptv_exporter_web_config_last_reload_successful", ())] == 0
        assert "RequireAnyClientCert is refused" in exp.log_text()

        # A renewed certificate is served on the next connection, without a restart.
        install(web, tls_doc(server))
        before = ssl.DER_cert_to_PEM_cert(_peer_cert(exp.port, pki))
        ca = Pair(pki.ca, pki.ca.with_suffix(".key"))
        renewed = signed(tmp_path, "renewed", "/CN=localhost", "IP:127.0.0.1", ca, key_type="rsa")
        os.replace(renewed.key, server.key)
        os.replace(renewed.cert, server.cert)
        wait_until(lambda: ssl.DER_cert_to_PEM_cert(_peer_cert(exp.port, pki)) != before, timeout=10,
                   what="the renewed certificate served")
        assert status(exp.url, clients["none"]) == 200
    finally:
        exp.stop()


def _peer_cert(port: int, pki: Pki) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            client(pki).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def test_require_any_client_cert_is_refused_at_start(tmp_path: Path, pki: Pki) -> None:
    web = tmp_path / "web.yml"
    install(web, tls_doc(pki.server, client_auth_type="RequireAnyClientCert"))
    done = subprocess.run([sys.executable, "-m", "exporter", f"--web.config.file={web}",
                           "--web.listen-address=127.0.0.1:1"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 1
    assert "tls_server_config: client_auth_type RequireAnyClientCert is refused" in done.stderr
    assert "Traceback" not in done.stderr


def test_versions_cipher_suites_preference_curves_and_alpn(tmp_path: Path, pki: Pki) -> None:
    web = tmp_path / "web.yml"
    suites = ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    install(web, tls_doc(pki.server, max_version="TLS12", cipher_suites=suites, curve_preferences=["CurveP384"]))
    exp = start(tmp_path, web, client(pki))
    try:
        tls13_only = client(pki)
        tls13_only.minimum_version = ssl.TLSVersion.TLSv1_3
        assert status(exp.url, tls13_only) == REFUSED  # max_version TLS12
        offer = client(pki)
        offer.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")  # the client prefers AES128
        offer.set_alpn_protocols(["h2", "http/1.1"])
        assert handshake(exp.port, offer) == ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384", "http/1.1")
        outside = client(pki)
        outside.set_ciphers("ECDHE-RSA-AES128-SHA")  # a suite the file does not list
        assert status(exp.url, outside) == REFUSED

        openssl = require_binary("openssl")

        def s_client(curve: str) -> int:
            return subprocess.run([openssl, "s_client", "-connect", f"127.0.0.1:{exp.port}", "-tls1_2",
                                   "-curves", curve, "-CAfile", str(pki.ca)], stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=30).returncode

        assert s_client("secp384r1") == 0 and s_client("prime256v1") != 0  # curve_preferences: [CurveP384]

        install(web, tls_doc(pki.server, max_version="TLS12", cipher_suites=suites,
                             prefer_server_cipher_suites=False))
        assert handshake(exp.port, offer)[1] == "ECDHE-RSA-AES128-GCM-SHA256"  # now the client's order wins
        assert s_client("prime256v1") == 0

        install(web, tls_doc(pki.server, min_version="TLS13"))
        tls12_only = client(pki)
        tls12_only.maximum_version = ssl.TLSVersion.TLSv1_2
        assert status(exp.url, tls12_only) == REFUSED
        assert handshake(exp.port, client(pki))[0] == "TLSv1.3"
    finally:
        exp.stop()


def test_allowed_sans_and_inline_pem(tmp_path: Path, pki: Pki) -> None:
    web = tmp_path / "web.yml"
    install(web, {"tls_server_config": {
        "cert": pki.server.cert.read_text(), "key": pki.server.key.read_text(), "client_ca": pki.ca.read_text(),
        "client_auth_type": "RequireAndVerifyClientCert", "client_allowed_sans": ["prom.example"],
    }})
    exp = start(tmp_path, web, client(pki, pki.client))
    try:
        assert status(exp.url, client(pki, pki.client)) == 200
        assert status(exp.url, client(pki, pki.other_client)) == REFUSED  # signed by the CA, SAN not allowed
        assert status(exp.url, client(pki, pki.rogue)) == REFUSED  # the allowed SAN, not signed by the CA
        assert status(exp.url, client(pki)) == REFUSED
    finally:
        exp.stop()


@pytest.mark.parametrize(("tls", "http", "message"), [
    ({"client_auth_type": "RequireAnyClientCert"}, {}, "RequireAnyClientCert is refused"),
    ({"client_auth_type": "VerifyClientCertIfGiven"}, {}, "needs client_ca_file"),
    ({"client_ca_file": "/ca.crt"}, {}, "client CA configured without a client_auth_type"),
    ({"client_allowed_sans": ["x"], "client_auth_type": "VerifyClientCertIfGiven", "client_ca_file": "/c"}, {},
     "client_allowed_sans needs client_auth_type RequireAndVerifyClientCert"),
    ({"curve_preferences": ["X25519", "CurveP256"]}, {}, "give exactly one curve"),
    ({"curve_preferences": ["CurveP224"]}, {}, "unknown curve"),
    ({"cipher_suites": ["TLS_RSA_WITH_RC4_128_SHA"]}, {}, "unknown or insecure cipher suite"),
    ({"min_version": "TLS13", "max_version": "TLS12"}, {}, "min_version TLS13 is above max_version TLS12"),
    ({"cert": "PEM"}, {}, "give exactly one of cert_file and cert"),
    ({}, {"http2": True}, "speaks HTTP/1.1 only"),
    ({}, {"headers": {"Server": "x"}}, "header 'Server' cannot be configured"),
    ({}, {"headers": {"X-Frame-Options": "allow"}}, "X-Frame-Options must be deny or sameorigin"),
])
def test_what_cannot_be_honoured_is_refused_with_the_reason(
    tmp_path: Path, tls: dict[str, Any], http: dict[str, Any], message: str,
) -> None:
    web = tmp_path / "web.yml"
    install(web, {"tls_server_config": {"cert_file": "/s.crt", "key_file": "/s.key", **tls},
                  "http_server_config": http})
    with pytest.raises(WebConfigError, match=message):
        read_web_config(web)
