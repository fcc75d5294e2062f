"""Discovery against real processes with the panels' own command lines (issue 14.1, 14.7, 15.6).

A loopback HLS origin (a real ffmpeg writing a live playlist, served over HTTP) stands in for the
provider. Restreams and panel processes are real ffmpeg runs with the argv each panel builds; the
processes source reads the real /proc. Other ffmpegs on the host may be discovered too: each test
asserts about its own PIDs only.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.config import parse_config
from exporter.sources import SampleContext
from exporter.sources.processes import ProcessesSource
from exporter.sources.processes_result import ProcessesResult
from tests.helpers import Proc, http_server, require_binary, wait_until

pytestmark = pytest.mark.slow

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def sample(source: ProcessesSource) -> ProcessesResult:
    return source.sample(SampleContext(time.time(), MappingProxyType({})))


def pids_of(result: ProcessesResult, stream: str) -> set[int]:
    seen = result.streams.get(stream)
    return set(seen.pids) if seen else set()


def until_stream(source: ProcessesSource, stream: str, pids: set[int], what: str) -> ProcessesResult:
    """Sample until ``stream`` is served by exactly ``pids``; the result of that round."""
    def check() -> ProcessesResult | None:
        res = sample(source)
        return res if pids_of(res, stream) == pids else None

    return wait_until(check, timeout=30, what=what)


def origin_argv(playlist: Path, audio: bool = False) -> list[str]:
    """The provider: a live HLS channel (test pattern, with a tone when ``audio``), 1 s segments."""
    argv = [require_binary("ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-re",
            "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25"]
    if audio:
        argv += ["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    argv += ["-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p"]
    if audio:
        argv += ["-c:a", "aac", "-b:a", "64k"]
    return [*argv, "-f", "hls", "-hls_time", "1", "-hls_list_size", "6", "-hls_flags", "delete_segments",
            str(playlist)]


@contextlib.contextmanager
def origin(folder: Path, rel: str, procs: Callable[..., Proc], audio: bool = False) -> Iterator[str]:
    """A live HLS origin serving ``folder`` over loopback HTTP; yields the playlist's URL."""
    playlist = folder / rel
    playlist.parent.mkdir(parents=True, exist_ok=True)
    procs(origin_argv(playlist, audio), log=folder.parent / "origin.log")
    wait_until(lambda: playlist.exists() and playlist.read_text().count("#EXTINF") >= 2, timeout=30,
               what="origin playlist with two segments")
    handler = functools.partial(QuietFiles, directory=str(folder))
    with http_server(handler) as address:  # type: ignore[arg-type]
        yield f"http://{address}/{rel}"


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass


def test_restreams_of_one_hls_source_are_named_by_their_outputs(tmp_path: Path, procs: Callable[..., Proc]) -> None:
    """14.1: two restreams of .../index.m3u8 writing bbc1.m3u8 and cnn.m3u8 are streams bbc1 and cnn."""
    out = tmp_path / "hls"
    out.mkdir()
    with origin(tmp_path / "origin", "live/index.m3u8", procs) as url:
        restreams = {
            name: procs([require_binary("ffmpeg"), "-hide_banner", "-loglevel", "warning", "-nostdin", "-re",
                         "-i", url, "-c", "copy", "-f", "hls", "-hls_time", "4", str(out / f"{name}.m3u8")],
                        log=tmp_path / f"{name}.log")
            for name in ("bbc1", "cnn")
        }
        source = ProcessesSource(parse_config({"streams": {"discover": [{"preset": "hls"}],
                                                           "process_events": "off"}}))

        def both() -> ProcessesResult | None:
            res = sample(source)
            ok = all(pids_of(res, n) == {p.pid} for n, p in restreams.items())
            return res if ok else None

        res = wait_until(both, timeout=30, what="bbc1 and cnn discovered from their outputs")
        assert all(p.alive() for p in restreams.values())
        restream_pids = {p.pid for p in restreams.values()}
        assert not pids_of(res, "index") & restream_pids  # the input's name is nobody's stream id
        assert res.streams["bbc1"].playlist == str(out / "bbc1.m3u8")


def panelx_argv(source: str, streams: Path, stream_id: int) -> list[str]:
    """PanelX's buildFfmpegCommand (server/ffmpegManager.ts), copy codecs, as it spawns ffmpeg."""
    return [
        require_binary("ffmpeg"), "-hide_banner", "-loglevel", "warning", "-y", "-user_agent", UA,
        "-headers", "Referer: http://provider.example/\r\n",
        "-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_delay_max", "5", "-timeout", "10000000",
        "-i", source, "-c:v", "copy", "-c:a", "copy", "-f", "hls", "-hls_time", "10", "-hls_list_size", "6",
        "-hls_flags", "delete_segments+append_list",
        "-hls_segment_filename", str(streams / f"stream_{stream_id}_%03d.ts"), "-hls_segment_type", "mpegts",
        "-hls_base_url", "/streams/", str(streams / f"stream_{stream_id}.m3u8"),
    ]


