"""ffmpeg's ``-progress`` text parsed into blocks: pure, tested with string literals.

ffmpeg writes a block of ``key=value`` lines every ``-stats_period`` (0.5 s by default), each block ending
in ``progress=continue`` (or ``progress=end`` as it exits). :func:`parse_blocks` takes the text of a
progress file; :class:`BlockParser` takes a pushed body chunk by chunk. Values that cannot be real are
refused with bounds, so a hostile push costs little (docs/security.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_KEY = re.compile(r"[A-Za-z0-9_]+")
_OUT_TIME = re.compile(r"(-?)(\d+):(\d{1,2}):(\d{1,2}(?:\.\d*)?)")


MAX_COUNT = 2**53
"""Frame counters and sizes above this cannot be real (and lose precision as a float): refused."""
MAX_SECONDS = 100 * 365 * 86400.0
"""Output times above a century are not a stream's."""
MAX_RATE = 1e6
"""fps and speed above this are not an encoder's."""
MAX_NUMBER_TEXT = 32
"""Characters of a number's text: longer ones are refused before ``int()`` reads them (4,000 digits cost)."""
MAX_BYTES_WITHOUT_BLOCK = 1 << 20
"""A pushed body that sends this much without finishing a block is garbage (ffmpeg's blocks are ~300 bytes):
the receiver refuses the rest, so a flood costs at most this much parsing."""


@dataclass(frozen=True, slots=True)
class Block:
    """One progress report. ``None`` is ``N/A`` or a key the block did not carry."""

    frame: int | None = None
    fps: float | None = None
    speed: float | None = None
    drop_frames: int | None = None
    dup_frames: int | None = None
    out_time_seconds: float | None = None
    total_size: int | None = None
    ended: bool = False
    """``progress=end``: ffmpeg is exiting."""


class OutOfRange(ValueError):
    """A value that parses but cannot be real (a 4,000-digit frame count): the push is refused with 400."""


def _checked_text(value: str) -> str:
    if len(value) > MAX_NUMBER_TEXT:
        raise OutOfRange(f"longer than {MAX_NUMBER_TEXT} characters")
    return value


def count_value(value: str) -> int:
    """A frame or byte count: a non-negative integer up to 2**53 (exact in a float sample)."""
    number = int(_checked_text(value))
    if number < 0:
        raise ValueError("negative count")
    if number > MAX_COUNT:
        raise OutOfRange("above 2**53")
    return number


def rate_value(value: str, limit: float = MAX_RATE) -> float:
    """fps and the like: finite and bounded. Public with the other value parsers: the stats-log source
    (sources/statslog.py) reads the same values from ffmpeg's statistics line."""
    number = float(_checked_text(value))
    if number != number or number in (float("inf"), float("-inf")):
        raise OutOfRange("not a finite number")
    if abs(number) > limit:
        raise OutOfRange(f"outside +-{limit:g}")
    return number


def speed_value(value: str) -> float:
    """``1.02x`` (ffmpeg pads it: ``speed= 0.9x``)."""
    if not value.endswith("x"):
        raise ValueError("speed without x")
    return rate_value(value[:-1])


def _out_time_us(value: str) -> float | None:
    """Microseconds; negative before the first packet (no information)."""
    micros = int(_checked_text(value))
    if micros < 0:
        return None
    if micros > MAX_SECONDS * 1e6:
        raise OutOfRange("above a century")
    return micros / 1e6


def out_time_value(value: str) -> float | None:
    """``HH:MM:SS.micro``; before the first packet ffmpeg prints a huge negative time: no information."""
    found = _OUT_TIME.fullmatch(_checked_text(value))
    if found is None:
        raise ValueError("not HH:MM:SS.micro")
    if found.group(1):
        return None
    seconds = int(found.group(2)) * 3600 + int(found.group(3)) * 60 + float(found.group(4))
    if seconds > MAX_SECONDS:
        raise OutOfRange("above a century")
    return seconds


_FIELDS: dict[str, tuple[str, Callable[[str], object]]] = {
    "frame": ("frame", count_value),
    "fps": ("fps", rate_value),
    "speed": ("speed", speed_value),
    "drop_frames": ("drop_frames", count_value),
    "dup_frames": ("dup_frames", count_value),
    "total_size": ("total_size", count_value),
    "out_time_us": ("out_time_seconds", _out_time_us),
}


