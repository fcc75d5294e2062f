"""A stand-in for XUI.one / XC_VM's PHP side: the stream monitor and the viewer URL flow, writing ``lines_live``.

Why a stand-in: the panel is PHP on its own nginx build, php-fpm, Redis and an encrypted licence check, which
cannot be installed here. What the exporter reads is real: ffmpeg runs with the argv includes/xc_vm.php builds
(the ``-f hls`` form; the ``-f segment`` form needs the panel's patched ffmpeg for ``+delete``), its stderr
appended to ``<streams>/<id>.errors``, its progress pushed to the panel's nginx port; the rows are written to a
real MariaDB ``lines_live`` as www/stream/auth.php does; the URL flow is the panel's: ``/live/<u>/<p>/<id>.m3u8``
answered with a 302 to ``/auth/<token>``, whose playlist names segments ``/hls/<token>`` (streaming.php
``generateHLS``). The monitor respawns a stream whose ffmpeg died, as the panel's does.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.helpers import require_binary
from tests.mariadb import MariaDB

XUI_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def xui_argv(stream_id: str, source: str, streams: Path, progress_port: int, seg_time: int = 2,
             progress_path: str = "/progress") -> list[str]:
    """includes/xc_vm.php's command (no transcode: codecs copied), ``-f hls`` output form. Xtream Codes'
    includes/stream.php builds the same with ``/progress.php`` as the progress path."""
    return [require_binary("ffmpeg"), "-y", "-nostdin", "-hide_banner", "-loglevel", "warning", "-err_detect",
            "ignore_err", "-user_agent", XUI_UA, "-fflags", "+genpts", "-async", "1", "-probesize", "5000000",
            "-analyzeduration", "5000000",
            "-progress", f"http://127.0.0.1:{progress_port}{progress_path}?stream_id={stream_id}",
            "-i", source, "-vcodec", "copy", "-acodec", "copy", "-individual_header_trailer", "0",
            "-f", "hls", "-hls_time", str(seg_time), "-hls_list_size", "6", "-hls_delete_threshold", "4",
            "-hls_flags", "delete_segments+discont_start+omit_endlist", "-hls_segment_type", "mpegts",
            "-hls_segment_filename", str(streams / f"{stream_id}_%d.ts"), str(streams / f"{stream_id}_.m3u8")]


@dataclass
class Xui:
    streams: Path
    """/home/xui/content/streams"""
    db: MariaDB
    database: str
    sources: dict[str, str]
    progress_port: int
    lines: dict[str, tuple[int, str]] = field(default_factory=lambda: {"alice": (1, "al1ce-pa55"),
                                                                       "bob": (2, "b0b-pa55")})
    server_id: int = 1
    flavour: str = "xui"
    """``xui``: XUI.one / XC_VM (lines_live, 302 to /auth/<token>, /hls/<token>); ``xtream``: Xtream Codes / Xtream UI
    (user_activity_now, the playlist answered at once with segments /hls/<u>/<p>/<id>/<md5>/<segment>)."""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    spawned: list[int] = field(default_factory=list)
    tokens: dict[str, tuple[str, int]] = field(default_factory=dict)
    """token -> (stream, activity id)"""
    segments: dict[str, str] = field(default_factory=dict)
    """segment token -> segment file name"""
    port: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _monitor: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.streams.mkdir(parents=True, exist_ok=True)
        users = "lines" if self.flavour == "xui" else "users"
        for user, (uid, password) in self.lines.items():
            self.db.execute(f"INSERT INTO `{users}` (`id`, `username`, `password`) VALUES (%s, %s, %s)",
                            [uid, user, password], database=self.database)

    def start_stream(self, stream_id: str) -> None:
        argv = xui_argv(stream_id, self.sources[stream_id], self.streams, self.progress_port,
                        progress_path="/progress" if self.flavour == "xui" else "/progress.php")
        with open(self.streams / f"{stream_id}.errors", "ab") as errors:  # 2>> <streams>/<id>.errors
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                                    start_new_session=True)
        self.procs[stream_id] = proc
        self.spawned.append(proc.pid)

    def _watch(self) -> None:
        """The panel's monitor: a stream whose ffmpeg died is started again."""
        while not self._stop.wait(0.5):
            for stream, proc in list(self.procs.items()):
                if proc.poll() is not None and not self._stop.is_set():
                    self.start_stream(stream)

    def record(self, user_id: int, stream: str, agent: str, ip: str, token: str) -> None:
        """The row the panel writes for an open connection."""
        if self.flavour == "xui":
            self.db.execute(
                "INSERT INTO `lines_live` (`user_id`, `stream_id`, `server_id`, `user_agent`, `user_ip`, "
                "`container`, `pid`, `date_start`, `geoip_country_code`, `hls_end`, `uuid`) "
                "VALUES (%s, %s, %s, %s, %s, 'hls', NULL, %s, '', 0, %s)",
                [user_id, int(stream), self.server_id, agent, ip, int(time.time()), token], database=self.database)
            with self.db.root(self.database) as conn, conn.cursor() as cur:
                cur.execute("SELECT `activity_id` FROM `lines_live` WHERE `uuid` = %s", [token])
                (activity,) = cur.fetchone()
            self.tokens[token] = (stream, int(activity))
            return
        with self.db.root(self.database) as conn, conn.cursor() as cur:  # auth.php: one row per open connection
            cur.execute("SELECT `activity_id` FROM `user_activity_now` WHERE `user_id` = %s AND `stream_id` = %s AND "
                        "`user_ip` = %s AND `user_agent` = %s AND `container` = 'hls' AND `hls_end` = 0",
                        [user_id, int(stream), ip, agent])
            if cur.fetchone() is not None:
                return
        self.db.execute(
            "INSERT INTO `user_activity_now` (`user_id`, `stream_id`, `server_id`, `user_agent`, `user_ip`, "
            "`container`, `pid`, `date_start`, `geoip_country_code`, `isp`, `external_device`, `hls_end`) "
            "VALUES (%s, %s, %s, %s, %s, 'hls', NULL, %s, '', '', '', 0)",
            [user_id, int(stream), self.server_id, agent, ip, int(time.time())], database=self.database)

    def serve(self) -> Xui:
        panel = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.partition("?")[0]
                ip = self.headers.get("X-Real-IP") or self.client_address[0]
                agent = self.headers.get("User-Agent") or ""
                m = re.fullmatch(r"/live/([^/]+)/([^/]+)/(\d+)\.m3u8", path)
                if m:  # auth.php: check the line, record the connection
                    line = panel.lines.get(m.group(1))
                    if line is None or line[1] != m.group(2) or m.group(3) not in panel.sources:
                        self._send(403, b"", "text/plain")
                        return
                    token = secrets.token_hex(16)
                    panel.record(line[0], m.group(3), agent, ip, token)
                    if panel.flavour == "xui":  # XUI.one / XC_VM: a 302 to a token that names nothing
                        self._send(302, b"", "text/plain", {"Location": f"/auth/{token}"})
                        return
                    stream = m.group(3)
                    try:
                        text = (panel.streams / f"{stream}_.m3u8").read_text()
                    except FileNotFoundError:
                        self._send(404, b"", "text/plain")
                        return
                    prefix = f"/hls/{m.group(1)}/{m.group(2)}/{stream}/{token}/"
                    body = re.sub(rf"(?m)^({stream}_\d+\.ts)$", lambda s: prefix + s.group(1), text).encode()
                    self._send(200, body, "application/vnd.apple.mpegurl")
                    return
                m = re.fullmatch(r"/hls/([^/]+)/([^/]+)/(\d+)/[0-9a-f]{32}/(\d+_\d+\.ts)", path)
                if m and panel.flavour == "xtream":  # Xtream Codes' segment URL: line, password, stream, md5
                    try:
                        self._send(200, (panel.streams / m.group(4)).read_bytes(), "video/mp2t")
                    except FileNotFoundError:
                        self._send(404, b"", "text/plain")
                    return
                m = re.fullmatch(r"/auth/([0-9a-f]{32})", path)
                if m and m.group(1) in panel.tokens:  # live.php + generateHLS: segments become /hls/<token>
                    stream, _ = panel.tokens[m.group(1)]
                    try:
                        text = (panel.streams / f"{stream}_.m3u8").read_text()
                    except FileNotFoundError:
                        self._send(404, b"", "text/plain")
                        return
                    def token_for(match: re.Match[str]) -> str:
                        seg = secrets.token_hex(16)
                        panel.segments[seg] = match.group(0)
                        return f"/hls/{seg}"
                    body = re.sub(rf"(?m)^{stream}_\d+\.ts$", token_for, text).encode()
                    self._send(200, body, "application/vnd.apple.mpegurl")
                    return
                m = re.fullmatch(r"/hls/([0-9a-f]{32})", path)
                if m and m.group(1) in panel.segments:  # segment.php
                    try:
                        self._send(200, (panel.streams / panel.segments[m.group(1)]).read_bytes(), "video/mp2t")
                    except FileNotFoundError:
                        self._send(404, b"", "text/plain")
                    return
                self._send(404, b"", "text/plain")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self._monitor = threading.Thread(target=self._watch, daemon=True)
        self._monitor.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
