"""Matching real panel command lines to streams, and keeping counters monotonic (pure, no /proc)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from exporter.config import parse_config
from exporter.errors import ConfigError
from exporter.inventory import build_inventory
from exporter.sources.discovery import match, rules_from_config
from exporter.sources.ffmpeg_argv import parse_ffmpeg_argv
from exporter.sources.proccarry import output_hints
from exporter.sources.processes import ProcessesSource
from exporter.sources.procevents import ProcEvent
from exporter.sources.procscan import ProcInfo, stream_of
from exporter.streamstate import StreamMemory
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
    return shlex.split(line.replace("Xtream-Codes IPTV Panel Pro", "'Xtream-Codes IPTV Panel Pro'"))


def proc(cmdline: list[str], pid: int = 100, name: str = "ffmpeg", cpu: float = 1.0, read: int = 1000,
         uid: int = 0) -> ProcInfo:
    return ProcInfo(pid=pid, name=name, cmdline=tuple(cmdline), create_time=1000.0 + pid, cpu_seconds=cpu,
                    rss_bytes=10 << 20, read_bytes=read, open_fds=12, threads=9, uid=uid)


def presets_as(uid: int, *names: str) -> list[dict[str, object]]:
    return [{"preset": n, "user": [uid]} for n in names or ("panelx", "xui", "xtream", "hls")]


# The default rules, with every preset's owner set to root: the tests' processes are root's.
DEFAULT_RULES = rules_from_config(parse_config({"streams": {"discover": presets_as(0)}}))


def test_panelx_preset_matches_despite_user_agent_with_spaces() -> None:
    assert stream_of(proc(PANELX), DEFAULT_RULES) == "5"
    assert output_hints(PANELX) == ("/home/panelx/webapp/streams/stream_5.m3u8", None)


def test_xtream_preset_and_progress_hint() -> None:
    cmd = xtream_cmdline()
    assert stream_of(proc(cmd, name="ffmpeg"), DEFAULT_RULES) == "12"
    playlist, progress = output_hints(cmd)
    assert playlist == "/home/xtreamcodes/iptv_xtream_codes/streams/12_.m3u8"
    assert progress == "http://127.0.0.1:25500/progress.php?stream_id=12"


# XC_VM's startStream (includes/xc_vm.php) with an RTMP push output after the HLS one, as the panel builds it
XC_VM = [
    "/home/xc_vm/bin/ffmpeg_bin/4.4/ffmpeg", "-y", "-nostdin", "-hide_banner", "-loglevel", "warning",
    "-err_detect", "ignore_err", "-user_agent", "Mozilla/5.0", "-fflags", "+genpts", "-async", "1",
    "-probesize", "5000000", "-analyzeduration", "5000000",
    "-progress", "http://127.0.0.1:8080/progress?stream_id=31", "-i", "http://provider.example/live/u/p/31.ts",
    "-vcodec", "copy", "-acodec", "copy", "-sn", "-individual_header_trailer", "0", "-f", "hls", "-hls_time", "10",
    "-hls_list_size", "6", "-hls_delete_threshold", "4", "-hls_flags", "delete_segments+discont_start+omit_endlist",
    "-hls_segment_type", "mpegts", "-hls_segment_filename", "/home/xc_vm/content/streams/31_%d.ts",
    "/home/xc_vm/content/streams/31_.m3u8",
    "-f", "flv", "-flvflags", "no_duration_filesize", "rtmp://127.0.0.1:8001/live/31?password=secret",
]
# PanelX's multiBitrateManager: one process, one output per rendition
ABR = [
    "ffmpeg", "-i", "http://provider.example/live/77.ts", "-c:a", "aac", "-c:v", "libx264", "-preset", "veryfast",
    "-g", "48", "-sc_threshold", "0", "-f", "hls", "-hls_time", "4", "-hls_list_size", "6",
    "-hls_flags", "delete_segments+independent_segments",
    "-map", "0:v:0", "-map", "0:a:0", "-s:v:0", "1920x1080", "-b:v:0", "5000k", "-maxrate:v:0", "5000k",
    "-bufsize:v:0", "10000k", "-b:a:0", "192k", "-hls_segment_filename", "/tmp/abr/stream_77/1080p/segment_%03d.ts",
    "/tmp/abr/stream_77/1080p/playlist.m3u8",
    "-map", "0:v:0", "-map", "0:a:0", "-s:v:1", "1280x720", "-b:v:1", "3000k", "-maxrate:v:1", "3000k",
    "-bufsize:v:1", "6000k", "-b:a:1", "128k", "-hls_segment_filename", "/tmp/abr/stream_77/720p/segment_%03d.ts",
    "/tmp/abr/stream_77/720p/playlist.m3u8",
]


def test_xc_vm_hls_form_with_rtmp_push_is_its_stream_and_the_push_is_an_output() -> None:
    assert stream_of(proc(XC_VM), DEFAULT_RULES) == "31"
    args = parse_ffmpeg_argv(XC_VM)
    assert args.inputs == ("http://provider.example/live/u/p/31.ts",)
    assert args.outputs[-1].startswith("rtmp://127.0.0.1:8001/")
    assert args.playlist == "/home/xc_vm/content/streams/31_.m3u8"
    assert args.progress == "http://127.0.0.1:8080/progress?stream_id=31" and args.network_input


def test_panelx_ladder_is_one_stream_from_its_outputs() -> None:
    assert stream_of(proc(ABR), DEFAULT_RULES) == "77"
    assert parse_ffmpeg_argv(ABR).playlist == "/tmp/abr/stream_77/1080p/playlist.m3u8"


@pytest.mark.parametrize(("cmd", "stream"), [
    # 14.1: the id comes from the output, never from -i
    ("ffmpeg -re -i http://origin.example/hls/index.m3u8 -c copy -f hls -hls_time 4 /srv/hls/bbc1.m3u8", "bbc1"),
    ("ffmpeg -re -i http://origin.example/hls/index.m3u8 -c copy -f hls -hls_time 4 /srv/hls/cnn.m3u8", "cnn"),
    ("ffmpeg -i http://other.panel:5000/streams/stream_9.m3u8 -c:v copy -c:a copy -f hls -hls_segment_filename"
     " /home/panelx/webapp/streams/stream_5_%03d.ts /home/panelx/webapp/streams/stream_5.m3u8", "5"),
    ("ffmpeg -i http://x/live/77.ts -c:v libx264 -b:v 3M -f hls /srv/iptv/streams/stream_77.m3u8", "77"),
    ("ffmpeg -i x -f hls /tmp/out/news.m3u8", "news"),
    ("ffmpeg -i http://origin/hls/index.m3u8 -f mpegts udp://239.0.0.1:1234", None),
    ("ffmpeg -i /srv/in/stream_4.m3u8 -f null -", None),
    ("nginx: worker process", None),
    ("python3 -m http.server stream_5.m3u8", None),
])
def test_other_shapes(cmd: str, stream: str | None) -> None:
    argv = shlex.split(cmd)
    assert stream_of(proc(argv, name=argv[0]), DEFAULT_RULES) == stream


def test_default_owners_are_the_panels_users_and_others_are_refused() -> None:
    cfg = parse_config({})
    assert [r.owners for r in cfg.streams.discover] == [
        ("panelx", "root"), ("xui", "xc_vm", "root"), ("xtreamcodes", "root"), ("root",)]
    assert stream_of(proc(PANELX, uid=0), rules_from_config(cfg)) == "5"  # root's panel: its own id, not hls's
    rules = rules_from_config(parse_config({"streams": {"discover": presets_as(1000, "panelx")}}))
    assert match("ffmpeg", tuple(PANELX), 1000, rules).stream == "5"
    refused = match("ffmpeg", tuple(PANELX), 65534, rules)  # nobody
    assert refused.stream is None and refused.refused
    assert match("ffmpeg", tuple(PANELX), None, rules).refused  # owner unknown: refused too


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
    src = ProcessesSource(parse_config({}), proc_root=None)
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
    src = ProcessesSource(parse_config({}), proc_root=None)
    assert src.update({"5": [proc(PANELX, pid=9)]}).streams["5"].restarts_total == 0
    assert src.update({"5": [proc(PANELX, pid=10)]}).streams["5"].restarts_total == 1  # PID changed in between


class Clock:
    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_exec_and_exit_events_count_a_crash_loop_that_no_round_ever_sees() -> None:
    src = ProcessesSource(parse_config({}), proc_root=None)
    events = []
    for pid in range(200, 206):  # six runs of ~50 ms each, all between two rounds
        events += [ProcEvent("exec", pid, "5"), ProcEvent("exit", pid, "5", 256)]
    seen = src.update({}, events=events).streams["5"]
    assert not seen.up and seen.restarts_total == 5 and seen.exits_total == 6  # the first start is no restart


def test_an_exit_event_after_the_round_that_saw_the_pid_vanish_is_not_counted_twice() -> None:
    src = ProcessesSource(parse_config({}), proc_root=None)
    src.update({"5": [proc(PANELX, pid=9)]})
    gone = src.update({}).streams["5"]  # the round saw it vanish before its exit event was drained
    late = src.update({}, events=[ProcEvent("exit", 9, "5", 0)]).streams["5"]
    assert gone.exits_total == late.exits_total == 1
    both = src.update({"5": [proc(PANELX, pid=10)]}, events=[ProcEvent("exec", 10, "5")]).streams["5"]
    assert both.restarts_total == 1  # exec event and scan name the same start


def test_cap_on_discovered_streams_refuses_and_counts_but_never_declared_ones() -> None:
    cfg = parse_config({"streams": {"max_discovered": 2, "static": [{"id": "decl"}]}})
    src = ProcessesSource(cfg, proc_root=None)
    res = src.update({"a": [proc(PANELX, pid=1)], "b": [proc(PANELX, pid=2)], "c": [proc(PANELX, pid=3)],
                      "decl": [proc(PANELX, pid=4)]})
    assert set(res.streams) == {"a", "b", "decl"} and res.refused_total["cap"] == 1
    again = src.update({"a": [proc(PANELX, pid=1)], "b": [proc(PANELX, pid=2)], "c": [proc(PANELX, pid=3)]})
    assert again.refused_total["cap"] == 1  # the same refused process is counted once


def test_discovered_stream_without_process_is_forgotten_after_forget_after_declared_never() -> None:
    clock = Clock()
    cfg = parse_config({"streams": {"forget_after": "15m", "static": [{"id": "decl"}]}})
    src = ProcessesSource(cfg, proc_root=None, clock=clock)
    src.update({"5": [proc(PANELX, pid=9)], "decl": [proc(PANELX, pid=8)]})
    clock.now += 14 * 60
    assert set(src.update({}).streams) == {"5", "decl"}  # down, still in the inventory
    clock.now += 2 * 60
    res = src.update({})
    assert set(res.streams) == {"decl"} and res.forgotten_total == 1


def test_remembered_streams_come_back_down_and_only_for_allowed_owners(tmp_path: Path) -> None:
    clock = Clock()
    cfg = parse_config({"streams": {"discover": presets_as(0), "forget_after": "15m"}})
    memory = StreamMemory(tmp_path / "streams.json")
    src = ProcessesSource(cfg, proc_root=None, memory=memory, clock=clock)
    src.update({"5": [proc(PANELX, pid=9)]})
    state = json.loads((tmp_path / "streams.json").read_text())
    assert [s["stream"] for s in state["streams"]] == ["5"] and state["streams"][0]["uid"] == 0
    # an entry of an owner no rule allows (written by hand, or before the config changed) is not trusted
    state["streams"].append({"stream": "66", "last_seen": clock.now, "uid": 65534})
    (tmp_path / "streams.json").write_text(json.dumps(state))

    clock.now += 60
    after = ProcessesSource(cfg, proc_root=None, memory=memory, clock=clock).update({})
    assert set(after.streams) == {"5"} and not after.streams["5"].up and after.streams["5"].owner_allowed
    assert after.streams["5"].playlist == "/home/panelx/webapp/streams/stream_5.m3u8"

    clock.now += 15 * 60  # exporter down past forget_after: the entry expires at load
    assert ProcessesSource(cfg, proc_root=None, memory=memory, clock=clock).update({}).streams == {}


def test_malformed_state_file_is_ignored_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "streams.json"
    path.write_text('{"version": 1, "streams": [{"stream": "../../etc", "last_seen": 1}]}')
    assert StreamMemory(path).load() == []
    path.write_bytes(b"\xff\xfe")
    assert StreamMemory(path).load() == []


def test_paths_narrow_a_preset_to_the_panels_folders() -> None:
    rules = rules_from_config(parse_config({"streams": {"discover": [
        {"preset": "panelx", "user": [0], "paths": ["/home/panelx/webapp/streams", "/tmp/abr"]}]}}))
    assert stream_of(proc(PANELX), rules) == "5"
    assert stream_of(proc(ABR), rules) == "77"
    elsewhere = [*PANELX[:-1], "/srv/other/stream_5.m3u8"]
    assert stream_of(proc(elsewhere), rules) is None
    with pytest.raises(ConfigError, match="absolute"):
        parse_config({"streams": {"discover": [{"preset": "panelx", "paths": ["streams"]}]}})
    with pytest.raises(ConfigError, match="paths narrows a preset"):
        parse_config({"streams": {"discover": [{"process": "ffmpeg", "cmdline": "(?P<stream>x)", "paths": ["/a"]}]}})


def test_inventory_provenance_a_stream_of_a_disallowed_owner_is_never_restartable() -> None:
    """Whatever put it there (a remembered entry, a rule change), the receiver asks ``restartable``."""
    cfg = parse_config({"streams": {"discover": presets_as(0), "static": [{"id": "decl"}]}})
    src = ProcessesSource(cfg, proc_root=None)
    res = src.update({"5": [proc(PANELX, pid=9, uid=0)], "6": [proc(PANELX, pid=10, uid=65534)],
                      "decl": [proc(PANELX, pid=11, uid=65534)]})
    inventory = build_inventory(cfg, res, {})
    assert inventory["5"].restartable and not inventory["5"].declared
    assert not inventory["6"].restartable  # only update() was fed it: discovery itself would refuse it
    assert inventory["decl"].declared and inventory["decl"].restartable
