"""The bare-host install path (docs/deploy.md): a wheel built from the source, installed into a fresh venv
and started as the systemd unit starts it; the unit itself checked by ``systemd-analyze``."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from exporter.cli import build_parser
from tests.helpers import REPO, Proc, free_port, parse_metrics, require_binary, wait_until

UNIT = REPO / "deploy" / "iptv-exporter.service"
INSTALLED = "/opt/iptv-exporter/bin/iptv-exporter"


def unit_value(key: str) -> str:
    found = re.search(rf"^{key}=(.*)$", UNIT.read_text(), re.MULTILINE)
    assert found, key
    return found.group(1)


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True,
                          timeout=120)


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at the iptv-exporter this venv installed.
    here = shutil.which("iptv-exporter", path=str(Path(sys.executable).parent))
    assert here
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(INSTALLED, here))
    done = verify(unit)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    broken = tmp_path / "broken" / UNIT.name
    broken.parent.mkdir()
    broken.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=strcit"))
    assert "strcit" in verify(broken).stderr  # the check can fail


def test_unit_is_confined_and_its_command_line_parses(tmp_path: Path) -> None:
    text = UNIT.read_text()
    for setting in ("ProtectSystem=strict", "StateDirectory=iptv-exporter", "Restart=on-failure",
                    "NoNewPrivileges=yes", "DynamicUser=yes"):
        assert re.search(rf"^{re.escape(setting)}$", text, re.MULTILINE), setting
    assert int(unit_value("LimitNOFILE")) >= 65536
    assert set(unit_value("CapabilityBoundingSet").split()) == {"CAP_SYS_PTRACE", "CAP_KILL", "CAP_NET_ADMIN"}
    assert unit_value("AmbientCapabilities") == unit_value("CapabilityBoundingSet")
    argv = shlex.split(unit_value("ExecStart"))
    assert argv[0] == INSTALLED
    args = build_parser().parse_args(argv[1:])
    assert args.config_file == "/etc/iptv-exporter/config.yml" and args.listen == ("0.0.0.0", 9756)
    done = subprocess.run([require_binary("systemd-analyze"), "security", "--offline=true", str(UNIT)],
                          capture_output=True, text=True, timeout=120)
    exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout + done.stderr)
    assert exposure, done.stdout + done.stderr
    assert float(exposure.group(1)) <= 4.5, done.stdout  # systemd's scale: 0 (locked down) to 10 (exposed)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_wheel_installs_into_a_fresh_venv_without_extras_and_the_installed_exporter_serves(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "exporter", src / "exporter", ignore=shutil.ignore_patterns("__pycache__", "_build_*"))
    revision = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "exporter.buildinfo", "write", "--revision", revision, "--branch", "release",
                    "--output", str(src / "exporter" / "_build_info.json")], check=True, cwd=REPO, timeout=60)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(src)],
                   check=True, timeout=600, cwd=tmp_path)
    wheel = next(dist.glob("iptv_exporter-*.whl"))
    assert "exporter/_build_info.json" in zipfile.ZipFile(wheel).namelist()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], check=True, timeout=600,
                   cwd=tmp_path)
    installed = venv / "bin" / "iptv-exporter"
    version = subprocess.run([str(installed), "--version"], capture_output=True, text=True, timeout=60, check=True,
                             cwd=tmp_path).stdout
    assert f"(branch: release, revision: {revision})" in version  # from the wheel's build metadata, no git

    config = tmp_path / "config.yml"
    config.write_text(f"sample_interval: 1s\nstreams: {{discover: []}}\nviewers: {{ports: [], access_log: null}}\n"
                      f"actions: {{dry_run: true, journal: {tmp_path / 'state' / 'actions.sqlite'}}}\n")
    (tmp_path / "state").mkdir()
    checked = subprocess.run([str(installed), "check-config", str(config)], capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr

    # The demo's GeoIP writer is the `demo` extra: not installed here, and the demo says which extra to install.
    no_extra = subprocess.run([str(venv / "bin" / "python"), "-c", "import mmdb_writer"], capture_output=True,
                              timeout=60, cwd=tmp_path)
    assert no_extra.returncode != 0
    demo = subprocess.run([str(installed), "demo", "--no-monitoring"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert demo.returncode == 1
    assert "pip install 'iptv-exporter[demo]'" in demo.stderr
    assert "Traceback" not in demo.stderr

    port = free_port()
    argv = shlex.split(unit_value("ExecStart"))  # the unit's command line, with this test's paths
    argv = [str(installed), *(a.replace("/etc/iptv-exporter/config.yml", str(config)) for a in argv[1:])]
    argv = [a if not a.startswith("--web.listen-address") else f"--web.listen-address=127.0.0.1:{port}" for a in argv]
    proc = Proc(argv, cwd=tmp_path, log=tmp_path / "exporter.log").start()
    try:
        def scraped() -> str | None:
            assert proc.alive(), proc.output()
            response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            return response.text if response.status_code == 200 else None

        samples = parse_metrics(wait_until(scraped, timeout=60, what="the installed exporter serving"))
        info = [dict(labels) for (name, labels) in samples if name == "iptv_exporter_build_info"]
        assert info == [{"version": info[0]["version"], "revision": revision, "branch": "release",
                         "pythonversion": info[0]["pythonversion"]}]
        where = subprocess.run([str(venv / "bin" / "python"), "-c", "import exporter; print(exporter.__file__)"],
                               capture_output=True, text=True, cwd=tmp_path, check=True, timeout=60).stdout
        assert where.startswith(str(venv))  # the installed package ran, not this checkout
    finally:
        proc.stop()