def test_panelx_stream_reading_another_panels_stream_9_is_its_own_id(
        tmp_path: Path, procs: Callable[..., Proc]) -> None:
    """14.1: the input is another panel's /streams/stream_<9>.m3u8; the stream is <5>, what it writes."""
    streams = tmp_path / "webapp" / "streams"
    streams.mkdir(parents=True)
    # ids no other ffmpeg on a shared test host writes (the panelx preset matches any folder)
    with origin(tmp_path / "other-panel", "streams/stream_48609.m3u8", procs) as url:
        panelx = procs(panelx_argv(url, streams, 48605), log=tmp_path / "panelx5.log")
        source = ProcessesSource(parse_config({"streams": {"discover": [{"preset": "panelx", "user": ["root"]}],
                                                           "process_events": "off"}}))
        res = until_stream(source, "48605", {panelx.pid}, "PanelX stream 48605 discovered")
        assert panelx.pid not in pids_of(res, "48609")
        wait_until(lambda: (streams / "stream_48605.m3u8").exists(), timeout=30, what="the stream writes its playlist")
        assert res.streams["48605"].playlist == str(streams / "stream_48605.m3u8")


def abr_argv(source: str, out: Path, stream_id: int) -> list[str]:
    """PanelX's multiBitrateManager buildFFmpegCommand: one process, one output per rendition (two small
    renditions here, for a shared 2-core machine; the argv's shape is the panel's)."""
    argv = [require_binary("ffmpeg"), "-i", source, "-c:a", "aac", "-c:v", "libx264", "-preset", "veryfast",
            "-g", "48", "-sc_threshold", "0", "-f", "hls", "-hls_time", "4", "-hls_list_size", "6",
            "-hls_flags", "delete_segments+independent_segments"]
    for index, (label, size, rate) in enumerate([("240p", "160x120", "200k"), ("144p", "96x72", "100k")]):
        folder = out / f"stream_{stream_id}" / label
        folder.mkdir(parents=True)
        argv += ["-map", "0:v:0", "-map", "0:a:0", f"-s:v:{index}", size, f"-b:v:{index}", rate,
                 f"-maxrate:v:{index}", rate, f"-bufsize:v:{index}", rate, f"-b:a:{index}", "64k",
                 "-hls_segment_filename", str(folder / "segment_%03d.ts"), str(folder / "playlist.m3u8")]
    return argv


def test_panelx_ladder_belongs_to_its_stream(tmp_path: Path, procs: Callable[..., Proc]) -> None:
    """14.7: stream_<id>/<label>/playlist.m3u8 renditions are stream <id>, one set of series."""
    abr = tmp_path / "abr"
    with origin(tmp_path / "provider", "live/77.m3u8", procs, audio=True) as url:
        ladder = procs(abr_argv(url, abr, 48677), log=tmp_path / "abr.log")
        source = ProcessesSource(parse_config({"streams": {"discover": [{"preset": "panelx", "user": [0]}],
                                                           "process_events": "off"}}))
        res = until_stream(source, "48677", {ladder.pid}, "the ladder discovered as its stream")
        assert res.streams["48677"].playlist == str(abr / "stream_48677" / "240p" / "playlist.m3u8")
        wait_until(lambda: (abr / "stream_48677" / "144p" / "playlist.m3u8").exists(), timeout=60,
                   what=f"both renditions written: {ladder.output()[-500:]}")
        assert ladder.alive()


def fake_ffmpeg(folder: Path, name: str) -> list[str]:
    """A process named ``ffmpeg`` (a symlink to the shell, which any user can run) naming
    ``.../<name>.m3u8`` as its output; ``; :`` keeps the shell from exec'ing sleep in its place."""
    link = folder / "ffmpeg"
    if not link.exists():
        link.symlink_to(os.path.realpath("/bin/sh"))
    return [str(link), "-c", "sleep 120; :", f"{folder}/{name}.m3u8"]


def run_as(user: str, argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, user=user, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def test_a_local_users_fake_ffmpeg_never_becomes_a_stream(world_dir: Path) -> None:
    """15.6: ``ffmpeg`` (symlink to python) with .../rtfake_1.m3u8, run as nobody, is refused and counted;
    the same process is a stream once the config names nobody as the owner (the owner is what decides)."""
    fakes = [run_as("nobody", fake_ffmpeg(world_dir, f"rtfake_{i}")) for i in range(1, 4)]
    try:
        wait_until(lambda: all(Path(f"/proc/{f.pid}/cmdline").read_bytes().count(b"rtfake") == 1 for f in fakes),
                   what="fake ffmpegs exec'd")
        default = ProcessesSource(parse_config({"streams": {"process_events": "off"}}))
        res = sample(default)
        assert not [s for s in res.streams if s.startswith("rtfake")]
        assert res.refused_total["owner"] >= 3
        assert sample(default).refused_total["owner"] == res.refused_total["owner"]  # counted once each

        allowed = ProcessesSource(parse_config({"streams": {"discover": [{"preset": "hls", "user": ["nobody"]}],
                                                            "process_events": "off", "max_discovered": 2}}))
        res = sample(allowed)
        found = {s for s in res.streams if s.startswith("rtfake")}
        assert len(found) == 2 and res.refused_total["cap"] >= 1  # the third is over the cap
        assert all(res.streams[s].owner_allowed for s in found)
    finally:
        for fake in fakes:
            os.killpg(fake.pid, signal.SIGKILL)  # the shell and its sleep
            fake.wait(5)
