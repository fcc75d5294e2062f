"""Viewers end to end with real parts: ffmpeg writes HLS, nginx serves it and writes a real access log,
HLS clients on distinct loopback addresses watch, and the exporter (a real process) reports them.

The test GeoIP databases map 127.1.0.0/16 to Amsterdam and 127.2.0.0/16 to Berlin, so clients bound to
127.1.x / 127.2.x addresses get real geo answers. Every figure is compared with what the clients
themselves counted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers import Exporter, Proc, Samples, ffmpeg_hls_argv, free_port, metric, wait_until
from tests.mmdb import PLACES, write_dbs
from tests.nginx import start_nginx, write_nginx_conf

pytestmark = pytest.mark.slow

TOKEN = "viewer-api-t0ken"


@dataclass
class Origin:
    url: str
    port: int
    root: Path
    access_log: Path
    nginx: Proc
    city_db: Path
    asn_db: Path


NGINX_HTTP = """
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
    default_type application/octet-stream;
    access_log {root}/access.log combined;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port};
        root {hls};
        location /live/ {{
            rewrite "^/live/[^/]+/[^/]+/(\\d+)\\.m3u8$" /stream_$1.m3u8 break;
            return 404;
        }}
        location /streams/ {{
            alias {hls}/;
        }}
    }}
"""


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    """PanelX's shape: /live/<user>/<pass>/7.m3u8 -> the playlist, /streams/stream_7_<n>.ts -> segments."""
    root = tmp_path_factory.mktemp("origin")
    hls = root / "hls"
    for d in (hls, root / "tmp", root / "logs"):
        d.mkdir()
    argv = ffmpeg_hls_argv(hls / "stream_7.m3u8")
    argv[-1:-1] = ["-hls_segment_filename", str(hls / "stream_7_%d.ts"), "-hls_base_url", "/streams/"]
    ffmpeg = Proc(argv, log=root / "ffmpeg.log").start()
    port = free_port()
    write_nginx_conf(root, NGINX_HTTP.format(root=root, port=port, hls=hls), connections=128)
    nginx = start_nginx(root)
    city, asn = write_dbs(root / "geoip", {"127.1.0.0/16": PLACES["amsterdam"], "127.2.0.0/16": PLACES["berlin"]})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: (hls / "stream_7.m3u8").exists() and "stream_7_1.ts" in (hls / "stream_7.m3u8").read_text(),
                   timeout=30, what="ffmpeg's first segments")
        wait_until(lambda: httpx.get(f"{url}/live/x/y/7.m3u8", timeout=2).status_code == 200, timeout=15,
                   what=f"nginx on {url}: {(root / 'error.log').read_text() if (root / 'error.log').exists() else ''}")
        yield Origin(url, port, root, root / "access.log", nginx, city, asn)
    finally:
        nginx.stop()
        ffmpeg.stop()


@dataclass
class Viewer:
    """An HLS player on its own loopback address: polls the playlist, fetches new segments, counts bytes."""

    base: str
    source: str
    line: str
    password: str
    agent: str
    fetching: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    body_bytes: int = 0
    requests: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> Viewer:
        self.fetching.set()
        self.thread = threading.Thread(target=self._run, name=f"viewer-{self.source}", daemon=True)
        self.thread.start()
        return self

    def _get(self, client: httpx.Client, path: str) -> httpx.Response:
        r = client.get(self.base + path)
        self.body_bytes += len(r.content)
        self.requests += 1
        self.codes[f"{r.status_code // 100}xx"] += 1
        return r

    def _run(self) -> None:
        transport = httpx.HTTPTransport(local_address=self.source)
        try:
            with httpx.Client(transport=transport, headers={"User-Agent": self.agent}, timeout=10) as client:
                seen: set[str] = set()
                self._get(client, "/streams/stream_7_999999.ts")  # an expired segment: a 404 for the stream
                while self.fetching.is_set():
                    playlist = self._get(client, f"/live/{self.line}/{self.password}/7.m3u8")
                    for uri in re.findall(r"^(/streams/\S+\.ts)$", playlist.text, flags=re.M):
                        if uri not in seen:
                            seen.add(uri)
                            self._get(client, uri)
                    self.release.wait(0.4)  # a player's polling pace, not a wait for a condition
                self.release.wait(60)  # stay connected: the sockets stay established for the assertions
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def stop_fetching(self) -> None:
        self.fetching.clear()

    def stop(self) -> None:
        self.fetching.clear()
        self.release.set()
        if self.thread is not None:
            self.thread.join(15)
        if self.error is not None:
            raise AssertionError(f"viewer {self.source} failed: {self.error!r}")


