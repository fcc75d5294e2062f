"""Prometheus rules and Alertmanager routes, checked with Debian's promtool (2.42) and amtool (0.25).

Besides the tools' own checks: every alert carries severity, summary, description and a runbook
section; every alert has a firing and a silent promtool case; stream alerts ignore streams that left
the inventory; docs/health.md matches the weights in the rules.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO, require_binary
from tests.rules_config import (
    ALERTMANAGER_YML,
    PROMETHEUS_DIR,
    PROMETHEUS_YML,
    alertmanager_config,
    prometheus_config,
    targets_file,
)

RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
RUNBOOKS = REPO / "docs" / "runbooks.md"
HEALTH_DOC = REPO / "docs" / "health.md"
ALERTS_DOC = REPO / "docs" / "alerts.md"
SEVERITIES = {"critical", "warning", "info", "none"}
RESTART_ALERTS = {"IPTVStreamDown", "IPTVStreamStalled"}
RUNBOOK_BASE = "https://github.com/iptv-exporter/iptv-exporter/blob/main/docs/runbooks.md"
ALWAYS_FIRING = {"IPTVWatchdog"}


def run(argv: list[str], cwd: Path = REPO, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def ok(argv: list[str], cwd: Path = REPO, timeout: float = 60) -> str:
    result = run(argv, cwd, timeout)
    assert result.returncode == 0, f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def rules() -> list[dict[str, Any]]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found.append({**rule, "_group": group["name"], "_file": path.name})
    return found


def alerts() -> dict[str, dict[str, Any]]:
    """One rule per alert name (the first: for a pair, the restart request or the warning)."""
    found: dict[str, dict[str, Any]] = {}
    for rule in rules():
        if "alert" in rule:
            found.setdefault(rule["alert"], rule)
    return found


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule, pairs included (IPTVStreamDown's request and page, IPTVStreamSlow's two severities)."""
    return [r for r in rules() if "alert" in r]


