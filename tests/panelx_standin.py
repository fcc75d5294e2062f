"""A stand-in for PanelX's Node app (server/ffmpegManager.ts, server/routes.ts, server/playerApi.ts) run by pm2.

Why a stand-in: PanelX needs Node, its npm tree and PostgreSQL, none of which can be installed here. Everything
the exporter looks at is real: the ffmpeg processes are started with the argv ffmpegManager.ts builds, their
stderr is relayed the way ffmpegManager.ts relays it and written the way pm2 writes it (ecosystem.config.cjs:
``error_file``/``out_file`` with ``log_date_format 'YYYY-MM-DD HH:mm:ss Z'``), and the HTTP contract is routes.ts'
and playerApi.ts': ``POST /api/auth/login`` (JSON username/password, a session cookie, 401 "Invalid
credentials", ``requires2FA`` for a 2FA account), ``POST /api/streams/:id/restart`` (401 "Not authenticated"
without the session, 404 for an unknown stream), ``GET /live/:username/:password/:streamId.m3u8`` (401 for a
bad line, the playlist, "Viewer connected/disconnected" in out.log) and ``GET /streams/:filename``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.helpers import require_binary

BROWSER_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36")


def panelx_argv(stream_id: str, source: str, app: Path, custom: str = "") -> list[str]:
    """ffmpegManager.ts' command for a stream without a transcode profile; ``custom`` is the stream's
    ``customFfmpeg``, appended after the HLS options (so ``-hls_time 2`` there wins over the default 10)."""
    out = app / "streams"
    argv = [require_binary("ffmpeg"), "-hide_banner", "-loglevel", "warning", "-y",
            "-user_agent", BROWSER_UA, "-headers", "Referer: https://www.google.com\r\n",
            "-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_delay_max", "5", "-timeout", "10000000",
            "-i", source, "-c:v", "copy", "-c:a", "copy",
            "-f", "hls", "-hls_time", "10", "-hls_list_size", "6", "-hls_flags", "delete_segments+append_list",
            "-hls_segment_filename", str(out / f"stream_{stream_id}_%03d.ts"), "-hls_segment_type", "mpegts",
            "-hls_base_url", "/streams/"]
    if custom:
        argv += custom.split(" ")
    return [*argv, str(out / f"stream_{stream_id}.m3u8")]


class Pm2Log:
    """pm2's log file: each write prefixed with the time as ``YYYY-MM-DD HH:mm:ss +00:00: ``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S +00:00", time.gmtime())
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(f"{stamp}: {text}\n")


