"""XUI.one / XC_VM end to end with ``profile: xui``, and Xtream Codes / Xtream UI with ``profile: xtream``: nginx
with ``access_log off`` as the panel ships it, tokenised
viewer URLs (Xtream: the password in every segment URL), the panel's ``lines_live`` (``user_activity_now``) in a
real MariaDB as the truth for who watches, ffmpeg's progress pushed to
the panel's port and forwarded by deploy/nginx/iptv-progress.conf, errors from ``<streams>/<id>.errors``, a
restart by signal that the panel's monitor answers by starting the stream again.

The PHP side of the panel is a stand-in (tests/xui_standin.py says why); ffmpeg, nginx, MariaDB, the viewers and
the exporter are real.
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
from tests.mariadb import EXPORTER_PASSWORD, EXPORTER_USER, mariadb
from tests.mmdb import PLACES, write_dbs
from tests.nginx import start_nginx, write_nginx_conf
from tests.players import Player
from tests.xui_standin import Xui

pytestmark = pytest.mark.slow

STREAM = "3141"
LOOPING = "2718"
"""A stream whose source is gone: ffmpeg exits within a second, the panel's monitor starts it again, and again."""
TOKEN = "webhook-t0ken"
SNIPPET = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "iptv-progress.conf"
SECRETS = ("al1ce-pa55", "b0b-pa55", EXPORTER_PASSWORD)

NGINX_HTTP = """
    access_log off;  # as XUI.one / XC_VM ship it (bin/nginx/conf/nginx.conf)
    client_max_body_size 8m;
    server {{  # the origin the panel restreams
        listen 127.0.0.1:{origin_port};
        access_log {root}/origin.log combined;
        location /src/ {{ alias {origin}/; }}
    }}
    server {{  # the panel's http_broadcast_port
        listen 127.0.0.1:{port};
        include {root}/iptv-progress.conf;
        location / {{
            proxy_pass http://127.0.0.1:{app_port};
            proxy_http_version 1.1;
            proxy_set_header Connection '';
            proxy_set_header X-Real-IP $remote_addr;
        }}
    }}
"""


class TokenViewer(Player):
    """A player following XUI's flow: /live/<u>/<p>/<id>.m3u8 -> 302 /auth/<token> -> segments /hls/<token>."""

    follow_redirects = True

    def __init__(self, base: str, source: str, line: str, password: str, agent: str) -> None:
        super().__init__(source, agent)
        self.base, self.line, self.password = base, line, password
        self.redirects = 0
        self.playlist_url = ""

    def begin(self, client: httpx.Client) -> None:
        first = client.get(f"{self.base}/live/{self.line}/{self.password}/{STREAM}.m3u8")
        first.raise_for_status()
        self.redirects = len(first.history)
        self.playlist_url = str(first.url)  # XUI: /auth/<token>; Xtream: the /live/ URL itself

    def poll(self, client: httpx.Client) -> None:
        playlist = self.get(client, self.playlist_url)
        self.fetch_new_segments(client, playlist.text, r"^(/hls/\S+)$", self.base)

@dataclass
class Host:
    panel: Xui
    port: int
    root: Path
    socket: Path
    city_db: Path
    asn_db: Path


@dataclass(frozen=True)
class Shape:
    profile: str
    schema: str
    database: str
    streams: str
    """the panel's streams directory under its home"""
    redirects: int


SHAPES = {
    "xui": Shape("xui", "xui", "xui", "home/xui/content/streams", 1),
    "xtream": Shape("xtream", "xtream", "xtream_iptvpro", "home/xtreamcodes/iptv_xtream_codes/streams", 0),
}


@pytest.fixture(params=sorted(SHAPES))
def shape(request: pytest.FixtureRequest) -> Shape:
    return SHAPES[request.param]


@pytest.fixture
def host(tmp_path: Path, shape: Shape) -> Iterator[Host]:
    root = tmp_path / "host"
    origin = root / "origin"
    for d in (origin, root / "tmp", root / "db"):
        d.mkdir(parents=True)
    with mariadb(root / "db") as db:
        db.panel(shape.schema, shape.database)
        source = Proc(ffmpeg_hls_argv(origin / "index.m3u8"), log=root / "origin-ffmpeg.log").start()
        port, origin_port = free_port(), free_port()
        panel = Xui(root / shape.streams, db, shape.database,
                    {STREAM: f"http://127.0.0.1:{origin_port}/src/index.m3u8",
                     LOOPING: f"http://127.0.0.1:{origin_port}/src/gone.m3u8"}, progress_port=port,
                    flavour=shape.schema).serve()
        (root / "iptv-progress.conf").write_text(SNIPPET.read_text())  # exporter port set by _config
        write_nginx_conf(root, NGINX_HTTP.format(root=root, port=port, origin_port=origin_port, origin=origin,
                                                 app_port=panel.port))
        city, asn = write_dbs(root / "geoip", {"127.1.0.0/16": PLACES["amsterdam"], "127.2.0.0/16": PLACES["berlin"]})
        try:
            wait_until(lambda: (origin / "index.m3u8").exists(), timeout=30, what="the origin's playlist")
            yield Host(panel, port, root, db.socket, city, asn)
        finally:
            panel.close()
            source.stop()


