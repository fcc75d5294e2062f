"""The webhook and journal API in-process: auth, limits, validation, injection attempts, fuzzing, dry run.

These run the real app (build_runtime + create_app, real sampler, real worker, real command runner on a
recording script) through Starlette's TestClient rather than a uvicorn process: hundreds of requests per
test stay fast on a shared 2-core box. The HTTP server's own behaviour (a body refused mid-stream) is
tested against the real exporter process in test_actions_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.testclient import TestClient

from exporter.actions import ActionsComponent, ActionsError
from exporter.config import parse_config
from exporter.runtime import build_runtime
from exporter.web.viewers_api import ViewersApi
from tests.actions_support import (
    NODE,
    PYTHON,
    QUIET_VIEWERS,
    RECORD,
    alert,
    notification,
    records,
    running,
    write_token,
)
from tests.helpers import REPO, metric, parse_metrics, wait_until


def _config(tmp: Path, *argv_tail: str, name: str = "Seven", **actions: Any) -> dict[str, Any]:
    return {
        "node": NODE,
        "sample_interval": "1s",
        "streams": {"discover": [], "static": [{"id": "7", "name": name}, {"id": "fz-9f3c1a"}]},
        "viewers": QUIET_VIEWERS,
        "actions": {
            "token_file": str(tmp / "token"), "journal": str(tmp / "journal.sqlite"), "verify_timeout": "1s",
            "restart": {"type": "command", "timeout": "10s",
                        "argv": [PYTHON, str(RECORD), str(tmp / "record.jsonl"), *argv_tail]},
            **actions,
        },
    }


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _metrics(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return parse_metrics(client.get("/metrics").text)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, ActionsComponent, str, Path]]:
    token = write_token(tmp_path / "token")
    with running(_config(tmp_path, "{stream}", "{name}", "{node}")) as (client, _, component):
        yield client, component, token, tmp_path / "record.jsonl"


def test_hook_requires_the_bearer_token(env: tuple[TestClient, ActionsComponent, str, Path]) -> None:
    client, component, token, record = env
    body = notification(alert("7", status="resolved"))
    for headers in ({}, _auth("wrong"), {"Authorization": token}, {"Authorization": f"Basic {token}"},
                    _auth(token + "x"), _auth(token[:-1])):
        r = client.post("/hooks/alertmanager", json=body, headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/api/actions").status_code == 401
    assert client.post("/api/actions/reset?stream=7").status_code == 401
    assert client.post("/hooks/alertmanager", json=body, headers=_auth(token)).status_code == 200
    lower = {"authorization": f"bearer {token}"}
    assert client.post("/hooks/alertmanager", json=body, headers=lower).status_code == 200
    assert component.worker.wait_idle(10)
    samples = _metrics(client)
    assert metric(samples, "iptv_webhook_requests_total", code="401") == 6
    assert metric(samples, "iptv_webhook_requests_total", code="200") == 2
    assert not record.exists()


def test_token_file_is_reread_when_it_changes(env: tuple[TestClient, ActionsComponent, str, Path],
                                              tmp_path: Path) -> None:
    client, _, old, _ = env
    body = notification(alert("7", status="resolved"))
    path = tmp_path / "token"
    new = write_token(path, "rotated-" + old)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a coarse clock must not hide it
    assert client.post("/hooks/alertmanager", json=body, headers=_auth(old)).status_code == 401
    assert client.post("/hooks/alertmanager", json=body, headers=_auth(new)).status_code == 200
    path.write_text("\n")  # emptied: nobody gets in
    assert client.post("/hooks/alertmanager", json=body, headers=_auth(new)).status_code == 401
    path.unlink()
    assert client.post("/hooks/alertmanager", json=body, headers=_auth(new)).status_code == 401
    write_token(path, new)
    assert client.post("/hooks/alertmanager", json=body, headers=_auth(new)).status_code == 200


@pytest.mark.parametrize(("body", "reason"), [
    (b"{", "malformed JSON"),
    (b"", "malformed JSON"),
    (b"[]", "expected a JSON object"),
    (b'{"version": "3", "status": "firing", "alerts": []}', "version"),
    (b'{"version": "4", "status": "firing"}', "alerts: Field required"),
    (b'{"version": "4", "status": "firing", "alerts": [{"status": "firing"}]}', "alerts[0].labels"),
    (b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"stream": 7},'
     b' "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "ab"}]}', "alerts[0].labels.stream"),
    (b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {},'
     b' "startsAt": "yesterday", "fingerprint": "ab"}]}', "startsAt"),
    (b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {},'
     b' "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "../../x"}]}', "fingerprint"),
    ('{"version": "4", "status": "firing", "alerts": [], "x": "caf\u00e9"}'.encode("latin-1"), "UTF-8"),
    (b'{"version": "4", "status": "firing", "alerts": [], "x": "\\udc80"}', "surrogate"),
    (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
    (b'{"version": "4", "status": "firing", "alerts": [], "n": 1' + b"0" * 5000 + b"}", "malformed JSON"),
])
def test_malformed_payloads_are_400_with_the_reason(env: tuple[TestClient, ActionsComponent, str, Path],
                                                    body: bytes, reason: str) -> None:
    client, _, token, record = env
    r = client.post("/hooks/alertmanager", content=body, headers=_auth(token))
    assert r.status_code == 400
    assert reason in r.json()["error"]
    assert not record.exists()


def test_unknown_fields_are_tolerated(env: tuple[TestClient, ActionsComponent, str, Path]) -> None:
    client, component, token, _ = env
    example = json.loads((REPO / "tests/fixtures/alertmanager-webhook.json").read_text())
    example["somethingNew"] = {"nested": [1, 2]}
    example["alerts"][0]["alsoNew"] = True
    r = client.post("/hooks/alertmanager", json=example, headers=_auth(token))
    assert r.status_code == 200 and r.json()["alerts"] == 1
    assert component.worker.wait_idle(10)
    decisions = client.get("/api/actions", headers=_auth(token)).json()["decisions"]
    assert decisions[0]["result"] == "skipped_unknown_stream"  # stream 5 is not ours: recorded, skipped


def test_body_limit_413(env: tuple[TestClient, ActionsComponent, str, Path]) -> None:
    client, _, token, _ = env
    big = b" " * (1 << 20) + b"{}"
    r = client.post("/hooks/alertmanager", content=big, headers=_auth(token))
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
        for _ in range(64):
            yield b" " * 32768

    r = client.post("/hooks/alertmanager", content=chunks(), headers=_auth(token))
    assert r.status_code == 413
    r = client.post("/hooks/alertmanager", content=big, headers={**_auth(token), "Content-Length": "nan"})
    assert r.status_code in {400, 413}
    assert r.status_code != 413 or "larger" in r.json()["error"]


def test_answers_at_once_and_acts_in_the_background(tmp_path: Path) -> None:
    token = write_token(tmp_path / "token")
    config = _config(tmp_path, "--sleep", "3", "{stream}")
    with running(config) as (client, _, component):
        started = time.monotonic()
        r = client.post("/hooks/alertmanager", json=notification(alert("7")), headers=_auth(token))
        answered = time.monotonic() - started
        assert r.status_code == 200
        assert answered < 1.0, f"the hook waited for the action ({answered:.2f}s)"
        wait_until(lambda: records(tmp_path / "record.jsonl"), timeout=10, what="command started")
        assert client.get("/api/actions", headers=_auth(token)).json()["actions"][0]["result"] is None  # running
        assert component.worker.wait_idle(20)
        action = client.get("/api/actions", headers=_auth(token)).json()["actions"][0]
        assert action["result"] == "failed"  # it exited 0, but no new process came up: not verified
        assert "not verified" in action["detail"]


def test_argv_items_stay_items_and_children_get_a_clean_environment(tmp_path: Path) -> None:
    token = write_token(tmp_path / "token")
    os.environ["IPTV_TEST_SECRET"] = "do-not-leak"
    try:
        with running(_config(tmp_path, "{stream}", "{name}", "--{node}--", name="Seven; touch pwned $(id)")) \
                as (client, _, component):
            r = client.post("/hooks/alertmanager", json=notification(alert("7")), headers=_auth(token))
            assert r.status_code == 200
            assert component.worker.wait_idle(20)
            story = client.get("/api/actions", headers=_auth(token)).json()
    finally:
        del os.environ["IPTV_TEST_SECRET"]
    (rec,) = records(tmp_path / "record.jsonl")
    assert rec["argv"] == ["7", "Seven; touch pwned $(id)", f"--{NODE}--"]
    assert rec["cwd"] == "/"
    assert "IPTV_TEST_SECRET" not in rec["env"]
    assert rec["env"]["IPTV_STREAM"] == "7" and rec["env"]["IPTV_NODE"] == NODE
    assert not (REPO / "pwned").exists() and not Path("/pwned").exists()
    (action,) = story["actions"]
    assert json.loads(action["command"])[-3:] == rec["argv"]
    assert "secret" not in action["output"] and "pa55" not in action["output"]  # redacted
    assert "<redacted>" in action["output"]


INJECTIONS = ["7; rm -rf /", "$(touch x)", "`touch x`", "../", "../../etc/passwd", "7\n", " 7", "7 ", "7\x00",
              "7 && touch x", "-7", "--help", "x" * 100_000, "７", "7\u202e", "{stream}", "{name.__class__}"]


def test_injection_attempts_execute_nothing(env: tuple[TestClient, ActionsComponent, str, Path],
                                            tmp_path: Path) -> None:
    client, component, token, record = env
    before = set(os.listdir(REPO)) | set(os.listdir("/")) | set(os.listdir(tmp_path))
    for value in INJECTIONS:
        for labels in ({"stream": value}, {"action": value}, {"node": value}):
            body = notification(alert(**{"stream": "7", **labels}))
            r = client.post("/hooks/alertmanager", json=body, headers=_auth(token))
            assert r.status_code == 200, (value, r.text)
    raw = json.dumps(notification(alert("7"))).encode().replace(b'"stream": "7"', b'"stream": "7\xff; touch x"')
    assert client.post("/hooks/alertmanager", content=raw, headers=_auth(token)).status_code == 400
    assert component.worker.wait_idle(20)
    assert not record.exists(), records(record)
    after = set(os.listdir(REPO)) | set(os.listdir("/")) | set(os.listdir(tmp_path))
    assert after - before <= {"journal.sqlite-wal", "journal.sqlite-shm"}, after - before
    decisions = client.get("/api/actions?limit=1000", headers=_auth(token)).json()["decisions"]
    assert len(decisions) == 3 * len(INJECTIONS)
    assert {d["result"] for d in decisions} == {"skipped_unknown_stream", "skipped_unknown_action",
                                                "skipped_other_node"}
    assert max(len(d["stream"]) for d in decisions) <= 128  # 100 kB labels are cut in the journal
    samples = _metrics(client)
    assert metric(samples, "iptv_actions_total", stream="", action="restart",
                  result="skipped_unknown_stream") == len(INJECTIONS)
    streams = {dict(lbls).get("stream") for (name, lbls) in samples if name == "iptv_actions_total"}
    assert streams <= {"", "7", "fz-9f3c1a"}  # inventory ids only: an attacker's label values never become series


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, ActionsComponent, str, Path]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    token = write_token(tmp / "token")
    config = _config(tmp, "{stream}")
    config["actions"]["body_limit"] = 4096
    with running(config) as (client, _, component):
        yield client, component, token, tmp / "record.jsonl"


labels = st.dictionaries(st.sampled_from(["stream", "action", "node", "alertname", "x"]) | st.text(max_size=8),
                         st.text(max_size=20) | st.sampled_from(["7", "restart", NODE, "edge-2"]), max_size=5)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
alerts = st.fixed_dictionaries(
    {"labels": labels},
    optional={"status": st.sampled_from(["firing", "resolved", "pending", ""]),
              "startsAt": st.sampled_from(["2026-11-26T14:05:31.512Z", "", "0001-01-01T00:00:00Z"]) | st.text(),
              "fingerprint": st.text(alphabet="0123456789abcdef", min_size=0, max_size=20) | st.text(max_size=5),
              "annotations": json_values, "extra": json_values},
)
payloads = st.fixed_dictionaries(
    {"alerts": st.lists(alerts, max_size=4)},
    optional={"version": st.sampled_from(["4", "3", 4]), "status": st.sampled_from(["firing", "resolved", 1]),
              "receiver": json_values, "groupLabels": json_values, "truncatedAlerts": st.integers(-5, 5)},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(body=st.one_of(payloads.map(lambda p: json.dumps(p).encode()), json_values.map(lambda v: json.dumps(v).encode()),
                      st.binary(max_size=300)))
def test_fuzzed_payloads_never_5xx_and_execute_nothing(
    fuzz_env: tuple[TestClient, ActionsComponent, str, Path], body: bytes
) -> None:
    client, component, token, record = fuzz_env
    r = client.post("/hooks/alertmanager", content=body, headers=_auth(token))
    assert r.status_code in {200, 400, 413}, (r.status_code, r.text)
    assert r.status_code == 200 or r.json()["error"]
    assert component.worker.wait_idle(10)
    assert not record.exists()


def test_dry_run_executes_nothing_and_records_what_it_would_do(tmp_path: Path) -> None:
    config = _config(tmp_path, "{stream}", "{name}")
    del config["actions"]["token_file"]
    config["actions"]["dry_run"] = True
    with running(config) as (client, _, component):
        first = alert("7")
        assert client.post("/hooks/alertmanager", json=notification(first)).status_code == 200  # no token: dry run
        assert client.post("/hooks/alertmanager", json=notification(first)).status_code == 200
        assert component.worker.wait_idle(10)
        story = client.get("/api/actions").json()
        samples = _metrics(client)
    assert not (tmp_path / "record.jsonl").exists()
    (action,) = story["actions"]
    assert action["dry_run"] is True and action["result"] == "dry_run"
    assert json.loads(action["command"])[-2:] == ["7", "Seven"]
    assert [d["result"] for d in story["decisions"]] == ["skipped_duplicate", "dry_run"]
    assert metric(samples, "iptv_actions_total", stream="7", action="restart", result="dry_run") == 1


def test_decisions_budget_circuit_and_reset(tmp_path: Path) -> None:
    token = write_token(tmp_path / "token")
    config = _config(tmp_path, "{stream}", cooldown="1ms", budget={"max": 2, "window": "1h"})
    with running(config) as (client, _, component):
        def post(*alerts: dict[str, Any]) -> None:
            r = client.post("/hooks/alertmanager", json=notification(*alerts), headers=_auth(token))
            assert r.status_code == 200
            assert component.worker.wait_idle(20)

        post(alert("7", status="resolved"), alert("7", node="edge-2"), alert("7", action="reboot"),
             alert("7", action=""), alert("8"))
        post(alert("7"))
        post(alert("7"))
        assert metric(_metrics(client), "iptv_restart_circuit_open", stream="7") == 1
        post(alert("7"))
        story = client.get("/api/actions?stream=7", headers=_auth(token)).json()
        assert story["circuits"] == [{"stream": "7", "open": True, "used": 2, "max": 2, "window_seconds": 3600.0}]
        r = client.post("/api/actions/reset?stream=7", headers=_auth(token))
        assert r.json() == {"status": "ok", "stream": "7", "was_open": True, "open": False}
        assert metric(_metrics(client), "iptv_restart_circuit_open", stream="7") == 0
        post(alert("7"))
        assert client.post("/api/actions/reset?stream=../x", headers=_auth(token)).status_code == 400
        assert client.get("/api/actions?limit=0", headers=_auth(token)).status_code == 400
        story = client.get("/api/actions", headers=_auth(token)).json()
    results = [d["result"] for d in reversed(story["decisions"])]
    assert results == ["skipped_resolved", "skipped_other_node", "skipped_unknown_action", "rejected",
                       "skipped_unknown_stream", "accepted", "accepted", "skipped_budget", "accepted"]
    assert [a["result"] for a in story["actions"]] == ["failed"] * 3  # exit 0, but no process came up
    assert len(records(tmp_path / "record.jsonl")) == 3
    assert len(story["notifications"]) == 5


def test_refuses_to_start_without_a_usable_token_file(tmp_path: Path) -> None:
    config = parse_config(_config(tmp_path, "{stream}"))
    with pytest.raises(ActionsError, match="token_file.*does not exist"):
        build_runtime(config)
    (tmp_path / "token").write_text("  \n")
    with pytest.raises(ActionsError, match="token_file.*empty"):
        build_runtime(config)


def test_one_token_for_the_hook_and_the_viewers_api(tmp_path: Path) -> None:
    """The webhook and the viewers API share one BearerToken (read once): a rotation reaches both at once,
    and both refuse with the same 401 body and challenge."""
    old = write_token(tmp_path / "token")
    with running(_config(tmp_path, "{stream}")) as (client, runtime, component):
        viewers = next(c for c in runtime.components if isinstance(c, ViewersApi))
        assert viewers.tokens == (component.receiver.token,)  # the same object: read once, rotated once
        body = notification(alert("7", status="resolved"))
        assert client.post("/hooks/alertmanager", json=body, headers=_auth(old)).status_code == 200
        assert client.get("/api/connections", headers=_auth(old)).status_code == 200
        new = write_token(tmp_path / "token", "rotated-" + old)
        for refused in (client.post("/hooks/alertmanager", json=body, headers=_auth(old)),
                        client.get("/api/connections", headers=_auth(old)),
                        client.get("/api/actions", headers=_auth(old))):
            assert refused.status_code == 401 and refused.json() == {"error": "missing or wrong bearer token"}
            assert refused.headers["www-authenticate"] == 'Bearer realm="iptv-exporter"'
        assert client.post("/hooks/alertmanager", json=body, headers=_auth(new)).status_code == 200
        assert client.get("/api/connections", headers=_auth(new)).status_code == 200
        assert component.worker.wait_idle(10)


def test_a_batch_of_racing_deliveries_acts_once(tmp_path: Path) -> None:
    """Deliveries queued while the worker is busy are decided as one batch: still one action per stream."""
    token = write_token(tmp_path / "token")
    with running(_config(tmp_path, "{stream}", cooldown="1h")) as (client, _, component):
        down, stalled = alert("7"), alert("7", alertname="IPTVStreamStalled")
        with component.journal._lock:  # the worker waits for the journal: everything below queues up
            for a in [down] * 6 + [stalled] * 3 + [alert("fz-9f3c1a")] * 3:
                r = client.post("/hooks/alertmanager", json=notification(a), headers=_auth(token))
                assert r.status_code == 200
        assert component.worker.wait_idle(20)
        story = client.get("/api/actions?limit=1000", headers=_auth(token)).json()
    assert sorted(a["stream"] for a in story["actions"]) == ["7", "fz-9f3c1a"]
    assert len(records(tmp_path / "record.jsonl")) == 2
    results = [d["result"] for d in reversed(story["decisions"])]
    assert results.count("accepted") == 2 and results.count("skipped_duplicate") == 7
    assert results.count("skipped_cooldown") == 3
    ids = {n["id"] for n in story["notifications"]}
    assert len(ids) == 12 and {d["notification_id"] for d in story["decisions"]} == ids
    accepted = {d["action_id"] for d in story["decisions"] if d["result"] == "accepted"}
    assert accepted == {a["id"] for a in story["actions"]}


def test_an_action_whose_journal_write_failed_never_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write fails (SQLite's own error, injected: tests/test_chaos_journal.py fills a real disk): nothing
    runs, nothing is remembered, the hook answers 503 until the journal works, and the repeat acts."""
    token = write_token(tmp_path / "token")
    with running(_config(tmp_path, "{stream}", cooldown="1h")) as (client, _, component):
        real = component.journal._insert

        def failing(conn: Any, notifications: Any) -> list[int]:
            raise sqlite3.OperationalError("disk I/O error")

        down = alert("7")

        def post() -> int:
            return client.post("/hooks/alertmanager", json=notification(down), headers=_auth(token)).status_code

        monkeypatch.setattr(component.journal, "_insert", failing)
        assert post() == 200
        assert component.worker.wait_idle(20)
        assert not (tmp_path / "record.jsonl").exists()  # not in the journal: not run (a restart would repeat it)
        samples = _metrics(client)
        assert metric(samples, "iptv_actions_total", stream="7", action="restart", result="failed") == 1
        assert metric(samples, "iptv_actions_journal_up") == 0
        story = client.get("/api/actions", headers=_auth(token))
        assert story.status_code == 503 and "disk I/O error" in story.json()["error"]
        assert story.json()["circuits"][0]["used"] == 0  # no budget, cooldown or dedup key for what never ran
        monkeypatch.setattr(component.journal, "_insert", real)
        wait_until(lambda: post() == 200, timeout=10, what="the journal reopened")  # Alertmanager retries the 503
        assert component.worker.wait_idle(20)
        assert metric(_metrics(client), "iptv_actions_journal_up") == 1
    assert len(records(tmp_path / "record.jsonl")) == 1


