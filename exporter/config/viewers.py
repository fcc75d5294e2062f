"""``viewers:`` and ``geo:`` — who watches, from the kernel's sockets and nginx's access log."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, IPvAnyNetwork, model_validator

from exporter.config.base import Regex, Section, require_group
from exporter.config.durations import Duration


class AccessLog(Section):
    path: Path = Path("/var/log/nginx/access.log")
    format: Literal["combined", "json", "regex"] = "combined"
    regex: Regex | None = None
    """With ``format: regex``: named groups ``ip``, ``path``, ``status``, ``bytes`` (``agent`` optional)."""
    preset: Literal["panelx", "xtream"] | None = "panelx"
    urls: list[Regex] = Field(default_factory=list)
    """Extra URL regexes with named groups ``stream`` (required) and ``line`` (optional)."""
    from_start: bool = False

    @model_validator(mode="after")
    def _check(self) -> AccessLog:
        if self.format == "regex":
            if self.regex is None:
                raise ValueError("format regex needs a regex")
            require_group(self.regex, "ip", "path", "status", "bytes")
        for url in self.urls:
            require_group(url, "stream")
        return self


class Sharing(Section):
    max_ips: int = Field(default=2, ge=1)
    """A line seen from more distinct IPs than this within the window is suspected of sharing."""
    max_countries: int = Field(default=1, ge=1)


class Viewers(Section):
    ports: list[int] = Field(default_factory=lambda: [80, 8080, 25461])
    """Local ports whose established TCP peers are viewers; empty: no socket sampling."""
    socket_backend: Literal["auto", "netlink", "psutil"] = "auto"
    """``auto``: netlink sock_diag (bytes per connection), psutil when netlink is unavailable (no bytes)."""
    access_log: AccessLog | None = Field(default_factory=AccessLog)
    window: Duration = 60.0
    sharing: Sharing = Field(default_factory=Sharing)
    max_clients: int = Field(default=200_000, ge=100)
    """Bound on tracked (client, stream) sessions: the oldest are dropped past it (a flood of fake clients)."""

    @model_validator(mode="after")
    def _ports(self) -> Viewers:
        for port in self.ports:
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is outside 1..65535")
        return self


class GeoOverride(Section):
    cidr: IPvAnyNetwork
    country: str = Field(pattern=r"^[A-Z]{2}$|^unknown$")
    city: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    asn: int | None = None
    isp: str | None = None


class Geo(Section):
    city_db: Path | None = None
    asn_db: Path | None = None
    overrides: list[GeoOverride] = Field(default_factory=list)
    top_cities: int = Field(default=50, ge=1)
    top_isps: int = Field(default=50, ge=1)
    cache_size: int = Field(default=65536, ge=16)
    max_age: Duration = 14 * 86400
    """A database built longer ago than this is stale (alert IPTVGeoIPDatabaseStale): geoipupdate has stopped."""
