"""Stream errors by kind: ffmpeg's own log lines, classified, and stream processes that exited.

Kinds are a small fixed set so they can be labels: ``input`` (the source failed us: refused, 4xx/5xx,
timed out, I/O error, end of file), ``decode`` (corrupt or undecodable data, non-monotonic timestamps),
``exit`` (a stream process ended) and ``other`` (any other line in an ffmpeg error log).

Exits are seen twice when a panel also logs them (PanelX: ``[FFmpeg 5] Process exited with code 8``):
the sampler notices a PID that vanished, the log says so in words. Both are monotonic counts since the
exporter started, so ``exit`` is the larger of the two rather than their sum.

:func:`classify` and :func:`parse_line` are pure; :class:`ErrorLogSource` follows the files (globs are
expanded every round; rotation is handled by :class:`~exporter.sources.tail.FileFollower`).
"""

from __future__ import annotations

import glob
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.config.health import ErrorLog, Errors
from exporter.config.streams import STREAM_ID
from exporter.linear_re import LinearPattern, compile_linear
from exporter.sources import SampleContext
from exporter.sources.tail import FileFollower

log = logging.getLogger(__name__)

KINDS = ("input", "decode", "exit", "other")

MAX_READ = 1 << 20
"""Per file and round: a burst of errors is worked through over a few rounds instead of one long one."""
MAX_FILES = 20000
"""Files followed per configured log: a glob must not open every file on the host."""
MAX_STREAMS = 20000
"""Distinct stream ids remembered; lines of further streams are not counted (bounded memory)."""


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# Checked in this order: "Error while decoding ...: Invalid data found" is a decode error, not an input one.
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("exit", _any(r"\bexited with code\b", r"\bprocess exited\b", r"Conversion failed!", r"\bexit code\b",
                  r"Exiting normally, received signal")),
    ("decode", _any(
        r"error while decoding", r"decod(?:e|ing) error", r"decode_slice_header error", r"\bconcealing\b",
        r"non[- ]monoton", r"\bcorrupt", r"Invalid NAL unit", r"missing picture in access unit",
        r"PES packet size mismatch", r"\bno frame!", r"co located POCs unavailable", r"mmco: unref short",
        r"Continuity check failed", r"error splitting the input into NAL units", r"Invalid timestamps",
        r"out of order", r"Queue input is backward in time", r"(?:top|left) block unavailable",
    )),
    ("input", _any(
        r"Connection refused", r"Connection reset", r"timed out", r"Server returned", r"HTTP error \d{3}",
        r"\b[45]\d\d (?:Not Found|Forbidden|Unauthorized|Bad Gateway|Service Unavailable|Gateway Time-?out)",
        r"\bI/O error", r"Input/output error", r"End of file", r"No route to host", r"Network is unreachable",
        r"Failed to resolve hostname", r"Name or service not known", r"Temporary failure in name resolution",
        r"Stream ends prematurely", r"Will reconnect at", r"Error opening input", r"No such file or directory",
        r"Invalid data found when processing input", r"Unable to open resource",
    )),
)

# Lines that are not errors: progress statistics and the informational lines of a verbose log level.
_NOISE = _any(
    r"^\s*frame=\s*\d+.*\bfps=", r"^\s*size=\s*\S+.*\btime=", r"^\s*(?:Input|Output) #\d", r"^\s*Stream #\d",
    r"^\s*(?:Metadata|Duration|Stream mapping|Press \[q\]|Side data)\b", r"^\s*ffmpeg version\b",
    r"^\s*(?:built with|configuration:)", r"^\s*lib\w+\s+\d+\.", r"Opening '[^']*' for writing",
)
_REPEATED = re.compile(r"Last message repeated (\d+) times?")


def classify(message: str) -> str:
    """The kind of one ffmpeg log message (never None: an unknown message in an error log is ``other``)."""
    for kind, pattern in _RULES:
        if pattern.search(message):
            return kind
    return "other"


@dataclass(frozen=True, slots=True)
class CompiledLog:
    """An ``errors.logs`` entry with its regexes compiled."""

    path: str
    stream: str | None
    stream_from_path: LinearPattern[str] | None
    line: LinearPattern[str] | None
    ignore: LinearPattern[str] | None
    """The config's regexes run with RE2 (linear time: a log line is anyone's text)."""
    from_start: bool
    record_start: LinearPattern[str] | None = None

    @classmethod
    def of(cls, cfg: ErrorLog) -> CompiledLog:
        if cfg.path is None:  # the config validator requires it; a hand-built ErrorLog may lack it
            raise ValueError("errors.logs: an entry needs a path")
        return cls(
            path=cfg.path,
            stream=cfg.stream,
            stream_from_path=compile_linear(cfg.stream_from_path) if cfg.stream_from_path else None,
            line=compile_linear(cfg.line) if cfg.line else None,
            ignore=compile_linear(cfg.ignore) if cfg.ignore else None,
            from_start=cfg.from_start,
            record_start=compile_linear(cfg.record_start) if cfg.record_start else None,
        )

    def stream_of_path(self, path: str) -> str | None:
        if self.stream_from_path is not None:
            found = self.stream_from_path.search(path)
            if found and found.group("stream"):
                return found.group("stream")
        return self.stream


@dataclass(frozen=True, slots=True)
class LogLine:
    stream: str | None
    """None: the line names no stream we can use (it is not counted)."""
    kind: str | None
    """None: not an error (noise, ignored, or not matching the log's ``line`` regex)."""
    repeat: int = 0
    """"Last message repeated N times": count the previous error N more times."""


