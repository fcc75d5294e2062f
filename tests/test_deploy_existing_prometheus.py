"""docs/deploy.md, "I already run Prometheus and Grafana": the scrape job and relabel rule to copy, with real
exporters and a real Prometheus; and a missing or wrong `node` label is a clear warning (an alert expression
Prometheus evaluates on what it scraped, a log line from the receiver), never only a silent refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.actions_support import alert, notification, write_token
from tests.helpers import REPO, Exporter, metric, wait_until
from tests.promserver import query, start_prometheus

pytestmark = pytest.mark.slow

RULES = REPO / "prometheus" / "rules" / "iptv-deploy.yml"


def exporter_config(tmp: Path, node: str) -> Path:
    token = tmp / f"{node}.token"
    write_token(token, "t0ken-" + node)
    path = tmp / f"{node}.yml"
    path.write_text(yaml.safe_dump({
        "node": node, "sample_interval": "1s", "streams": {"discover": [], "static": [{"id": "7"}]},
        "viewers": {"ports": [], "access_log": None},
        "actions": {"token_file": str(token), "journal": str(tmp / f"{node}.sqlite"),
                    "restart": {"type": "signal", "signal": "TERM"}},
    }))
    return path


def iptv_job() -> dict[str, Any]:
    """The `iptv` scrape job of prometheus/prometheus.yml, as docs/deploy.md says to copy it."""
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    return next(job for job in config["scrape_configs"] if job["job_name"] == "iptv")


def test_node_label_mismatch_is_found_by_prometheus_on_real_scrapes(tmp_path: Path) -> None:
    right = Exporter(exporter_config(tmp_path, "edge-1"), tmp_path).start()
    unlabelled = Exporter(exporter_config(tmp_path, "edge-2"), tmp_path).start()
    try:
        targets = tmp_path / "targets"
        targets.mkdir()
        (targets / "iptv.yml").write_text(yaml.safe_dump([
            {"targets": [f"127.0.0.1:{right.port}"], "labels": {"node": "edge-1"}},
            {"targets": [f"127.0.0.1:{unlabelled.port}"]},  # the relabel rule makes node="127.0.0.1"
        ]))
        job = {**iptv_job(), "scrape_interval": "1s", "scrape_timeout": "1s"}
        job["file_sd_configs"] = [{"files": [str(targets / "iptv*.yml")], "refresh_interval": "1s"}]
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": [job]}
        expr = yaml.safe_load(RULES.read_text())["groups"][0]["rules"][0]["expr"]
        with start_prometheus(json.dumps(config), tmp_path / "prom") as url:
            found = wait_until(lambda: query(url, expr) if len(query(url, "iptv_exporter_node_info")) == 2 else None,
                               timeout=60, what="both exporters scraped and the mismatch found")
            assert [r["metric"]["node_name"] for r in found] == ["edge-2"]
            assert found[0]["metric"]["node"] == "127.0.0.1"
    finally:
        right.stop()
        unlabelled.stop()


def test_an_alert_without_node_label_is_refused_with_a_warning_that_says_why(tmp_path: Path) -> None:
    exp = Exporter(exporter_config(tmp_path, "edge-1"), tmp_path).start()
    try:
        hook = exp.url + "/hooks/alertmanager"
        headers = {"Authorization": "Bearer t0ken-edge-1"}
        missing = alert("7")
        del missing["labels"]["node"]
        assert httpx.post(hook, json=notification(missing), headers=headers, timeout=10).status_code == 200
        assert httpx.post(hook, json=notification(alert("7", node="edge-9")), headers=headers,
                          timeout=10).status_code == 200
        wait_until(lambda: metric(exp.scrape(), "iptv_actions_total", result="skipped_other_node"),
                   timeout=30, what="both alerts decided")
        samples = exp.scrape()
        assert metric(samples, "iptv_actions_total", result="rejected") == 1
        log = exp.log_text()
        assert "alert not acted on: its node label must equal this exporter's node" in log
        assert "node_label=(missing)" in log and "node_label=edge-9" in log
        assert metric(samples, "iptv_exporter_node_info", node_name="edge-1") == 1
    finally:
        exp.stop()