def slug(heading: str) -> str:
    """The anchor GitHub and most Markdown renderers give a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {slug(m) for m in re.findall(r"^#{2,3} (.+)$", RUNBOOKS.read_text(), flags=re.M)}


# --- the tools ---------------------------------------------------------------------------------


def test_prometheus_config_is_valid_and_loads_every_rule_file() -> None:
    out = ok([require_binary("promtool"), "check", "config", str(PROMETHEUS_YML)])
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in out, out
    for path in RULE_FILES:
        assert f"Checking {path}\n  SUCCESS" in out, out


def test_rules_pass_promtool_lint() -> None:
    out = ok([require_binary("promtool"), "check", "rules", "--lint=all", "--lint-fatal", *map(str, RULE_FILES)])
    assert out.count("SUCCESS") == len(RULE_FILES), out


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(test_file: Path) -> None:
    # Two days of viewers and a 300-stream night take 15-30 s each on a loaded machine.
    out = ok([require_binary("promtool"), "test", "rules", test_file.name], cwd=test_file.parent, timeout=600)
    assert "SUCCESS" in out, out


def test_alertmanager_config_is_valid() -> None:
    out = ok([require_binary("amtool"), "check-config", str(ALERTMANAGER_YML)])
    assert "SUCCESS" in out, out


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # Restart requests go to the node's webhook and nowhere else; the page is a separate alert.
        (["alertname=IPTVStreamDown", "action=restart", "node=edge-1", "stream=5", "severity=critical"],
         "restart-edge-1"),
        (["alertname=IPTVStreamStalled", "action=restart", "node=edge-2", "stream=9", "severity=critical"],
         "restart-edge-2"),
        # A node without a restart route: no webhook (and no page: the page copy pages).
        (["alertname=IPTVStreamDown", "action=restart", "node=edge-9", "stream=5", "severity=critical"],
         "unrouted"),
        (["alertname=IPTVStreamDown", "node=edge-1", "stream=5", "severity=critical"], "pager"),
        (["alertname=IPTVNodeStreamsDown", "node=edge-1", "severity=critical"], "pager"),
        (["alertname=IPTVStreamSlow", "node=edge-1", "stream=5", "severity=critical"], "pager"),
        (["alertname=IPTVStreamSlow", "node=edge-1", "stream=5", "severity=warning"], "chat"),
        (["alertname=IPTVLineSharing", "node=edge-1", "severity=info"], "chat"),
        (["alertname=IPTVExporterDown", "node=edge-1", "severity=critical"], "pager"),
        (["alertname=IPTVWatchdog", "severity=none"], "deadman"),
    ],
    ids=["restart-edge-1", "restart-edge-2", "restart-unknown-node", "stream-down-page", "node-streams-down",
         "slow-critical", "slow-warning", "line-sharing-info", "exporter-down", "watchdog"],
)
def test_alertmanager_routes(labels: list[str], receivers: str) -> None:
    out = ok([require_binary("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}",
              f"--verify.receivers={receivers}", *labels])
    assert out.splitlines()[0] == receivers, out


def test_amtool_route_verification_can_fail() -> None:
    """The route test above relies on amtool failing for a wrong receiver list."""
    result = run([require_binary("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}",
                  "--verify.receivers=pager", "alertname=IPTVStreamDown", "action=restart", "node=edge-1"])
    assert result.returncode != 0, result.stdout + result.stderr


def test_alertmanager_restart_receivers_use_bearer_token_and_send_resolved() -> None:
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    restart = [r for r in config["receivers"] if r["name"].startswith("restart-")]
    assert {r["name"] for r in restart} == {"restart-edge-1", "restart-edge-2"}
    for receiver in restart:
        node = receiver["name"].removeprefix("restart-")
        (hook,) = receiver["webhook_configs"]
        assert hook["url"] == f"http://{node}:9756/hooks/alertmanager"
        assert hook["send_resolved"] is True
        assert hook["http_config"]["authorization"]["type"] == "Bearer"
        assert hook["http_config"]["authorization"]["credentials_file"]
    # People: one notification per alert name and node. Restart webhooks: one per stream.
    assert config["route"]["group_by"] == ["alertname", "node"]
    route = next(r for r in config["route"]["routes"] if r.get("matchers") == ['action="restart"'])
    assert route["group_by"] == ["alertname", "node", "stream"]
    assert route["group_wait"] == "0s"  # docs/actions.md, "Recovery time"
    assert not route.get("continue"), "restart requests must not reach people (their page is its own alert)"
    inhibit = config["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['alertname="IPTVExporterDown"']
    assert inhibit["equal"] == ["node"]
    node_wide = next(r for r in config["inhibit_rules"] if r["source_matchers"] == ['alertname="IPTVNodeStreamsDown"'])
    assert 'action!="restart"' in node_wide["target_matchers"], "a node-wide outage must still restart each stream"


def test_scrape_targets_carry_node_label(tmp_path: Path) -> None:
    """file_sd labels pass through; a target without `node` gets its host name."""
    (tmp_path / "targets").mkdir()
    (tmp_path / "prometheus.yml").write_text(PROMETHEUS_YML.read_text())
    (tmp_path / "targets" / "iptv.yml").write_text(yaml.safe_dump([
        {"targets": ["edge-1:9756"], "labels": {"node": "edge-1"}},
        {"targets": ["edge-7.example:9756", "[::1]:9756"]},
    ]))
    argv = [require_binary("promtool"), "check", "service-discovery", "--timeout=1s", "prometheus.yml", "iptv"]
    result = run(argv, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    found = {t["labels"]["instance"]: t["labels"].get("node") for t in yaml.safe_load(result.stdout)}
    assert found == {"edge-1:9756": "edge-1", "edge-7.example:9756": "edge-7.example", "[::1]:9756": "::1"}


# --- metadata and coverage -----------------------------------------------------------------------


def test_rule_set_is_complete() -> None:
    assert set(alerts()) == {
        "IPTVStreamDown", "IPTVStreamStalled", "IPTVStreamCrashLoop", "IPTVStreamSlow", "IPTVStreamHTTPErrors",
        "IPTVStreamErrorRate", "IPTVStreamFlapping", "IPTVRestartCircuitOpen", "IPTVRestartFailed",
        "IPTVNodeStreamsDown", "IPTVNodeNoViewers", "IPTVBandwidthPeak", "IPTVViewerDrop", "IPTVLineSharing",
        "IPTVExporterDown", "IPTVExporterAbsent", "IPTVExporterSourceDown", "IPTVWatchdog",
        "IPTVActionJournalDown",
        "IPTVGeoIPDatabaseStale",  # prometheus/rules/iptv-geoip.yml
        "IPTVExporterNodeMismatch",  # prometheus/rules/iptv-deploy.yml
        "IPTVRestartRefused", "IPTVRestartUndelivered",  # prometheus/rules/iptv-fleet.yml
    }
    severities = {(r["alert"], r["labels"]["severity"]) for r in alert_rules()}
    assert {("IPTVStreamSlow", "warning"), ("IPTVStreamSlow", "critical")} <= severities
    for name in ("IPTVStreamCrashLoop", "IPTVNodeStreamsDown", "IPTVNodeNoViewers", "IPTVStreamHTTPErrors"):
        assert (name, "critical") in severities, name
    recorded = {r["record"] for r in rules() if "record" in r}
    assert "iptv:stream_health_score" in recorded
    for name in recorded:
        assert re.fullmatch(r"iptv:[a-z0-9_]+(:[a-z0-9_]+)?", name), name


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}-"
                                                              f"{r['labels'].get('action', 'page')}")
def test_alert_has_severity_annotations_and_runbook(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["summary"].strip() and annotations["description"].strip()
    assert "{{" in annotations["description"], "the description should carry $labels or $value"
    anchor = slug(name)
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{anchor}"  # absolute: chat and pager links work
    assert anchor in runbook_anchors(), f"docs/runbooks.md has no section '## {name}'"


def test_alerts_sharing_a_name_differ_only_by_severity_or_action() -> None:
    """IPTVStreamDown/Stalled: the restart request (action) and the page; IPTVStreamSlow and
    IPTVExporterSourceDown: a warning and a critical. Alertmanager tells them apart by these labels only."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for rule in alert_rules():
        by_name.setdefault(rule["alert"], []).append(rule)
    pairs = {name: group for name, group in by_name.items() if len(group) > 1}
    assert set(pairs) == {"IPTVStreamDown", "IPTVStreamStalled", "IPTVStreamSlow", "IPTVExporterSourceDown"}
    for name, group in pairs.items():
        keys = {(r["labels"]["severity"], r["labels"].get("action")) for r in group}
        assert len(keys) == len(group), f"{name}: two rules with the same labels"
        assert {r["annotations"]["runbook_url"] for r in group} == {f"{RUNBOOK_BASE}#{slug(name)}"}
    for name in RESTART_ALERTS:
        request, page = sorted(pairs[name], key=lambda r: "action" not in r["labels"])
        # The down request acts after 15s (docs/actions.md, "Recovery time"); a stall is already a minute old.
        wait = "15s" if name == "IPTVStreamDown" else "1m"
        assert request["labels"]["action"] == "restart" and request["for"] == wait
        assert "action" not in page["labels"] and page["for"] == "3m" and page["keep_firing_for"] == "3m"


