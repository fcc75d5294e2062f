"""``profile:`` — one key that sets a panel's defaults: discovery, error logs, viewers, restart method.

Each profile fills in only what the config leaves out; anything given explicitly wins (a key given as ``null``
counts as given). The values come from the panels' own source; docs/sources.md says per panel which file each
path and URL comes from, and what the profile cannot see.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationError

Profile = Literal["panelx", "xui", "xtream", "hls"]

PANELX_APP = "http://127.0.0.1:5000"
"""PanelX's Node app (ecosystem.config.cjs: PORT 5000; nginx.conf proxies to it)."""
PANELX_LOGIN_FILE = "/etc/iptv-exporter/panelx-login.yml"
LOOPBACK_PUSH = ["127.0.0.1/32", "::1/128"]
"""Where the Xtream family's ffmpeg pushes its progress from, to the panel's viewer port: not a viewer."""


def _discover(preset: str, fallback: str) -> list[dict[str, str]]:
    """A discovery preset by name, or ``fallback`` where this build has no such preset."""
    from exporter.config.streams import DiscoverRule

    try:
        DiscoverRule.model_validate({"preset": preset})
    except ValidationError:
        return [{"preset": fallback}]
    return [{"preset": preset}]


def defaults(profile: Profile) -> dict[str, Any]:
    """The profile's defaults as config data (the same shape as the YAML)."""
    if profile == "panelx":
        return {
            "streams": {"discover": [{"preset": "panelx"}]},
            "errors": {"logs": [{"preset": "panelx"}, {"preset": "panelx_exits"}]},
            "viewers": {"ports": [80],
                        "access_log": {"path": "/var/log/nginx/access.log", "format": "combined", "preset": "panelx"}},
            "actions": {"restart": {
                "type": "http", "url": PANELX_APP + "/api/streams/{stream}/restart",
                "login": {"url": PANELX_APP + "/api/auth/login", "credentials_file": PANELX_LOGIN_FILE}}},
        }
    if profile == "xui":
        return {
            "streams": {"discover": _discover("xui", "xtream")},
            "errors": {"logs": [{"preset": "xui"}]},
            "viewers": {"ports": [80], "access_log": None, "panel_db": {"schema": "xui"},
                        "exclude_peers": LOOPBACK_PUSH},
            # the panel's stream monitor starts a stream whose ffmpeg died (includes/xc_vm.php)
            "actions": {"restart": {"type": "signal", "signal": "TERM"}},
        }
    if profile == "xtream":
        return {
            "streams": {"discover": [{"preset": "xtream"}]},
            "errors": {"logs": [{"preset": "xtream"}]},
            "viewers": {"ports": [25461], "access_log": None, "panel_db": {"schema": "xtream"},
                        "exclude_peers": LOOPBACK_PUSH},
            "actions": {"restart": {"type": "signal", "signal": "TERM"}},
        }
    return {
        "streams": {"discover": [{"preset": "hls"}]},
        "viewers": {"access_log": None},
    }


def apply(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the profile's defaults filled in where it says nothing. Unknown profiles are left to the
    model's validation (its error names the allowed values)."""
    profile = data.get("profile")
    if profile not in ("panelx", "xui", "xtream", "hls"):
        return data
    out = dict(data)
    for section, values in defaults(profile).items():
        given = out.get(section)
        if section == "actions" and not isinstance(given, dict):
            continue  # actions stay off unless configured (they need a token); the profile picks the runner
        if given is None and section in out:
            continue  # the section was set to null on purpose
        merged = dict(given) if isinstance(given, dict) else {}
        for key, value in values.items():
            if key not in merged:
                if key == "panel_db":
                    continue  # needs an account: only its schema is a default, when the section is given
                merged[key] = value
            elif key == "panel_db" and isinstance(merged[key], dict) and "schema" not in merged[key]:
                merged[key] = {**value, **merged[key]}
        out[section] = merged
    return out
