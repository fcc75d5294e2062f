"""``iptv-exporter demo`` and its parts, run for real: the stand-in stream, both origins, the GeoIP
databases, the templated Prometheus/Alertmanager configs, streamctl, and the whole demo as a process that
must show streams, viewers by country and city, bytes per stream, and leave nothing behind on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import psutil
import pytest
import yaml

from exporter.config import load_config
from exporter.config.viewers import Geo as GeoConfig
from exporter.demo import alerting, geodb, streams
from exporter.demo.layout import Layout
from exporter.demo.procs import processes_naming
from exporter.demo.stack import Options, Stack
from exporter.demo.streams import StreamSpec
from exporter.demo.workload import CITIES, networks, plan
from exporter.geo import Geo
from exporter.sources import SampleContext
from exporter.sources.accesslog import parse_combined
from exporter.sources.processes import ProcessesSource
from exporter.sources.progress_blocks import parse_blocks
from tests.helpers import REPO, Proc, Samples, free_port, parse_metrics, require_binary, wait_until

COMBINED = re.compile(
    r'^(?P<ip>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) '
    r'"(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$'
)
SPEC = StreamSpec("7", "Test One", bitrate_kbps=120, segment_seconds=1)


def _options(root: Path, **kw: object) -> Options:
    base: dict[str, object] = dict(root=root, exporter_port=free_port(), streams=(SPEC,), ffmpeg=None, nginx=None,
                                   monitoring=None, origin_port=0, prometheus_port=0, alertmanager_port=0)
    base.update(kw)
    return Options(**base)  # type: ignore[arg-type]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """A prepared stack with the stand-in stream; whatever a test starts is stopped at teardown."""
    s = Stack(_options(tmp_path / "demo"))
    s.prepare()
    try:
        yield s
    finally:
        assert s.stop() == 0, "a part outlived Stack.stop and had to be swept"


# -- the stand-in stream ---------------------------------------------------------------------------------


def test_standin_writes_hls_and_progress_and_is_discovered_as_ffmpeg(stack: Stack) -> None:
    layout = stack.layout
    pid = streams.start(layout, SPEC.id)
    assert psutil.Process(pid).ppid() != psutil.Process().pid, "a stream must be detached from its starter"

    def playlist() -> list[str] | None:
        text = layout.playlist(SPEC.id).read_text() if layout.playlist(SPEC.id).exists() else ""
        uris = [line for line in text.splitlines() if line and not line.startswith("#")]
        return uris if len(uris) >= 3 else None

    uris = wait_until(playlist, timeout=15, what="three segments in the stand-in's playlist")
    assert all(re.fullmatch(r"/streams/stream_7_\d+\.ts", u) for u in uris), uris
    first = layout.streams / uris[-1].rsplit("/", 1)[1]
    assert first.read_bytes()[:1] == b"\x47" and first.stat().st_size % 188 == 0  # MPEG-TS packets
    blocks = parse_blocks(layout.progress_file(SPEC.id).read_text()).blocks
    assert blocks and blocks[-1].fps == pytest.approx(25.0) and blocks[-1].speed == pytest.approx(1.0)

    config = load_config(stack.layout.exporter_config)
    result = ProcessesSource(config).sample(SampleContext(time.time(), MappingProxyType({})))
    found = result.streams[SPEC.id]
    assert found.pids == (pid,)
    assert psutil.Process(pid).name() == "ffmpeg"


def test_standin_deletes_old_segments_and_stops_on_sigterm(stack: Stack) -> None:
    layout = stack.layout
    pid = streams.start(layout, SPEC.id)
    wait_until(lambda: (layout.streams / "stream_7_9.ts").exists(), timeout=20,
               what="more segments written than the playlist holds")
    left = sorted(layout.streams.glob("stream_7_*.ts"))
    assert not (layout.streams / "stream_7_0.ts").exists(), left
    assert len(left) <= 8, left  # list size 6, plus the one kept for late readers, plus one being written
    assert streams.stop(layout, SPEC.id, grace=5)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert parse_blocks(layout.progress_file(SPEC.id).read_text()).blocks[-1].ended


def test_streamctl_restart_replaces_the_process_and_kill_crashes_it(stack: Stack) -> None:
    layout = stack.layout
    first = streams.start(layout, SPEC.id)
    assert streams.start(layout, SPEC.id) == first, "start of a running stream must not start another"
    done = subprocess.run(streams.streamctl_argv(layout, "restart", SPEC.id), capture_output=True, text=True,
                          timeout=30, check=True)
    second = int(done.stdout)
    assert second != first and streams.running_pid(layout, SPEC.id) == second
    assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
    assert streams.kill(layout, SPEC.id) == second
    wait_until(lambda: streams.running_pid(layout, SPEC.id) is None, timeout=5, what="killed stream gone")
    unknown = subprocess.run(streams.streamctl_argv(layout, "start", "nope"), capture_output=True, text=True,
                             timeout=30, check=False)
    assert unknown.returncode == 2 and "unknown stream" in unknown.stderr


def test_pid_file_of_another_process_is_not_the_stream(stack: Stack) -> None:
    """A stale pid file whose pid now belongs to someone else must never be signalled."""
    stack.layout.pid_file(SPEC.id).write_text(f"{psutil.Process().pid}\n")
    assert streams.running_pid(stack.layout, SPEC.id) is None
    assert streams.kill(stack.layout, SPEC.id) is None


# -- origins ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["nginx", "python"])
def test_origin_serves_panelx_routes_and_logs_combined(tmp_path: Path, server: str) -> None:
    nginx = require_binary("nginx") if server == "nginx" else None
    s = Stack(_options(tmp_path / "demo", nginx=nginx))
    s.prepare()
    try:
        streams.start(s.layout, SPEC.id)
        wait_until(lambda: s.layout.playlist(SPEC.id).exists(), timeout=15, what="playlist")
        s.start_origin()
        viewer = plan((SPEC.id,))[0]
        transport = httpx.HTTPTransport(local_address=viewer.address)
        with httpx.Client(transport=transport, base_url=s.origin_url, headers={"User-Agent": "VLC/3.0.20"}) as c:
            ok = c.get(f"/live/{viewer.username}/{viewer.password}/{SPEC.id}.m3u8")
            assert ok.status_code == 200 and "#EXTM3U" in ok.text
            segment = next(line for line in ok.text.splitlines() if line.startswith("/streams/"))
            seg = c.get(segment)
            assert seg.status_code == 200 and len(seg.content) > 0
            assert c.get(f"/live/{viewer.username}/wrong/{SPEC.id}.m3u8").status_code == 403
            assert c.get("/streams/nope.ts").status_code == 404

        def logged() -> list[str] | None:
            lines = s.layout.access_log.read_text().splitlines()
            return lines if len(lines) >= 4 else None

        lines = wait_until(logged, timeout=5, what="four access-log lines")
        matches = [COMBINED.match(line) for line in lines]
        assert all(matches), lines
        assert {m["ip"] for m in matches if m} == {viewer.address}
        assert [m["status"] for m in matches if m] == ["200", "200", "403", "404"]
        assert matches[1] and int(matches[1]["bytes"]) == len(seg.content)
        rows = parse_combined(("\n".join(lines) + "\n").encode())
        assert len(rows) == 4  # the exporter's own parser reads what the origin writes
    finally:
        assert s.stop() == 0


# -- GeoIP and the monitoring configs ---------------------------------------------------------------------


def test_generated_geoip_places_loopback_viewers_in_their_cities(tmp_path: Path) -> None:
    city_db, asn_db = geodb.write_dbs(tmp_path, networks())
    geo = Geo(GeoConfig(city_db=city_db, asn_db=asn_db))
    try:
        for city in CITIES:
            p = city.place
            info = geo.lookup(city.address(10))
            assert (info.country, info.city, info.asn, info.isp) == (p.country, p.city, p.asn, p.isp)
            assert info.latitude == pytest.approx(p.latitude) and info.longitude == pytest.approx(p.longitude)
        assert geo.lookup("::ffff:127.3.0.10").city == "São Paulo"  # IPv4-mapped, as dual-stack sockets report
        assert geo.lookup("127.0.0.1").country == "unknown"
    finally:
        geo.close()


def test_viewer_plan_spreads_over_cities_and_streams() -> None:
    viewers = plan(("1", "2", "3", "4"))
    assert len({v.address.split(".")[1] for v in viewers}) == len(CITIES)
    assert {v.stream for v in viewers} == {"1", "2", "3", "4"}
    assert len({v.address for v in viewers}) == len(viewers)
    by_line: dict[str, set[str]] = {}
    for v in viewers:
        by_line.setdefault(v.username, set()).add(v.address.split(".")[1])
    assert [u for u, cities in by_line.items() if len(cities) > 1] == ["alice"]  # one shared line, on purpose


def test_alert_for_durations_are_capped_only_when_longer() -> None:
    rules: dict[str, Any] = {"groups": [{"name": "g", "rules": [
        {"alert": "A", "expr": "1", "for": "5m", "keep_firing_for": "3m",
         "annotations": {"description": "x is 0 for 5m.", "n": 1}},
        {"alert": "B", "expr": "1", "for": "5s", "keep_firing_for": "10s"},
        {"alert": "C", "expr": "1"}, {"record": "r", "expr": "1"}]}]}
    capped = alerting.cap_for(rules, "15s")["groups"][0]["rules"]
    assert [r.get("for") for r in capped] == ["15s", "5s", None, None]
    assert [r.get("keep_firing_for") for r in capped] == ["15s", "10s", None, None]
    assert capped[0]["annotations"] == {"description": "x is 0 for 15s.", "n": 1}
    assert rules["groups"][0]["rules"][0]["for"] == "5m"  # the input is not changed


def test_templated_prometheus_and_alertmanager_configs_pass_promtool_and_amtool(tmp_path: Path) -> None:
    layout = Layout(tmp_path).create()
    layout.token_file.write_text("t\n")
    timings = alerting.Timings(interval="1s", max_for="3s")
    prom = alerting.prometheus_yml(layout, node="demo", exporter="127.0.0.1:9756", alertmanager="127.0.0.1:9093",
                                   timings=timings)
    am = alerting.alertmanager_yml(layout, node="demo", hook_url="http://127.0.0.1:9756/hooks/alertmanager",
                                   timings=timings)
    checked = subprocess.run([require_binary("promtool"), "check", "config", str(prom)], capture_output=True,
                             text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = subprocess.run([require_binary("amtool"), "check-config", str(am)], capture_output=True, text=True,
                             timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    routed = subprocess.run(
        [require_binary("amtool"), "config", "routes", "test", f"--config.file={am}",
         "action=restart", "node=demo", "alertname=IPTVStreamDown", "stream=101"],
        capture_output=True, text=True, timeout=60, check=False)
    assert "restart-demo" in routed.stdout, routed.stdout + routed.stderr
    config = yaml.safe_load(prom.read_text())
    assert config["global"]["scrape_interval"] == "1s"
    fors = [r["for"] for f in config["rule_files"] for g in yaml.safe_load(Path(f).read_text())["groups"]
            for r in g["rules"] if "for" in r]
    assert fors and all(f in {"1s", "2s", "3s"} for f in fors), fors


# -- the whole demo, as a user runs it ---------------------------------------------------------------------


def _demo(tmp_path: Path, *extra: str) -> tuple[Proc, str, Path]:
    port = free_port()
    data = tmp_path / "demo-data"
    argv = [sys.executable, "-m", "exporter", "demo", f"--web.listen-address=127.0.0.1:{port}",
            "--data-dir", str(data), "--free-ports", *extra]
    return Proc(argv, log=tmp_path / "demo.log", cwd=REPO).start(), f"http://127.0.0.1:{port}", data


def _scrape(proc: Proc, url: str) -> Samples:
    if not proc.alive():
        raise AssertionError(f"demo exited early: {proc.output()[-3000:]}")
    return parse_metrics(httpx.get(url + "/metrics", timeout=5).text)


def _values(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(lbls)[label]: v for (n, lbls), v in samples.items() if n == name and label in dict(lbls)}


def _lively(samples: Samples) -> bool:
    up = _values(samples, "iptv_stream_up", "stream")
    countries = {c for c, v in _values(samples, "iptv_connections", "country").items() if v > 0 and c != "unknown"}
    cities = {c for c, v in _values(samples, "iptv_connections_city", "city").items() if v > 0 and c != "unknown"}
    sent = {s for s, v in _values(samples, "iptv_stream_sent_bytes_total", "stream").items() if v > 0}
    return sum(1 for v in up.values() if v == 1) >= 3 and len(countries) >= 3 and len(cities) >= 3 and len(sent) >= 3


def _stop_and_check_clean(proc: Proc, data: Path) -> None:
    demo_pid = proc.pid
    proc.signal(signal.SIGTERM)
    try:
        code = proc.popen.wait(60)
    except subprocess.TimeoutExpired:
        proc.stop()
        raise AssertionError(f"demo did not stop within 60s on SIGTERM: {proc.output()[-3000:]}") from None
    output = proc.output()
    assert code == 0, output[-3000:]
    assert "demo stopped." in output and "stray" not in output, output[-3000:]
    left = processes_naming(data)
    assert not left, [" ".join(p.cmdline()) for p in left]
    in_group = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.pid != demo_pid and p.status() != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == demo_pid:
                in_group.append(p.pid)
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
    assert not in_group, f"processes left in the demo's process group: {in_group}"


@pytest.mark.slow
def test_demo_shows_streams_viewers_and_bytes_then_stops_clean(tmp_path: Path) -> None:
    require_binary("ffmpeg")
    require_binary("nginx")
    proc, url, data = _demo(tmp_path)
    try:
        wait_until(lambda: _lively(_scrape(proc, url)), timeout=90,
                   what=">=3 streams up, viewers in >=3 countries and cities, bytes for >=3 streams")
        assert "nginx" in proc.output() and "ffmpeg" in proc.output()
        landing = httpx.get(url + "/", timeout=5).text
        assert "iptv-exporter" in landing
    finally:
        if proc.alive():
            _stop_and_check_clean(proc, data)
        else:
            raise AssertionError(f"demo exited early: {proc.output()[-3000:]}")


@pytest.mark.slow
def test_demo_with_builtin_standins_needs_no_ffmpeg_or_nginx(tmp_path: Path) -> None:
    proc, url, data = _demo(tmp_path, "--builtin", "--no-monitoring", "--streams", "3")
    try:
        wait_until(lambda: _lively(_scrape(proc, url)), timeout=90,
                   what="stand-in streams up, viewers by country and city, bytes per stream")
        out = proc.output()
        assert "built-in stand-in" in out and "Python origin" in out
        assert not any(p.name() in {"nginx"} for p in processes_naming(data))
    finally:
        if proc.alive():
            _stop_and_check_clean(proc, data)
        else:
            raise AssertionError(f"demo exited early: {proc.output()[-3000:]}")


def test_demo_on_a_taken_port_fails_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "exporter", "demo", f"--web.listen-address=127.0.0.1:{port}",
             "--data-dir", str(tmp_path / "d"), "--builtin", "--no-monitoring", "--free-ports"],
            capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert not (tmp_path / "d" / "run" / "stream_101.pid").exists()
    assert not processes_naming(tmp_path / "d")


def test_combined_log_line_is_nginxs_with_quotes_escaped() -> None:
    """One line formatter for the demo's origin, bench's generator and tests: nginx's combined format."""
    from exporter.demo.logline import clf_time, combined

    stamp = clf_time(1796553212.9)  # 2026-12-06 10:33:32 UTC
    assert stamp == "06/Dec/2026:10:33:32 +0000"
    assert combined("127.1.0.10", stamp, 'GET /live/a"b/p/5.ts HTTP/1.1', 200, 1234, agent='VLC "3"') == (
        '127.1.0.10 - - [06/Dec/2026:10:33:32 +0000] "GET /live/a\\x22b/p/5.ts HTTP/1.1" 200 1234 '
        '"-" "VLC \\x223\\x22"\n')