@pytest.fixture
def viewers() -> Iterator[Callable[..., Viewer]]:
    made: list[Viewer] = []

    def start(*args: str) -> Viewer:
        v = Viewer(*args).start()  # type: ignore[arg-type]
        made.append(v)
        return v

    yield start
    for v in made:
        v.stop()


def _config(tmp: Path, origin: Origin, **viewers: object) -> Path:
    """A host that shows live viewers and takes no restarts: no actions section, the viewer API opened by its
    read-only token alone (as Grafana reads it)."""
    token = tmp / "viewers.token"
    token.write_text(TOKEN + "\n")
    path = tmp / "exporter.yml"
    path.write_text(yaml.safe_dump({
        "sample_interval": "1s",
        "streams": {"static": [{"id": "7", "name": "Seven"}]},
        "viewers": {"ports": [origin.port], "access_log": {"path": str(origin.access_log), "preset": "panelx"},
                    "sharing": {"max_ips": 2, "max_countries": 1}, "api": {"token_file": str(token)}, **viewers},
        "geo": {"city_db": str(origin.city_db), "asn_db": str(origin.asn_db)},
    }))
    return path


def _api(exp: Exporter, path: str, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(exp.url + path, headers=headers, timeout=5)


def _value(samples: Samples, name: str, **labels: str) -> float:
    return metric(samples, name, **labels) or 0.0


def test_viewers_by_stream_place_and_bytes(
    origin: Origin, exporter: Callable[..., Exporter], viewers: Callable[..., Viewer], tmp_path: Path
) -> None:
    exp = exporter(_config(tmp_path, origin, window="3s"), args=("--log.level=debug",))
    clients = [
        viewers(origin.url, "127.1.0.10", "alice", "pw-Alice-Zq81", "VLC/3.0.20 LibVLC/3.0.20"),
        viewers(origin.url, "127.1.0.11", "bob", "pw-Bob-Kx42", "Kodi/20.2"),
        viewers(origin.url, "127.2.0.20", "carol", "pw-Carol-Mm77", "TiviMate/4.7.0"),
        viewers(origin.url, "127.2.0.21", "alice", "pw-Alice-Zq81", "IPTVSmartersPlayer"),  # alice's line, shared
    ]
    passwords = {c.password for c in clients}

    def watching(s: Samples) -> bool:
        return (_value(s, "iptv_stream_viewers", stream="7") == 4
                and _value(s, "iptv_connections", country="NL") == 2
                and _value(s, "iptv_connections", country="DE") == 2
                and _value(s, "iptv_lines_online") == 3)

    s = exp.wait_for(watching, "4 viewers, 2 connections each from NL and DE, 3 lines", timeout=30)
    assert _value(s, "iptv_connections_city", country="NL", city="Amsterdam", latitude="52.37",
                  longitude="4.89") == 2
    assert _value(s, "iptv_connections_city", country="DE", city="Berlin", latitude="52.52", longitude="13.41") == 2
    assert _value(s, "iptv_connections_isp", asn="1136", isp="KPN B.V.") == 2
    assert _value(s, "iptv_connections_isp", asn="3320", isp="Deutsche Telekom AG") == 2
    exp.wait_for(lambda s: _value(s, "iptv_lines_sharing_suspected") == 1, "alice's line seen from NL and DE")

    # The API: the read-only bearer token, one row per client on the stream, joined with its socket.
    assert _api(exp, "/api/connections", token=None).status_code == 401
    assert _api(exp, "/api/connections", token="wrong").status_code == 401
    rows = _api(exp, "/api/connections?stream=7").json()
    assert sorted((r["client_ip"], r["line"], r["country"], r["city"]) for r in rows) == [
        ("127.1.0.10", "alice", "NL", "Amsterdam"), ("127.1.0.11", "bob", "NL", "Amsterdam"),
        ("127.2.0.20", "carol", "DE", "Berlin"), ("127.2.0.21", "alice", "DE", "Berlin"),
    ]
    for r in rows:
        assert r["stream_name"] == "Seven" and r["isp"] in {"KPN B.V.", "Deutsche Telekom AG"}
        assert r["connections"] == 1 and r["bytes_sent"] > 0 and r["duration_seconds"] >= 0
        assert r["user_agent"] in {c.agent for c in clients} and r["connected_since"].endswith("Z")
    assert {r["client_ip"] for r in _api(exp, "/api/connections?country=de").json()} == {"127.2.0.20", "127.2.0.21"}
    assert len(_api(exp, "/api/connections?limit=1").json()) == 1
    assert _api(exp, "/api/connections?stream=8").json() == []
    assert _api(exp, "/api/connections?limit=0").status_code == 400
    sharing = _api(exp, "/api/lines/sharing").json()
    assert [(x["line"], x["countries"], x["ips"]) for x in sharing] == [
        ("alice", ["DE", "NL"], ["127.1.0.10", "127.2.0.21"])]
    api_text = _api(exp, "/api/connections").text + json.dumps(sharing)

    # Stop fetching (connections stay open): every byte the clients got is in the counters.
    for c in clients:
        c.stop_fetching()
    body = wait_until(lambda: _settled(clients), timeout=10, what="clients to stop fetching")
    codes = sum((c.codes for c in clients), Counter())
    s = exp.wait_for(lambda s: _value(s, "iptv_stream_sent_bytes_total", stream="7") == body,
                     f"iptv_stream_sent_bytes_total == {body} bytes the clients received")
    assert _value(s, "iptv_stream_http_responses_total", stream="7", code="2xx") == codes["2xx"]
    assert _value(s, "iptv_stream_http_responses_total", stream="7", code="4xx") == codes["4xx"] >= 4
    requests = sum(c.requests for c in clients)
    s = exp.wait_for(lambda s: _value(s, "iptv_connections_sent_bytes_total", port=str(origin.port)) >= body,
                     "socket bytes to cover the bodies")
    sent = _value(s, "iptv_connections_sent_bytes_total", port=str(origin.port))
    assert body <= sent <= body + 600 * requests  # headers on top of the bodies, nothing else on this port
    assert _value(s, "iptv_connections_received_bytes_total", port=str(origin.port)) >= 60 * requests

    # The window passes without requests: the sessions end and are observed.
    s = exp.wait_for(lambda s: _value(s, "iptv_stream_viewers", stream="7") == 0
                     and _value(s, "iptv_viewer_session_duration_seconds_count") == 4, "4 ended sessions")
    assert _value(s, "iptv_viewer_session_duration_seconds_sum") > 0
    assert _value(s, "iptv_lines_online") == 0

    # A line the parser cannot read, with a password in it: logged (debug) with the password redacted.
    with origin.access_log.open("ab") as fh:
        fh.write(b'garbage "GET /live/alice/pw-Alice-Zq81/7.ts HTTP/1.1 no closing quote\n')
    exp.wait_for(lambda s: _value(s, "iptv_accesslog_skipped_lines_total") == 1, "the skipped line")
    wait_until(lambda: "/live/alice/***/7.ts" in exp.log_text(), what="the redacted line in the exporter's log")
    everything = exp.metrics_text() + api_text + exp.log_text()
    leaked = [p for p in passwords if p in everything]
    assert not leaked, f"passwords leaked into metrics, API or logs: {leaked}"


def _settled(clients: list[Viewer]) -> int | None:
    """The clients' body bytes once two reads agree (their loops have left the fetching branch)."""
    before = [(c.requests, c.body_bytes) for c in clients]
    for c in clients:
        c.release.wait(0.5)  # pacing of the check itself
    after = [(c.requests, c.body_bytes) for c in clients]
    return sum(b for _, b in after) if before == after else None


def test_counts_survive_log_rotation(
    origin: Origin, exporter: Callable[..., Exporter], viewers: Callable[..., Viewer], tmp_path: Path
) -> None:
    exp = exporter(_config(tmp_path, origin, window="30s"))
    clients = [viewers(origin.url, "127.1.0.30", "dan", "pw-Dan-Rr11", "VLC/3.0.20"),
               viewers(origin.url, "127.2.0.31", "eve", "pw-Eve-Tt22", "Kodi/20.2")]
    before = exp.wait_for(lambda s: _value(s, "iptv_accesslog_lines_total") >= 6, "lines before the rotation")
    os.rename(origin.access_log, origin.access_log.with_suffix(".log.1"))
    origin.nginx.signal(signal.SIGUSR1)  # nginx -s reopen
    wait_until(lambda: origin.access_log.exists() and origin.access_log.stat().st_size > 0,
               what="nginx to reopen its log and write to the new file")
    lines_then = _value(before, "iptv_accesslog_lines_total")
    exp.wait_for(lambda s: _value(s, "iptv_accesslog_rotations_total") >= 1
                 and _value(s, "iptv_accesslog_lines_total") >= lines_then + 6, "lines after the rotation")
    for c in clients:
        c.stop_fetching()
    body = wait_until(lambda: _settled(clients), timeout=10, what="clients to stop fetching")
    requests = sum(c.requests for c in clients)
    s = exp.wait_for(lambda s: _value(s, "iptv_stream_sent_bytes_total", stream="7") == body
                     and _value(s, "iptv_accesslog_lines_total") == requests,
                     f"{body} bytes in {requests} requests, none lost or counted twice across the rotation")
    assert _value(s, "iptv_stream_viewers", stream="7") == 2
    assert _value(s, "iptv_accesslog_skipped_lines_total") == 0
