"""``profile:``: one key selects a panel's defaults; explicit keys win."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config, parse_config
from exporter.config.actions import HttpAction, SignalAction


def test_panelx_profile_reads_pm2_logs_nginx_and_restarts_through_the_login_api() -> None:
    cfg = parse_config({"profile": "panelx", "actions": {"token_file": "/etc/iptv-exporter/webhook.token"}})
    assert [r.preset for r in cfg.streams.discover] == ["panelx"]
    assert [(log.preset, log.path) for log in cfg.errors.logs] == [
        ("panelx", "/home/panelx/logs/error.log"), ("panelx_exits", "/home/panelx/logs/out.log")]
    assert cfg.viewers.access_log is not None and cfg.viewers.access_log.preset == "panelx"
    assert cfg.viewers.panel_db is None
    restart = cfg.actions.restart if cfg.actions else None
    assert isinstance(restart, HttpAction) and restart.login is not None
    assert restart.url == "http://127.0.0.1:5000/api/streams/{stream}/restart"
    assert restart.login.url == "http://127.0.0.1:5000/api/auth/login"


@pytest.mark.parametrize(("profile", "logs", "table", "port"), [
    ("xui", "/home/xui/content/streams/*.errors", "lines_live", 80),
    ("xtream", "/home/xtreamcodes/iptv_xtream_codes/streams/*.errors", "user_activity_now", 25461),
])
def test_xtream_family_profiles_read_errors_files_and_the_panel_db(profile: str, logs: str, table: str,
                                                                   port: int) -> None:
    cfg = parse_config({"profile": profile, "actions": {"token_file": "/t"},
                        "viewers": {"panel_db": {"user": "iptv_exporter", "password_file": "/etc/db.pass"}}})
    assert [log.path for log in cfg.errors.logs] == [logs]
    assert cfg.viewers.access_log is None  # nginx ships with access_log off; the table is the truth
    assert cfg.viewers.panel_db is not None and cfg.viewers.panel_db.tables()[0] == table
    assert cfg.viewers.ports == [port]
    assert isinstance(cfg.actions.restart if cfg.actions else None, SignalAction)  # the panel respawns ffmpeg


def test_explicit_keys_and_nulls_win_and_actions_stay_off() -> None:
    cfg = parse_config({"profile": "panelx", "errors": {"logs": []},
                        "viewers": {"access_log": None, "ports": [8080]},
                        "streams": {"static": [{"id": "5"}]}})
    assert cfg.errors.logs == [] and cfg.viewers.access_log is None and cfg.viewers.ports == [8080]
    assert [r.preset for r in cfg.streams.discover] == ["panelx"] and cfg.streams.static[0].id == "5"
    assert cfg.actions is None  # a profile never turns the webhook on
    cfg = parse_config({"profile": "xui", "actions": {"token_file": "/t", "restart": {
        "type": "command", "argv": ["/usr/local/bin/restart-stream", "{stream}"]}}})
    assert cfg.actions is not None and cfg.actions.restart is not None and cfg.actions.restart.type == "command"
    assert cfg.viewers.panel_db is None  # not given: no account, no database source


def test_bad_profile_and_its_errors_have_key_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"profile": "xc", "viewers": {"colour": 1}})
    assert "profile: Input should be 'panelx', 'xui', 'xtream' or 'hls'" in str(err.value)
    assert "viewers.colour: unknown key" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config({"profile": "xtream", "viewers": {"panel_db": {"user": "ro"}}})
    assert "viewers.panel_db.password_file: Field required" in str(err.value)
    path = tmp_path / "edge.yml"
    path.write_text("profile: xtream\nviewers:\n  panel_db: {user: iptv_exporter, password_file: /etc/db.pass}\n")
    assert load_config(path).viewers.panel_db is not None


def test_xtream_family_profile_without_its_table_says_so(caplog: pytest.LogCaptureFixture) -> None:
    from exporter.runtime import build_runtime

    with caplog.at_level("WARNING", logger="exporter.runtime"):
        rt = build_runtime(parse_config({"profile": "xtream", "viewers": {"ports": []}}))
    rt.sampler.close()
    assert "profile xtream without viewers.panel_db" in caplog.text
