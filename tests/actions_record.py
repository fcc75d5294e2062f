#!/usr/bin/env python3
"""Stand-in for a restart command in the actions tests: records how it was called, then behaves as told.

Usage: actions_record.py RECORD_FILE [--exit N] [--sleep S] [--spew BYTES] [ARG ...]
Appends one JSON line {"argv": [ARG ...], "env": {...}} to RECORD_FILE. Standard library only: it also
stands in for ``systemctl`` (run through its shebang with the exporter's minimal environment).
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    record, rest = argv[0], argv[1:]
    code, sleep, spew = 0, 0.0, 0
    while rest and rest[0] in {"--exit", "--sleep", "--spew"}:
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "--exit":
            code = int(value)
        elif flag == "--sleep":
            sleep = float(value)
        else:
            spew = int(value)
    with open(record, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"argv": rest, "env": dict(os.environ), "cwd": os.getcwd(), "pid": os.getpid()}) + "\n")
    print(f"restarting {' '.join(rest)} http://user:secret@panel/live/alice/pa55/7.ts", flush=True)
    if spew:
        sys.stdout.write("x" * spew)
        sys.stdout.flush()
    if sleep:
        time.sleep(sleep)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
