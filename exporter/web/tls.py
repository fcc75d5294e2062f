"""``tls_server_config`` of the web config file, mapped onto Python's ``ssl`` as exporter-toolkit maps it onto Go's.

What maps one to one: certificate and key (files or inline PEM), client CA (file or inline), min and max
version, cipher suites for TLS 1.0-1.2 (Go's names translated to OpenSSL's), the server's cipher preference,
and the client certificate policies that OpenSSL can enforce:

=========================== =========================================== ======================================
client_auth_type            Go's promise                                here
=========================== =========================================== ======================================
NoClientCert                no certificate asked for                    ``CERT_NONE``
RequestClientCert           asked for, neither required nor verified:   ``CERT_NONE``: every client is accepted,
                            every client is accepted                    which is all Go's policy guarantees
VerifyClientCertIfGiven     verified against the CA if sent             ``CERT_OPTIONAL`` + the CA
RequireAndVerifyClientCert  required and verified against the CA        ``CERT_REQUIRED`` + the CA
RequireAnyClientCert        required, but never verified                refused at start: OpenSSL through Python
                                                                        verifies every certificate it accepts
=========================== =========================================== ======================================

``curve_preferences`` holds one curve: Python's ``set_ecdh_curve`` restricts the key exchange to a single
group and has no preference list, so a longer list is refused at start rather than silently cut.
``client_allowed_sans`` is checked on each connection right after the handshake (:class:`_SanCheckedObject`).

:class:`ReloadingContext` is the context the server listens with (given to uvicorn through its
``ssl_context_factory``): for each new connection it asks the web
config for the current TLS settings (the file and the certificate files are re-read when they change, as
exporter-toolkit does per connection), so a renewed certificate is served without a restart.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporter.errors import WebConfigError

VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3,
}

CIPHERS = {
    # Go's tls.CipherSuites() names for TLS <= 1.2, with OpenSSL's names for the same suites.
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
}
TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
"""Accepted and, as in Go, not configurable: TLS 1.3 always offers its three suites."""

CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}


class _SanCheckedObject(ssl.SSLObject):
    """An ``SSLObject`` whose handshake fails unless the client certificate names an allowed SAN."""

    allowed_sans: frozenset[str] = frozenset()

    def do_handshake(self) -> None:
        super().do_handshake()  # raises SSLWantReadError until the handshake is done
        cert = self.getpeercert() or {}
        sans: Any = cert.get("subjectAltName", ())
        names = {str(value) for kind, value in sans if kind in {"DNS", "IP Address", "email", "URI"}}
        names |= {_normal_ip(n) for n in names}
        if not names & self.allowed_sans:
            raise ssl.SSLCertVerificationError("client certificate SAN is not in client_allowed_sans")


def _normal_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


def _load_cert_chain(ctx: ssl.SSLContext, tls: Any) -> None:
    """Files as they are; inline PEM through a private temporary file (``ssl`` loads keys only from files)."""
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
        return
    with tempfile.TemporaryDirectory(prefix="iptv-exporter-tls-") as private:  # mode 0700
        cert = Path(tls.cert_file) if tls.cert_file is not None else Path(private, "cert.pem")
        key = Path(tls.key_file) if tls.key_file is not None else Path(private, "key.pem")
        if tls.cert is not None:
            cert.write_text(tls.cert, encoding="utf-8")
        if tls.key is not None:
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(tls.key.get_secret_value())
        ctx.load_cert_chain(cert, key)


def build_context(tls: Any, where: str = "web config") -> ssl.SSLContext:
    """A server context for a validated ``TLSServerConfig``; unreadable files raise :class:`WebConfigError`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = VERSIONS[tls.min_version]
    ctx.maximum_version = VERSIONS[tls.max_version]
    ctx.set_alpn_protocols(["http/1.1"])  # uvicorn speaks HTTP/1.1 only (http_server_config.http2)
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    legacy = [CIPHERS[name] for name in tls.cipher_suites if name in CIPHERS]
    try:
        if legacy:
            ctx.set_ciphers(":".join(legacy))
            have = {c["name"] for c in ctx.get_ciphers()}
            missing = [n for n in tls.cipher_suites if n in CIPHERS and CIPHERS[n] not in have]
            if missing:
                raise WebConfigError(f"{where}: tls_server_config.cipher_suites: not available in this OpenSSL "
                                     f"({ssl.OPENSSL_VERSION}): {', '.join(missing)}")
        for curve in tls.curve_preferences:
            ctx.set_ecdh_curve(CURVES[curve])
        _load_cert_chain(ctx, tls)
        if tls.client_ca_file is not None:
            ctx.load_verify_locations(cafile=tls.client_ca_file)
        elif tls.client_ca is not None:
            ctx.load_verify_locations(cadata=tls.client_ca)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise WebConfigError(f"{where}: tls_server_config: {exc}") from None
    ctx.verify_mode = {
        "NoClientCert": ssl.CERT_NONE,
        "RequestClientCert": ssl.CERT_NONE,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }[tls.client_auth_type]
    if tls.client_allowed_sans:
        sans = frozenset(tls.client_allowed_sans) | {_normal_ip(s) for s in tls.client_allowed_sans}
        ctx.sslobject_class = type("SanChecked", (_SanCheckedObject,), {"allowed_sans": sans})
    return ctx


class ReloadingContext(ssl.SSLContext):
    """The listening context: each new connection is wrapped by the context of the current TLS settings.

    asyncio's and uvloop's TLS transports create every connection's ``SSLObject`` with ``wrap_bio``, so
    delegating it is enough to serve new certificates and policies on the next connection, like
    exporter-toolkit's ``GetConfigForClient``. ``current`` returns that context (and re-reads what changed).
    """

    current: Callable[[], ssl.SSLContext]

    def __new__(cls, current: Callable[[], ssl.SSLContext]) -> ReloadingContext:
        self = super().__new__(cls, ssl.PROTOCOL_TLS_SERVER)
        self.current = current
        return self

    def __init__(self, current: Callable[[], ssl.SSLContext]) -> None:
        """Set up in ``__new__`` (``SSLContext`` is built there)."""

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | bytes | None = None, session: ssl.SSLSession | None = None) -> ssl.SSLObject:
        return self.current().wrap_bio(incoming, outgoing, server_side=server_side,
                                       server_hostname=server_hostname, session=session)


def reloading_context_factory(current: Callable[[], ssl.SSLContext]) -> Callable[[Any, Any], ssl.SSLContext]:
    """uvicorn's ``Config(ssl_context_factory=...)`` (uvicorn >= 0.47): the server listens with a
    :class:`ReloadingContext` on ``current``; uvicorn's default factory (certificate files given to it) is
    not used, the web config names them."""

    def factory(_config: Any, _default: Any) -> ssl.SSLContext:
        return ReloadingContext(current)

    return factory
