"""Discovered streams remembered across exporter restarts, in a small JSON file.

Without it, a stream whose ffmpeg is down when the exporter starts has no series at all: IPTVStreamDown
cannot fire and a restart alert for it is ``skipped_unknown_stream``. The processes source writes the
discovered streams it knows (id, when a process of it was last seen, its owner, its playlist and
progress target) and reads them back at start; entries older than ``streams.forget_after`` are dropped
then, as they would have been had the exporter kept running.

Written atomically (a temporary file in the same folder, fsync, rename), so a crash leaves the old file
or the new one. A missing file is an empty memory; an unreadable or malformed one is logged and ignored
(the exporter must start; it only forgets what was down).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from exporter.config import Config
from exporter.config.streams import STREAM_ID

log = logging.getLogger(__name__)

VERSION = 1
STATE_NAME = "streams.json"


@dataclass(frozen=True, slots=True)
class Remembered:
    stream: str
    last_seen: float
    """When a process of the stream was last seen running (Unix seconds)."""
    uid: int | None
    """The owner of its processes when it was discovered (re-checked against the rules at start)."""
    playlist: str | None = None
    progress: str | None = None


def state_path(config: Config) -> Path | None:
    """``streams.state_file``, else ``streams.json`` beside the action journal, else None (no memory)."""
    if config.streams.state_file is not None:
        return config.streams.state_file
    if config.actions is not None:
        return Path(config.actions.journal).parent / STATE_NAME
    return None


def parse_state(text: str) -> list[Remembered]:
    """The entries of a state file; raises ValueError on anything but the shape :func:`render_state` writes."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("streams"), list):
        raise ValueError("not a streams state file of version 1")
    out = []
    for item in data["streams"]:
        if not isinstance(item, dict):
            raise ValueError("a stream entry is not an object")
        stream, last_seen, uid = item.get("stream"), item.get("last_seen"), item.get("uid")
        if not isinstance(stream, str) or not STREAM_ID.fullmatch(stream):
            raise ValueError(f"invalid stream id {stream!r}")
        if not isinstance(last_seen, int | float) or isinstance(last_seen, bool):
            raise ValueError(f"stream {stream}: last_seen is not a number")
        if uid is not None and (not isinstance(uid, int) or isinstance(uid, bool)):
            raise ValueError(f"stream {stream}: uid is not a number")
        playlist, progress = item.get("playlist"), item.get("progress")
        out.append(Remembered(stream, float(last_seen), uid,
                              playlist if isinstance(playlist, str) else None,
                              progress if isinstance(progress, str) else None))
    return out


def render_state(entries: list[Remembered]) -> str:
    return json.dumps({"version": VERSION, "streams": [asdict(e) for e in sorted(entries, key=lambda e: e.stream)]},
                      indent=1)


class StreamMemory:
    """The state file: :meth:`load` once at start, :meth:`save` when the discovered streams change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failing = False

    def load(self) -> list[Remembered]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("streams state unreadable, starting without remembered streams path=%s error=%s",
                        self.path, exc)
            return []
        try:
            entries = parse_state(text)
        except ValueError as exc:
            log.warning("streams state malformed, starting without remembered streams path=%s error=%s",
                        self.path, exc)
            return []
        log.info("remembered streams loaded path=%s streams=%d", self.path, len(entries))
        return entries

    def save(self, entries: list[Remembered]) -> bool:
        """Write ``entries``; False (logged once per failure run) when the file cannot be written."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".streams-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(render_state(entries))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            if not self._failing:
                log.error("cannot write streams state: down streams are forgotten at the next start path=%s"
                          " error=%s", self.path, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("streams state writable again path=%s", self.path)
        self._failing = False
        return True
