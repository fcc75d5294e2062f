"""Command line, in Prometheus style. The only module that parses arguments, sets up logging and exits."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from exporter.buildinfo import build_info
from exporter.errors import ConfigError, ExporterError
from exporter.web.address import parse_listen_address

log = logging.getLogger(__name__)

DEFAULT_LISTEN = ":9756"
DEFAULT_TELEMETRY_PATH = "/metrics"


def _add_run_flags(p: argparse.ArgumentParser, *, sub: bool = False) -> None:
    """The exporter's flags, accepted before or after ``run``.

    On a subcommand their default is SUPPRESS, so a flag given before the subcommand is not overwritten by
    the subcommand's default. The listen default is resolved by whoever serves (``run`` or ``demo``).
    """
    default = {"default": argparse.SUPPRESS} if sub else {"default": None}
    p.add_argument("--config.file", dest="config_file", metavar="PATH",
                   help="YAML config; without it, built-in defaults watch this host", **default)
    p.add_argument("--web.listen-address", dest="listen", type=parse_listen_address,
                   metavar="HOST:PORT", help=f"address to serve on (default {DEFAULT_LISTEN})", **default)
    p.add_argument("--web.config.file", dest="web_config_file", metavar="PATH",
                   help="TLS and basic auth, exporter-toolkit format", **default)
    p.add_argument("--web.max-connections", dest="max_connections", type=int, metavar="N",
                   help="concurrent HTTP connections (default 512; lowered to keep descriptors for sampling)",
                   **default)
    p.add_argument("--web.telemetry-path", dest="telemetry_path", type=_telemetry_path, metavar="PATH",
                   help=f"path under which to expose metrics (default {DEFAULT_TELEMETRY_PATH})", **default)


def _telemetry_path(value: str) -> str:
    if not value.startswith("/") or any(c.isspace() for c in value) or "?" in value or "#" in value:
        raise argparse.ArgumentTypeError(f"invalid telemetry path {value!r}: an absolute URL path such as /metrics")
    return value


class _VersionAction(argparse.Action):
    """``--version``: version, revision, branch and Python, like Prometheus's exporters (git asked only here)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kw: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from exporter.buildinfo import build_info

        print(build_info().describe())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iptv-exporter", description="Prometheus exporter and auto-restarts for IPTV restreaming hosts."
    )
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("--log.level", dest="log_level", default="info",
                        choices=["debug", "info", "warn", "warning", "error"])
    parser.add_argument("--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"])
    _add_run_flags(parser)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the exporter (the default)")
    _add_run_flags(run, sub=True)
    check = sub.add_parser("check-config", help="validate a config file; list every problem; exit 1 if any")
    check.add_argument("path")
    from exporter import report

    report.add_arguments(sub.add_parser("report", help="bandwidth report (CSV, JSON, HTML) from Prometheus"))
    from exporter import demo

    demo.add_arguments(sub.add_parser("demo", help="a live IPTV workload on loopback, watched by the exporter"),
                       parse_listen_address)
    from exporter import fleet

    fleet.add_arguments(sub.add_parser("fleet", help="restart routes and per-node tokens from the targets"))
    return parser


def _check_config(path: str) -> int:
    from exporter.config import load_config
    from exporter.preflight import startup_problems

    try:
        config = load_config(path)
        problems = startup_problems(config)  # what `run` would refuse at start, by the same checks
        if problems:
            raise ConfigError(path, problems)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"{path}: OK")
    return 0


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from exporter.config import load_config
    from exporter.runtime import build_runtime
    from exporter.web.app import create_app
    from exporter.web.connguard import DEFAULT_MAX_CONNECTIONS, ConnectionGuard
    from exporter.web.limits import plan
    from exporter.web.tls import reloading_context_factory
    from exporter.web.webconfig import WebConfigWatcher

    config = load_config(args.config_file)
    web_config = WebConfigWatcher(args.web_config_file) if args.web_config_file else None  # re-read on change
    rt = build_runtime(config, freeze_heap=True)  # this process is the exporter: exporter/sampler.py says why
    app = create_app(rt.sampler, rt.registry, components=rt.components, web_config=web_config, links=rt.links,
                     telemetry_path=args.telemetry_path or DEFAULT_TELEMETRY_PATH)
    host, port = args.listen or parse_listen_address(DEFAULT_LISTEN)
    # ffmpeg's -progress push is one POST that lasts as long as ffmpeg: without a limit, shutdown would wait
    # for every pushing ffmpeg to exit. After the limit the remaining requests are cancelled.
    # loop is left "auto" (uvloop when importable); http is httptools, inside the connection guard.
    # Descriptors: soft limit raised to the hard one; connections capped, idle ones evicted past the cap and
    # request heads given a deadline (exporter.web.connguard), so slow clients cannot starve the sampler.
    fds = plan(args.max_connections or DEFAULT_MAX_CONNECTIONS)
    guard = ConnectionGuard(fds.max_connections)
    rt.registry.register(guard)
    tls = None
    if web_config is not None:
        rt.registry.register(web_config)
        if web_config.tls_enabled:  # each connection gets the current TLS settings
            tls = reloading_context_factory(web_config.tls_context)
    uv = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
                        timeout_graceful_shutdown=3, http=guard.protocol(), ssl_context_factory=tls)
    build = build_info()
    log.info("starting iptv-exporter version=%s revision=%s branch=%s node=%s listen=%s:%d telemetry_path=%s "
             "streams_declared=%d nofile_soft=%d nofile_hard=%d max_connections=%d", build.version, build.revision,
             build.branch, config.node, host, port, args.telemetry_path or DEFAULT_TELEMETRY_PATH,
             len(config.streams.static), fds.soft, fds.hard, fds.max_connections)
    server = uvicorn.Server(uv)
    server.run()
    return 0 if server.started else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from exporter.logs import setup_logging

    setup_logging("warning" if args.log_level == "warn" else args.log_level, args.log_format)
    try:
        if args.command == "check-config":
            return _check_config(args.path)
        if args.command == "report":
            from exporter import report

            return report.run(args)
        if args.command == "demo":
            from exporter.demo import require_extra

            require_extra()
            from exporter.demo.runner import run as run_demo

            return run_demo(args)
        if args.command == "fleet":
            from exporter import fleet

            return fleet.run(args)
        return _run(args)
    except ExporterError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
