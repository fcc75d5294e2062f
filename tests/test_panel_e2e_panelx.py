"""PanelX end to end, in its real shapes, with nothing but ``profile: panelx`` and the paths in the config.

Real parts: an origin (ffmpeg writing HLS, served by nginx) that PanelX restreams; ffmpeg started with the argv
PanelX's server/ffmpegManager.ts builds; nginx in front of the app as PanelX's nginx.conf has it (``\\.m3u8$`` and
``\\.ts$`` proxied to the app on port 5000's stand-in, nginx's default combined access log); HLS viewers on their
own loopback addresses with their line's password in the URL (``/live/<u>/<p>/<id>.m3u8`` then
``/streams/stream_<id>_<n>.ts``); the exporter as a real process; a restart through the webhook and PanelX's own
login + restart API. The Node app itself is a stand-in (tests/panelx_standin.py says why) that writes its pm2 logs
as pm2 does, viewer chatter included: the healthy stream must show no error (the false alert of issue 14).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.actions_support import NODE, restart_through_webhook
from tests.helpers import Exporter, Proc, Samples, ffmpeg_hls_argv, free_port, metric, wait_until
from tests.mmdb import PLACES, write_dbs
from tests.nginx import start_nginx, write_nginx_conf
from tests.panelx_standin import PanelX
from tests.players import Player

pytestmark = pytest.mark.slow

STREAM = "5417"  # PanelX ids are integers; an unusual one so other tests' ffmpegs cannot be mistaken for it
TOKEN = "webhook-t0ken"
SECRETS = ("al1ce-pa55", "b0b-pa55", "adm1n-pa55")

NGINX_HTTP = """
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
    access_log {root}/access.log combined;
    upstream panelx_backend {{ server 127.0.0.1:{app_port}; keepalive 16; }}
    server {{  # the origin PanelX restreams
        listen 127.0.0.1:{origin_port};
        access_log {root}/origin.log combined;
        location /src/ {{ alias {origin}/; }}
    }}
    server {{  # PanelX's nginx.conf, listen 80 -> a free port
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://panelx_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection '';
        }}
        location ~ \\.m3u8$ {{
            proxy_pass http://panelx_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection '';
            add_header Cache-Control "no-cache";
        }}
        location ~ \\.ts$ {{
            proxy_pass http://panelx_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection '';
            expires 10s;
        }}
    }}
"""


class HlsViewer(Player):
    """A player following PanelX's URL flow: the /live/<u>/<p>/<id>.m3u8 playlist, /streams/ segments."""

    def __init__(self, base: str, source: str, line: str, password: str, agent: str) -> None:
        super().__init__(source, agent)
        self.base, self.line, self.password = base, line, password

    def poll(self, client: httpx.Client) -> None:
        playlist = self.get(client, f"{self.base}/live/{self.line}/{self.password}/{STREAM}.m3u8")
        self.fetch_new_segments(client, playlist.text, r"^(/streams/\S+\.ts)$", self.base)

@dataclass
class Host:
    panel: PanelX
    port: int
    root: Path
    access_log: Path
    city_db: Path
    asn_db: Path


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    root = tmp_path / "host"
    origin = root / "origin"
    for d in (origin, root / "tmp"):
        d.mkdir(parents=True)
    source = Proc(ffmpeg_hls_argv(origin / "index.m3u8"), log=root / "origin-ffmpeg.log").start()
    port, origin_port = free_port(), free_port()
    panel = PanelX(root / "home" / "panelx" / "webapp", root / "home" / "panelx" / "logs",
                   {STREAM: f"http://127.0.0.1:{origin_port}/src/index.m3u8"}).serve()
    write_nginx_conf(root, NGINX_HTTP.format(root=root, port=port, origin_port=origin_port, origin=origin,
                                             app_port=panel.port))
    nginx = start_nginx(root)
    city, asn = write_dbs(root / "geoip", {"127.1.0.0/16": PLACES["amsterdam"], "127.2.0.0/16": PLACES["berlin"]})
    try:
        wait_until(lambda: (origin / "index.m3u8").exists(), timeout=30, what="the origin's playlist")
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{origin_port}/src/index.m3u8", timeout=2).status_code == 200,
                   timeout=15, what="nginx serving the origin")
        panel.start_stream(STREAM)
        playlist = panel.app / "streams" / f"stream_{STREAM}.m3u8"
        wait_until(lambda: playlist.exists() and ".ts" in playlist.read_text(), timeout=40,
                   what="PanelX's ffmpeg writing its playlist")
        yield Host(panel, port, root, root / "access.log", city, asn)
    finally:
        panel.close()
        nginx.stop()
        source.stop()


