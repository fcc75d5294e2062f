"""The demo's streams: PanelX-shaped command lines, started detached with a pid file, like a panel does.

A stream runs in a session of its own and is not the demo's child: it is started through ``streamctl``
(the same command the exporter's restart action runs), so the demo, its chaos and an Alertmanager-driven
restart all act on streams the same way, through ``run/stream_<id>.pid`` under a per-stream lock.

With ffmpeg on PATH a stream is real ffmpeg (test pattern, tiny x264, CBR, 2 s HLS segments). Without it,
the stand-in (``python -m exporter.demo.standin``) takes the same arguments and writes the same files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from exporter.demo.layout import Layout
from exporter.demo.procs import STOP_GRACE

log = logging.getLogger(__name__)

SPECS_FILE = "streams.json"
"""``{stream id: argv}`` in the layout's ``etc``: what ``streamctl`` starts."""


@dataclass(frozen=True, slots=True)
class StreamSpec:
    id: str
    name: str
    bitrate_kbps: int = 250
    segment_seconds: int = 2


DEFAULT_STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("101", "News 24", 300),
    StreamSpec("102", "Sports One", 400),
    StreamSpec("103", "Movies HD", 250),
    StreamSpec("104", "Kids TV", 150),
)


def stream_args(layout: Layout, spec: StreamSpec) -> list[str]:
    """Everything after the program: a PanelX restream, its input a test pattern instead of a provider."""
    kbps = f"{spec.bitrate_kbps}k"
    return [
        "-hide_banner", "-loglevel", "warning", "-nostdin", "-y",
        "-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25",
        "-progress", str(layout.progress_file(spec.id)), "-stats_period", "0.5",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(25 * spec.segment_seconds),
        "-pix_fmt", "yuv420p", "-b:v", kbps, "-minrate", kbps, "-maxrate", kbps, "-bufsize", kbps,
        "-x264-params", "nal-hrd=cbr",
        "-f", "hls", "-hls_time", str(spec.segment_seconds), "-hls_list_size", "6",
        "-hls_flags", "delete_segments+append_list", "-hls_segment_type", "mpegts",
        "-hls_segment_filename", str(layout.segment_pattern(spec.id)), "-hls_base_url", "/streams/",
        str(layout.playlist(spec.id)),
    ]


def stream_argv(layout: Layout, spec: StreamSpec, ffmpeg: str | None) -> list[str]:
    """Real ffmpeg, or the stand-in with the very same arguments (so discovery sees the same shape)."""
    program = [ffmpeg] if ffmpeg else [sys.executable, "-m", "exporter.demo.standin"]
    return [*program, *stream_args(layout, spec)]


def write_specs(layout: Layout, argvs: Mapping[str, Sequence[str]]) -> Path:
    path = layout.etc / SPECS_FILE
    path.write_text(json.dumps({k: list(v) for k, v in argvs.items()}, indent=2) + "\n", encoding="utf-8")
    return path


def read_specs(layout: Layout) -> dict[str, list[str]]:
    data = json.loads((layout.etc / SPECS_FILE).read_text(encoding="utf-8"))
    return {str(k): [str(a) for a in v] for k, v in data.items()}


@contextlib.contextmanager
def _locked(layout: Layout, stream: str) -> Iterator[None]:
    """One start/stop of a stream at a time (the demo's watchdog and a webhook restart may race)."""
    with (layout.run / f"stream_{stream}.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def running_pid(layout: Layout, stream: str) -> int | None:
    """The pid in the stream's pid file if that process still runs and is that stream (pids get reused)."""
    try:
        pid = int(layout.pid_file(stream).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if str(layout.playlist(stream)) not in proc.cmdline():
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return pid


def _terminate(pid: int, grace: float) -> None:
    """SIGTERM the stream's group, SIGKILL after ``grace``, as PanelX restarts a stream."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    try:
        psutil.Process(pid).wait(grace)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
            psutil.Process(pid).wait(grace)


def spawn(layout: Layout, stream: str) -> int:
    """Start the stream unless it runs; its pid. Runs inside ``streamctl``, which exits right after, so the
    stream is never the child of a long-lived process (nobody must reap it, nothing holds it)."""
    argv = read_specs(layout)[stream]
    with _locked(layout, stream):
        pid = running_pid(layout, stream)
        if pid is not None:
            return pid
        with layout.stream_log(stream).open("ab") as out:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        layout.pid_file(stream).write_text(f"{popen.pid}\n")
        popen.returncode = 0  # detached on purpose: streamctl exits now and the stream is re-parented
        return popen.pid


def streamctl_argv(layout: Layout, command: str, stream: str) -> list[str]:
    """The command line that starts or restarts a stream: the demo runs it, and so does the restart action."""
    return [sys.executable, "-m", "exporter.demo.streamctl", "--data-dir", str(layout.root), command, stream]


def start(layout: Layout, stream: str, timeout: float = 30.0) -> int:
    """Start the stream (through ``streamctl``, so it is detached from the caller); its pid."""
    done = subprocess.run(streamctl_argv(layout, "start", stream), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"streamctl start {stream} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return int(done.stdout.split()[-1])


def stop(layout: Layout, stream: str, grace: float = STOP_GRACE) -> bool:
    """Stop the stream if it runs; whether it did."""
    with _locked(layout, stream):
        pid = running_pid(layout, stream)
        if pid is None:
            return False
        _terminate(pid, grace)
        return True


def restart(layout: Layout, stream: str, grace: float = STOP_GRACE) -> int:
    """What the exporter's restart action runs (in ``streamctl``): stop (TERM, KILL after ``grace``), spawn."""
    stop(layout, stream, grace)
    return spawn(layout, stream)


def kill(layout: Layout, stream: str) -> int | None:
    """SIGKILL the stream (the demo's chaos: a crash, not a stop); the pid killed, or None."""
    pid = running_pid(layout, stream)
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return pid
