"""A real Prometheus for tests: Debian's ``prometheus`` on a free loopback port with its own storage.

Start one with history backfilled and the repository's rules loaded::

    from tests.promserver import (
        backfill, openmetrics, prometheus_config, query, repo_rule_files, start_prometheus, wait_for_rules,
    )

    def test_something(tmp_path):
        data = tmp_path / "data"
        text = openmetrics([("iptv_stream_up", {"stream": "7"}, lambda t: 1.0)], start, end, step=15)
        backfill(text, data)                       # promtool tsdb create-blocks-from openmetrics
        config = prometheus_config(rule_files=repo_rule_files())
        with start_prometheus(config, data) as url:  # waits for /-/ready, stops Prometheus on exit
            wait_for_rules(url)                      # every rule group evaluated once
            assert query(url, "iptv_stream_up")

Backfilled history must end by the time Prometheus starts: the TSDB refuses new samples (scrapes, rule
results) older than its newest block, so history "into the future" silently breaks the rules. Or let it
scrape something: ``prometheus_config(scrape_targets=["127.0.0.1:9756"], target_labels={"node": "edge-1"})``.

Prometheus writes its log next to the data directory (``<data>.log``); a failed start raises with the log's
tail. For one server per module, wrap ``start_prometheus`` in a module-scoped fixture with
``tmp_path_factory``.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import REPO, free_port, require_binary, wait_until

Series = tuple[str, Mapping[str, str], Callable[[float], float | None]]
"""(metric name, labels, value at a Unix time or None for no sample)."""

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class PrometheusError(RuntimeError):
    """Prometheus answered a query with an error, or did not start."""


def repo_rule_files() -> list[Path]:
    """The repository's rule files (prometheus/rules/*.yml), absolute."""
    return sorted((REPO / "prometheus" / "rules").glob("*.yml"))


def prometheus_config(
    *,
    rule_files: Iterable[Path] = (),
    scrape_targets: Sequence[str] = (),
    interval: str = "1s",
    job: str = "iptv",
    target_labels: Mapping[str, str] | None = None,
) -> str:
    """A prometheus.yml (JSON is YAML): fast rule evaluation, optional static scrape targets."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
    }
    if scrape_targets:
        static = {"targets": list(scrape_targets), "labels": dict(target_labels or {})}
        config["scrape_configs"] = [{"job_name": job, "static_configs": [static]}]
    return json.dumps(config, indent=2) + "\n"


def _labels(labels: Mapping[str, str]) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    inner = ",".join(f'{key}="{escape(value)}"' for key, value in sorted(labels.items()))
    return f"{{{inner}}}" if inner else ""


def openmetrics(series: Iterable[Series], start: float, end: float, step: float) -> str:
    """OpenMetrics text with one sample per ``step`` seconds in [start, end] for every series.

    Samples carry no TYPE lines (type unknown), which is all that backfilling needs; each series' samples
    are contiguous and in time order.
    """
    lines: list[str] = []
    count = int(math.floor((end - start) / step))
    for name, labels, value_at in series:
        head = f"{name}{_labels(labels)}"
        for i in range(count + 1):
            t = start + i * step
            value = value_at(t)
            if value is not None:
                lines.append(f"{head} {value!r} {t:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def backfill(openmetrics_text: str, data_dir: Path) -> None:
    """Write TSDB blocks for ``openmetrics_text`` into ``data_dir`` (before Prometheus starts on it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    source = data_dir.with_name(data_dir.name + ".om.txt")
    source.write_text(openmetrics_text, encoding="utf-8")
    argv = [require_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise PrometheusError(f"promtool backfill failed ({done.returncode}): {done.stderr[-2000:]}")


@contextmanager
def start_prometheus(config_text: str, data_dir: Path, *, args: Sequence[str] = ()) -> Iterator[str]:
    """Run Prometheus with ``config_text`` on ``data_dir``; yield its base URL once /-/ready answers 200.

    Rule files and scrape targets in the config should be absolute paths / loopback addresses. The
    process is terminated (killed after a grace period) when the block ends, whatever happened in it.
    """
    binary = require_binary("prometheus")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir.with_name(data_dir.name + ".yml")
    config.write_text(config_text, encoding="utf-8")
    log_path = data_dir.with_name(data_dir.name + ".log")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=30d",
        "--log.level=info",
        *args,
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_ready(url, proc, log_path)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            raise PrometheusError(f"prometheus exited with {proc.returncode}; log {log_path}:\n{_tail(log_path)}")
        return httpx.get(f"{url}/-/ready", timeout=2.0).status_code == 200

    try:
        wait_until(ready, timeout=START_TIMEOUT, what=f"{url}/-/ready")
    except AssertionError as exc:
        raise PrometheusError(f"{exc}; log {log_path}:\n{_tail(log_path)}") from exc


def _tail(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-3000:]


def api(url: str, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """GET ``/api/v1/<path>`` and return the JSON body (``status`` is "success" or "error")."""
    response = httpx.get(f"{url}/api/v1/{path}", params=params, timeout=30.0)
    body: dict[str, Any] = response.json()
    return body


def query(url: str, expr: str, *, at: float | None = None) -> list[dict[str, Any]]:
    """Instant query; the result list (vectors: ``{"metric": {...}, "value": [t, "v"]}``)."""
    params: dict[str, Any] = {"query": expr}
    if at is not None:
        params["time"] = at
    body = api(url, "query", params)
    if body.get("status") != "success":
        raise PrometheusError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
    result = body["data"]["result"]
    return result if isinstance(result, list) else [result]


def wait_for_rules(url: str, timeout: float = 20.0) -> None:
    """Wait until every loaded rule group has been evaluated at least once (none loaded: return)."""

    def evaluated() -> bool:
        groups = api(url, "rules", {})["data"]["groups"]
        return all(not str(g.get("lastEvaluation", "")).startswith("0001-") for g in groups)

    wait_until(evaluated, timeout=timeout, what="every rule group evaluated once")