def test_a_restart_remembers_dedup_and_cooldown(tmp_path: Path) -> None:
    token = write_token(tmp_path / "token")
    config = _config(tmp_path, "{stream}", cooldown="1h")
    first = alert("7")
    with running(config) as (client, _, component):
        assert client.post("/hooks/alertmanager", json=notification(first), headers=_auth(token)).status_code == 200
        assert component.worker.wait_idle(20)
    with running(config) as (client, _, component):
        for a in (first, alert("7")):
            assert client.post("/hooks/alertmanager", json=notification(a), headers=_auth(token)).status_code == 200
        assert component.worker.wait_idle(20)
        story = client.get("/api/actions", headers=_auth(token)).json()
    assert [d["result"] for d in story["decisions"]] == ["skipped_cooldown", "skipped_duplicate", "accepted"]
    assert len(records(tmp_path / "record.jsonl")) == 1


def test_hook_in_bare_asgi(env: tuple[TestClient, ActionsComponent, str, Path]) -> None:
    """What a test client does not send: a body in several messages, a sender that goes away mid-body, a
    body that never ends (read only up to the limit: the hook stops receiving and answers 413)."""
    _, component, token, _ = env
    app = Starlette(routes=list(component.receiver.routes()))
    body = json.dumps(notification(alert("7", status="resolved"))).encode()

    def call(*messages: dict[str, Any], headers: tuple[tuple[bytes, bytes], ...] = (),
             endless: bool = False) -> tuple[int, dict[str, Any], int]:
        scope = {"type": "http", "method": "POST", "path": "/hooks/alertmanager", "query_string": b"",
                 "root_path": "", "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 9), "app": app,
                 "headers": [*headers, (b"authorization", f"Bearer {token}".encode()), (b"host", b"x")]}
        pending = list(messages)
        sent: list[MutableMapping[str, Any]] = []
        received = 0

        async def receive() -> dict[str, Any]:
            nonlocal received
            received += 1
            if endless:
                return {"type": "http.request", "body": b" " * 65536, "more_body": True}
            return pending.pop(0)

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        asyncio.run(app(scope, receive, send))
        start, answer = sent
        assert (b"content-type", b"application/json") in start["headers"]
        assert (b"content-length", str(len(answer["body"])).encode()) in start["headers"]
        return start["status"], json.loads(answer["body"]), received

    chunks = [{"type": "http.request", "body": body[i:i + 100], "more_body": i + 100 < len(body)}
              for i in range(0, len(body), 100)]
    assert call(*chunks)[:2] == (200, {"status": "ok", "message": "queued", "alerts": 1})
    assert call(chunks[0], {"type": "http.disconnect"})[:2] == (400, {"error": "client disconnected"})
    status, answer, _ = call(*chunks, headers=((b"authorization", b"Bearer wrong"),))  # the first one counts
    assert status == 401 and answer == {"error": "missing or wrong bearer token"}
    status, answer, received = call(endless=True)
    limit = component.receiver.body_limit
    assert status == 413 and answer == {"error": f"body larger than {limit} bytes"}
    assert received == limit // 65536 + 1  # stopped at the first chunk past the limit
    assert component.worker.wait_idle(10)


