"""The read-only viewer token (``viewers.api.token_file``) against the exporter as a real process.

Grafana's Infinity datasource holds a token to read live viewers, and Infinity can POST: the token it holds
must open ``GET /api/connections`` and ``GET /api/lines/sharing`` and nothing that acts (the webhook, the action
journal and its reset). The webhook token still reads the viewers (configs from before keep working). Each
refusal is the one error shape, ``{"error": ...}``, with the bearer challenge.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.actions_support import QUIET_VIEWERS, actions_config, alert, journal, notification, write_config, write_token
from tests.helpers import REPO, Exporter, free_port, wait_until

REFUSED = {"error": "missing or wrong bearer token"}
CHALLENGE = 'Bearer realm="iptv-exporter"'
NOTE = "give Grafana (or any reader of live viewers) a read-only viewers.api.token_file"


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token is not None else {}


def _get(exp: Exporter, path: str, token: str | None) -> httpx.Response:
    return httpx.get(exp.url + path, headers=_headers(token), timeout=5)


def _post(exp: Exporter, path: str, token: str | None, body: Any = None) -> httpx.Response:
    return httpx.post(exp.url + path, json=body, headers=_headers(token), timeout=5)


def _config(tmp: Path, *, actions: bool = True, viewer_token: bool = True) -> dict[str, Any]:
    config = actions_config(tmp, {"type": "signal", "signal": "TERM"}, streams=[])
    if not actions:
        del config["actions"]
    if viewer_token:
        config["viewers"] = {**QUIET_VIEWERS, "api": {"token_file": str(tmp / "viewers.token")}}
    return config


def _assert_refused(response: httpx.Response, status: int = 401) -> None:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    assert response.json() == (REFUSED if status == 401 else {"error": response.json()["error"]})
    if status == 401:
        assert response.headers["www-authenticate"] == CHALLENGE


def test_read_only_token_reads_viewers_and_never_acts(exporter: Callable[..., Exporter], tmp_path: Path) -> None:
    webhook = write_token(tmp_path / "token")
    viewer = write_token(tmp_path / "viewers.token")
    exp = exporter(write_config(tmp_path / "config.yml", _config(tmp_path)))
    body = notification(alert("7"))

    for token in (viewer, webhook):  # both read the viewers
        assert _get(exp, "/api/connections", token).json() == []
        assert _get(exp, "/api/lines/sharing", token).json() == []
    for bad in (None, "wrong", viewer + "x"):
        _assert_refused(_get(exp, "/api/connections", bad))
        _assert_refused(_get(exp, "/api/lines/sharing", bad))
    for other in (None, "wrong", viewer):  # the read-only token opens nothing that acts or reads the journal
        _assert_refused(_post(exp, "/hooks/alertmanager", other, body))
        _assert_refused(_get(exp, "/api/actions", other))
        _assert_refused(_post(exp, "/api/actions/reset?stream=7", other))

    # The webhook token does act: the same body is taken, and only it reached the journal.
    assert _post(exp, "/hooks/alertmanager", webhook, body).status_code == 200

    def noted() -> dict[str, Any] | None:
        story = journal(exp.url, webhook)
        return story if story["notifications"] else None

    story = wait_until(noted, timeout=20, what="the accepted notification in the journal")
    assert len(story["notifications"]) == 1 and story["decisions"][0]["result"] == "skipped_unknown_stream"
    assert NOTE not in exp.log_text()  # a read-only token is configured: no advice to configure one

    # Rotation: the new read-only token reads, the old one no longer does, and the new one still cannot act.
    rotated = write_token(tmp_path / "viewers.token", "rotated-" + viewer)
    wait_until(lambda: _get(exp, "/api/connections", rotated).status_code == 200, timeout=10,
               what="the rotated viewer token accepted")
    _assert_refused(_get(exp, "/api/connections", viewer))
    _assert_refused(_post(exp, "/hooks/alertmanager", rotated, body))
    _assert_refused(_post(exp, "/api/actions/reset?stream=7", rotated))
    assert len(journal(exp.url, webhook)["notifications"]) == 1


def test_viewer_api_without_actions(exporter: Callable[..., Exporter], tmp_path: Path) -> None:
    """A host that shows live viewers but takes no restarts: the viewer API with its token, and no webhook."""
    viewer = write_token(tmp_path / "viewers.token")
    exp = exporter(write_config(tmp_path / "config.yml", _config(tmp_path, actions=False)))
    assert _get(exp, "/api/connections", viewer).json() == []
    assert _get(exp, "/api/lines/sharing", viewer).json() == []
    _assert_refused(_get(exp, "/api/connections", None))
    _assert_refused(_post(exp, "/hooks/alertmanager", viewer, notification(alert("7"))), status=404)
    _assert_refused(_get(exp, "/api/actions", viewer), status=404)
    landing = _get(exp, "/", None).text
    assert "/api/connections" in landing and "/api/actions" not in landing


def test_webhook_token_alone_still_reads_viewers_with_a_start_up_note(
    exporter: Callable[..., Exporter], tmp_path: Path,
) -> None:
    """Configs from before the read-only token keep working; the start-up log recommends the read-only token."""
    webhook = write_token(tmp_path / "token")
    exp = exporter(write_config(tmp_path / "config.yml", _config(tmp_path, viewer_token=False)))
    assert _get(exp, "/api/connections", webhook).json() == []
    _assert_refused(_get(exp, "/api/connections", "wrong"))
    assert NOTE in exp.log_text()


def _refusals(config: Path) -> tuple[str, str]:
    """check-config's and run's stderr; both must exit 1 without a traceback."""
    checked = subprocess.run([sys.executable, "-m", "exporter", "check-config", str(config)], capture_output=True,
                             text=True, cwd=REPO, timeout=60)
    ran = subprocess.run([sys.executable, "-m", "exporter", "run", f"--config.file={config}",
                          f"--web.listen-address=127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    for done in (checked, ran):
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    return checked.stderr, ran.stderr


@pytest.mark.parametrize("case", ["missing", "empty", "same token", "same file"])
def test_start_refuses_an_unusable_or_shared_viewer_token(tmp_path: Path, case: str) -> None:
    """check-config and run refuse the same way, naming the key: a read-only token that is the webhook's would
    open the webhook to whoever holds it."""
    webhook = write_token(tmp_path / "token")
    viewer_file = tmp_path / "viewers.token"
    data = _config(tmp_path)
    if case == "empty":
        viewer_file.write_text("\n")
    elif case == "same token":
        write_token(viewer_file, webhook)
    elif case == "same file":
        data["viewers"]["api"]["token_file"] = str(tmp_path / "token")
        viewer_file = tmp_path / "token"
    expected = {
        "missing": f"viewers.api.token_file: {viewer_file}: does not exist: the viewer API needs a token",
        "empty": f"viewers.api.token_file: {viewer_file}: empty: the viewer API needs a token",
        "same token": f"viewers.api.token_file: {viewer_file} holds the same token as actions.token_file",
        "same file": f"viewers.api.token_file: {viewer_file} holds the same token as actions.token_file",
    }[case]
    config = write_config(tmp_path / "config.yml", data)
    checked, ran = _refusals(config)
    assert f"{config}: {expected}" in checked, checked
    assert expected in ran, ran
    assert webhook not in checked + ran, "no message prints a token"
