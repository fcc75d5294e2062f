"""Stand-in stream processes: a tiny C program named ``ffmpeg`` with ffmpeg-shaped command lines.

Each one starts 12 idle threads (a real ffmpeg restream has about that many) and pauses, so 1000 of them
cost a few hundred MB at most. They ask the kernel to kill them when the benchmark dies (PR_SET_PDEATHSIG),
so a crashed run leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from types import TracebackType

SOURCE = r"""
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

static void *idle(void *arg) { (void)arg; for (;;) pause(); return 0; }

int main(void) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) return 1; /* the benchmark is already gone */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (int i = 0; i < 12; i++) {
        pthread_t t;
        pthread_create(&t, &attr, idle, 0);
    }
    for (;;) pause();
}
"""

USER_AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0 Safari/537.36")


def build(directory: Path) -> Path:
    """Compile the stand-in as ``<directory>/bin/ffmpeg``."""
    bindir = directory / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    src = directory / "standin.c"
    src.write_text(SOURCE)
    exe = bindir / "ffmpeg"
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(exe), str(src)], check=True)
    return exe


def panelx_argv(stream: int, root: Path) -> list[str]:
    """A PanelX restream's command line (shared/examples/ffmpeg-cmdlines.txt), writing stream_<id>.m3u8."""
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "warning", "-y", "-user_agent", USER_AGENT,
        "-headers", "Referer: http://provider.example/\r\n", "-reconnect", "1", "-reconnect_streamed", "1",
        "-reconnect_delay_max", "5", "-timeout", "10000000",
        "-i", f"http://provider.example:8080/live/u/p/{1000 + stream}.ts",
        "-c:v", "copy", "-c:a", "copy", "-f", "hls", "-hls_time", "10", "-hls_list_size", "6",
        "-hls_flags", "delete_segments+append_list", "-hls_segment_type", "mpegts", "-hls_base_url", "/streams/",
        f"{root}/streams/stream_{stream}.m3u8",
    ]


PROCESS_EXPORTER_REGEX = r"stream_(?P<stream>\d+)(?:_[A-Za-z0-9]+)?\.m3u8"
"""The same command-line match as the exporter's ``panelx`` preset, for process-exporter's config."""


class Fleet:
    """``count`` stand-in streams with ids ``1..count``; killed (by their own pids) on exit."""

    def __init__(self, exe: Path, root: Path, count: int) -> None:
        self.exe, self.root, self.count = exe, root, count
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Fleet:
        for stream in range(1, self.count + 1):
            self.procs.append(subprocess.Popen(
                panelx_argv(stream, self.root), executable=str(self.exe), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
            ))
        self.wait_threads()
        return self

    def wait_threads(self) -> None:
        """Until every stand-in has its 12 threads (a half-started process would be cheaper to read)."""
        for p in self.procs:
            for _ in range(1000):
                try:
                    if len(os.listdir(f"/proc/{p.pid}/task")) >= 13:
                        break
                except FileNotFoundError:
                    raise RuntimeError(f"stand-in {p.pid} exited: {p.poll()}") from None
                os.sched_yield()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def rss_bytes(self) -> int:
        total = 0
        for pid in self.pids:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return total

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in self.procs:
            p.wait()
        self.procs.clear()
