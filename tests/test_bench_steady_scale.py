"""The arithmetic of the scale and steady-state benchmarks: CPU read from /proc, cost split by source."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import pytest

from bench.measure import TICK, process_cpu_seconds
from bench.scale import growth, steady_cpu
from bench.steady import counter


def test_process_cpu_seconds_agrees_with_getrusage() -> None:
    """/proc/<pid>/stat's utime + stime + cutime + cstime is this process's CPU clock and its reaped
    children's, to a few ticks (a benchmarked exporter's helpers count as its own cost)."""
    child = subprocess.run([sys.executable, "-c", "import time\nt = time.process_time() + 0.2\n"
                            "while time.process_time() < t: pass"], check=True)
    assert child.returncode == 0  # reaped: its CPU is now in cutime
    before = process_cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass  # burn CPU, so the reading must move
    after = process_cpu_seconds(os.getpid())
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    assert after - before >= 0.3 - 2 / TICK
    total = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    assert after == pytest.approx(total, abs=5 / TICK)


def test_process_cpu_seconds_of_a_missing_process_raises() -> None:
    with pytest.raises(FileNotFoundError):
        process_cpu_seconds(2**22 + 1)  # above any pid_max Linux allows


PROBE = {
    "samples": [{"cpu": 0.10}, {"cpu": 0.30}, {"cpu": 0.20}],
    "source_cpu": {
        "processes": [0.04, 0.10, 0.07],
        "hls": [0.01, 0.02, 0.01],
        "sockets": [0.02, 0.08, 0.05],
        "accesslog": [0.02, 0.09, 0.06],
    },
}


def test_steady_cpu_is_the_median_round_of_the_chosen_sources() -> None:
    assert steady_cpu(PROBE, ("sockets",)) == pytest.approx(0.05)
    assert steady_cpu(PROBE, ("sockets", "accesslog")) == pytest.approx(0.11)  # rounds: 0.04, 0.17, 0.11
    assert steady_cpu(PROBE, ("sockets", "accesslog"), exclude=True) == pytest.approx(0.08)  # 0.05, 0.12, 0.08
    assert steady_cpu(PROBE) == pytest.approx(0.19)  # 0.09, 0.29, 0.19


def test_growth_says_so_when_there_is_nothing_to_grow_from() -> None:
    assert growth(0.2, 0.5) == "2.50×"
    assert growth(0.0, 0.5) == "n/a"


def test_counter_reads_an_unlabelled_sample_and_not_its_prefix_twin() -> None:
    text = ("# TYPE iptv_accesslog_lines_total counter\n"
            "iptv_accesslog_lines_total_extra 9\n"
            "iptv_accesslog_lines_total 1234.0\n")
    assert counter(text, "iptv_accesslog_lines_total") == 1234.0
    assert counter(text, "iptv_missing_total") == 0.0


def test_connection_farm_spreads_connections_over_shards() -> None:
    """More connections than one shard may hold: all established on the port, from every source address."""
    import subprocess

    from bench.connfarm import ConnFarm, ephemeral_low, source_addresses

    with ConnFarm(source_addresses(3, 4), per_shard=300) as farm:
        farm.grow_to(250)
        farm.grow_to(1_000)
        assert (farm.held, farm.shards) == (1_000, 4)
        out = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{farm.port} )"],
                             capture_output=True, text=True, check=True).stdout.splitlines()
        assert len(out) == 1_000
        peers = [line.split()[-1].rsplit(":", 1) for line in out]
        assert {addr for addr, _ in peers} == set(source_addresses(3, 4))
        low = ephemeral_low()
        assert all(int(port) < low for _, port in peers)  # as remote viewers: no ephemeral client ends here
        assert farm.port < low  # a viewer port like 80 or 8080, not an ephemeral one
    after = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{farm.port} )"],
                           capture_output=True, text=True, check=True).stdout
    assert after == ""


def test_client_ports_stay_below_the_ephemeral_range_and_unique_per_address() -> None:
    from bench.connfarm import client_port

    pairs = {(i % 100, client_port(i, 100, 32768)) for i in range(50_000)}
    assert len(pairs) == 50_000
    assert max(port for _, port in pairs) == 32767 and min(port for _, port in pairs) == 32768 - 500
    assert client_port(10_000, 10, 2_000) == 0  # would reach the privileged ports: any ephemeral one


def test_stop_ends_a_server_that_ignores_sigterm_and_reaps_it() -> None:
    import signal
    import subprocess
    import sys

    from bench.util import stop

    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
         " print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"  # SIGTERM ignored from here
    stop(polite)
    stop(stubborn, grace=0.5)
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    stubborn.stdout.close()
