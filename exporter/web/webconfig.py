"""``--web.config.file``: TLS and basic auth in the Prometheus exporter-toolkit file format.

Supported keys: ``tls_server_config`` (cert_file, key_file, client_auth_type, client_ca_file,
min_version), ``basic_auth_users`` (user: bcrypt hash), ``http_server_config.headers``. Unknown keys are
errors, as in exporter-toolkit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import bcrypt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exporter.errors import WebConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSServerConfig(_Strict):
    cert_file: Path
    key_file: Path
    client_auth_type: Literal[
        "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    ] = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"

    @model_validator(mode="after")
    def _ca(self) -> TLSServerConfig:
        if "Verify" in self.client_auth_type and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        return self


class HTTPServerConfig(_Strict):
    headers: dict[str, str] = Field(default_factory=dict)
    http2: bool = True


class WebConfigFile(_Strict):
    tls_server_config: TLSServerConfig | None = None
    basic_auth_users: dict[str, str] = Field(default_factory=dict)
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ValueError(f"password of {user!r} must be a bcrypt hash ($2y$...), never plain text")
        return users


@dataclass
class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes, caching successes (bcrypt costs ~50 ms)."""

    users: dict[str, str]
    _ok: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            bcrypt.checkpw(b"x", bcrypt.hashpw(b"y", bcrypt.gensalt(4)))  # even the timing out for unknown users
            return False
        key = hashlib.sha256(f"{user}\0{password}\0{hashed}".encode()).digest()
        with self._lock:
            if key in self._ok:
                return True
        if bcrypt.checkpw(password.encode("utf-8"), hashed.encode("ascii")):
            with self._lock:
                self._ok.add(key)
            return True
        return False


def load_web_config(path: str | Path) -> WebConfigFile:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{path}: invalid YAML: {exc}") from None
    try:
        cfg = WebConfigFile.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(str(p) for p in e['loc'])}: "
            + ("unknown key" if e["type"] == "extra_forbidden" else str(e["msg"]).removeprefix("Value error, "))
            for e in exc.errors()
        ]
        raise WebConfigError("\n".join(lines)) from None
    if cfg.tls_server_config is not None:
        ssl_context(cfg.tls_server_config, str(path))  # fail at start-up, not at the first handshake
    return cfg


def ssl_context(tls: TLSServerConfig, where: str = "web config") -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = {
        "TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
        "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3,
    }[tls.min_version]
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file is not None:
            ctx.load_verify_locations(tls.client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(f"{where}: tls_server_config: {exc}") from None
    if tls.client_auth_type == "RequireAndVerifyClientCert":
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif tls.client_auth_type in {"VerifyClientCertIfGiven", "RequestClientCert"}:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx
