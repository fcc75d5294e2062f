"""Runs the demo: the stack, the exporter in this process, chaos, a watchdog; stops it all on a signal.

The exporter is built exactly as ``iptv-exporter run`` builds it (``build_runtime`` + ``create_app`` +
uvicorn), from the config the stack wrote. uvicorn's own signal handling is left out: SIGINT and SIGTERM
set one event, and the demo then stops the server, the stack and every process it started, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Generator
from pathlib import Path

import uvicorn

from exporter.config import load_config, parse_duration
from exporter.demo import DEFAULT_LISTEN, alerting, streams
from exporter.demo.stack import Options, Stack, StackError
from exporter.demo.streams import DEFAULT_STREAMS, StreamSpec
from exporter.web.address import parse_listen_address

log = logging.getLogger(__name__)

WATCHDOG_AFTER = 20.0
"""Without Prometheus and Alertmanager, a stream down this long is restarted by the demo itself."""
WATCHDOG_AFTER_WITH_ALERTS = 120.0
"""With them, alerts restart streams; the watchdog only catches what they could not."""

MORE_STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("105", "Music Live", 200), StreamSpec("106", "Weather", 100),
    StreamSpec("107", "Documentary", 250), StreamSpec("108", "Cartoons", 150),
)


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the demo owns SIGINT/SIGTERM (uvicorn re-raises them at exit)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """The exporter's listening socket, bound before the stack starts (uvicorn serves on it)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


class Demo:
    def __init__(self, stack: Stack, listen: tuple[str, int], chaos_interval: float) -> None:
        self.stack = stack
        self.listen = listen
        self.chaos_interval = chaos_interval
        self.stop_event = asyncio.Event()
        self.down_since: dict[str, float] = {}
        self.rng = random.Random()

    def _signal(self, signum: int) -> None:
        if not self.stop_event.is_set():
            print(f"\n{signal.Signals(signum).name}: stopping the demo ...", flush=True)
        self.stop_event.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._signal, sig)
        host, port = self.listen
        try:
            listener = bind(host, port)  # first: a taken port fails before anything is started
        except OSError as exc:
            print(f"demo: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
            return 1
        try:
            await asyncio.to_thread(self.stack.start)
        except StackError as exc:
            listener.close()
            print(f"demo: {exc}", file=sys.stderr)
            return 1
        try:
            return await self._serve(listener)
        finally:
            left = await asyncio.to_thread(self.stack.stop)
            print(f"demo stopped{f' ({left} stray processes killed)' if left else ''}.", flush=True)

    async def _serve(self, listener: socket.socket) -> int:
        from exporter.runtime import build_runtime
        from exporter.web.app import create_app
        from exporter.web.connguard import DEFAULT_MAX_CONNECTIONS, ConnectionGuard
        from exporter.web.limits import plan

        config = await asyncio.to_thread(load_config, self.stack.layout.exporter_config)
        rt = await asyncio.to_thread(build_runtime, config)  # opens the GeoIP databases
        app = create_app(rt.sampler, rt.registry, components=rt.components, links=rt.links)
        host, port = self.listen
        guard = ConnectionGuard(plan(DEFAULT_MAX_CONNECTIONS).max_connections)  # served as `run` serves
        rt.registry.register(guard)
        server = _QuietServer(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                             lifespan="on", http=guard.protocol()))
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.05)
        if not server.started:
            await serving
            print("demo: the exporter did not start (see the log above)", file=sys.stderr)
            return 1
        print(self.stack.summary(), flush=True)
        print("Ctrl-C stops everything.", flush=True)
        tasks = [asyncio.create_task(self._watchdog())]
        if self.chaos_interval > 0:
            tasks.append(asyncio.create_task(self._chaos()))
        stop = asyncio.create_task(self.stop_event.wait())
        await asyncio.wait([stop, serving], return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.should_exit = True
        await serving
        stop.cancel()
        return 0

    def _running(self) -> list[str]:
        """Streams whose process runs (pid files and /proc: called in a thread)."""
        return [s for s in self.stack.stream_ids if streams.running_pid(self.stack.layout, s) is not None]

    async def _chaos(self) -> None:
        """Streams fail now and then: SIGKILL one running stream every ``chaos_interval`` (+-20%)."""
        layout = self.stack.layout
        while True:
            await asyncio.sleep(self.chaos_interval * self.rng.uniform(0.8, 1.2))
            running = await asyncio.to_thread(self._running)
            if len(running) < 2:
                continue  # keep the demo watchable
            victim = self.rng.choice(running)
            pid = await asyncio.to_thread(streams.kill, layout, victim)
            how = ("IPTVStreamDown fires and Alertmanager has the exporter restart it"
                   if self.stack.options.monitoring else f"the demo's watchdog restarts it in {WATCHDOG_AFTER:.0f}s")
            print(f"chaos: killed stream {victim} (pid {pid}); {how}", flush=True)

    async def _watchdog(self) -> None:
        """Restart a stream that stayed down (the panel's own respawn, or a backstop for the alerts)."""
        after = WATCHDOG_AFTER_WITH_ALERTS if self.stack.options.monitoring else WATCHDOG_AFTER
        layout = self.stack.layout
        while True:
            await asyncio.sleep(2)
            now = time.monotonic()
            running = await asyncio.to_thread(self._running)
            for s in self.stack.stream_ids:
                if s in running:
                    self.down_since.pop(s, None)
                    continue
                since = self.down_since.setdefault(s, now)
                if now - since >= after:
                    pid = await asyncio.to_thread(streams.start, layout, s)
                    self.down_since.pop(s, None)
                    print(f"watchdog: stream {s} was down {now - since:.0f}s; started it again (pid {pid})",
                          flush=True)


def run(args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # readiness polls are not news
    chaos = 0.0 if args.chaos_interval in {"0", "0s"} else parse_duration(args.chaos_interval)
    specs = (DEFAULT_STREAMS + MORE_STREAMS)[: args.stream_count]
    temp = None
    if args.data_dir:
        root = Path(args.data_dir).resolve()
    else:
        temp = tempfile.mkdtemp(prefix="iptv-demo-")
        root = Path(temp)
    listen = getattr(args, "listen", None) or parse_listen_address(DEFAULT_LISTEN)
    defaults = Options(root=root, exporter_port=listen[1])
    ffmpeg = None if args.builtin else defaults.ffmpeg
    nginx = None if args.builtin else defaults.nginx
    if ffmpeg is None:
        print("note: " + ("--builtin: " if args.builtin else "ffmpeg is not installed; ")
              + "the streams are the built-in stand-in (python -m exporter.demo.standin: same files, no video).")
    if nginx is None:
        print("note: " + ("--builtin: " if args.builtin else "nginx is not installed; ")
              + "a small Python origin serves the streams and writes the access log.")
    monitoring = defaults.monitoring if args.monitoring and alerting.shipped_configs_present() else None
    if args.monitoring and monitoring is None:
        print("note: Prometheus and Alertmanager are not installed (apt-get install prometheus "
              "prometheus-alertmanager): no alerts; the demo's watchdog restarts crashed streams.")
    options = dataclasses.replace(defaults, streams=specs, monitoring=monitoring, ffmpeg=ffmpeg, nginx=nginx)
    if args.free_ports:
        options = dataclasses.replace(options, origin_port=0, prometheus_port=0, alertmanager_port=0)
    try:
        return asyncio.run(Demo(Stack(options), listen, chaos).run())
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