def test_runbook_urls_can_be_rebased_with_the_documented_command(tmp_path: Path) -> None:
    """docs/alerts.md shows one sed command that points every runbook_url at your own copy of the docs."""
    commands = re.findall(r"^(mkdir -p /etc/prometheus/rules .+)$", ALERTS_DOC.read_text(), flags=re.M)
    assert len(commands) == 1, commands
    out = tmp_path / "rules"
    out.mkdir()
    command = commands[0].replace("/etc/prometheus/rules", str(out))
    subprocess.run(["bash", "-c", command], cwd=REPO, check=True, timeout=30)
    rebased = sorted(out.glob("*.yml"))
    assert [p.name for p in rebased] == [p.name for p in RULE_FILES]
    ok([require_binary("promtool"), "check", "rules", *map(str, rebased)])
    urls = [r["annotations"]["runbook_url"] for p in rebased for g in yaml.safe_load(p.read_text())["groups"]
            for r in g["rules"] if "alert" in r]
    assert urls and all(u.startswith("https://wiki.example.net/iptv/runbooks#iptv") for u in urls), urls


def test_every_runbook_section_belongs_to_an_alert() -> None:
    sections = set(re.findall(r"^## (IPTV\w+)$", RUNBOOKS.read_text(), flags=re.M))
    assert sections == set(alerts())


def test_only_down_and_stalled_request_restarts() -> None:
    restarting = {rule["alert"] for rule in alert_rules() if rule["labels"].get("action") == "restart"}
    assert restarting == RESTART_ALERTS
    # An `action` label coming from a metric would route an alert to the restart webhook.
    for rule in alert_rules():
        if "iptv_actions_total" in rule["expr"]:
            assert re.search(r"without \([^)]*\baction\b", rule["expr"]), rule["alert"]


def test_stream_alerts_ignore_streams_outside_the_inventory() -> None:
    for rule in alert_rules():
        if rule["_group"] in {"iptv.streams", "iptv.restarts"}:
            assert re.search(r"and on \(instance, stream\) (last_over_time\()?iptv_stream_info\b", rule["expr"]), \
                rule["alert"]


def test_only_declared_streams_page_when_down() -> None:
    """A discovered stream without a process is one the panel stopped (removed, on demand): docs/alerts.md."""
    for rule in alert_rules():
        if rule["alert"] == "IPTVStreamDown":
            assert 'iptv_stream_info{origin="declared"}' in rule["expr"]


