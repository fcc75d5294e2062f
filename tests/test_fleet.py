"""``iptv-exporter fleet``: Alertmanager restart wiring and per-node tokens from the file_sd targets.

Routes are checked with Debian's amtool (``config routes test``) for every node of a 300-node fleet;
``--check`` is shown to find each kind of disagreement (name, URL, token, route) and list all of them.
"""

from __future__ import annotations

import io
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from exporter.cli import build_parser
from exporter.fleet import DEFAULT_CREDENTIALS_DIR, run
from exporter.fleet.alertmanager import splice
from exporter.fleet.targets import read_targets, target_files_from_prometheus
from tests.helpers import REPO, require_binary
from tests.rules_config import ALERTMANAGER_YML, PROMETHEUS_YML


def fleet(*argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(["fleet", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = run(args, out, err)
    return code, out.getvalue(), err.getvalue()


def write_targets(path: Path, count: int) -> Path:
    """``count`` nodes: most with a `node` label, every tenth named by its address (as the relabel rule does)."""
    groups: list[dict[str, object]] = []
    for i in range(count):
        if i % 10 == 9:
            groups.append({"targets": [f"edge-{i}.example.net:9756"]})
        else:
            groups.append({"targets": [f"10.0.{i // 250}.{i % 250}:9756"], "labels": {"node": f"edge-{i}"}})
    path.write_text(yaml.safe_dump(groups))
    return path


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    shutil.copy(ALERTMANAGER_YML, tmp_path / "alertmanager.yml")
    return tmp_path


def outside_blocks(text: str) -> list[str]:
    """The lines of alertmanager.yml outside the generated blocks."""
    kept, inside = [], False
    for line in text.splitlines():
        if "# END iptv-exporter fleet" in line:
            inside = False
        if not inside:
            kept.append(line)
        if "# BEGIN iptv-exporter fleet" in line:
            inside = True
    return kept


def node_names(count: int) -> list[str]:
    return [f"edge-{i}.example.net" if i % 10 == 9 else f"edge-{i}" for i in range(count)]


def test_300_nodes_each_routed_to_its_own_webhook_with_its_own_token(fleet_dir: Path) -> None:
    targets = write_targets(fleet_dir / "iptv.yml", 300)
    am = fleet_dir / "alertmanager.yml"
    tokens = fleet_dir / "tokens"
    code, out, err = fleet("--targets", str(targets), "--alertmanager.config", str(am), "--tokens.dir", str(tokens))
    assert code == 0, err
    assert "300 restart routes and receivers" in out and "300 new tokens" in out

    amtool = require_binary("amtool")
    import subprocess

    checked = subprocess.run([amtool, "check-config", str(am)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr
    config = yaml.safe_load(am.read_text())
    hooks = {r["name"]: r["webhook_configs"][0] for r in config["receivers"] if r["name"].startswith("restart-")}
    assert len(hooks) == 300

    def route(node: str) -> str:
        done = subprocess.run([amtool, "config", "routes", "test", f"--config.file={am}",
                               f"--verify.receivers=restart-{node}", "alertname=IPTVStreamDown",
                               "action=restart", f"node={node}", "stream=5"],
                              capture_output=True, text=True, check=False, timeout=60)
        assert done.returncode == 0, f"{node}: {done.stdout}{done.stderr}"
        return done.stdout.splitlines()[0]

    with ThreadPoolExecutor(4) as pool:
        answers = dict(zip(node_names(300), pool.map(route, node_names(300)), strict=True))
    assert all(answer == f"restart-{node}" for node, answer in answers.items())
    # A name that is not in the targets (the typo) still reaches no webhook.
    stray = subprocess.run([amtool, "config", "routes", "test", f"--config.file={am}", "action=restart",
                            "node=edge3"], capture_output=True, text=True, check=False)
    assert stray.stdout.splitlines()[0] == "unrouted"

    assert hooks["restart-edge-7"]["url"] == "http://10.0.0.7:9756/hooks/alertmanager"
    assert hooks["restart-edge-19.example.net"]["url"] == "http://edge-19.example.net:9756/hooks/alertmanager"
    files = {h["http_config"]["authorization"]["credentials_file"] for h in hooks.values()}
    assert files == {f"{DEFAULT_CREDENTIALS_DIR}/{n}.token" for n in node_names(300)}
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o700
    contents = set()
    for node in node_names(300):
        path = tokens / f"{node}.token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        contents.add(path.read_text())
    assert len(contents) == 300, "every node has its own token"
    # Only the marked blocks changed: the people's routes, receivers and comments are as shipped.
    assert outside_blocks(am.read_text()) == outside_blocks(ALERTMANAGER_YML.read_text())

    # Again: nothing changes, no token is rotated; the check agrees.
    before = am.read_text()
    code, out, err = fleet("--targets", str(targets), "--alertmanager.config", str(am), "--tokens.dir", str(tokens))
    assert code == 0 and "(unchanged)" in out and "0 new tokens" in out, out + err
    assert am.read_text() == before and {p.read_text() for p in tokens.glob("*.token")} == contents
    code, out, err = fleet("--check", "--targets", str(targets), "--alertmanager.config", str(am),
                           "--tokens.dir", str(tokens))
    assert (code, out.strip(), err) == (0, "fleet: 300 nodes agree", "")


def _exporter_config(path: Path, node: str, token_file: Path, viewer_token_file: Path | None = None) -> Path:
    data: dict[str, object] = {"node": node, "actions": {"token_file": str(token_file), "restart": {"type": "signal"}}}
    if viewer_token_file is not None:
        data["viewers"] = {"api": {"token_file": str(viewer_token_file)}}
    path.write_text(yaml.safe_dump(data))
    return path


def test_check_lists_every_disagreement_and_fails(fleet_dir: Path) -> None:
    targets = fleet_dir / "iptv.yml"
    targets.write_text(yaml.safe_dump([
        {"targets": [f"edge-{i}:9756"], "labels": {"node": f"edge-{i}"}} for i in range(1, 6)
    ]))
    am = fleet_dir / "alertmanager.yml"
    tokens = fleet_dir / "tokens"
    base = ["--targets", str(targets), "--alertmanager.config", str(am), "--tokens.dir", str(tokens)]
    assert fleet(*base)[0] == 0
    configs = fleet_dir / "nodes"
    configs.mkdir()
    _exporter_config(configs / "edge-1.yml", "edge-1", tokens / "edge-1.token")
    _exporter_config(configs / "edge-2.yml", "edge-2", tokens / "edge-2.token")
    # The typo: the exporter calls itself edge3, targets and routes say edge-3.
    _exporter_config(configs / "edge-3.yml", "edge3", tokens / "edge-3.token")
    # edge-4's exporter reads an old token.
    stale = fleet_dir / "old.token"
    stale.write_text("an-old-shared-token\n")
    _exporter_config(configs / "edge-4.yml", "edge-4", stale)
    # edge-5 has no exporter config given.
    assert fleet("--check", *base, "--exporter.config", str(configs))[0] == 1

    text = am.read_text()
    # By hand: edge-2's receiver points at another port, edge-1 reads edge-2's token file, edge-5 loses its route,
    # and a stale route remains for a node the targets no longer list.
    text = text.replace("http://edge-2:9756/", "http://edge-2:9100/")
    text = text.replace(f"{DEFAULT_CREDENTIALS_DIR}/edge-1.token", f"{DEFAULT_CREDENTIALS_DIR}/edge-2.token")
    text = text.replace("""        - matchers: ['node="edge-5"']\n          receiver: restart-edge-5\n""",
                        """        - matchers: ['node="edge-6"']\n          receiver: restart-edge-5\n""")
    am.write_text(text)
    (tokens / "edge-2.token").chmod(0o644)
    code, out, err = fleet("--check", *base, "--exporter.config", str(configs))
    assert code == 1 and out == ""
    problems = err.splitlines()
    expected = [
        "node edge-5: in the targets", "no restart route for it",
        "node edge-2: alertmanager.yml sends its restarts to http://edge-2:9100/hooks/alertmanager, the targets say "
        "http://edge-2:9756/hooks/alertmanager",
        f"node edge-1: credentials_file is {DEFAULT_CREDENTIALS_DIR}/edge-2.token, expected "
        f"{DEFAULT_CREDENTIALS_DIR}/edge-1.token",
        "node edge-6: alertmanager.yml has a restart route for it but the targets do not list it",
        "node edge-2: token:", "has mode 0644; want 0600",
        "node edge3: exporter config", "says `node: edge3` but the targets do not list it (did you mean 'edge-3'?)",
        "node edge-4: exporter config", "differs from the one Alertmanager sends it",
        "node edge-5: in the targets but no exporter config given names it",
        "node edge-3: in the targets but no exporter config given names it",
    ]
    for fragment in expected:
        assert any(fragment in p for p in problems), f"{fragment!r} not in:\n{err}"
    assert all(p.startswith("iptv-exporter fleet: ") for p in problems)
    assert "an-old-shared-token" not in err, "a check never prints a token"

    # Regenerating repairs alertmanager.yml; fixing the configs and the file mode makes the check pass.
    # Regenerating repairs alertmanager.yml; the check that follows still fails on the world-readable token.
    assert fleet(*base)[0] == 1
    (tokens / "edge-2.token").chmod(0o600)
    _exporter_config(configs / "edge-3.yml", "edge-3", tokens / "edge-3.token")
    _exporter_config(configs / "edge-4.yml", "edge-4", tokens / "edge-4.token")
    _exporter_config(configs / "edge-5.yml", "edge-5", tokens / "edge-5.token")
    code, out, err = fleet("--check", *base, "--exporter.config", str(configs))
    assert (code, err) == (0, ""), err


def test_check_refuses_a_viewer_token_that_is_a_webhook_token(fleet_dir: Path) -> None:
    """Grafana's read-only token may be one for the whole fleet (one datasource sends one token), but never any
    node's webhook token: with it Grafana's editors could restart that node's streams."""
    targets = fleet_dir / "iptv.yml"
    targets.write_text(yaml.safe_dump([{"targets": [f"edge-{i}:9756"], "labels": {"node": f"edge-{i}"}}
                                       for i in range(1, 4)]))
    tokens = fleet_dir / "tokens"
    base = ["--targets", str(targets), "--alertmanager.config", str(fleet_dir / "alertmanager.yml"),
            "--tokens.dir", str(tokens)]
    assert fleet(*base)[0] == 0
    viewers = fleet_dir / "viewers.token"
    viewers.write_text("one-read-only-token-for-grafana\n")
    configs = fleet_dir / "nodes"
    configs.mkdir()
    for i in range(1, 4):
        _exporter_config(configs / f"edge-{i}.yml", f"edge-{i}", tokens / f"edge-{i}.token", viewers)
    code, _, err = fleet("--check", *base, "--exporter.config", str(configs))
    assert (code, err) == (0, ""), err  # one viewer token shared by the fleet is fine

    # edge-2 reads edge-1's webhook token as its viewer token; edge-3's viewer token file is missing.
    _exporter_config(configs / "edge-2.yml", "edge-2", tokens / "edge-2.token", tokens / "edge-1.token")
    _exporter_config(configs / "edge-3.yml", "edge-3", tokens / "edge-3.token", fleet_dir / "missing.token")
    code, _, err = fleet("--check", *base, "--exporter.config", str(configs))
    assert code == 1
    problems = err.splitlines()
    assert len(problems) == 2, err
    assert "node edge-2: exporter config" in problems[0]
    assert "viewers.api.token_file holds node edge-1's webhook token" in problems[0]
    assert "node edge-3: exporter config" in problems[1]
    assert f"viewers.api.token_file: {fleet_dir / 'missing.token'} does not exist" in problems[1]
    assert (tokens / "edge-1.token").read_text().strip() not in err, "a check never prints a token"


def test_bad_targets_are_listed_together(tmp_path: Path) -> None:
    targets = tmp_path / "iptv.yml"
    targets.write_text(yaml.safe_dump([
        {"targets": ["edge-1:9756"], "labels": {"node": "edge-1"}},
        {"targets": ["edge-1b:9756"], "labels": {"node": "edge-1"}},
        {"targets": ["no-port"]},
        {"targets": ["edge-9:9756"], "labels": {"node": "edge 9; rm"}},
        {"labels": {"node": "x"}},
    ]))
    code, _, err = fleet("--check", "--targets", str(targets), "--alertmanager.config", str(ALERTMANAGER_YML))
    assert code == 1
    assert f"{targets}: [1].targets[0]: node 'edge-1' is listed twice" in err
    assert f"{targets}: [2].targets[0]: 'no-port' is not host:port" in err
    assert f"{targets}: [3].targets[0]: node name 'edge 9; rm' must match" in err
    assert f"{targets}: [4]: expected a mapping with a list `targets`" in err


def test_alertmanager_yml_without_markers_is_refused_unchanged(tmp_path: Path) -> None:
    am = tmp_path / "alertmanager.yml"
    original = ALERTMANAGER_YML.read_text().replace("# END iptv-exporter fleet receivers", "")
    am.write_text(original)
    code, _, err = fleet("--prometheus.config", str(PROMETHEUS_YML), "--alertmanager.config", str(am),
                         "--tokens.dir", str(tmp_path / "t"))
    assert code == 1 and "needs exactly one '# BEGIN iptv-exporter fleet receivers' line" in err
    assert am.read_text() == original


def test_shipped_alertmanager_config_is_generated_from_the_shipped_targets() -> None:
    """Drift check: the shipped blocks are what `iptv-exporter fleet` writes for prometheus/targets."""
    files, scheme = target_files_from_prometheus(PROMETHEUS_YML, "iptv")
    assert [f.name for f in files] == ["iptv.yml"]
    nodes = read_targets(files, scheme)
    text = ALERTMANAGER_YML.read_text()
    assert splice(text, nodes, DEFAULT_CREDENTIALS_DIR, str(ALERTMANAGER_YML)) == text
    assert [n.name for n in nodes] == ["edge-1", "edge-2"]
    assert (REPO / "docs" / "fleet.md").is_file()


def test_scaling_doc_states_the_formula_the_series_benchmark_checks() -> None:
    """docs/scaling.md's formula is bench/nodeseries.py's FORMULA (the benchmark checks it against Prometheus)."""
    from bench.nodeseries import FORMULA

    doc = (REPO / "docs" / "scaling.md").read_text()
    k = 4
    assert f"({FORMULA.base + k + FORMULA.recorded} + C + 2A) × S + {FORMULA.fixed} + G" in doc
    assert f"| {FORMULA.base} | families with only the `stream` label" in doc
    assert f"| {FORMULA.recorded} | recorded:" in doc
    # The sizing table follows from it: 300 streams, C = 4, A = 2, G = 132, node-exporter 1,000.
    assert "| 10 nodes × 300 streams | ≈ 201,000 |" in doc
    per_node = FORMULA.total(300, k, 4, 2, 132) + 1000
    assert abs(per_node * 10 / 201_000 - 1) <= 0.05 and abs(per_node * 100 / 2_010_000 - 1) <= 0.05


def _metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (strings and label matchers removed first)."""
    import re

    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    return set(re.findall(r"\b(iptv[a-z0-9_:]*|ALERTS(?:_FOR_STATE)?|scrape_[a-z_]+)\b", bare))


def test_documented_write_filter_keeps_what_dashboards_and_report_read() -> None:
    import json
    import re

    from exporter.report import fetch

    doc = (REPO / "docs" / "scaling.md").read_text()
    (drop,) = re.findall(r"regex: '([^']+)'\n\s+action: drop", doc)
    used: set[str] = set()
    for path in (REPO / "grafana" / "dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        panels = list(board["panels"])
        for panel in panels:
            panels.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                used |= _metric_names(target.get("expr", ""))
        for variable in board["templating"]["list"]:
            used |= _metric_names(str(variable.get("query", "")) + str(variable.get("definition", "")))
    used |= {v for k, v in vars(fetch).items() if k.isupper() and isinstance(v, str) and v.startswith("iptv")}
    assert len(used) > 20 and "iptv_stream_sent_bytes_total" in used
    dropped = {name for name in used if re.fullmatch(drop, name)}
    assert not dropped, f"the documented write filter drops metrics the dashboards or the report read: {dropped}"
    assert re.fullmatch(drop, "ALERTS_FOR_STATE") and re.fullmatch(drop, "scrape_samples_scraped")
    assert not re.fullmatch(drop, "iptv_lines_sampled"), "the global ruler reads it"
