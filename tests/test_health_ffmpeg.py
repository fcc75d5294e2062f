"""Stream health with real ffmpeg and the real exporter process: progress (file and push), playlists, errors.

Each test starts the exporter first (ffmpeg gives up if its ``-progress`` URL does not answer), then tiny
ffmpeg restreams on loopback; ffmpeg processes are stopped before the exporter at teardown.
"""

from __future__ import annotations

import http.server
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import Exporter, Proc, ffmpeg_hls_argv, free_port, metric, require_binary

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def write_config(tmp: Path, streams: list[str], extra: str = "") -> Path:
    """Static streams matched by their playlist path under ``tmp`` (never another test's ffmpeg)."""
    lines = []
    for s in streams:
        playlist = tmp / f"{s}.m3u8"
        lines.append(f"    - {{id: {s}, cmdline: '{re.escape(str(playlist))}', playlist: '{playlist}'}}")
    path = tmp / "config.yml"
    path.write_text("sample_interval: 1s\nviewers: {ports: [], access_log: null}\nstreams:\n  discover: []\n"
                    "  progress: '" + str(tmp) + "/{stream}.progress'\n  static:\n" + "\n".join(lines) + "\n"
                    + extra)
    return path


def healthy(s: Samples, stream: str) -> bool:
    fps = metric(s, "iptv_stream_fps", stream=stream) or 0
    speed = metric(s, "iptv_stream_speed_ratio", stream=stream) or 0
    return 20 <= fps <= 30 and 0.8 <= speed <= 1.2 and (metric(s, "iptv_stream_playlist_segments", stream=stream)
                                                       or 0) >= 1


def test_progress_file_and_push_show_healthy_streams(
    tmp_path: Path, exporter: Callable[..., Exporter], procs: Callable[..., Proc]
) -> None:
    exp = exporter(write_config(tmp_path, ["filed", "pushed"]))
    procs(ffmpeg_hls_argv(tmp_path / "filed.m3u8", progress=str(tmp_path / "filed.progress")),
          log=tmp_path / "filed.log")
    procs(ffmpeg_hls_argv(tmp_path / "pushed.m3u8", progress=f"{exp.url}/progress/pushed"),
          log=tmp_path / "pushed.log")

    m = exp.wait_for(lambda s: healthy(s, "filed") and healthy(s, "pushed"), "both streams healthy", timeout=30)
    now = time.time()
    for stream in ("filed", "pushed"):
        assert metric(m, "iptv_stream_up", stream=stream) == 1
        assert (metric(m, "iptv_stream_frames_total", stream=stream) or 0) > 25
        assert metric(m, "iptv_stream_dropped_frames_total", stream=stream) == 0
        assert now - 5 < (metric(m, "iptv_stream_progress_timestamp_seconds", stream=stream) or 0) <= now + 1
        assert now - 5 < (metric(m, "iptv_stream_playlist_updated_timestamp_seconds", stream=stream) or 0) <= now + 1
        assert metric(m, "iptv_stream_segment_duration_seconds", stream=stream) == 1
        assert (metric(m, "iptv_stream_output_bytes_per_second", stream=stream) or 0) > 1_250
        assert metric(m, "iptv_stream_errors_total", stream=stream, kind="exit") == 0
    assert metric(m, "iptv_progress_skipped_lines_total", via="file") == 0
    assert metric(m, "iptv_progress_skipped_lines_total", via="push") == 0
    assert metric(m, "iptv_exporter_source_up", source="progress") == 1
    assert metric(m, "iptv_exporter_source_up", source="hls") == 1
    frames = metric(m, "iptv_stream_frames_total", stream="pushed") or 0
    exp.wait_for(lambda s: (metric(s, "iptv_stream_frames_total", stream="pushed") or 0) > frames + 25,
                 "pushed frames keep counting")


def test_sigstop_freezes_progress_and_playlist_but_not_up(
    tmp_path: Path, exporter: Callable[..., Exporter], procs: Callable[..., Proc]
) -> None:
    exp = exporter(write_config(tmp_path, ["frozen"]))
    # Xtream's form of the push URL: the exporter takes the panel receiver's place.
    ff = procs(ffmpeg_hls_argv(tmp_path / "frozen.m3u8", progress=f"{exp.url}/progress.php?stream_id=frozen"),
               log=tmp_path / "frozen.log")
    exp.wait_for(lambda s: healthy(s, "frozen"), "frozen stream healthy first", timeout=30)

    def sampled_after(t: float) -> Callable[[Samples], bool]:
        return lambda s: (metric(s, "iptv_exporter_last_sample_timestamp_seconds") or 0) > t

    ff.signal(signal.SIGSTOP)
    try:
        stopped = time.time()
        first = exp.wait_for(sampled_after(stopped + 2), "two samples after SIGSTOP")
        later = exp.wait_for(sampled_after(stopped + 4), "two more samples")
        for name in ("iptv_stream_progress_timestamp_seconds", "iptv_stream_playlist_updated_timestamp_seconds"):
            frozen_at = metric(first, name, stream="frozen")
            assert frozen_at is not None and frozen_at <= stopped + 1.0, name
            assert metric(later, name, stream="frozen") == frozen_at, f"{name} advanced while SIGSTOPped"
        assert metric(later, "iptv_stream_up", stream="frozen") == 1  # the process is alive, just not working
        assert metric(later, "iptv_stream_frames_total", stream="frozen") == metric(
            first, "iptv_stream_frames_total", stream="frozen")
    finally:
        ff.signal(signal.SIGCONT)
    resumed = time.time()
    exp.wait_for(lambda s: (metric(s, "iptv_stream_progress_timestamp_seconds", stream="frozen") or 0) > resumed,
                 "progress advances again after SIGCONT")


