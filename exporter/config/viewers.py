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
    fleet_key_file: Path | None = None
    """A secret every node of the fleet shares (``openssl rand -hex 32``). When set, a keyed-hash sample of the
    lines online is exported (``iptv_lines_sampled``) so a central rule can count lines on several nodes."""


PANEL_TABLES: dict[str, tuple[str, str, str]] = {
    # schema -> (live-connections table, subscriber table, default database), from the panels' install SQL
    "xui": ("lines_live", "lines", "xui"),  # XUI.one / XC_VM (XC_VM's database is "xc_vm")
    "xtream": ("user_activity_now", "users", "xtream_iptvpro"),  # Xtream Codes 2.x / Xtream UI
}


class PanelDb(Section):
    """The panel's own table of live connections, read with a read-only account (docs/sources.md)."""

    schema_: Literal["xui", "xtream"] = Field(alias="schema")
    """``xui``: ``lines_live`` joined to ``lines`` (XUI.one / XC_VM); ``xtream``: ``user_activity_now`` joined to
    ``users`` (Xtream Codes / Xtream UI)."""
    host: str = "127.0.0.1"
    port: int = Field(default=3306, ge=1, le=65535)
    socket: Path | None = None
    """A unix socket (``/run/mysqld/mysqld.sock``); wins over host and port."""
    database: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]{1,64}$")
    """Default: ``xui`` or ``xtream_iptvpro``."""
    user: str = Field(min_length=1, max_length=80)
    password_file: Path
    """The account's password; read at every (re)connect, so rotating it needs no restart."""
    server_id: int | None = Field(default=None, ge=0)
    """This node's id in a multi-server panel: only its rows are read (default: every row)."""
    max_rows: int = Field(default=100_000, ge=1)
    """One query per round reads at most this many rows (the newest)."""
    timeout: Duration = 5.0

    model_config = {**Section.model_config, "populate_by_name": True}

    def tables(self) -> tuple[str, str, str]:
        """(live table, subscriber table, database)."""
        live, users, database = PANEL_TABLES[self.schema_]
        return live, users, self.database or database


class ViewerApi(Section):
    """``viewers.api``: the read-only bearer token of ``GET /api/connections`` and ``GET /api/lines/sharing``."""

    token_file: Path
    """Accepted by the viewer API only, never by the webhook or the action API: the token to give Grafana.
    With it the viewer API is served without an ``actions`` section too (docs/viewers.md#api)."""


class Viewers(Section):
    ports: list[int] = Field(default_factory=lambda: [80, 8080, 25461])
    """Local ports whose established TCP peers are viewers; empty: no socket sampling."""
    exclude_peers: list[IPvAnyNetwork] = Field(default_factory=list)
    """Peers whose connections to the viewer ports are not viewers: on XUI.one / Xtream the panel's ffmpeg pushes
    its progress to the panel's own port from 127.0.0.1 (the xui and xtream profiles exclude loopback)."""
    socket_backend: Literal["auto", "netlink", "psutil"] = "auto"
    """``auto``: netlink sock_diag (bytes per connection), psutil when netlink is unavailable (no bytes)."""
    access_log: AccessLog | None = Field(default_factory=AccessLog)
    window: Duration = 60.0
    sharing: Sharing = Field(default_factory=Sharing)
    max_clients: int = Field(default=200_000, ge=100)
    """Bound on tracked (client, stream) sessions: the oldest are dropped past it (a flood of fake clients)."""
    panel_db: PanelDb | None = None
    """Viewers from the panel's live-connections table instead of the access log (XUI.one / XC_VM / Xtream)."""
    api: ViewerApi | None = None
    """The viewer API's own read-only token; without it only ``actions.token_file`` opens that API."""

    @model_validator(mode="before")
    @classmethod
    def _panel_db_replaces_access_log(cls, data: object) -> object:
        """With ``panel_db`` the access log is off unless asked for (one source of viewers per host)."""
        if isinstance(data, dict) and data.get("panel_db") is not None and "access_log" not in data:
            data = {**data, "access_log": None}
        return data

    @model_validator(mode="after")
    def _ports(self) -> Viewers:
        if self.panel_db is not None and self.access_log is not None:
            raise ValueError("panel_db and access_log both count viewers: set access_log: null with panel_db")
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
