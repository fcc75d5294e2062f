"""``--web.config.file``: TLS, basic auth, response headers and rate limiting in the Prometheus
exporter-toolkit file format (its docs/web-configuration.md), every key of it.

Keys Python can honour are honoured (:mod:`exporter.web.tls` maps the TLS ones); the few it cannot are
refused at start with the reason, never ignored: ``client_auth_type: RequireAnyClientCert`` (OpenSSL verifies
every certificate it accepts), ``curve_preferences`` with more than one curve (one curve, no preference
list), ``http_server_config.http2: true`` (the server speaks HTTP/1.1 only). Unknown keys are errors.

Like exporter-toolkit, the file is re-read when it changes: :class:`WebConfigWatcher` checks it (and the
certificate files it names) on every request and every new TLS connection. A file that turns invalid is
not applied: the last good settings stay, an error is logged and
``iptv_exporter_web_config_last_reload_successful`` reads 0 until the file is fixed.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from exporter.config.durations import parse_duration
from exporter.config.problems import validation_problems
from exporter.errors import WebConfigError
from exporter.watchedfile import FileStamp, stamp
from exporter.web import tls as tlsmap
from exporter.web.basicauth import BasicAuth, bcrypt_cost

log = logging.getLogger(__name__)

ClientAuth = Literal["NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven",
                     "RequireAndVerifyClientCert"]
TLSVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
HEADERS = {"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "X-XSS-Protection",
           "Strict-Transport-Security"}
"""The response headers exporter-toolkit lets the file set."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSServerConfig(_Strict):
    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = None
    key: SecretStr | None = None
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: Path | None = None
    client_ca: str | None = None
    client_allowed_sans: list[str] = Field(default_factory=list)
    min_version: TLSVersion = "TLS12"
    max_version: TLSVersion = "TLS13"
    cipher_suites: list[str] = Field(default_factory=list)
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[str] = Field(default_factory=list)

    @field_validator("cipher_suites")
    @classmethod
    def _ciphers(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in tlsmap.CIPHERS and n not in tlsmap.TLS13_SUITES]
        if unknown:
            raise ValueError(f"unknown or insecure cipher suite(s) {unknown}: use Go's names from "
                             f"tls.CipherSuites(), e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
        return names

    @field_validator("curve_preferences")
    @classmethod
    def _curves(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in tlsmap.CURVES]
        if unknown:
            raise ValueError(f"unknown curve(s) {unknown}: one of {sorted(tlsmap.CURVES)}")
        if len(names) > 1:
            raise ValueError("Python's ssl restricts the key exchange to one curve and has no preference list: "
                             "give exactly one curve (the others would be refused, not just ranked lower)")
        return names

    @model_validator(mode="after")
    def _consistent(self) -> TLSServerConfig:
        problems = []
        if (self.cert_file is None) == (self.cert is None):
            problems.append("give exactly one of cert_file and cert")
        if (self.key_file is None) == (self.key is None):
            problems.append("give exactly one of key_file and key")
        if self.client_ca_file is not None and self.client_ca is not None:
            problems.append("give at most one of client_ca_file and client_ca")
        has_ca = self.client_ca_file is not None or self.client_ca is not None
        if self.client_auth_type == "RequireAnyClientCert":
            problems.append("client_auth_type RequireAnyClientCert is refused: it requires a certificate without "
                            "verifying it, and Python's ssl (OpenSSL) verifies every certificate it accepts; use "
                            "RequireAndVerifyClientCert with client_ca_file (what exporter-toolkit recommends)")
        if "Verify" in self.client_auth_type and not has_ca:
            problems.append(f"client_auth_type {self.client_auth_type} needs client_ca_file (or client_ca)")
        if self.client_auth_type == "NoClientCert" and has_ca:
            problems.append("client CA configured without a client_auth_type that uses it")
        if self.client_allowed_sans and self.client_auth_type != "RequireAndVerifyClientCert":
            problems.append("client_allowed_sans needs client_auth_type RequireAndVerifyClientCert")
        if tlsmap.VERSIONS[self.min_version] > tlsmap.VERSIONS[self.max_version]:
            problems.append(f"min_version {self.min_version} is above max_version {self.max_version}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def files(self) -> list[Path]:
        return [p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None]


class HTTPServerConfig(_Strict):
    http2: bool = False
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("http2")
    @classmethod
    def _http2(cls, on: bool) -> bool:
        if on:
            raise ValueError("http2: true is refused: the exporter's server (uvicorn) speaks HTTP/1.1 only; "
                             "remove the key or set it to false")
        return on

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if name not in HEADERS:
                raise ValueError(f"header {name!r} cannot be configured (one of {sorted(HEADERS)})")
            if name == "X-Content-Type-Options" and value and value.lower() != "nosniff":
                raise ValueError("X-Content-Type-Options must be nosniff")
            if name == "X-Frame-Options" and value and value.lower() not in {"deny", "sameorigin"}:
                raise ValueError("X-Frame-Options must be deny or sameorigin")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: value must be one line")
        return headers


class RateLimit(_Strict):
    interval: str = "0s"
    """Go duration between two requests; 0 disables the limit."""
    burst: int = Field(default=0, ge=0)

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        if value not in {"0", "0s"}:
            parse_duration(value)
        return value

    def seconds(self) -> float:
        return 0.0 if self.interval in {"0", "0s"} else parse_duration(self.interval)


class WebConfigFile(_Strict):
    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)
    basic_auth_users: dict[str, str] = Field(default_factory=dict)
    rate_limit: RateLimit | None = None

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            try:
                bcrypt_cost(hashed)
            except ValueError:
                raise ValueError(f"password of {user!r} must be a bcrypt hash ($2y$...), never plain text") from None
            if ":" in user:
                raise ValueError(f"user {user!r}: basic auth user names cannot contain ':'")
        return users


class RateLimiter:
    """Token bucket (``golang.org/x/time/rate``): one token per ``interval``, at most ``burst`` saved."""

    def __init__(self, interval: float, burst: int) -> None:
        self.interval, self.burst = interval, max(burst, 1)
        self._tokens = float(self.burst)
        self._at = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) / self.interval)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