def _config(tmp: Path, host: Host, shape: Shape) -> Path:
    (tmp / "token").write_text(TOKEN + "\n")
    (tmp / "db.pass").write_text(EXPORTER_PASSWORD + "\n")
    path = tmp / "exporter.yml"
    path.write_text(yaml.safe_dump({
        "profile": shape.profile,
        "node": NODE,
        "sample_interval": "1s",
        "errors": {"logs": [{"preset": shape.profile, "path": str(host.panel.streams / "*.errors")}]},
        "viewers": {"ports": [host.port], "sharing": {"max_ips": 2, "max_countries": 1},
                    "panel_db": {"socket": str(host.socket), "user": EXPORTER_USER,
                                 "password_file": str(tmp / "db.pass"), "server_id": 1}},
        "geo": {"city_db": str(host.city_db), "asn_db": str(host.asn_db)},
        "actions": {"token_file": str(tmp / "token"), "journal": str(tmp / "actions.sqlite"), "cooldown": "1s",
                    "verify_timeout": "40s"},
    }))
    return path


def _v(samples: Samples, name: str, **labels: str) -> float:
    return metric(samples, name, **labels) or 0.0


def test_xtream_family_end_to_end(tmp_path: Path, host: Host, shape: Shape) -> None:
    exp = Exporter(_config(tmp_path, host, shape), tmp_path).start()
    snippet = host.root / "iptv-progress.conf"
    snippet.write_text(snippet.read_text().replace("127.0.0.1:9756", f"127.0.0.1:{exp.port}"))
    nginx = start_nginx(host.root)
    base = f"http://127.0.0.1:{host.port}"
    viewers: list[TokenViewer] = []
    try:
        wait_until(lambda: httpx.get(base + "/progress", timeout=2).status_code == 405, timeout=15,
                   what="the panel's nginx forwarding /progress")
        host.panel.start_stream(STREAM)
        s = exp.wait_for(lambda s: _v(s, "iptv_stream_up", stream=STREAM) == 1 and _v(
            s, "iptv_stream_frames_total", stream=STREAM) > 0, "the stream up, its progress through nginx", timeout=60)
        first = _v(s, "iptv_stream_frames_total", stream=STREAM)
        exp.wait_for(lambda s: _v(s, "iptv_stream_frames_total", stream=STREAM) > first + 10,
                     "progress arriving while ffmpeg runs", timeout=30)
        exp.wait_for(lambda s: _v(s, "iptv_stream_segment_duration_seconds", stream=STREAM) == 2, "HLS", timeout=30)

        viewers = [TokenViewer(base, "127.1.0.10", "alice", "al1ce-pa55", "VLC/3.0.18").start(),
                   TokenViewer(base, "127.1.0.11", "alice", "al1ce-pa55", "VLC/3.0.18").start(),
                   TokenViewer(base, "127.2.0.12", "alice", "al1ce-pa55", "Kodi/20.2").start(),
                   TokenViewer(base, "127.1.0.20", "bob", "b0b-pa55", "IPTVSmarters/3.1").start()]
        s = exp.wait_for(lambda s: _v(s, "iptv_stream_viewers", stream=STREAM) == 4 and all(
            v.body_bytes > 0 for v in viewers), "4 viewers from lines_live", timeout=40)
        assert all(v.redirects == shape.redirects for v in viewers)  # XUI: the 302 to /auth/<token>
        assert _v(s, "iptv_lines_online") == 2 and _v(s, "iptv_lines_sharing_suspected") == 1
        # nginx logs nothing and the table has no bytes: no per-stream bytes rather than a false 0
        assert metric(s, "iptv_stream_sent_bytes_total", stream=STREAM) is None
        # The progress push holds a connection to the viewer port from 127.0.0.1: not a viewer.
        assert _v(s, "iptv_connections", country="unknown") == 0 and _v(s, "iptv_connections", country="NL") >= 3
        for kind in ("input", "decode", "exit", "other"):
            assert _v(s, "iptv_stream_errors_total", stream=STREAM, kind=kind) == 0, kind
        # Ingest (a network input: from the process's sockets) within 5% of what the origin served it.
        def origin_bytes() -> int:
            return sum(int(m) for m in re.findall(r'"GET /src/\S+ HTTP/1\.1" 2\d\d (\d+) ',
                                                  (host.root / "origin.log").read_text()))
        wait_until(lambda: abs(_v(exp.scrape(), "iptv_stream_read_bytes_total", stream=STREAM) - origin_bytes())
                   <= 0.05 * origin_bytes(), timeout=30, what="ingest within 5% of the origin's log")

        # A crash loop: every start and exit counted, the 404 in its .errors file as input errors.
        host.panel.start_stream(LOOPING)
        s = exp.wait_for(lambda s: _v(s, "iptv_stream_restarts_total", stream=LOOPING) >= 3 and _v(
            s, "iptv_stream_errors_total", stream=LOOPING, kind="exit") >= 3 and _v(
            s, "iptv_stream_errors_total", stream=LOOPING, kind="input") >= 3, "the crash loop counted", timeout=60)

        # Restart: SIGTERM to the stream's ffmpeg, the panel's monitor starts it again.
        before = host.panel.procs[STREAM].pid
        action = restart_through_webhook(exp.url, TOKEN, STREAM)
        assert action["result"] == "ok", action
        assert host.panel.procs[STREAM].pid != before
        exp.wait_for(lambda s: _v(s, "iptv_stream_restarts_total", stream=STREAM) >= 1 and _v(
            s, "iptv_stream_up", stream=STREAM) == 1, "the restart counted, the stream up again", timeout=30)

        shown = exp.metrics_text() + exp.log_text() + str(action)
        shown += httpx.get(exp.url + "/api/connections", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).text
        for secret in SECRETS:
            assert secret not in shown, secret
        rows = httpx.get(exp.url + "/api/connections", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).json()
        assert {r["line"] for r in rows if r["stream"] == STREAM} == {"alice", "bob"}
    finally:
        for v in viewers:
            v.stop()
        nginx.stop()
        exp.stop()