def parse_line(text: str, cfg: CompiledLog, file_stream: str | None, record_stream: str | None = None) -> LogLine:
    """Which stream a log line is about and what kind of error it reports (pure).

    ``record_stream``: with ``record_start``, the stream of the message a line that does not start one
    continues (None: that message was not a stream's, the line is not counted).
    """
    text = text.rstrip()
    message, stream = text, file_stream
    if cfg.record_start is not None and text and not cfg.record_start.search(text):
        if record_stream is None:
            return LogLine(None, None)
        stream = record_stream
    elif cfg.line is not None:
        found = cfg.line.search(text)
        if found is None:
            return LogLine(None, None)
        groups = found.groupdict()
        if groups.get("stream"):
            stream = groups["stream"]
        found_message = groups.get("message")
        if found_message is not None:
            message = found_message
    if stream is not None and not STREAM_ID.fullmatch(stream):
        stream = None
    repeated = _REPEATED.search(message)
    if repeated:
        return LogLine(stream, None, int(repeated.group(1)))
    if not message.strip() or _NOISE.search(message) or (cfg.ignore is not None and cfg.ignore.search(message)):
        return LogLine(stream, None)
    return LogLine(stream, classify(message))


@dataclass(frozen=True, slots=True)
class ErrorsResult:
    streams: Mapping[str, Mapping[str, int]]
    """stream -> kind -> count since the exporter started (only kinds seen; the collector fills in 0)."""
    files: int
    """Log files being followed."""


@dataclass
class _Followed:
    follower: FileFollower
    stream: str | None
    last: tuple[str, str] | None = None
    """(stream, kind) of the last error line, for "Last message repeated N times"."""
    record_stream: str | None = None
    """With ``record_start``: the stream of the message being read (its further lines belong to it)."""


@dataclass
class _LogState:
    cfg: CompiledLog
    files: dict[str, _Followed] = field(default_factory=dict)
    started: bool = False
    warned_empty: bool = False
    refused: set[str] = field(default_factory=set)
    """Paths that could not be opened (tried again every round, logged once)."""


class ErrorLogSource:
    name = "errors"

    def __init__(self, config: Errors) -> None:
        self.exits = config.exits
        self._logs = [_LogState(CompiledLog.of(entry)) for entry in config.logs]
        self._counts: dict[str, dict[str, int]] = {}

    def open(self) -> None:
        """Nothing to open here: the globs are expanded and new files followed every round."""

    def close(self) -> None:
        for state in self._logs:
            for followed in state.files.values():
                followed.follower.close()
            state.files.clear()

    def _count(self, stream: str, kind: str, n: int = 1) -> None:
        counts = self._counts.get(stream)
        if counts is None:
            if len(self._counts) >= MAX_STREAMS:
                return
            counts = self._counts[stream] = {}
        counts[kind] = counts.get(kind, 0) + n

    def _paths(self, state: _LogState) -> list[str]:
        pattern = state.cfg.path
        if not glob.has_magic(pattern):
            return [pattern]  # a missing file is followed anyway: FileFollower reads it once it appears
        paths = sorted(glob.glob(pattern))
        if not paths and not state.warned_empty:
            log.warning("error log glob matches no file yet path=%s", pattern)
            state.warned_empty = True
        if len(paths) > MAX_FILES:
            log.warning("error log glob matches too many files path=%s files=%d max=%d", pattern, len(paths), MAX_FILES)
            paths = paths[:MAX_FILES]
        return paths

    def _follow(self, state: _LogState) -> None:
        paths = self._paths(state)
        wanted = set(paths)
        for path in paths:
            if path not in state.files:
                # Files there at start-up hold history; files that appear later are new errors from line 1.
                from_start = state.cfg.from_start if not state.started else True
                try:
                    follower = FileFollower(path, from_start=from_start, max_read=MAX_READ)
                except OSError as exc:  # a named pipe or a foreign symlink among the logs: skip it, read the rest
                    if path not in state.refused:
                        log.warning("error log not followed path=%s error=%s", path, exc.strerror)
                        state.refused.add(path)
                    continue
                state.refused.discard(path)
                state.files[path] = _Followed(follower, state.cfg.stream_of_path(path))
        for path in [p for p in state.files if p not in wanted]:
            self._read(state, state.files[path])  # its last lines, then let it go
            state.files.pop(path).follower.close()
        state.started = True

    def _read(self, state: _LogState, followed: _Followed) -> None:
        for raw in followed.follower.read_lines():
            for piece in raw.decode("utf-8", errors="replace").split("\r"):
                parsed = parse_line(piece, state.cfg, followed.stream, followed.record_stream)
                if state.cfg.record_start is not None and state.cfg.record_start.search(piece):
                    followed.record_stream = parsed.stream
                if parsed.repeat and followed.last is not None and parsed.stream in (None, followed.last[0]):
                    self._count(*followed.last, n=parsed.repeat)
                elif parsed.stream is not None and parsed.kind is not None:
                    self._count(parsed.stream, parsed.kind)
                    followed.last = (parsed.stream, parsed.kind)

    def sample(self, ctx: SampleContext) -> ErrorsResult:
        for state in self._logs:
            self._follow(state)
            for followed in state.files.values():
                self._read(state, followed)
        out = {stream: dict(kinds) for stream, kinds in self._counts.items()}
        procs = ctx.processes
        if self.exits and procs is not None:
            for stream, p in procs.streams.items():
                kinds = out.setdefault(stream, {})
                kinds["exit"] = max(kinds.get("exit", 0), p.exits_total)
        return ErrorsResult(
            streams=MappingProxyType({s: MappingProxyType(k) for s, k in out.items()}),
            files=sum(len(state.files) for state in self._logs),
        )

