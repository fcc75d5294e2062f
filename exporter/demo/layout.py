"""Where the demo keeps its files: one data directory, so everything it starts can be found (and stopped).

Every process the demo starts carries the data directory in its command line (a playlist path, a config
path, a ``--data-dir``): scanning /proc for it finds anything left behind, whoever started it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Layout:
    root: Path

    @property
    def streams(self) -> Path:
        """HLS output (``stream_<id>.m3u8`` and ``stream_<id>_<n>.ts``), served by the origin as ``/streams/``."""
        return self.root / "streams"

    @property
    def run(self) -> Path:
        """Pid files of the stream processes (``stream_<id>.pid``), shared with ``streamctl``."""
        return self.root / "run"

    @property
    def progress(self) -> Path:
        """ffmpeg ``-progress`` files, one per stream."""
        return self.root / "progress"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etc(self) -> Path:
        """Generated configuration: exporter, nginx, Prometheus, Alertmanager, token, GeoIP databases."""
        return self.root / "etc"

    @property
    def data(self) -> Path:
        """Prometheus and Alertmanager storage, the action journal."""
        return self.root / "data"

    @property
    def access_log(self) -> Path:
        return self.logs / "access.log"

    @property
    def token_file(self) -> Path:
        return self.etc / "webhook.token"

    @property
    def exporter_config(self) -> Path:
        return self.etc / "iptv-exporter.yml"

    @property
    def city_db(self) -> Path:
        return self.etc / "GeoLite2-City.mmdb"

    @property
    def asn_db(self) -> Path:
        return self.etc / "GeoLite2-ASN.mmdb"

    def playlist(self, stream: str) -> Path:
        return self.streams / f"stream_{stream}.m3u8"

    def segment_pattern(self, stream: str) -> Path:
        return self.streams / f"stream_{stream}_%d.ts"

    def progress_file(self, stream: str) -> Path:
        return self.progress / f"{stream}.progress"

    def pid_file(self, stream: str) -> Path:
        return self.run / f"stream_{stream}.pid"

    def stream_log(self, stream: str) -> Path:
        return self.logs / f"stream_{stream}.log"

    def create(self) -> Layout:
        for d in (self.streams, self.run, self.progress, self.logs, self.etc, self.data):
            d.mkdir(parents=True, exist_ok=True)
        return self


def port_or_free(preferred: int, host: str = "127.0.0.1") -> int:
    """``preferred`` when nothing listens there yet, else any free port: the demo must start anywhere."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError(f"no free TCP port on {host}")