class BlockParser:
    """Incremental parser: feed it lines (or raw bytes, for a pushed body) and collect finished blocks.

    A line is *skipped* (and counted) when it is not ``key=value``, when a known key has a value that does
    not parse or is out of range, or when ``progress=`` has a value other than ``continue``/``end``. Unknown
    well-formed keys (``stream_0_0_q``, keys of future ffmpeg versions) and blank lines are ignored without
    counting. The first out-of-range value is kept in :attr:`out_of_range` (``key: why``): the push receiver
    refuses the rest of that body with 400, as the Pushgateway refuses a bad push.
    """

    def __init__(self, max_line: int = 4096) -> None:
        self.max_line = max_line
        self.skipped = 0
        self.out_of_range: str | None = None
        self.bytes_without_block = 0
        """Bytes fed since the last finished block (the receiver's bound on garbage)."""
        self._values: dict[str, object] = {}
        self._buffer = b""
        self._overlong = False

    def line(self, text: str) -> Block | None:
        """Take one line; return the block it finishes, if any."""
        text = text.strip()
        if not text:
            return None
        key, sep, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.fullmatch(key):
            self.skipped += 1
            return None
        if key == "progress":
            if value not in ("continue", "end"):
                self.skipped += 1
                return None
            block = Block(**self._values, ended=value == "end")  # type: ignore[arg-type]
            self._values = {}
            self.bytes_without_block = 0
            return block
        try:
            if key in _FIELDS:
                name, convert = _FIELDS[key]
                self._values[name] = None if value == "N/A" else convert(value)
            elif key == "out_time" and "out_time_seconds" not in self._values:
                self._values["out_time_seconds"] = None if value == "N/A" else out_time_value(value)
        except OutOfRange as exc:
            self.skipped += 1
            if self.out_of_range is None:
                self.out_of_range = f"{key}: {exc}"
        except ValueError:
            self.skipped += 1
        return None

    def feed(self, data: bytes) -> list[Block]:
        """Take a chunk of a byte stream; lines may be split across chunks in any way.

        Linear in the chunk: one ``split``, blank lines dropped without a call (a body of 4 MiB of
        newlines was quadratic when each line was cut off the front of the buffer).
        """
        blocks: list[Block] = []
        self.bytes_without_block += len(data)
        parts = data.split(b"\n")
        tail = parts.pop()
        for raw in parts:
            if self._buffer or self._overlong:  # the line begun in an earlier chunk ends here
                overlong = self._overlong or len(self._buffer) + len(raw) > self.max_line
                raw = self._buffer + raw if not overlong else b""
                self._buffer, self._overlong = b"", False
                if overlong:
                    self.skipped += 1  # a line this long is garbage; counted once, at its end
                    continue
            if not raw:
                continue
            if len(raw) > self.max_line:
                self.skipped += 1
                continue
            block = self.line(raw.decode("utf-8", errors="replace"))
            if block is not None:
                blocks.append(block)
            if self.out_of_range is not None:
                return blocks  # the receiver refuses the rest of this body
        if not self._overlong:
            if len(self._buffer) + len(tail) > self.max_line:
                self._buffer, self._overlong = b"", True
            else:
                self._buffer += tail
        return blocks


@dataclass(frozen=True, slots=True)
class ParsedBlocks:
    blocks: tuple[Block, ...]
    skipped: int
    consumed: int
    """Characters of the text up to the end of the last complete block; the rest waits for more input."""


def parse_blocks(text: str) -> ParsedBlocks:
    """Every complete block in ``text``; lines after the last ``progress=`` line are left unconsumed."""
    parser = BlockParser(max_line=len(text) + 1)
    blocks: list[Block] = []
    skipped = 0
    consumed = 0
    pos = 0
    while True:
        end = text.find("\n", pos)
        if end < 0:
            break
        block = parser.line(text[pos:end])
        pos = end + 1
        if block is not None:
            blocks.append(block)
            skipped, consumed = parser.skipped, pos
    return ParsedBlocks(tuple(blocks), skipped, consumed)