class PacedTsServer:
    """Serves one MPEG-TS file at about its real-time rate to every GET, until stopped (the input dies)."""

    def __init__(self, data: bytes, seconds: float) -> None:
        self.data = data
        self.rate = len(data) / seconds
        self.stopped = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                chunk = 4096
                for i in range(0, len(server.data), chunk):
                    if server.stopped.is_set():
                        return
                    try:
                        self.wfile.write(server.data[i:i + chunk])
                    except OSError:
                        return
                    server.stopped.wait(chunk / server.rate)  # pacing, not synchronisation

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return None

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/live.ts"

    def start(self) -> PacedTsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        """End every response and close the listening socket: reconnects are refused from now on."""
        if not self.stopped.is_set():
            self.stopped.set()
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture
def ts_source(tmp_path: Path) -> Iterator[PacedTsServer]:
    ts = tmp_path / "source.ts"
    argv = [require_binary("ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
            "-i", "testsrc=size=160x120:rate=25", "-t", "30", "-c:v", "libx264", "-preset", "ultrafast",
            "-g", "25", "-pix_fmt", "yuv420p", "-f", "mpegts", str(ts)]
    gen = Proc(argv).start()
    assert gen.popen.wait(60) == 0, "could not generate the source TS"
    server = PacedTsServer(ts.read_bytes(), 30).start()
    yield server
    server.stop()


def test_input_dies_errors_and_stall_become_visible(
    tmp_path: Path, exporter: Callable[..., Exporter], procs: Callable[..., Proc], ts_source: PacedTsServer
) -> None:
    log = tmp_path / "dies.stderr"
    exp = exporter(write_config(tmp_path, ["dies"], extra=f"errors:\n  logs:\n    - {{path: '{log}', stream: dies}}\n"))
    argv = ffmpeg_hls_argv(tmp_path / "dies.m3u8", source=ts_source.url, progress=str(tmp_path / "dies.progress"),
                           extra_input=["-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_delay_max", "1",
                                        "-analyzeduration", "500000", "-probesize", "32768"])  # start in 0.5 s
    procs(argv, log=log)
    m = exp.wait_for(lambda s: (metric(s, "iptv_stream_frames_total", stream="dies") or 0) > 25
                     and metric(s, "iptv_stream_up", stream="dies") == 1, "stream runs from the HTTP input",
                     timeout=30)
    for kind in ("input", "decode", "exit", "other"):
        assert metric(m, "iptv_stream_errors_total", stream="dies", kind=kind) == 0

    ts_source.stop()
    died = exp.wait_for(lambda s: (metric(s, "iptv_stream_errors_total", stream="dies", kind="input") or 0) >= 1
                        and (metric(s, "iptv_stream_errors_total", stream="dies", kind="exit") or 0) >= 1
                        and metric(s, "iptv_stream_up", stream="dies") == 0,
                        "input errors from ffmpeg's log, then the exit", timeout=30)
    assert metric(died, "iptv_error_log_files") == 1
    assert metric(died, "iptv_stream_fps", stream="dies") == 0  # ffmpeg reported progress=end
    stamp = metric(died, "iptv_stream_progress_timestamp_seconds", stream="dies")
    playlist_stamp = metric(died, "iptv_stream_playlist_updated_timestamp_seconds", stream="dies")
    seen = metric(died, "iptv_exporter_last_sample_timestamp_seconds") or 0
    later = exp.wait_for(lambda s: (metric(s, "iptv_exporter_last_sample_timestamp_seconds") or 0) > seen + 2,
                         "two more samples")
    assert metric(later, "iptv_stream_progress_timestamp_seconds", stream="dies") == stamp  # stalled
    assert metric(later, "iptv_stream_playlist_updated_timestamp_seconds", stream="dies") == playlist_stamp
    assert "Connection refused" in log.read_text() or "Input/output error" in log.read_text()


def test_garbage_in_progress_file_and_push_is_skipped_and_counted(
    tmp_path: Path, exporter: Callable[..., Exporter]
) -> None:
    exp = exporter(write_config(tmp_path, ["g", "gp"]))
    block = "frame={n}\nfps=25.00\nout_time_us={us}\ndup_frames=0\ndrop_frames={d}\nspeed=1.00x\nprogress=continue\n"
    (tmp_path / "g.progress").write_text(
        block.format(n=25, us=1000000, d=0) + "\x00\x01binary junk\nfps=fast\n" + block.format(n=50, us=2000000, d=1))

    def body() -> Iterator[bytes]:
        yield block.format(n=10, us=400000, d=0).encode()
        yield b"<html>not progress</html>\nspeed=quick\n=\n"
        yield block.format(n=20, us=800000, d=0).encode()

    r = httpx.post(exp.url + "/progress/gp", content=body(), timeout=10)
    assert r.status_code == 204
    m = exp.wait_for(lambda s: metric(s, "iptv_stream_frames_total", stream="g") == 50
                     and metric(s, "iptv_stream_frames_total", stream="gp") == 20, "both reports read")
    assert metric(m, "iptv_progress_skipped_lines_total", via="file") == 2
    assert metric(m, "iptv_progress_skipped_lines_total", via="push") == 3
    assert metric(m, "iptv_stream_dropped_frames_total", stream="g") == 1
    assert metric(m, "iptv_stream_output_time_seconds", stream="gp") == pytest.approx(0.8)
    assert httpx.post(exp.url + "/progress/..%2F..", content=b"").status_code in (400, 404)
