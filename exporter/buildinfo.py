"""What was built and from where: version, VCS revision and branch, Python version.

The same facts answer ``--version`` and ``iptv_exporter_build_info``, as in Prometheus's own exporters.
The revision and branch come, in order, from:

1. ``exporter/_build_info.json``, written at build time (``make wheel``, the Dockerfile) by
   ``python -m exporter.buildinfo write`` and shipped in the wheel: an installed exporter has no git;
2. git, when the package runs from a checkout (``make run``, the tests);
3. ``unknown``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from exporter import __version__

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
BUILD_FILE = PACKAGE_DIR / "_build_info.json"
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class BuildInfo:
    version: str
    revision: str
    branch: str
    python_version: str

    def describe(self) -> str:
        """``--version``'s text, laid out like Prometheus's (``version.Print``)."""
        return (
            f"iptv-exporter, version {self.version} (branch: {self.branch}, revision: {self.revision})\n"
            f"  python version:   {self.python_version} ({platform.python_implementation()})\n"
            f"  platform:         {sys.platform}/{platform.machine()}"
        )


@dataclass(frozen=True, slots=True)
class Vcs:
    revision: str
    branch: str


def _git(args: Sequence[str], where: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=5,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:  # no git on this host: not a checkout we can read
        log.debug("git unavailable error=%s", exc)
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else None


def vcs_from_git(where: Path) -> Vcs | None:
    """Revision and branch of the checkout ``where`` is in (None outside one). A detached HEAD is ``HEAD``."""
    revision = _git(["rev-parse", "HEAD"], where)
    if revision is None:
        return None
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], where) or UNKNOWN
    dirty = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return Vcs(revision + ("-dirty" if dirty else ""), branch)


def vcs_from_file(path: Path) -> Vcs | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("build metadata unreadable path=%s error=%s", path, exc)
        return None
    if not isinstance(data, dict):
        log.warning("build metadata is not a JSON object path=%s", path)
        return None
    return Vcs(str(data.get("revision") or UNKNOWN), str(data.get("branch") or UNKNOWN))


@functools.cache
def build_info() -> BuildInfo:
    """Computed once per process (git is asked at most once)."""
    vcs = vcs_from_file(BUILD_FILE) or vcs_from_git(PACKAGE_DIR) or Vcs(UNKNOWN, UNKNOWN)
    return BuildInfo(__version__, vcs.revision, vcs.branch, platform.python_version())


def write_build_file(revision: str | None, branch: str | None, path: Path = BUILD_FILE) -> Vcs:
    """Record revision and branch for a build: the given ones, else git's, else ``unknown``."""
    found = vcs_from_git(PACKAGE_DIR) or Vcs(UNKNOWN, UNKNOWN)
    vcs = Vcs(revision or found.revision, branch or found.branch)
    path.write_text(json.dumps(asdict(vcs)) + "\n", encoding="utf-8")
    return vcs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exporter.buildinfo",
                                     description="write exporter/_build_info.json before building a wheel or image")
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="record revision and branch (default: from git)")
    write.add_argument("--revision")
    write.add_argument("--branch")
    write.add_argument("--output", type=Path, default=BUILD_FILE, help=f"default {BUILD_FILE}")
    args = parser.parse_args(argv)
    vcs = write_build_file(args.revision, args.branch, args.output)
    print(f"{args.output}: revision={vcs.revision} branch={vcs.branch}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
