"""What users of node_exporter take for granted: ``--version``, ``--web.telemetry-path``, ``*_build_info``,
``process_*`` and ``python_*`` self-metrics, and ``promtool check metrics`` clean on a live /metrics."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from exporter import __version__
from exporter.buildinfo import Vcs, vcs_from_file, vcs_from_git
from tests.helpers import REPO, Exporter, metric, parse_metrics, require_binary

CONFIG = "sample_interval: 1s\nstreams: {discover: []}\nviewers: {ports: [], access_log: null}\n"


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_version_names_version_revision_branch_and_python() -> None:
    out = subprocess.run([sys.executable, "-m", "exporter", "--version"], capture_output=True, text=True,
                         cwd=REPO, timeout=60, check=True).stdout
    head = git("rev-parse", "HEAD")
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    assert out.startswith(f"iptv-exporter, version {__version__} (branch: {branch}, revision: {head}")
    assert f"python version:   {platform.python_version()}" in out


def test_build_metadata_file_wins_and_bad_files_are_ignored(tmp_path: Path) -> None:
    good = tmp_path / "b.json"
    good.write_text(json.dumps({"revision": "abc123", "branch": "release-1"}))
    assert vcs_from_file(good) == Vcs("abc123", "release-1")
    assert vcs_from_file(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("[1, 2")
    assert vcs_from_file(tmp_path / "bad.json") is None
    assert vcs_from_git(tmp_path) is None  # not a checkout


@pytest.mark.slow
def test_live_metrics_follow_the_conventions_and_promtool_accepts_them(tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text(CONFIG)
    exp = Exporter(config, tmp_path, args=("--web.telemetry-path=/prom/metrics",))
    exp.start(wait_ready=True)
    try:
        assert httpx.get(exp.url + "/metrics", timeout=5).status_code == 404
        live = httpx.get(exp.url + "/prom/metrics", timeout=5)
        assert live.status_code == 200
        assert 'href="/prom/metrics"' in httpx.get(exp.url + "/", timeout=5).text
        samples = parse_metrics(live.text)
        info = [labels for (name, labels), _ in samples.items() if name == "iptv_exporter_build_info"]
        assert len(info) == 1
        labels = dict(info[0])
        assert labels["version"] == __version__ and labels["pythonversion"] == platform.python_version()
        assert labels["revision"].startswith(git("rev-parse", "HEAD"))
        assert labels["branch"] == git("rev-parse", "--abbrev-ref", "HEAD")
        assert exp.proc is not None
        assert (metric(samples, "process_resident_memory_bytes") or 0) > 10e6  # the exporter's own RSS
        assert (metric(samples, "process_open_fds") or 0) > 3
        assert metric(samples, "process_max_fds") is not None
        assert metric(samples, "python_info", implementation="CPython") == 1
        assert metric(samples, "python_gc_collections_total", generation="0") is not None
        done = subprocess.run([require_binary("promtool"), "check", "metrics"], input=live.content,
                              capture_output=True, timeout=60)
        assert done.returncode == 0, (done.stdout + done.stderr).decode()
    finally:
        exp.stop()


@pytest.mark.parametrize("bad", ["metrics", "/with space", "/m?x=1"])
def test_telemetry_path_must_be_an_absolute_url_path(bad: str) -> None:
    done = subprocess.run([sys.executable, "-m", "exporter", f"--web.telemetry-path={bad}"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2 and "invalid telemetry path" in done.stderr
