"""Discovered streams across exporter restarts, forgotten after ``streams.forget_after`` (issue 14.9,
20.7), and restarts only for streams the config allows (15.6): the exporter as a real process, a real
ffmpeg, real webhook calls.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.actions_support import alert, journal, notification, write_config, write_token
from tests.helpers import Exporter, Proc, ffmpeg_hls_argv, metric, wait_until

pytestmark = pytest.mark.slow

NODE = "edge-1"


def config(tmp: Path, streams: Path, forget_after: str) -> dict[str, object]:
    """Discovery bound to this test's folder (other ffmpegs on the host stay out); root's processes only."""
    return {
        "node": NODE, "sample_interval": "500ms",
        "streams": {
            "discover": [{"process": "ffmpeg", "cmdline": re.escape(str(streams)) + r"/stream_(?P<stream>\d+)\.m3u8"}],
            "static": [{"id": "decl", "name": "Declared"}],
            "forget_after": forget_after,
        },
        "viewers": {"ports": [], "access_log": None},
        "actions": {"token_file": str(tmp / "token"), "journal": str(tmp / "state" / "journal.sqlite"),
                    "verify_timeout": "2s", "cooldown": "1s",
                    "restart": {"type": "command", "argv": ["touch", str(tmp / "restarted-{stream}")]}},
    }


def post(url: str, token: str, *alerts: dict[str, object]) -> None:
    r = httpx.post(url + "/hooks/alertmanager", json=notification(*alerts),
                   headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert r.status_code == 200, r.text


def decision(url: str, token: str, stream_label: str) -> str:
    rows = [d for d in journal(url, token)["decisions"] if d.get("stream") == stream_label]
    return str(rows[0]["result"]) if rows else ""


def test_a_stream_down_at_exporter_start_stays_down_restartable_then_is_forgotten(
        tmp_path: Path, procs: Callable[..., Proc], exporter: Callable[..., Exporter], world_dir: Path) -> None:
    streams = tmp_path / "streams"
    streams.mkdir()
    token = write_token(tmp_path / "token")
    cfg = write_config(tmp_path / "config.yml", config(tmp_path, streams, forget_after="20s"))
    ffmpeg = procs(ffmpeg_hls_argv(streams / "stream_5.m3u8"), log=tmp_path / "ffmpeg.log")

    first = exporter(cfg)
    first.wait_for(lambda s: metric(s, "iptv_stream_up", stream="5") == 1, "stream 5 discovered and up")
    state = tmp_path / "state" / "streams.json"
    wait_until(lambda: '"5"' in state.read_text(), what="stream 5 remembered in the state file")
    first.stop()
    ffmpeg.signal(signal.SIGKILL)
    ffmpeg.popen.wait(5)

    second = exporter(cfg)  # the stream is down while the exporter starts
    m = second.scrape()
    assert metric(m, "iptv_stream_up", stream="5") == 0
    assert metric(m, "iptv_stream_info", stream="5", name="5") == 1
    assert metric(m, "iptv_stream_up", stream="decl") == 0

    # a restart for it runs (before: skipped_unknown_stream)
    post(second.url, token, alert("5", node=NODE))
    wait_until(lambda: (tmp_path / "restarted-5").exists(), what="the restart command ran for stream 5")
    assert decision(second.url, token, "5") not in {"", "skipped_unknown_stream"}

    # a process of another owner naming a stream of this folder is refused, and so is its restart
    fake = world_dir / "ffmpeg"
    fake.symlink_to("/bin/sh")
    intruder = subprocess.Popen([str(fake), "-c", "sleep 60; :", str(streams / "stream_66.m3u8")], user="nobody",
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        refused = second.wait_for(lambda s: (metric(s, "iptv_discovery_refused_processes_total", reason="owner")
                                             or 0) >= 1, "the intruder refused")
        assert metric(refused, "iptv_stream_up", stream="66") is None
        post(second.url, token, alert("66", node=NODE))
        wait_until(lambda: decision(second.url, token, "66"), what="the intruder's alert decided")
        assert decision(second.url, token, "66") == "skipped_unknown_stream"
        assert not (tmp_path / "restarted-66").exists()
    finally:
        os.killpg(intruder.pid, signal.SIGKILL)  # the shell and its sleep
        intruder.wait(5)

    # removed from the panel (no process for forget_after): it leaves; the declared stream never does
    gone = second.wait_for(lambda s: metric(s, "iptv_stream_info", stream="5", name="5") is None,
                           "stream 5 forgotten after forget_after", timeout=60)
    assert metric(gone, "iptv_discovery_forgotten_streams_total") == 1
    assert metric(gone, "iptv_stream_up", stream="decl") == 0
    wait_until(lambda: '"5"' not in state.read_text(), what="stream 5 gone from the state file")
    second.stop()
    third = exporter(cfg)  # and a later start does not bring it back
    assert metric(third.scrape(), "iptv_stream_info", stream="5", name="5") is None
