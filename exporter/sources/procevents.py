"""Every start and exit of a stream process, from the kernel's process events connector.

Sampling /proc every few seconds cannot see an ffmpeg that dies 50 ms after it started (a rejected flag,
a source that refuses it), again and again: a crash loop was invisible. The kernel announces every
``exec`` and every exit on netlink (``NETLINK_CONNECTOR``, group ``CN_IDX_PROC``, see
``include/uapi/linux/cn_proc.h``). A listener thread reads them; for each exec it reads the new program's
name, command line and owner from /proc at once (while it still runs) and keeps those that a discovery
rule accepts; for each exit of a process it knows (one it kept, or one the sampler saw) it records the
exit code. The sampler drains these events every round (:meth:`ProcEvents.drain`).

Listening needs ``CAP_NET_ADMIN`` (root has it). Where it cannot be had (an unprivileged exporter, a
container without the capability, not Linux) :meth:`ProcEvents.start` raises ``OSError`` and the processes
source falls back to sampling alone: starts and exits between two rounds are then not seen (docs/inventory.md).

A process whose exec we could not read in time (it was gone before its /proc entry was read) is missed;
the exit of a process never kept is ignored. Both are counted (``missed``) for the self-metrics.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_EXIT = 0x80000000
NLMSG_DONE = 3

_NLHDR = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")  # cb_id.idx, cb_id.val, seq, ack, len, flags
_EVENT = struct.Struct("=IIQ")  # what, cpu, timestamp_ns
_EXEC = struct.Struct("=II")  # process_pid, process_tgid
_EXIT = struct.Struct("=IIII")  # process_pid, process_tgid, exit_code, exit_signal
_EVENT_AT = _NLHDR.size + _CN_MSG.size
_DATA_AT = _EVENT_AT + _EVENT.size

KNOWN_LIMIT = 100_000
RECV_BUFFER = 4 << 20
"""Kernel-side buffer: a busy host execs in bursts; an overrun (ENOBUFS) loses events, counted."""


@dataclass(frozen=True, slots=True)
class ProcEvent:
    kind: str
    """``exec`` or ``exit``."""
    pid: int
    stream: str
    exit_code: int | None = None
    """The wait status of an exit (0: exited with 0)."""


def subscribe_message(op: int = PROC_CN_MCAST_LISTEN) -> bytes:
    """A netlink message telling the connector to start (or stop) sending process events to us."""
    body = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, 4, 0) + struct.pack("=I", op)
    return _NLHDR.pack(_NLHDR.size + len(body), NLMSG_DONE, 0, 0, os.getpid()) + body


def parse_events(data: bytes | bytearray | memoryview, length: int) -> list[tuple[int, int, int, int]]:
    """(what, pid, tgid, exit code) of each exec and exit event in one datagram; other events are left out."""
    out = []
    off = 0
    while off + _DATA_AT <= length:
        mlen = _NLHDR.unpack_from(data, off)[0]
        if mlen < _DATA_AT or off + mlen > length:
            break
        idx, val = _CN_MSG.unpack_from(data, off + _NLHDR.size)[:2]
        if idx == CN_IDX_PROC and val == CN_VAL_PROC:
            what = _EVENT.unpack_from(data, off + _EVENT_AT)[0]
            if what == PROC_EVENT_EXEC and off + _DATA_AT + _EXEC.size <= off + mlen:
                pid, tgid = _EXEC.unpack_from(data, off + _DATA_AT)
                out.append((what, pid, tgid, 0))
            elif what == PROC_EVENT_EXIT and off + _DATA_AT + _EXIT.size <= off + mlen:
                pid, tgid, code, _ = _EXIT.unpack_from(data, off + _DATA_AT)
                out.append((what, pid, tgid, code))
        off += (mlen + 3) & ~3
    return out


class ProcEvents:
    """The listener: :meth:`start` once, :meth:`drain` every round, :meth:`stop` at the end.

    ``classify(pid)`` names the stream a just-exec'd process serves (None: not a stream process); it is
    called in the listener thread, right after the exec, so it must be quick (a few /proc reads).
    """

    def __init__(self, classify: Callable[[int], str | None], idle_timeout: float = 300.0) -> None:
        self._classify = classify
        self._idle_timeout = idle_timeout
        """Stop listening when nobody drained for this long (the sampler is gone: don't read /proc for it)."""
        self._drained = time.monotonic()
        self._lock = threading.Lock()
        self._events: list[ProcEvent] = []
        self._known: dict[int, str] = {}
        """pid -> stream of processes whose exit we want: kept at exec, or seen by the sampler."""
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.lost = 0
        """Overruns of the kernel buffer (events lost)."""

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Subscribe; raises OSError (EPERM without CAP_NET_ADMIN, EPROTONOSUPPORT without the connector)."""
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        except AttributeError as exc:  # no AF_NETLINK: not Linux
            raise OSError(errno.EAFNOSUPPORT, "no netlink on this platform") from exc
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
            sock.bind((0, CN_IDX_PROC))
            sock.send(subscribe_message())
            sock.settimeout(0.5)  # the thread looks at the stop flag this often
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="proc-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close()

    def watch(self, pids: Mapping[int, str]) -> None:
        """The stream processes the sampler sees now: their exits are reported too.

        An exit whose event was lost would leave its pid here for good: past ``KNOWN_LIMIT`` pids the map
        keeps only what the sampler sees now (an exec kept since then is then missed at its exit, once).
        """
        with self._lock:
            if len(self._known) > KNOWN_LIMIT:
                self._known = {}
            self._known.update(pids)

    def drain(self) -> list[ProcEvent]:
        """Events since the last drain, in the order the kernel sent them."""
        with self._lock:
            events, self._events = self._events, []
            self._drained = time.monotonic()
            return events

    def _run(self) -> None:
        try:
            self._listen()
        finally:
            if not self._stopping.is_set():  # gave up on its own: nobody else will close the socket
                self._close()

    def _close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.send(subscribe_message(PROC_CN_MCAST_IGNORE))
            except OSError as exc:
                log.debug("process events unsubscribe failed error=%s", exc)
            sock.close()

    def _listen(self) -> None:
        sock = self._sock
        if sock is None:
            return
        buf = bytearray(1 << 16)
        while not self._stopping.is_set():
            if time.monotonic() - self._drained > self._idle_timeout:
                log.warning("process events not drained for %.0fs: listener stops", self._idle_timeout)
                return
            try:
                n = sock.recv_into(buf)
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.lost += 1
                    log.warning("process events overran the kernel buffer, some starts or exits are lost")
                    continue
                if self._stopping.is_set():
                    return
                log.error("process events listener failed, sampling only from now error=%s", exc)
                return
            self.handle(parse_events(buf, n))

    def handle(self, events: Iterable[tuple[int, int, int, int]]) -> None:
        """Turn raw events into stream events (the listener thread's work; tests call it with literals)."""
        for what, pid, tgid, code in events:
            if pid != tgid:
                continue  # a thread, not a process
            if what == PROC_EVENT_EXEC:
                stream = self._classify(pid)
                if stream is None:
                    with self._lock:
                        self._known.pop(pid, None)  # the pid now runs something else
                    continue
                with self._lock:
                    self._known[pid] = stream
                    self._events.append(ProcEvent("exec", pid, stream))
            else:
                with self._lock:
                    stream = self._known.pop(pid, None)
                    if stream is not None:
                        self._events.append(ProcEvent("exit", pid, stream, code))
