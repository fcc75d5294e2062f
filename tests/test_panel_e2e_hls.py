"""A plain ffmpeg HLS restream host end to end with ``profile: hls``: two restreams of one HLS source.

The restreams read the same input playlist (``-i http://origin/src/index.m3u8``) and write ``bbc1.m3u8`` and
``cnn.m3u8``: their ids come from the outputs. nginx serves them with its combined log, viewers watch with a
line and password in the URL, a supervisor (as systemd's ``Restart=always`` would) starts a stream whose ffmpeg
died, and the restart is a signal. ffmpeg, nginx, the viewers and the exporter are real; nothing stands in.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.actions_support import NODE, restart_through_webhook
from tests.helpers import Exporter, Proc, Samples, ffmpeg_hls_argv, free_port, metric, require_binary, wait_until
from tests.nginx import start_nginx, write_nginx_conf
from tests.players import Player

pytestmark = pytest.mark.slow

TOKEN = "webhook-t0ken"
URL = r"/hls/(?P<line>[^/]+)/(?P<password>[^/]+)/(?P<stream>[a-z0-9]+)/"

NGINX_HTTP = """
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
    server {{
        listen 127.0.0.1:{origin_port};
        access_log {root}/origin.log combined;
        location /src/ {{ alias {origin}/; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        access_log {root}/access.log combined;
        location ~ "^/hls/[^/]+/[^/]+/(?<sid>[a-z0-9]+)/(?<file>[^/]+)$" {{ alias {out}/$file; }}
    }}
"""

# systemd's Restart=always in a few lines: the restream is started again when its ffmpeg exits.
SUPERVISOR = r"""
import subprocess, sys, time
argv = sys.argv[1:]
while True:
    subprocess.run(argv, stdin=subprocess.DEVNULL)
    time.sleep(0.3)
"""


def restream_argv(source: str, out: Path, name: str) -> list[str]:
    return [require_binary("ffmpeg"), "-hide_banner", "-loglevel", "warning", "-nostdin", "-y",
            "-user_agent", "restreamer/1.0", "-i", source, "-c", "copy", "-f", "hls", "-hls_time", "2",
            "-hls_list_size", "6", "-hls_flags", "delete_segments",
            "-hls_segment_filename", str(out / f"{name}_%d.ts"), str(out / f"{name}.m3u8")]


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[int, Path, list[Proc]]]:
    root = tmp_path / "host"
    origin, out = root / "origin", root / "out"
    for d in (origin, out, root / "tmp"):
        d.mkdir(parents=True)
    port, origin_port = free_port(), free_port()
    write_nginx_conf(root, NGINX_HTTP.format(root=root, port=port, origin_port=origin_port, origin=origin, out=out))
    procs = [Proc(ffmpeg_hls_argv(origin / "index.m3u8"), log=root / "origin.out").start(), start_nginx(root)]
    try:
        wait_until(lambda: (origin / "index.m3u8").exists(), timeout=30, what="the origin's playlist")
        source = f"http://127.0.0.1:{origin_port}/src/index.m3u8"
        for name in ("bbc1", "cnn"):
            procs.append(Proc([sys.executable, "-c", SUPERVISOR, *restream_argv(source, out, name)],
                              log=root / f"{name}.log").start())
        yield port, root, procs
    finally:
        for p in reversed(procs):
            p.stop()


def _v(samples: Samples, name: str, **labels: str) -> float:
    return metric(samples, name, **labels) or 0.0


class RestreamPlayer(Player):
    """A player of a plain restream: polls the playlist, fetches each new segment (relative names) once."""

    def __init__(self, url: str, source: str, agent: str = "VLC/3.0.18") -> None:
        super().__init__(source, agent)
        self.url = url

    def poll(self, client: httpx.Client) -> None:
        playlist = self.get(client, self.url)
        self.fetch_new_segments(client, playlist.text, r"^([^#\s]\S*\.ts)$", self.url.rsplit("/", 1)[0] + "/")

def _origin_bytes(log: Path) -> int:
    """Body bytes nginx served the restreams (ffmpeg asks with a Range: 206 answers)."""
    return sum(int(m) for m in re.findall(r'" 2\d\d (\d+) ', log.read_text()))


def test_hls_restreams_end_to_end(tmp_path: Path, host: tuple[int, Path, list[Proc]],
                                  exporter: Callable[..., Exporter]) -> None:
    port, root, _ = host
    (tmp_path / "token").write_text(TOKEN + "\n")
    cfg = tmp_path / "exporter.yml"
    cfg.write_text(yaml.safe_dump({
        "profile": "hls", "node": NODE, "sample_interval": "1s",
        "viewers": {"ports": [port], "access_log": {"path": str(root / "access.log"), "preset": None,
                                                    "urls": [URL]}},
        "actions": {"token_file": str(tmp_path / "token"), "journal": str(tmp_path / "a.sqlite"),
                    "verify_timeout": "40s", "restart": {"type": "signal", "signal": "TERM"}},
    }))
    exp = exporter(cfg)  # the fixture stops it whichever step fails
    base = f"http://127.0.0.1:{port}"
    players = [RestreamPlayer(f"{base}/hls/carol/car0l-pa55/bbc1/bbc1.m3u8", "127.1.0.30"),
               RestreamPlayer(f"{base}/hls/dave/dav3-pa55/bbc1/bbc1.m3u8", "127.1.0.31"),
               RestreamPlayer(f"{base}/hls/dave/dav3-pa55/cnn/cnn.m3u8", "127.1.0.31")]
    try:
        s = exp.wait_for(lambda s: _v(s, "iptv_stream_up", stream="bbc1") == 1 and _v(
            s, "iptv_stream_up", stream="cnn") == 1, "bbc1 and cnn up, named by their outputs", timeout=60)
        # (the origin's own ffmpeg writes index.m3u8 and is a stream too; the restreams that read it are not "index")
        exp.wait_for(lambda s: _v(s, "iptv_stream_segment_duration_seconds", stream="bbc1") == 2, "HLS", timeout=30)
        for p in players:
            p.start()
        s = exp.wait_for(lambda s: _v(s, "iptv_stream_viewers", stream="bbc1") == 2 and _v(
            s, "iptv_stream_viewers", stream="cnn") == 1, "2 viewers on bbc1, 1 on cnn", timeout=40)
        assert _v(s, "iptv_lines_online") == 2
        # Ingest of both restreams (network input: from their sockets) within 5% of what the origin served.
        wait_until(lambda: abs(sum(_v(exp.scrape(), "iptv_stream_read_bytes_total", stream=n) for n in ("bbc1", "cnn"))
                               - _origin_bytes(root / "origin.log")) <= 0.05 * _origin_bytes(root / "origin.log"),
                   timeout=30, what="ingest within 5% of the origin's log")
        for kind in ("input", "decode", "exit", "other"):
            assert _v(s, "iptv_stream_errors_total", stream="bbc1", kind=kind) == 0, kind
    finally:
        for p in players:
            p.stop()
    received = players[0].body_bytes + players[1].body_bytes
    exp.wait_for(lambda s: abs(_v(s, "iptv_stream_sent_bytes_total", stream="bbc1") - received) <= 0.01 * received,
                 f"bbc1's bytes within 1% of the {received} its players received", timeout=20)

    try:
        action = restart_through_webhook(exp.url, TOKEN, "cnn")
        assert action["result"] == "ok", action
        exp.wait_for(lambda s: _v(s, "iptv_stream_restarts_total", stream="cnn") >= 1 and _v(
            s, "iptv_stream_up", stream="cnn") == 1, "cnn restarted and up", timeout=30)
        shown = exp.metrics_text() + exp.log_text() + str(action)
        for secret in ("car0l-pa55", "dav3-pa55"):
            assert secret not in shown
    finally:
        exp.stop()