@dataclass
class PanelX:
    app: Path
    """/home/panelx/webapp (streams/ holds the HLS output)."""
    logs: Path
    """/home/panelx/logs"""
    sources: dict[str, str]
    """stream id -> source URL"""
    admins: dict[str, str] = field(default_factory=lambda: {"admin": "adm1n-pa55"})
    lines: dict[str, str] = field(default_factory=lambda: {"alice": "al1ce-pa55", "bob": "b0b-pa55"})
    two_factor: set[str] = field(default_factory=set)
    """Admins with two-factor login: the login answers 200 ``requires2FA`` and sets no session (routes.ts)."""
    custom: str = "-hls_time 2"
    sessions: set[str] = field(default_factory=set)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: list[int] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)
    viewers: dict[str, int] = field(default_factory=dict)
    logins: int = 0
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _relays: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.app / "streams").mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.out, self.err = Pm2Log(self.logs / "out.log"), Pm2Log(self.logs / "error.log")

    # -- ffmpegManager.ts ---------------------------------------------------------------------------
    def start_stream(self, stream_id: str) -> subprocess.Popen[bytes]:
        self.out.write(f"[FFmpeg] Starting stream {stream_id}...")
        argv = panelx_argv(stream_id, self.sources[stream_id], self.app, self.custom)
        self.out.write(f"[FFmpeg] Command: ffmpeg {' '.join(argv[1:])}")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        self.procs[stream_id] = proc
        self.started.append(proc.pid)
        relay = threading.Thread(target=self._relay, args=(stream_id, proc), daemon=True)
        relay.start()
        self._relays.append(relay)
        return proc

    def _relay(self, stream_id: str, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        while chunk := os.read(proc.stderr.fileno(), 65536):
            output = chunk.decode("utf-8", "replace")
            if "Output #0" in output:
                self.out.write(f"[FFmpeg {stream_id}] HLS output started")
            if "error" in output or "Error" in output:
                self.err.write(f"[FFmpeg {stream_id}] ERROR: {output.strip()}")
        proc.stderr.close()
        code = proc.wait()
        # Node's 'exit' event: (code, null) for an exit, (null, 'SIGKILL') for a death by signal
        shown = f"code {code}, signal null" if code >= 0 else f"code null, signal {signal.Signals(-code).name}"
        self.out.write(f"[FFmpeg {stream_id}] Process exited with {shown}")

    def stop_stream(self, stream_id: str) -> None:
        proc = self.procs.pop(stream_id, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)  # ffmpegManager.ts: SIGKILL after 5 s
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart_stream(self, stream_id: str) -> None:
        self.out.write(f"[FFmpeg] Restarting stream {stream_id}...")
        self.restarts.append(stream_id)
        self.stop_stream(stream_id)
        self.start_stream(stream_id)

    def restart_app(self) -> None:
        """pm2 restarting the app: express-session's memory store forgets every session."""
        self.sessions.clear()

    # -- http ----------------------------------------------------------------------------------------
    def serve(self) -> PanelX:
        panel = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, obj: object, headers: dict[str, str] | None = None) -> None:
                self._send(code, json.dumps(obj).encode(), headers=headers)

            def _session(self) -> str | None:
                for part in (self.headers.get("Cookie") or "").split(";"):
                    name, _, value = part.strip().partition("=")
                    if name == "connect.sid" and value in panel.sessions:
                        return value
                return None

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/api/auth/login":
                    try:
                        data = json.loads(body or b"{}")
                    except ValueError:
                        data = {}
                    user, password = data.get("username"), data.get("password")
                    if not user or not password:
                        self._json(400, {"message": "Username and password required"})
                    elif panel.admins.get(user) != password:
                        self._json(401, {"message": "Invalid credentials"})
                    elif user in panel.two_factor and not data.get("totpCode"):
                        self._json(200, {"requires2FA": True, "message": "Two-factor authentication code required"})
                    else:
                        sid = secrets.token_urlsafe(24)
                        panel.sessions.add(sid)
                        panel.logins += 1
                        self._json(200, {"id": 1, "username": user, "role": "admin", "credits": 0},
                                   {"Set-Cookie": f"connect.sid={sid}; Path=/; Expires=Wed, 01 Jan 2031 00:00:00 "
                                                  "GMT; HttpOnly"})
                    return
                m = re.fullmatch(r"/api/streams/([^/]+)/restart", self.path)
                if m is None:
                    self._json(404, {"message": "Not found"})
                elif self._session() is None:
                    self._json(401, {"message": "Not authenticated"})
                elif m.group(1) not in panel.sources:
                    self._json(404, {"message": "Stream not found"})
                else:
                    panel.restart_stream(m.group(1))
                    self._json(200, {"success": True, "message": "Stream restarted successfully",
                                     "status": "running"})

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.partition("?")[0]
                m = re.fullmatch(r"/live/([^/]+)/([^/]+)/(\d+)\.(m3u8|ts)", path)
                if m:
                    user, password, stream = m.group(1), m.group(2), m.group(3)
                    if panel.lines.get(user) != password:
                        self._send(401, b"Unauthorized", "text/plain")
                        return
                    if stream not in panel.sources:
                        self._send(404, b"Stream not found", "text/plain")
                        return
                    with panel._lock:
                        panel.viewers[stream] = panel.viewers.get(stream, 0) + 1
                        panel.out.write(f"[FFmpeg {stream}] Viewer connected. Total: {panel.viewers[stream]}")
                    panel.out.write(f"[Stream {stream}] Serving HLS through FFmpeg")
                    try:
                        data = (panel.app / "streams" / f"stream_{stream}.m3u8").read_bytes()
                        self._send(200, data, "application/vnd.apple.mpegurl")
                    except FileNotFoundError:
                        self._send(502, b"Stream not ready", "text/plain")
                    finally:
                        with panel._lock:
                            panel.viewers[stream] -= 1
                            panel.out.write(f"[FFmpeg {stream}] Viewer disconnected. Total: {panel.viewers[stream]}")
                    return
                m = re.fullmatch(r"/streams/(stream_\d+_\d+\.ts)", path)
                if m:
                    try:
                        self._send(200, (panel.app / "streams" / m.group(1)).read_bytes(), "video/mp2t")
                    except FileNotFoundError:
                        self._send(404, b"Not found", "text/plain")
                    return
                self._send(404, b"Not found", "text/plain")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for stream in list(self.procs):
            self.stop_stream(stream)
        deadline = time.monotonic() + 10
        while any(t.is_alive() for t in self._relays) and time.monotonic() < deadline:
            time.sleep(0.05)

    def __iter__(self) -> Iterator[str]:
        return iter(self.sources)
