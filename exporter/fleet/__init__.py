"""``iptv-exporter fleet``: the Alertmanager restart wiring and per-node tokens, generated from the targets.

The Prometheus file_sd files of the iptv job are the one list of nodes. From it the command writes the
``restart-<node>`` routes and receivers into their marked blocks of alertmanager.yml and creates a token
per node; ``--check`` changes nothing and exits 1 listing every place where the targets, alertmanager.yml,
the token files and the exporters' configs disagree on a node's name, URL or token. docs/fleet.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

import yaml

from exporter.fleet.alertmanager import read_wiring, splice
from exporter.fleet.check import check_alertmanager, check_exporters, check_tokens
from exporter.fleet.errors import FleetError
from exporter.fleet.targets import FleetNode, read_targets, target_files_from_prometheus
from exporter.fleet.tokens import ensure_tokens

__all__ = ["FleetError", "add_arguments", "run"]

DEFAULT_CREDENTIALS_DIR = "/etc/alertmanager/iptv-tokens"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus.config", dest="prometheus_config", metavar="PATH",
                        default="prometheus/prometheus.yml",
                        help="read the target files of --job from this prometheus.yml (default: %(default)s)")
    parser.add_argument("--job", default="iptv", help="the exporters' scrape job (default: %(default)s)")
    parser.add_argument("--targets", metavar="FILE", action="append", default=[],
                        help="file_sd target files to read instead (repeatable)")
    parser.add_argument("--alertmanager.config", dest="alertmanager_config", metavar="PATH",
                        default="alertmanager/alertmanager.yml",
                        help="alertmanager.yml with the fleet markers (default: %(default)s)")
    parser.add_argument("--tokens.dir", dest="tokens_dir", metavar="DIR",
                        help="where the per-node token files are (created if missing; default: the credentials dir)")
    parser.add_argument("--alertmanager.credentials-dir", dest="credentials_dir", metavar="DIR",
                        default=DEFAULT_CREDENTIALS_DIR,
                        help="where Alertmanager reads the token files, for credentials_file (default: %(default)s)")
    parser.add_argument("--exporter.config", dest="exporter_configs", metavar="PATH", action="append", default=[],
                        help="a node's exporter config, or a directory of them (*.yml); repeatable; checked")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 listing every disagreement")


def run(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    try:
        nodes = _nodes(args)
        problems = check(args, nodes) if args.check else generate(args, nodes, out)
    except FleetError as exc:
        problems = exc.problems
    for problem in problems:
        print(f"iptv-exporter fleet: {problem}", file=err)
    if problems:
        return 1
    if args.check:
        print(f"fleet: {len(nodes)} nodes agree", file=out)
    return 0


def _nodes(args: argparse.Namespace) -> list[FleetNode]:
    if args.targets:
        return read_targets([Path(t) for t in args.targets])
    files, scheme = target_files_from_prometheus(Path(args.prometheus_config), args.job)
    return read_targets(files, scheme)


def _tokens_dir(args: argparse.Namespace) -> Path:
    return Path(args.tokens_dir or args.credentials_dir)


def _exporter_configs(args: argparse.Namespace) -> list[Path]:
    paths: list[Path] = []
    for given in map(Path, args.exporter_configs):
        paths += sorted(given.glob("*.yml")) if given.is_dir() else [given]
    return paths


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetError([f"{path}: cannot read: {exc.strerror}"]) from None


def generate(args: argparse.Namespace, nodes: list[FleetNode], out: TextIO) -> list[str]:
    """Write the blocks and missing tokens; then check, so what was written is known to agree."""
    am_path = Path(args.alertmanager_config)
    text = _read_text(am_path)
    new = splice(text, nodes, args.credentials_dir, str(am_path))
    if new != text:
        tmp = am_path.with_name(am_path.name + ".tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(am_path)
    created = ensure_tokens(_tokens_dir(args), [n.name for n in nodes])
    print(f"fleet: {am_path}: {len(nodes)} restart routes and receivers"
          f"{'' if new != text else ' (unchanged)'}; {len(created)} new tokens in {_tokens_dir(args)}", file=out)
    for name in created:
        print(f"fleet: copy {_tokens_dir(args) / (name + '.token')} to node {name} (its actions.token_file)", file=out)
    return check(args, nodes)


def check(args: argparse.Namespace, nodes: list[FleetNode]) -> list[str]:
    am_path = Path(args.alertmanager_config)
    try:
        config = yaml.safe_load(_read_text(am_path)) or {}
    except yaml.YAMLError as exc:
        return [f"{am_path}: not YAML: {exc}"]
    wiring, problems = read_wiring(config)
    problems = [p.replace("alertmanager: ", f"{am_path}: ", 1) for p in problems]
    problems += check_alertmanager(nodes, wiring, args.credentials_dir)
    digests, token_problems = check_tokens(nodes, _tokens_dir(args))
    problems += token_problems
    problems += check_exporters(nodes, _exporter_configs(args), digests)
    return problems
