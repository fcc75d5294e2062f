from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config, parse_duration
from tests.helpers import REPO

BAD = sorted((REPO / "tests" / "configs" / "bad").glob("*.yml"))


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter", "check-config", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def test_three_mistakes_all_reported_with_key_paths() -> None:
    path = REPO / "tests/configs/bad/three_mistakes.yml"
    out = check_config(path)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines == [
        f"{path}: sample_interval: invalid duration '5 seconds': use Prometheus form such as 5s, 2m, 1h30m"
        " (units largest first, each once)",
        f"{path}: streams.static[0].cmdline: invalid regular expression: missing ), unterminated subpattern"
        " at position 7",
        f"{path}: viewers.portz: unknown key",
    ]


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_every_bad_config_is_rejected_with_a_key_path(path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems
    for problem in err.value.problems:
        key, sep, message = problem.partition(": ")
        assert sep and key and message, problem


def test_messages_name_the_problem() -> None:
    def problems(name: str) -> str:
        with pytest.raises(ConfigError) as err:
            load_config(REPO / "tests/configs/bad" / name)
        return "\n".join(err.value.problems)

    assert "streams.discover[0]: regular expression needs the named group(s) stream" in problems(
        "discover_without_group.yml")
    assert problems("unsafe_stream_id.yml").startswith("streams.static[0].id: a stream id is")
    assert "actions: token_file is required unless dry_run" in problems("actions_without_token.yml")
    assert problems("viewer_api_without_token_file.yml") == ("viewers.api.token_file: Field required\n"
                                                             "viewers.api.token: unknown key")
    assert problems("unknown_runner.yml").startswith("actions.restart: Input tag 'shell'")
    assert problems("not_yaml.yml").startswith("(yaml): line 2")
    assert problems("zero_seconds.yml") == ("sample_interval: duration 0 must be greater than zero\n"
                                            "actions.cooldown: duration -5 must be greater than zero")


def test_good_config_and_defaults(tmp_path: Path) -> None:
    cfg = load_config(REPO / "tests/configs/good.yml")
    assert cfg.sample_interval == 5.0 and cfg.viewers.window == 60.0
    assert cfg.actions is not None and cfg.actions.budget.window == 1800.0
    # check-config also checks what run needs at start: the token file named must exist here.
    token = tmp_path / "webhook.token"
    token.write_text("t0ken\n")
    good = tmp_path / "good.yml"
    good.write_text((REPO / "tests/configs/good.yml").read_text().replace("/etc/iptv-exporter/webhook.token",
                                                                            str(token)))
    assert check_config(good).returncode == 0
    default = load_config(None)
    assert [r.preset for r in default.streams.discover] == ["panelx", "xui", "xtream", "hls"]
    assert default.node  # the host name


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    out = check_config(tmp_path / "nope.yml")
    assert out.returncode == 1 and "cannot read" in out.stderr


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5), ("2m", 120), ("1h30m", 5400), ("250ms", 0.25)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 s", "-1s", "0s", "1.5s", "s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_readme_config_reference_is_valid() -> None:
    """The README's reference block is a real config: a key renamed in code must be renamed there too."""
    import re

    import yaml

    from exporter.config import parse_config

    block = re.search(r"```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block is not None
    cfg = parse_config(yaml.safe_load(block.group(1)), "README.md")
    assert cfg.node == "edge-1" and cfg.actions is not None and cfg.errors.logs
