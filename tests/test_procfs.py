"""/proc parsing from captured text, and the processes source reading a captured /proc tree."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.config import parse_config
from exporter.sources import SampleContext
from exporter.sources.discovery import match, rules_from_config
from exporter.sources.processes import ProcessesSource
from exporter.sources.procfs import (
    ProcFs,
    Stat,
    full_name,
    parse_boot_time,
    parse_cmdline,
    parse_rchar,
    parse_socket_link,
    parse_stat,
    parse_statm,
    parse_uid,
)
from exporter.sources.procscan import ProcScan
from tests.helpers import wait_until

# The shape of a stat line captured on the benchmark host (kernel 6.18), with an ffmpeg's name and figures
# (13 threads); the second's comm has a space and parentheses, as a process may name itself.
FFMPEG_STAT = (
    b"4242 (ffmpeg) S 1 4242 4242 0 -1 4194560 28123 0 0 0 15234 2871 0 0 20 0 13 0 532087 612003840 9876 "
    b"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
)
ODD_STAT = (
    b"77 (my (odd) prog) R 1 77 77 0 -1 4194304 138 0 0 0 7 3 0 0 20 0 1 0 1000 2990080 393 "
    b"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
)
STATM = b"149415 2411 1283 5 0 9012 0\n"
IO = b"rchar: 1234567890\nwchar: 55\nsyscr: 10\nsyscw: 0\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n"
PROC_STAT = b"cpu  629321 673 90583 329538 3795 0 3472 4821 0 0\nintr 1 2 3\nbtime 1795704312\nprocesses 23311\n"
PANELX = [
    "/usr/bin/ffmpeg", "-y", "-user_agent", "Mozilla/5.0 (X11; Linux)", "-i", "http://provider.example/live/u/p/5.ts",
    "-c", "copy", "-f", "hls", "-hls_time", "10", "/home/panelx/webapp/streams/stream_5.m3u8",
]


def test_stat_fields_of_proc_5() -> None:
    assert parse_stat(FFMPEG_STAT) == Stat("ffmpeg", "S", 15234, 2871, 13, 532087)
    assert parse_stat(ODD_STAT) == Stat("my (odd) prog", "R", 7, 3, 1, 1000)


def test_statm_io_and_boot_time() -> None:
    assert parse_statm(STATM) == 2411
    assert parse_rchar(IO) == 1234567890
    assert parse_rchar(b"wchar: 1\n") is None
    assert parse_boot_time(PROC_STAT) == 1795704312.0
    with pytest.raises(ValueError, match="btime"):
        parse_boot_time(b"cpu 1 2 3\n")


@pytest.mark.parametrize(("raw", "args"), [
    (b"ffmpeg\0-i\0http://x/a b.ts\0-f\0hls\0/s/stream_5.m3u8\0", ("ffmpeg", "-i", "http://x/a b.ts", "-f", "hls",
                                                                  "/s/stream_5.m3u8")),
    (b"nginx: worker process", ("nginx:", "worker", "process")),  # setproctitle: spaces, no NUL
    (b"nginx: master process /usr/sbin/nginx\0", ("nginx:", "master", "process", "/usr/sbin/nginx")),
    (b"sleep\0", ("sleep",)),
    (b"", ()),  # kernel thread or zombie
    (b"caf\xe9\0-x\0", ("caf\udce9", "-x")),  # not UTF-8: kept, as psutil keeps it
])
def test_cmdline_as_psutil_splits_it(raw: bytes, args: tuple[str, ...]) -> None:
    assert parse_cmdline(raw) == args


def test_full_name_extends_a_cut_comm_from_argv0() -> None:
    assert full_name("restreamer_work", ("/opt/bin/restreamer_worker", "-x")) == "restreamer_worker"
    assert full_name("restreamer_work", ("/opt/bin/other",)) == "restreamer_work"
    assert full_name("ffmpeg", ("/usr/bin/ffmpeg-static",)) == "ffmpeg"  # short names are never cut


OWNER = 1000
"""The panel's user in the captured /proc (the tests' config allows it)."""
CONFIG = {"streams": {"discover": [{"preset": "panelx", "user": [OWNER]}]}}


def status_of(uid: int) -> bytes:
    return f"Name:\tffmpeg\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n".encode()


def write_proc(root: Path, pid: int, *, cmdline: list[str] | None, stat: bytes, comm: str | None = None,
               fds: int = 0, io: bytes | None = IO, statm: bytes = STATM, uid: int = OWNER) -> None:
    d = root / str(pid)
    (d / "fd").mkdir(parents=True)
    (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in cmdline or []))
    (d / "stat").write_bytes(stat)
    (d / "statm").write_bytes(statm)
    (d / "status").write_bytes(status_of(uid))
    name = stat[stat.index(b"(") + 1 : stat.rindex(b")")].decode()
    (d / "comm").write_text((comm or name) + "\n")
    if io is not None:
        (d / "io").write_bytes(io)
    for n in range(fds):  # fd links as the kernel shows them: the first a socket, the others files
        (d / "fd" / str(n)).symlink_to(f"socket:[{pid * 10}]" if n == 0 else "/dev/null")


def stat_of(pid: int, comm: str, state: str = "S", utime: int = 100, stime: int = 50, threads: int = 13) -> bytes:
    return (f"{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 0 0 0 0 {utime} {stime} 0 0 20 0 {threads} 0 "
            f"{pid * 100} 612003840 9876 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n").encode()


@pytest.fixture
def proc_root(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    root.mkdir()
    (root / "stat").write_bytes(PROC_STAT)
    (root / "self").mkdir()  # not a pid: skipped
    write_proc(root, 100, cmdline=PANELX, stat=stat_of(100, "ffmpeg"), fds=7)
    low = [*PANELX[:-1], "/tmp/abr/stream_5/480p/playlist.m3u8"]  # a second rendition of stream 5
    write_proc(root, 101, cmdline=low, stat=stat_of(101, "ffmpeg", utime=10, stime=5, threads=3), fds=4, io=None)
    write_proc(root, 102, cmdline=None, stat=stat_of(102, "ffmpeg", state="Z"))  # zombie: no command line
    write_proc(root, 103, cmdline=["/usr/sbin/nginx", "-g", "daemon off;"], stat=stat_of(103, "nginx"))
    write_proc(root, 104, cmdline=None, stat=stat_of(104, "kworker/0:1"))  # kernel thread
    (root / "105").mkdir()  # listed, then gone before we read it
    # exec'd as "ffmpeg" through a wrapper: comm says so, argv[0] does not
    wrapped = ["/opt/panel/bin/ffmpeg.real", *PANELX[1:-1], "/home/panelx/webapp/streams/stream_9.m3u8"]
    write_proc(root, 106, cmdline=wrapped, stat=stat_of(106, "ffmpeg"), fds=2)
    dying = [*PANELX[:-1], "/home/panelx/webapp/streams/stream_8.m3u8"]
    write_proc(root, 107, cmdline=dying, stat=stat_of(107, "ffmpeg", state="Z"))  # exited since its cmdline read
    other = [*PANELX[:-1], "/tmp/x/stream_6.m3u8"]
    write_proc(root, 108, cmdline=other, stat=stat_of(108, "ffmpeg"), uid=65534)  # nobody's: refused
    return root


Row = tuple[tuple[int, ...], float, int, float | None, int | None, int, float]


def sample(source: ProcessesSource) -> dict[str, Row]:
    result = source.sample(SampleContext(time.time(), MappingProxyType({})))
    return {s: (p.pids, p.cpu_seconds_total, p.resident_memory_bytes, p.read_bytes_total, p.open_fds, p.threads,
                p.start_time or 0.0) for s, p in result.streams.items()}


def test_the_source_reads_a_captured_proc(proc_root: Path) -> None:
    fs = ProcFs(str(proc_root))
    tick, page = fs.clock_ticks, fs.page_size
    got = sample(ProcessesSource(parse_config(CONFIG), proc_root=str(proc_root)))
    assert got == {
        # a ladder: two processes; the oldest one's start. Network inputs: rchar is not their ingest, and a
        # captured /proc has no sockets to count: their ingest is unknown (no series), not 0
        "5": ((100, 101), (100 / tick + 50 / tick) + (10 / tick + 5 / tick), 2 * 2411 * page, None, 11, 16,
              1795704312 + 10000 / tick),
        "9": ((106,), 100 / tick + 50 / tick, 2411 * page, None, 2, 13, 1795704312 + 10600 / tick),
    }


def test_file_input_is_read_from_rchar_and_sockets_are_listed_for_network_inputs(proc_root: Path) -> None:
    fs = ProcFs(str(proc_root))
    assert fs.fds_and_sockets(100) == (7, frozenset({1000}))
    filed = ["ffmpeg", "-re", "-i", "/srv/vod/film.ts", "-f", "hls", "/home/panelx/webapp/streams/stream_4.m3u8"]
    write_proc(proc_root, 120, cmdline=filed, stat=stat_of(120, "ffmpeg"), fds=3)
    got = sample(ProcessesSource(parse_config(CONFIG), proc_root=str(proc_root)))
    assert got["4"][3] == 1234567890.0


def test_owner_is_the_real_uid_and_socket_links_parse() -> None:
    assert parse_uid(status_of(0).replace(b"Uid:\t0\t0", b"Uid:\t33\t0")) == 33
    assert parse_socket_link("socket:[4026]") == 4026
    assert parse_socket_link("pipe:[77]") is None and parse_socket_link("/dev/null") is None


class DeniedFs(ProcFs):
    """Another user's processes, as a non-root exporter sees them: io and fd are ptrace-protected."""

    def read(self, pid: int, name: str) -> bytes:
        if name == "io":
            raise PermissionError(13, "Permission denied")
        return super().read(pid, name)

    def open_fds(self, pid: int) -> int:
        raise PermissionError(13, "Permission denied")

    def fds_and_sockets(self, pid: int) -> tuple[int, frozenset[int]]:
        raise PermissionError(13, "Permission denied")


