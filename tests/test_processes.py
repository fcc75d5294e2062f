"""Matching real panel command lines to streams, and keeping counters monotonic (pure, no /proc)."""

from __future__ import annotations

import shlex

import pytest

from exporter.config import parse_config
from exporter.sources.processes import ProcessesSource, ProcInfo, output_hints, rules_from_config, stream_of
from tests.helpers import REPO

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
PANELX = [
    "ffmpeg", "-hide_banner", "-loglevel", "warning", "-y", "-user_agent", UA,
    "-headers", "Referer: http://provider.example/\r\n", "-i", "http://provider.example:8080/live/u/p/1234.ts",
    "-c:v", "copy", "-f", "hls", "-hls_time", "10", "-hls_list_size", "6", "-hls_base_url", "/streams/",
    "/home/panelx/webapp/streams/stream_5.m3u8",
]


def xtream_cmdline() -> list[str]:
    text = REPO / "tests/fixtures/ffmpeg-cmdlines.txt"  # a copy of shared/examples: CI has only the repo
    line = next(ln for ln in text.read_text().splitlines() if ln.startswith("/home/xtreamcodes"))
    return line.split(" ")


def proc(cmdline: list[str], pid: int = 100, name: str = "ffmpeg", cpu: float = 1.0, read: int = 1000) -> ProcInfo:
    return ProcInfo(pid=pid, name=name, cmdline=tuple(cmdline), create_time=1000.0 + pid, cpu_seconds=cpu,
                    rss_bytes=10 << 20, read_bytes=read, open_fds=12, threads=9)


DEFAULT_RULES = rules_from_config(parse_config({}))


def test_panelx_preset_matches_despite_user_agent_with_spaces() -> None:
    assert stream_of(proc(PANELX), DEFAULT_RULES) == "5"
    assert output_hints(PANELX) == ("/home/panelx/webapp/streams/stream_5.m3u8", None)


def test_xtream_preset_and_progress_hint() -> None:
    cmd = xtream_cmdline()
    assert stream_of(proc(cmd, name="ffmpeg"), DEFAULT_RULES) == "12"
    playlist, progress = output_hints(cmd)
    assert playlist == "/home/xtreamcodes/iptv_xtream_codes/streams/12_.m3u8"
    assert progress == "http://127.0.0.1:25500/progress.php?stream_id=12"


@pytest.mark.parametrize(("cmd", "stream"), [
    ("ffmpeg -i http://x/live/77.ts -c:v libx264 -b:v 3M -f hls /srv/iptv/streams/stream_77.m3u8", "77"),
    ("ffmpeg -i http://x/live/77.ts -c:v libx264 -b:v 800k -f hls /srv/iptv/streams/stream_77_low.m3u8", "77"),
    ("ffmpeg -i x -f hls /tmp/out/news.m3u8", "news"),
    ("ffmpeg -i x -f mpegts udp://239.0.0.1:1234", None),
    ("nginx: worker process", None),
    ("python3 -m http.server stream_5.m3u8", None),
])
def test_other_shapes(cmd: str, stream: str | None) -> None:
    argv = shlex.split(cmd)
    assert stream_of(proc(argv, name=argv[0]), DEFAULT_RULES) == stream


def test_static_cmdline_pins_an_id_and_custom_rule_needs_its_process() -> None:
    cfg = parse_config({"streams": {
        "static": [{"id": "bbc", "cmdline": r"stream_7\.m3u8"}],
        "discover": [{"process": "restreamer", "cmdline": r"out/(?P<stream>\w+)\.ts"}],
    }})
    rules = rules_from_config(cfg)
    assert stream_of(proc(["ffmpeg", "-f", "hls", "/s/stream_7.m3u8"]), rules) == "bbc"
    assert stream_of(proc(["/opt/bin/restreamer", "out/abc.ts"], name="restreamer"), rules) == "abc"
    assert stream_of(proc(["ffmpeg", "out/abc.ts"]), rules) is None
    assert stream_of(proc([], name="ffmpeg"), rules) is None  # zombie: no command line


def test_ladder_summed_restarts_and_monotonic_counters() -> None:
    src = ProcessesSource(parse_config({}))
    hi = proc(["ffmpeg", "-f", "hls", "/s/stream_77.m3u8"], pid=1, cpu=10, read=5000)
    lo = proc(["ffmpeg", "-f", "hls", "/s/stream_77_low.m3u8"], pid=2, cpu=4, read=5000)
    first = src.update({"77": [hi, lo]}).streams["77"]
    assert first.up and first.pids == (1, 2)
    assert first.cpu_seconds_total == 14 and first.read_bytes_total == 10000 and first.restarts_total == 0

    down = src.update({}).streams["77"]  # both died
    assert not down.up and down.exits_total == 2
    assert down.cpu_seconds_total == 14 and down.read_bytes_total == 10000  # never falls

    back = src.update({"77": [proc(["ffmpeg", "/s/stream_77.m3u8"], pid=3, cpu=1, read=10)]}).streams["77"]
    assert back.up and back.restarts_total == 1
    assert back.cpu_seconds_total == 15 and back.read_bytes_total == 10010
    assert back.playlist == "/s/stream_77.m3u8"


def test_first_sight_is_not_a_restart() -> None:
    src = ProcessesSource(parse_config({}))
    assert src.update({"5": [proc(PANELX, pid=9)]}).streams["5"].restarts_total == 0
    assert src.update({"5": [proc(PANELX, pid=10)]}).streams["5"].restarts_total == 1  # PID changed in between
