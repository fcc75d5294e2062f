"""The keyed-hash line sample (exporter/linesample.py): the same lines on every node, about 1/64 of them, never
the line itself; and two real exporters reading two access logs export the shared line's hash both."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from exporter.config import parse_config
from exporter.demo.logline import clf_time
from exporter.errors import ConfigError
from exporter.linesample import sample_lines
from exporter.runtime import build_runtime
from tests.helpers import Exporter

KEY = b"fleet-secret-0123456789abcdef"


def test_about_one_in_64_lines_and_the_same_on_every_node() -> None:
    lines = [f"user{i}" for i in range(64_000)]
    sampled = sample_lines(lines, KEY, limit=10_000)
    assert 850 <= len(sampled) <= 1150, len(sampled)
    assert all(len(h) == 8 and int(h, 16) >= 0 for h in sampled)
    # Another node with half of these lines and others of its own samples exactly the shared half's hashes.
    other = sample_lines(lines[:32_000] + [f"guest{i}" for i in range(32_000)], KEY, limit=10_000)
    shared = set(sample_lines(lines[:32_000], KEY, limit=10_000))
    assert shared <= set(other) and shared <= set(sampled)
    assert len(set(sampled) & set(other)) == pytest.approx(len(shared), abs=2)  # 32-bit labels rarely collide


def test_the_key_decides_and_no_label_is_the_line() -> None:
    lines = [f"user{i}" for i in range(5_000)]
    a, b = set(sample_lines(lines, KEY)), set(sample_lines(lines, b"another key"))
    assert a and b and a != b
    assert not a & {line.encode().hex()[:8] for line in lines}
    assert len(sample_lines(lines * 3, KEY, limit=20)) == 20  # bounded; duplicates count once


def test_a_missing_or_empty_key_file_stops_the_exporter(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("")
    base = {"viewers": {"ports": [], "access_log": {"path": str(log)}}}
    missing = parse_config({**base, "viewers": {**base["viewers"], "sharing": {"fleet_key_file": str(tmp_path / "k")}}})
    with pytest.raises(ConfigError, match="fleet_key_file: cannot read"):
        build_runtime(missing)
    (tmp_path / "k").write_text("\n")
    with pytest.raises(ConfigError, match="fleet_key_file: empty"):
        build_runtime(missing)


def _node(tmp: Path, name: str, users: list[str], key: Path) -> Path:
    log = tmp / f"{name}.log"
    stamp = clf_time(time.time())
    log.write_text("".join(
        f'198.18.{i // 250}.{i % 250 + 1} - - [{stamp}] "GET /live/{user}/pw/5.m3u8 HTTP/1.1" 200 400 "-" "VLC"\n'
        for i, user in enumerate(users)))
    config = tmp / f"{name}.yml"
    config.write_text(yaml.safe_dump({
        "node": name, "streams": {"discover": [], "static": [{"id": "5", "cmdline": "^never-running-5$"}]},
        "viewers": {"ports": [], "access_log": {"path": str(log), "format": "combined", "preset": "panelx",
                                                "from_start": True},
                    "sharing": {"fleet_key_file": str(key)}},
    }))
    return config


@pytest.mark.slow
def test_two_exporters_export_the_shared_lines_hash(tmp_path: Path, exporter: Callable[..., Exporter]) -> None:
    key = tmp_path / "fleet.key"
    key.write_bytes(KEY + b"\n")
    everyone = [f"user{i}" for i in range(3_000)]
    a = exporter(_node(tmp_path, "edge-1", everyone[:2_000], key))
    b = exporter(_node(tmp_path, "edge-2", everyone[1_000:], key))

    def hashes(exp: Exporter) -> set[str]:
        samples = exp.wait_for(lambda s: any(name == "iptv_lines_sampled" for name, _ in s), "sampled lines", 30)
        return {dict(labels)["line_hash"] for name, labels in samples if name == "iptv_lines_sampled"}

    on_a, on_b = hashes(a), hashes(b)
    assert on_a == set(sample_lines(everyone[:2_000], KEY))
    assert on_b == set(sample_lines(everyone[1_000:], KEY))
    # The lines online on both nodes (user1000..user1999) are exactly the hashes both export.
    assert on_a & on_b == set(sample_lines(everyone[1_000:2_000], KEY)) != set()
