"""Process facts straight from /proc: a handful of small reads per process instead of psutil's objects.

psutil costs about 0.35 ms a process (a ``Process`` object, a create-time check, a file per figure); a
stream host has hundreds of ffmpeg processes. Here a process costs its command line (every process:
``/proc/<pid>/cmdline``, and ``comm`` when ``argv[0]`` does not already name a wanted program), then for
the candidates one ``stat`` (name, state, CPU, threads, start), ``statm`` (resident memory: precise, where
recent kernels give an approximate figure in ``stat``), ``io`` (``rchar``) and the ``fd`` directory.
Values are the ones psutil reports (its Linux code reads the same fields).

:class:`ProcFs` does the reading and raises ``FileNotFoundError`` / ``ProcessLookupError`` for a process
that is gone and ``PermissionError`` for one that is not ours to read; the ``parse_*`` functions are pure
and tested with captured text. The root is a constructor argument, so tests point it at captured files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

READ_SIZE = 1 << 14
"""One read takes a whole stat, io or comm file, and most command lines (longer ones take more reads)."""
COMM_LEN = 15
"""The kernel keeps the first 15 bytes of a program's name as ``comm``."""


@dataclass(frozen=True, slots=True)
class Stat:
    """The fields of ``/proc/<pid>/stat`` we use (see proc(5)); times in clock ticks."""

    comm: str
    state: str
    utime: int
    stime: int
    threads: int
    start: int
    """Clock ticks after boot when the process started."""


def parse_stat(data: bytes) -> Stat:
    """``pid (comm) state ppid ...``: comm may hold spaces and parentheses, so it ends at the last ``)``."""
    close = data.rindex(b")")
    comm = data[data.index(b"(") + 1 : close].decode("utf-8", "surrogateescape")
    f = data[close + 2 :].split()
    # f[0] is field 3 of proc(5): utime 14, stime 15, num_threads 20, starttime 22
    return Stat(comm, f[0].decode("ascii"), int(f[11]), int(f[12]), int(f[17]), int(f[19]))


def parse_statm(data: bytes) -> int:
    """Resident pages: the second field of ``/proc/<pid>/statm``."""
    return int(data.split(None, 2)[1])


def parse_cmdline(data: bytes) -> tuple[str, ...]:
    """Arguments split at NULs; a process that rewrote its title (setproctitle) may use spaces instead.

    Empty for kernel threads and zombies. The same rules as psutil's ``cmdline()``.
    """
    text = data.decode("utf-8", "surrogateescape")
    if not text:
        return ()
    sep = "\0" if text.endswith("\0") else " "
    text = text.removesuffix(sep)
    args = text.split(sep)
    if sep == "\0" and len(args) == 1 and " " in text:
        args = text.split(" ")
    return tuple(args)


def parse_rchar(data: bytes) -> int | None:
    """``rchar`` of ``/proc/<pid>/io``: every byte the process read, sockets included."""
    for line in data.splitlines():
        if line.startswith(b"rchar:"):
            return int(line[6:])
    return None


def parse_uid(data: bytes) -> int:
    """The real uid of ``/proc/<pid>/status`` (``Uid:`` real, effective, saved, filesystem).

    Not the owner of ``/proc/<pid>``: a process that makes itself non-dumpable (``prctl``) shows as root
    there. The real uid is who started it, and no process can change its own to another user's.
    """
    at = data.index(b"\nUid:")
    return int(data[at + 5 : data.index(b"\n", at + 5)].split()[0])


def parse_socket_link(target: str) -> int | None:
    """The inode of an fd link ``socket:[12345]``, or None for anything else (files, pipes)."""
    if target.startswith("socket:[") and target.endswith("]"):
        return int(target[8:-1])
    return None


def parse_boot_time(data: bytes) -> float:
    """``btime`` of ``/proc/stat``: when the host booted, Unix seconds (follows wall-clock changes)."""
    for line in data.splitlines():
        if line.startswith(b"btime "):
            return float(line.split()[1])
    raise ValueError("no btime line in /proc/stat")


def full_name(comm: str, cmdline: tuple[str, ...]) -> str:
    """psutil's ``name()``: ``comm`` is cut at 15 bytes; argv[0]'s base name when it starts with it."""
    if len(comm) >= COMM_LEN and cmdline:
        base = os.path.basename(cmdline[0])
        if base.startswith(comm):
            return base
    return comm


class ProcFs:
    """Reads one /proc (or a captured copy of one)."""

    def __init__(self, root: str = "/proc") -> None:
        self.root = root
        self.clock_ticks = os.sysconf("SC_CLK_TCK")
        self.page_size = os.sysconf("SC_PAGE_SIZE")

    def _read(self, path: str) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = [os.read(fd, READ_SIZE)]
            while len(chunks[-1]) == READ_SIZE:
                chunks.append(os.read(fd, READ_SIZE))
        finally:
            os.close(fd)
        return b"".join(chunks)

    def read(self, pid: int, name: str) -> bytes:
        """``/proc/<pid>/<name>``, whole."""
        return self._read(f"{self.root}/{pid}/{name}")

    def pids(self) -> list[int]:
        return [int(name) for name in os.listdir(self.root) if name.isdigit()]

    def boot_time(self) -> float:
        return parse_boot_time(self._read(f"{self.root}/stat"))

    def comm(self, pid: int) -> str:
        return self.read(pid, "comm").decode("utf-8", "surrogateescape").removesuffix("\n")

    def stat(self, pid: int) -> Stat:
        return parse_stat(self.read(pid, "stat"))

    def resident_pages(self, pid: int) -> int:
        return parse_statm(self.read(pid, "statm"))

    def rchar(self, pid: int) -> int | None:
        """None where the kernel keeps no I/O accounting (no ``io`` file for a process that is there)."""
        try:
            return parse_rchar(self.read(pid, "io"))
        except FileNotFoundError:
            if os.path.isdir(f"{self.root}/{pid}"):
                return None
            raise

    def open_fds(self, pid: int) -> int:
        return len(os.listdir(f"{self.root}/{pid}/fd"))

    def uid(self, pid: int) -> int:
        return parse_uid(self.read(pid, "status"))

    def fds_and_sockets(self, pid: int) -> tuple[int, frozenset[int]]:
        """How many fds the process has open, and the inodes of those that are sockets.

        An fd closed between the listing and its ``readlink`` is simply left out.
        """
        folder = f"{self.root}/{pid}/fd"
        names = os.listdir(folder)
        inodes: set[int] = set()
        for name in names:
            try:
                inode = parse_socket_link(os.readlink(f"{folder}/{name}"))
            except FileNotFoundError:
                continue  # closed since the listing
            if inode is not None:
                inodes.add(inode)
        return len(names), frozenset(inodes)
