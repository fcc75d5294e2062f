"""Chaos: check-config finds everything ``run`` would refuse (issue 15, item 13).

Each bad file is given to both ``iptv-exporter check-config`` and ``iptv-exporter run`` (real processes):
both must refuse it with exit 1, without a traceback, and every problem check-config lists must be what
run says too. A good file with its token file is accepted by both (run serves).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import REPO, free_port, wait_until

BAD = sorted([*(REPO / "tests/configs/bad").glob("*.yml"), *(REPO / "tests/configs/chaos").glob("*.yml")])


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter", "check-config", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def run(path: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``run`` on a free port; a config it accepts would serve for ever, so the timeout fails the test."""
    return subprocess.run([sys.executable, "-m", "exporter", "run", f"--config.file={path}",
                           f"--web.listen-address=127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_check_config_and_run_refuse_the_same(path: Path) -> None:
    checked = check(path)
    ran = run(path)
    assert checked.returncode == 1, checked
    assert ran.returncode == 1, ran
    for out in (checked, ran):
        assert "Traceback" not in out.stderr, out.stderr
    problems = [line for line in checked.stderr.strip().splitlines() if not line.startswith("ts=")]  # log lines
    assert problems
    for line in problems:
        where, sep, rest = line.partition(": ")
        assert where == str(path) and sep, line
        key, sep, message = rest.partition(": ")
        assert key and sep and message, line  # every problem with its key path
        assert line in ran.stderr or rest in ran.stderr, (line, ran.stderr)


def test_messages(tmp_path: Path) -> None:
    def problems(name: str) -> list[str]:
        out = check(REPO / "tests/configs/chaos" / name)
        prefix = f"{REPO / 'tests/configs/chaos' / name}: "
        return [line.removeprefix(prefix) for line in out.stderr.strip().splitlines() if not line.startswith("ts=")]

    assert problems("not_utf8.yml") == ["(file): not UTF-8 text (byte 11 is 0xff)"]
    assert problems("duplicate_keys.yml") == [
        "streams.static: duplicate key 'static' (first at line 4, again at line 6)",
        "node: duplicate key 'node' (first at line 2, again at line 7)",
    ]
    assert problems("missing_token_file.yml")[0].startswith(
        "actions.token_file: /nonexistent/iptv-exporter/webhook.token: does not exist")
    assert problems("tiny_interval.yml") == ["sample_interval: duration 1e-09 is shorter than 1ms"]
    assert problems("endless_interval.yml") == ["sample_interval: duration '99999999999y' is longer than 10 years"]
    re2 = problems("re2_incompatible.yml")
    assert [p.split(":")[0] for p in re2] == ["streams.discover[0].cmdline", "errors.logs[0].ignore"]
    assert all("not for RE2" in p for p in re2)
    assert problems("missing_http_token_file.yml")[0].startswith(
        "actions.restart.token_file: cannot read /nonexistent/panel.token")
    assert any("viewers.sharing.fleet_key_file: cannot read" in p for p in problems("missing_fleet_key_file.yml"))
    assert problems("missing_viewer_token_file.yml") == [
        "viewers.api.token_file: /nonexistent/iptv-exporter/viewers.token: does not exist: the viewer API needs a "
        "token (write one, e.g. `openssl rand -hex 32 > /nonexistent/iptv-exporter/viewers.token`, or remove "
        "viewers.api)"]
    unit_order = problems("unit_order.yml")
    assert [p.split(":")[0] for p in unit_order] == ["sample_interval", "viewers.window"]
    assert all("units largest first, each once" in p for p in unit_order)


def test_sample_interval_bounds(tmp_path: Path) -> None:
    for text, ok in (("100ms", True), ("1h", True), ("50ms", False), ("2h", False), ("1h30m", False)):
        path = tmp_path / "c.yml"
        path.write_text(f"sample_interval: {text}\n")
        out = check(path)
        assert (out.returncode == 0) == ok, (text, out.stderr)
        if not ok:
            assert "sample_interval: must be between 100ms and 1h" in out.stderr


def test_good_config_is_accepted_by_both(tmp_path: Path) -> None:
    token = tmp_path / "webhook.token"
    token.write_text("s3cret-token\n")
    path = tmp_path / "good.yml"
    path.write_text(f"""
sample_interval: 1s
streams: {{discover: []}}
viewers: {{ports: [], access_log: null}}
actions:
  token_file: {token}
  journal: {tmp_path}/actions.sqlite
  restart: {{type: signal, signal: TERM}}
""")
    assert check(path).returncode == 0
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "run", f"--config.file={path}",
                             f"--web.listen-address=127.0.0.1:{port}"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200,
                   timeout=30, what="run serves the config check-config accepted")
    finally:
        proc.terminate()
        proc.wait(10)