def test_denied_io_and_fds_leave_those_unknown_not_the_process(proc_root: Path) -> None:
    rules = rules_from_config(parse_config(CONFIG))
    found = ProcScan(DeniedFs(str(proc_root)), {"ffmpeg"}, lambda n, c, u: match(n, c, u, rules)).scan()
    matched = found.matched
    assert found.scanned == 9 and sorted(matched) == ["5", "9"] and list(found.refused) == [108]
    assert [(p.pid, p.read_bytes, p.open_fds, p.threads) for p in matched["5"]] == [(100, None, None, 13),
                                                                                   (101, None, None, 3)]


def test_proc_and_psutil_agree_on_live_processes() -> None:
    config = parse_config({"streams": {"discover": [{"process": "sleep", "cmdline": r"^sleep (?P<stream>9\d{4})"}]}})
    children = [subprocess.Popen(["sleep", str(90000 + i)]) for i in range(3)]
    try:
        ours, theirs = ProcessesSource(config, proc_root="/proc"), ProcessesSource(config, proc_root=None)

        def agreeing() -> bool:
            a, b = sample(ours), sample(theirs)
            return len(a) == 3 and a == b

        wait_until(agreeing, timeout=10, what="the same three streams from /proc and from psutil")
    finally:
        for child in children:
            child.kill()
            child.wait()
