"""Asking the panel's API to restart a stream, with its login when it needs one; secrets read per action."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from urllib.parse import quote

import httpx
import yaml

from exporter.actions.policy import FAILED, OK, TIMEOUT
from exporter.actions.runners.base import RunOutcome, Target, excerpt, fill
from exporter.config.actions import HttpAction
from exporter.redact import redact

log = logging.getLogger(__name__)

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")


class HttpRunner:
    """Ask the panel to restart the stream over its API (e.g. PanelX ``POST /api/streams/{stream}/restart``).

    With ``login``: the panel's own login first (PanelX accepts the restart only with the session cookie that
    ``POST /api/auth/login`` sets, server/routes.ts), the cookies kept between actions, and one new login
    and retry when the panel answers 401 (sessions live in the panel's memory: a panel restart ends them).
    """

    kind = "http"

    def __init__(self, cfg: HttpAction, output_limit: int) -> None:
        self.cfg = cfg
        self.output_limit = output_limit
        self._cookies = httpx.Cookies()
        self._login_lock = threading.Lock()
        self.logins = 0
        """Logins made (the journal does not see them; tests and logs do)."""

    def url(self, target: Target) -> str:
        return fill(self.cfg.url, target.values(), lambda v: quote(v, safe=""))

    def describe(self, target: Target) -> str:
        return f"{self.cfg.method} {redact(self.url(target))}"

    def headers(self) -> dict[str, str]:
        """Read for every action (rotation needs no restart). Errors are ValueErrors with the file named."""
        headers: dict[str, str] = {}
        if self.cfg.headers_file is not None:
            try:
                data = yaml.safe_load(self.cfg.headers_file.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
                raise ValueError(f"headers_file {self.cfg.headers_file}: {exc}") from None
            if not isinstance(data, dict):
                raise ValueError(f"headers_file {self.cfg.headers_file}: expected a mapping of header: value")
            for name, value in data.items():
                if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name) or not isinstance(value, str) \
                        or any(c in value for c in "\r\n\0"):
                    raise ValueError(f"headers_file {self.cfg.headers_file}: invalid header {str(name)[:40]!r}")
                headers[name] = value
        if self.cfg.token_file is not None:
            headers["Authorization"] = f"Bearer {read_secret(self.cfg.token_file)}"
        return headers

    def _login(self, client: httpx.Client, stale: httpx.Cookies | None) -> None:
        """Log in unless another action already did since ``stale`` was read; ValueError says why not."""
        login = self.cfg.login
        if login is None:
            return
        with self._login_lock:
            if stale is not None and dict(self._cookies) != dict(stale):
                client.cookies = httpx.Cookies(self._cookies)  # another action logged in meanwhile
                return
            username, password = read_credentials(login.credentials_file)
            client.cookies = httpx.Cookies()
            fields = {"username": username, "password": password}
            response = client.post(login.url, json=fields) if login.format == "json" else client.post(
                login.url, data=fields)
            self.logins += 1
            if not 200 <= response.status_code < 300:
                raise ValueError(f"login to {redact(login.url)} failed: HTTP {response.status_code}")
            try:
                answer = response.json()
            except ValueError:
                answer = None
            if isinstance(answer, dict) and answer.get("requires2FA"):
                raise ValueError("login needs a two-factor code: give the exporter an account without 2FA")
            if not client.cookies:
                raise ValueError(f"login to {redact(login.url)} set no session cookie")
            self._cookies = httpx.Cookies(client.cookies)
            log.info("logged in to the panel url=%s user=%s", redact(login.url), username)

    def _send(self, client: httpx.Client, url: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
        with client.stream(self.cfg.method, url, headers=headers) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > self.output_limit:
                    break
        return response, body

    def run(self, target: Target, stop: threading.Event) -> RunOutcome:
        url = self.url(target)
        try:
            headers = self.headers()
        except ValueError as exc:
            return RunOutcome(FAILED, str(exc), ran=False)
        try:
            with httpx.Client(timeout=self.cfg.timeout, follow_redirects=False, trust_env=False,
                              cookies=httpx.Cookies(self._cookies)) as client:
                if self.cfg.login is not None and not client.cookies:
                    self._login(client, None)
                used = httpx.Cookies(client.cookies)
                response, body = self._send(client, url, headers)
                if response.status_code == 401 and self.cfg.login is not None:
                    self._login(client, used)  # the session expired (or the panel restarted): once more
                    response, body = self._send(client, url, headers)
        except ValueError as exc:  # the login failed: the restart was never asked for
            return RunOutcome(FAILED, str(exc), ran=False)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # the request never left: nothing ran
            return RunOutcome(FAILED, f"{type(exc).__name__}: {redact(str(exc))[:300]}", ran=False)
        except httpx.TimeoutException:
            return RunOutcome(TIMEOUT, f"no answer within {self.cfg.timeout:g}s from {redact(url)}")
        except httpx.HTTPError as exc:
            return RunOutcome(FAILED, f"{type(exc).__name__}: {redact(str(exc))[:300]}")
        output = f"HTTP {response.status_code}\n" + excerpt(body, self.output_limit)
        if 200 <= response.status_code < 300:
            return RunOutcome(OK, f"HTTP {response.status_code}", output=output)
        return RunOutcome(FAILED, f"HTTP {response.status_code}", output=output)


def read_credentials(path: Path) -> tuple[str, str]:
    """``username`` and ``password`` from a YAML file; ValueError (naming the file, never the values) if not."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"credentials_file {path}: cannot read: {getattr(exc, 'strerror', None) or 'not YAML'}") \
            from None
    fields = ("username", "password")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data[k] for k in fields):
        raise ValueError(f"credentials_file {path}: expected a mapping with username: and password:")
    return data["username"], data["password"]


def read_secret(path: Path) -> str:
    """A token file's content without surrounding whitespace; ValueError if unreadable or empty."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not token:
        raise ValueError(f"{path} is empty")
    return token