def promtool_alert_cases() -> dict[str, dict[str, int]]:
    """{alertname: {"firing": n, "silent": n}} over every alert_rule_test in prometheus/tests."""
    cases: dict[str, dict[str, int]] = {}
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                kind = "firing" if case.get("exp_alerts") else "silent"
                counts = cases.setdefault(case["alertname"], {"firing": 0, "silent": 0})
                counts[kind] += 1
                for alert in case.get("exp_alerts") or []:
                    # Exact labels and annotations on every firing case.
                    assert alert["exp_labels"]["alertname"] == case["alertname"], path
                    assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}, path
    return cases


def test_every_alert_has_a_firing_and_a_silent_promtool_case() -> None:
    cases = promtool_alert_cases()
    assert set(cases) <= set(alerts()), f"tests name unknown alerts: {set(cases) - set(alerts())}"
    for name in alerts():
        assert cases.get(name, {}).get("firing", 0) >= 1, f"{name} has no firing case"
        if name not in ALWAYS_FIRING:
            assert cases.get(name, {}).get("silent", 0) >= 1, f"{name} has no silent case"


def test_every_alert_is_in_the_alerts_table_with_its_test() -> None:
    """docs/alerts.md: one row per alert naming the normal event it stays quiet through, the outage it
    catches and the promtool test file (and test name) that holds it."""
    rows = re.findall(r"^\| \[(IPTV\w+)\]\(runbooks\.md#\w+\) \|(.+)$", ALERTS_DOC.read_text(), flags=re.M)
    assert sorted(name for name, _ in rows) == sorted(alerts())
    tests = {p.name: [t["name"] for t in yaml.safe_load(p.read_text())["tests"]] for p in TEST_FILES}
    for name, rest in rows:
        cells = [c.strip() for c in rest.strip().removesuffix("|").split("|")]
        assert len(cells) == 4 and all(cells), (name, cells)  # severity, quiet through, catches, held by
        found = re.findall(r"`(\w+\.yml)`: ([^;]+?)(?:;|$)", cells[3])
        assert found, (name, cells[3])
        for file, test_name in found:
            assert file in tests, (name, file)
            assert any(t.startswith(test_name.strip().rstrip(".")) for t in tests[file]), (name, file, test_name)


def test_health_doc_matches_the_penalties_in_the_rules() -> None:
    penalties = {r["labels"]["component"]: int(r["expr"].removeprefix("vector(").removesuffix(")"))
                 for r in rules() if r.get("record") == "iptv:stream_health_penalty:max"}
    assert penalties == {"errors": 15, "drops": 5}
    components = {r["labels"]["component"] for r in rules() if r.get("record") == "iptv:stream_health_component:ratio"}
    doc = HEALTH_DOC.read_text()
    for component in components:
        points = penalties.get(component, "delivery")
        assert re.search(rf"^\| `{component}` \| {points} \|", doc, flags=re.M), component
    for name in {r["record"] for r in rules() if "record" in r}:
        assert f"`{name}`" in doc, f"docs/health.md does not describe {name}"


# --- configs rewritten for loopback tests --------------------------------------------------------


def test_alertmanager_config_for_loopback_is_valid_and_routes_to_it(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    path = tmp_path / "alertmanager.yml"
    path.write_text(alertmanager_config({"edge-1": "http://127.0.0.1:1/hooks/alertmanager",
                                         "node-a": "http://127.0.0.1:2/hooks/alertmanager"},
                                        token, default_url="http://127.0.0.1:3/default", group_wait="1s"))
    ok([require_binary("amtool"), "check-config", str(path)])
    out = ok([require_binary("amtool"), "config", "routes", "test", f"--config.file={path}",
              "--verify.receivers=restart-node-a", "action=restart", "node=node-a"])
    assert out.splitlines()[0] == "restart-node-a"
    config = yaml.safe_load(path.read_text())
    hooks = {r["name"]: r["webhook_configs"][0] for r in config["receivers"] if r.get("webhook_configs")}
    assert hooks["restart-node-a"]["url"] == "http://127.0.0.1:2/hooks/alertmanager"
    assert hooks["restart-node-a"]["http_config"]["authorization"]["credentials_file"] == str(token)
    assert hooks["chat"]["url"] == "http://127.0.0.1:3/default"
    assert "restart-edge-2" not in hooks


def test_prometheus_config_for_loopback_is_valid(tmp_path: Path) -> None:
    targets = targets_file(tmp_path / "iptv.yml", {"127.0.0.1:9756": "edge-1"})
    path = tmp_path / "prometheus.yml"
    path.write_text(prometheus_config({"iptv": targets}, alertmanagers=["127.0.0.1:9093"], interval="1s"))
    out = ok([require_binary("promtool"), "check", "config", str(path)])
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in out, out
    config = yaml.safe_load(path.read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == ["iptv"]
