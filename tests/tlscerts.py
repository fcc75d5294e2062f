"""Certificates made with the real openssl CLI for TLS tests: a CA, a server certificate for 127.0.0.1, client
certificates signed by the CA (with a SAN each) and one signed by nobody the server trusts."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import require_binary


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: Pair
    client: Pair
    """Signed by the CA, SAN ``DNS:prom.example``."""
    other_client: Pair
    """Signed by the CA, SAN ``DNS:intruder.example``."""
    rogue: Pair
    """Self-signed: not from the CA."""


def _openssl(*args: str) -> None:
    subprocess.run([require_binary("openssl"), *args], check=True, capture_output=True, timeout=60)


def signed(root: Path, name: str, subject: str, san: str, ca: Pair, key_type: str = "ec") -> Pair:
    key, csr, cert = root / f"{name}.key", root / f"{name}.csr", root / f"{name}.crt"
    newkey = ["-newkey", "rsa:2048"] if key_type == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    _openssl("req", *newkey, "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", subject)
    ext = root / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key), "-CAcreateserial",
             "-days", "2", "-out", str(cert), "-extfile", str(ext))
    return Pair(cert, key)


def make_pki(root: Path) -> Pki:
    root.mkdir(parents=True, exist_ok=True)
    ca = Pair(root / "ca.crt", root / "ca.key")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             str(ca.key), "-out", str(ca.cert), "-days", "2", "-subj", "/CN=iptv test CA")
    rogue = Pair(root / "rogue.crt", root / "rogue.key")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             str(rogue.key), "-out", str(rogue.cert), "-days", "2", "-subj", "/CN=rogue",
             "-addext", "subjectAltName=DNS:prom.example")
    return Pki(
        ca=ca.cert,
        server=signed(root, "server", "/CN=localhost", "IP:127.0.0.1,DNS:localhost", ca, key_type="rsa"),
        client=signed(root, "client", "/CN=prometheus", "DNS:prom.example", ca),
        other_client=signed(root, "other", "/CN=other", "DNS:intruder.example", ca),
        rogue=rogue,
    )