def test_a_batch_that_cannot_be_recorded_leaves_the_dispatcher_running(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug while building a batch's journal record (injected: no input is known to cause one) gives back the
    reservations and leaves the one dispatcher thread running: before, it died, and no later alert of any
    stream was acted on until the exporter restarted."""
    from exporter.actions import decide

    token = write_token(tmp_path / "token")
    with running(_config(tmp_path, "{stream}", cooldown="1h")) as (client, _, component):
        real = decide._notification_record

        def failing(*args: Any) -> Any:
            raise RuntimeError("injected")

        def post(stream: str) -> int:
            return client.post("/hooks/alertmanager", json=notification(alert(stream)),
                               headers=_auth(token)).status_code

        monkeypatch.setattr(decide, "_notification_record", failing)
        assert post("7") == 200
        assert component.worker.wait_idle(20)
        assert not (tmp_path / "record.jsonl").exists()
        monkeypatch.setattr(decide, "_notification_record", real)
        assert post("7") == 200 and post("fz-9f3c1a") == 200  # 7 again: no cooldown kept from the failed batch
        assert component.worker.wait_idle(20)
        story = client.get("/api/actions", headers=_auth(token)).json()
    assert sorted(a["stream"] for a in story["actions"]) == ["7", "fz-9f3c1a"]
    assert len(records(tmp_path / "record.jsonl")) == 2
