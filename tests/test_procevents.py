"""The process events connector's messages, parsed from literal bytes (the kernel's cn_proc layout)."""

from __future__ import annotations

import struct

from exporter.sources.procevents import (
    CN_IDX_PROC,
    CN_VAL_PROC,
    PROC_EVENT_EXEC,
    PROC_EVENT_EXIT,
    ProcEvent,
    ProcEvents,
    parse_events,
    subscribe_message,
)


def message(what: int, *data: int) -> bytes:
    """nlmsghdr + cn_msg + proc_event as include/uapi/linux/cn_proc.h lays them out."""
    event = struct.pack("=IIQ", what, 1, 123456789) + struct.pack(f"={len(data)}I", *data)
    cn = struct.pack("=IIIIHH", CN_IDX_PROC, CN_VAL_PROC, 7, 0, len(event), 0) + event
    return struct.pack("=IHHII", 16 + len(cn), 3, 0, 7, 0) + cn


def test_exec_and_exit_events_parse_and_other_events_are_left_out() -> None:
    fork = message(0x1, 10, 10, 11, 11)  # PROC_EVENT_FORK: not wanted
    data = message(PROC_EVENT_EXEC, 4242, 4242) + fork + message(PROC_EVENT_EXIT, 4242, 4242, 256, 17)
    assert parse_events(data, len(data)) == [(PROC_EVENT_EXEC, 4242, 4242, 0), (PROC_EVENT_EXIT, 4242, 4242, 256)]
    assert parse_events(data[:20], 20) == []  # truncated: nothing invented


def test_threads_are_not_processes_and_only_kept_pids_report_exits() -> None:
    events = ProcEvents(lambda pid: "5" if pid == 100 else None)
    events.handle([(PROC_EVENT_EXEC, 100, 100, 0), (PROC_EVENT_EXEC, 101, 101, 0),
                   (PROC_EVENT_EXIT, 102, 100, 0),  # a thread of 100
                   (PROC_EVENT_EXIT, 101, 101, 0),  # never a stream process
                   (PROC_EVENT_EXIT, 100, 100, 256)])
    assert events.drain() == [ProcEvent("exec", 100, "5"), ProcEvent("exit", 100, "5", 256)]
    events.watch({300: "7"})  # seen by the sampler, not exec'd while we listened
    events.handle([(PROC_EVENT_EXIT, 300, 300, 9)])
    assert events.drain() == [ProcEvent("exit", 300, "7", 9)]


def test_subscribe_message_asks_the_proc_connector_to_listen() -> None:
    msg = subscribe_message()
    length, = struct.unpack_from("=I", msg)
    assert length == len(msg) == 16 + 20 + 4
    assert struct.unpack_from("=II", msg, 16) == (CN_IDX_PROC, CN_VAL_PROC)
    assert struct.unpack_from("=I", msg, 36) == (1,)  # PROC_CN_MCAST_LISTEN
