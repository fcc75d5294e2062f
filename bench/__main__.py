"""``python -m bench``: run the benchmarks, print the report, write docs/benchmarks.md on a full run."""

from __future__ import annotations

import argparse
import importlib
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import geodata, report
from bench.measure import BusyMeter, loadavg, settle
from bench.options import Options

BENCHMARKS = ["sockets", "processes", "accesslog", "exporter", "scale", "steady", "webhook", "series", "nodeseries",
              "recovery"]
REPO = Path(__file__).resolve().parent.parent
APT = {"prometheus-process-exporter": "prometheus-process-exporter", "mtail": "mtail", "gcc": "gcc", "ss": "iproute2",
       "prometheus-node-exporter": "prometheus-node-exporter"}
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
"""Debian's hook that says whether a package's postinst may start its service: we answer no while installing
(prometheus-node-exporter's postinst would start node_exporter as a daemon; the bench starts its own)."""


def ensure_tools(names: list[str]) -> None:
    """Install the peer tools with apt-get when missing and running as root (as `make test` does for its own)."""
    missing = [APT[n] for n in names if shutil.which(n) is None]
    if not missing:
        return
    import os

    if os.geteuid() != 0:
        print(f"bench: missing {' '.join(missing)}; install them with apt-get (comparisons are skipped)",
              file=sys.stderr)
        return
    print(f"bench: installing {' '.join(missing)}", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    ours = not POLICY_RC_D.exists()
    if ours:
        POLICY_RC_D.write_text("#!/bin/sh\n# python -m bench is installing packages: start no service\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=False,
                       env=env)
    finally:
        if ours:
            POLICY_RC_D.unlink()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="scale every workload down (a minute or two)")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(BENCHMARKS)}")
    p.add_argument("--runs", type=int, default=0, help="runs per figure (medians); default 5, 3 with --quick")
    p.add_argument("--output", type=Path, default=None,
                   help="where to write the Markdown report (default: docs/benchmarks.md on a full run, "
                        "else only printed)")
    p.add_argument("--no-profile", action="store_true", help="skip profiling where a target is missed")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    chosen = [b.strip() for b in args.only.split(",") if b.strip()] or BENCHMARKS
    unknown = [b for b in chosen if b not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    ensure_tools(["ss", "gcc", "prometheus-process-exporter", "mtail", "prometheus-node-exporter"])
    runs = args.runs or (3 if args.quick else 5)
    started, t0, load_before, meter = report.utcnow(), time.monotonic(), loadavg(), BusyMeter()
    sections: list[report.Section] = []
    with tempfile.TemporaryDirectory(prefix="iptv-bench-") as tmp:
        tmp_path = Path(tmp)
        opts = Options(quick=args.quick, runs=runs, tmp=tmp_path, geo=geodata.write(tmp_path / "geo"),
                       profile=not args.no_profile)
        for name in chosen:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            busy_before = settle()
            b0 = time.monotonic()
            try:
                module = importlib.import_module(f"bench.{name}")
                section = module.run(opts)
            except Exception as exc:  # noqa: BLE001 - one failing benchmark must not lose the others' figures
                traceback.print_exc()
                section = report.Section(name, f"{name} (failed)")
                section.add(f"This benchmark failed in this run: `{type(exc).__name__}: {exc}`.")
                section.targets.append(report.Target(f"{name}: ran", False, f"failed: {type(exc).__name__}"))
            section.add(f"_Took {time.monotonic() - b0:.0f} s; the machine was {busy_before:.0%} busy in the second "
                        f"before it; load average after: {loadavg()}._")
            sections.append(section)
            print(f"bench: {name} done in {time.monotonic() - b0:.0f} s", file=sys.stderr, flush=True)
    text = report.render(sections, argv=argv, started=started, wall_seconds=time.monotonic() - t0,
                         load_before=load_before, load_after=loadavg(), busy=meter.busy())
    output = args.output
    if output is None and not args.quick and chosen == BENCHMARKS:
        output = REPO / "docs" / "benchmarks.md"
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        print(f"bench: wrote {output}", file=sys.stderr)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
