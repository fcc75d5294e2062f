"""The panels' progress URLs through a real nginx with the shipped snippet, pushed by a real ffmpeg.

XUI.one / XC_VM run ffmpeg with ``-progress http://127.0.0.1:<port>/progress?stream_id=<id>`` and Xtream Codes
with ``/progress.php?stream_id=<id>``, on the panel's own nginx port. deploy/nginx/iptv-progress.conf forwards
both to the exporter. ffmpeg sends one chunked POST for its whole life, so the point of the snippet is that
progress arrives while ffmpeg runs: a second nginx server with the same locations but nginx's default request
buffering shows the difference (nothing while ffmpeg runs; at its exit everything at once, or nothing when
nginx sees ffmpeg close first).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers import Exporter, Proc, free_port, metric, require_binary, wait_until
from tests.nginx import start_nginx, write_nginx_conf

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SNIPPET = REPO / "deploy" / "nginx" / "iptv-progress.conf"

NGINX_HTTP = """
    access_log off;
    client_max_body_size 8m;
    server {{
        listen 127.0.0.1:{port};
        include {root}/iptv-progress.conf;
    }}
    server {{
        listen 127.0.0.1:{buffered_port};
        include {root}/iptv-progress-buffered.conf;
    }}
"""


def _ffmpeg_pushing(url: str, seconds: int) -> list[str]:
    return [require_binary("ffmpeg"), "-hide_banner", "-loglevel", "warning", "-nostdin", "-y",
            "-progress", url, "-stats_period", "0.5",
            "-re", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-t", str(seconds), "-f", "null", "-"]


def test_panel_progress_urls_through_nginx_arrive_while_ffmpeg_runs(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text(yaml.safe_dump({
        "sample_interval": "1s",
        "streams": {"discover": [], "static": [{"id": "7"}, {"id": "8"}, {"id": "9"}]},
        "viewers": {"ports": [], "access_log": None},
    }))
    exp = Exporter(cfg, tmp_path).start()
    root = tmp_path / "nginx"
    (root / "tmp").mkdir(parents=True)
    snippet = SNIPPET.read_text().replace("127.0.0.1:9756", f"127.0.0.1:{exp.port}")
    assert "proxy_request_buffering off;" in snippet and "proxy_http_version 1.1;" in snippet
    (root / "iptv-progress.conf").write_text(snippet)
    (root / "iptv-progress-buffered.conf").write_text(snippet.replace("proxy_request_buffering off;", ""))
    port, buffered_port = free_port(), free_port()
    write_nginx_conf(root, NGINX_HTTP.format(root=root, port=port, buffered_port=buffered_port), connections=64)
    nginx = start_nginx(root)
    pushers: list[Proc] = []
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/progress", timeout=2).status_code == 405,
                   timeout=15, what="nginx forwarding /progress to the exporter")
        xui = Proc(_ffmpeg_pushing(f"http://127.0.0.1:{port}/progress?stream_id=7", 40), log=tmp_path / "7.log")
        xtream = Proc(_ffmpeg_pushing(f"http://127.0.0.1:{port}/progress.php?stream_id=8", 40), log=tmp_path / "8.log")
        buffered = Proc(_ffmpeg_pushing(f"http://127.0.0.1:{buffered_port}/progress?stream_id=9", 8),
                        log=tmp_path / "9.log")
        pushers += [xui.start(), xtream.start(), buffered.start()]

        def frames(stream: str) -> float:
            return metric(exp.scrape(), "iptv_stream_frames_total", stream=stream) or 0.0

        wait_until(lambda: frames("7") > 0 and frames("8") > 0, timeout=30,
                   what=f"progress of 7 and 8 through nginx; nginx: {(root / 'error.log').read_text()}")
        first = frames("7")
        wait_until(lambda: frames("7") > first + 10, timeout=20, what="progress of 7 still arriving")
        assert xui.alive() and xtream.alive(), "progress must arrive while ffmpeg runs, not only at its exit"

        # nginx's default request buffering: nothing while ffmpeg runs, everything once it exits.
        while buffered.alive():
            assert frames("9") == 0, "a buffered push should not arrive before ffmpeg exits"
            try:
                buffered.popen.wait(0.5)
            except subprocess.TimeoutExpired:
                continue
        # ...and after it, all at once or not at all: ffmpeg closes the connection without waiting for an answer,
        # and nginx, which only then connects to the exporter, may drop the request ("client prematurely closed").
        seen = frames("7")
        wait_until(lambda: frames("7") > seen + 25, timeout=20, what="a few more rounds of the exporter")
        assert frames("9") in (0, 200)
    finally:
        for p in pushers:
            p.stop()
        nginx.stop()
        exp.stop()