@dataclass(frozen=True)
class WebSettings:
    """One good version of the file, with what serving it needs."""

    config: WebConfigFile
    auth: BasicAuth
    headers: tuple[tuple[bytes, bytes], ...]
    limiter: RateLimiter | None
    tls: ssl.SSLContext | None


def read_web_config(path: str | Path) -> WebConfigFile:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"{path}: invalid YAML: {exc}") from None
    try:
        return WebConfigFile.model_validate(data)
    except ValidationError as exc:
        raise WebConfigError("\n".join(f"{path}: {problem}" for problem in validation_problems(exc))) from None


def settings_for(cfg: WebConfigFile, where: str = "web config") -> WebSettings:
    """Everything the file asks for, built now: TLS files are loaded, so a bad one fails here."""
    headers = tuple((k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in cfg.http_server_config.headers.items() if v)
    limiter = None
    if cfg.rate_limit is not None and cfg.rate_limit.seconds() > 0:
        limiter = RateLimiter(cfg.rate_limit.seconds(), cfg.rate_limit.burst)
    context = tlsmap.build_context(cfg.tls_server_config, where) if cfg.tls_server_config is not None else None
    return WebSettings(cfg, BasicAuth(cfg.basic_auth_users), headers, limiter, context)


class StaticWebConfig:
    """Settings that never change (tests, and apps built from a parsed file)."""

    def __init__(self, cfg: WebConfigFile) -> None:
        self._settings = settings_for(cfg)

    def current(self) -> WebSettings:
        return self._settings


class WebConfigWatcher:
    """The file's current good settings, re-read when it or a certificate file it names changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        cfg = read_web_config(self.path)
        self._settings = settings_for(cfg, str(self.path))
        self._stamp = self._stamp_of(cfg)
        self.last_reload_ok = True
        self.last_success = time.time()

    def _stamp_of(self, cfg: WebConfigFile) -> tuple[FileStamp | None, ...]:
        """The file and the certificate files it names; a gone one (None) is reported by the reload."""
        tls = cfg.tls_server_config.files() if cfg.tls_server_config is not None else []
        return tuple(stamp(p) for p in [self.path, *tls])

    @property
    def tls_enabled(self) -> bool:
        return self._settings.tls is not None

    def current(self) -> WebSettings:
        with self._lock:
            settings = self._settings
            stamp = self._stamp_of(settings.config)
            if stamp == self._stamp:
                return settings
            self._stamp = stamp  # one attempt (and one log line) per change
            try:
                cfg = read_web_config(self.path)
                if (cfg.tls_server_config is None) != (settings.tls is None):
                    raise WebConfigError(f"{self.path}: tls_server_config cannot be added or removed while "
                                         "running: restart the exporter")
                fresh = settings_for(cfg, str(self.path))
            except WebConfigError as exc:
                self.last_reload_ok = False
                log.error("web config not reloaded, the last good one stays in force path=%s error=%s",
                          self.path, str(exc).replace("\n", "; "))
                return settings
            self._stamp = self._stamp_of(cfg)
            self._settings, self.last_reload_ok, self.last_success = fresh, True, time.time()
            log.info("web config reloaded path=%s basic_auth_users=%d tls=%s", self.path,
                     len(cfg.basic_auth_users), cfg.tls_server_config is not None)
            return fresh

    def tls_context(self) -> ssl.SSLContext:
        context = self.current().tls
        if context is None:  # current() never swaps TLS for plain
            raise WebConfigError(f"{self.path}: no tls_server_config")
        return context

    def collect(self) -> Iterator[Metric]:
        ok = GaugeMetricFamily("iptv_exporter_web_config_last_reload_successful",
                               "1 if the last change of --web.config.file was applied, 0 if it was refused.")
        ok.add_metric([], 1 if self.last_reload_ok else 0)
        yield ok
        at = GaugeMetricFamily("iptv_exporter_web_config_last_reload_success_timestamp_seconds",
                               "When --web.config.file was last read successfully.")
        at.add_metric([], self.last_success)
        yield at