def _config(tmp: Path, host: Host) -> Path:
    (tmp / "token").write_text(TOKEN + "\n")
    (tmp / "panelx-login.yml").write_text("username: admin\npassword: adm1n-pa55\n")
    logs = host.panel.logs
    path = tmp / "exporter.yml"
    path.write_text(yaml.safe_dump({
        "profile": "panelx",
        "node": NODE,
        "sample_interval": "1s",
        # the paths of this host (the profile's defaults are /home/panelx/logs/... and /var/log/nginx/access.log)
        "errors": {"logs": [{"preset": "panelx", "path": str(logs / "error.log")},
                            {"preset": "panelx_exits", "path": str(logs / "out.log")}]},
        "viewers": {"ports": [host.port], "access_log": {"path": str(host.access_log), "preset": "panelx"},
                    "sharing": {"max_ips": 2, "max_countries": 1}},
        "geo": {"city_db": str(host.city_db), "asn_db": str(host.asn_db)},
        "actions": {"token_file": str(tmp / "token"), "journal": str(tmp / "actions.sqlite"), "cooldown": "1s",
                    "verify_timeout": "40s",
                    "restart": {"type": "http", "url": host.panel.url + "/api/streams/{stream}/restart",
                                "timeout": "20s",
                                "login": {"url": host.panel.url + "/api/auth/login",
                                          "credentials_file": str(tmp / "panelx-login.yml")}}},
    }))
    return path


def _v(samples: Samples, name: str, **labels: str) -> float:
    return metric(samples, name, **labels) or 0.0


@pytest.fixture
def exporter_for(tmp_path: Path, host: Host) -> Iterator[Exporter]:
    exp = Exporter(_config(tmp_path, host), tmp_path).start()
    try:
        yield exp
    finally:
        exp.stop()


def test_panelx_end_to_end(tmp_path: Path, host: Host, exporter_for: Exporter) -> None:
    exp = exporter_for
    base = f"http://127.0.0.1:{host.port}"
    viewers = [HlsViewer(base, "127.1.0.10", "alice", "al1ce-pa55", "VLC/3.0.18").start(),
               HlsViewer(base, "127.1.0.11", "alice", "al1ce-pa55", "VLC/3.0.18").start(),
               HlsViewer(base, "127.2.0.12", "alice", "al1ce-pa55", "Kodi/20.2").start(),
               HlsViewer(base, "127.1.0.20", "bob", "b0b-pa55", "IPTVSmarters/3.1").start()]
    try:
        s = exp.wait_for(lambda s: _v(s, "iptv_stream_up", stream=STREAM) == 1 and _v(
            s, "iptv_stream_viewers", stream=STREAM) == 4, "the stream up with its 4 viewers", timeout=40)
        assert _v(s, "iptv_lines_online") == 2
        assert _v(s, "iptv_lines_sharing_suspected") == 1  # alice from 3 IPs in 2 countries
        exp.wait_for(lambda s: _v(s, "iptv_stream_segment_duration_seconds", stream=STREAM) == 2,
                     "PanelX's HLS (customFfmpeg -hls_time 2)", timeout=30)
        # Ingest (PanelX reads a network URL: from the process's sockets) within 5% of what the origin served.
        def origin_bytes() -> int:
            return sum(int(m) for m in re.findall(r'" 2\d\d (\d+) ', (host.root / "origin.log").read_text()))
        wait_until(lambda: abs(_v(exp.scrape(), "iptv_stream_read_bytes_total", stream=STREAM) - origin_bytes())
                   <= 0.05 * origin_bytes(), timeout=30, what="ingest within 5% of the origin's log")
        out_log = (host.panel.logs / "out.log").read_text()
        assert "Viewer connected. Total:" in out_log and "Viewer disconnected. Total:" in out_log
    finally:
        for v in viewers:
            v.stop()

    # Bytes per stream: what the players received, as nginx logged it, within 1%.
    received = sum(v.body_bytes for v in viewers)
    s = exp.wait_for(lambda s: abs(_v(s, "iptv_stream_sent_bytes_total", stream=STREAM) - received) <= received * 0.01,
                     f"sent bytes within 1% of the {received} the players received", timeout=20)
    assert all(v.codes["2xx"] > 0 and v.codes["4xx"] == 0 for v in viewers)
    # A healthy stream, its viewers coming and going: no error of any kind (the chatter is not one).
    for kind in ("input", "decode", "exit", "other"):
        assert _v(s, "iptv_stream_errors_total", stream=STREAM, kind=kind) == 0, kind

    # A restart through the webhook: the exporter logs in to PanelX and calls its restart route.
    before = host.panel.procs[STREAM].pid
    action = restart_through_webhook(exp.url, TOKEN, STREAM)
    assert action["result"] == "ok", action
    assert host.panel.restarts == [STREAM] and host.panel.logins == 1
    assert host.panel.procs[STREAM].pid != before
    s = exp.wait_for(lambda s: _v(s, "iptv_stream_restarts_total", stream=STREAM) >= 1 and _v(
        s, "iptv_stream_up", stream=STREAM) == 1, "the restart counted and the stream up again", timeout=30)
    # The restart's exit is one exit (the panel logs "code 255" for ffmpeg's SIGTERM exit), nothing else.
    assert _v(s, "iptv_stream_errors_total", stream=STREAM, kind="exit") == 1
    assert _v(s, "iptv_stream_errors_total", stream=STREAM, kind="other") == 0

    # No password anywhere the exporter shows or writes.
    shown = exp.metrics_text() + exp.log_text() + str(action)
    shown += httpx.get(exp.url + "/api/connections", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).text
    for secret in SECRETS:
        assert secret not in shown, secret
