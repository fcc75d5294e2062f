"""The stream inventory: declared streams plus those discovered from processes this round.

A step of its own in each round, between the processes source and the other sources
(:class:`Inventory`, run by :mod:`exporter.sampler`): the others sample the streams it lists.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from exporter.config import Config
from exporter.sources import StreamRef
from exporter.sources.processes_result import ProcessesResult
from exporter.watchedfile import WatchedFile

log = logging.getLogger(__name__)


def parse_names(text: str) -> dict[str, str]:
    """``id,name`` rows (a header row ``id,name`` is allowed)."""
    rows = csv.reader(text.splitlines())
    return {r[0].strip(): r[1].strip() for r in rows if len(r) >= 2 and r[0].strip() and r[0] != "id"}


def _read_names(path: Path) -> dict[str, str]:
    return parse_names(path.read_text(encoding="utf-8"))


class NamesFile:
    """The stream names CSV, read again only when it changes; a missing file warns once, not every round."""

    def __init__(self, path: Path | None) -> None:
        self._file = WatchedFile(path, _read_names, what="stream names file", logger=log) if path else None

    def names(self) -> dict[str, str]:
        if self._file is None:
            return {}
        self._file.refresh()
        return self._file.value or {}


def _pattern(pattern: str | None, stream: str) -> str | None:
    return pattern.replace("{stream}", stream) if pattern else None


def build_inventory(
    config: Config, processes: ProcessesResult | None, names: Mapping[str, str]
) -> Mapping[str, StreamRef]:
    """Static streams always; discovered streams while the processes source tracks them.

    A discovered stream stays in the inventory once seen (and across exporter restarts, through the
    streams state file), so its counters do not vanish while it is down: a crash must read
    ``iptv_stream_up 0``, not an absent series that silences the alerts. It leaves after
    ``streams.forget_after`` without a process (a removed or on-demand channel); a declared one never does.
    """
    cfg = config.streams
    out: dict[str, StreamRef] = {}
    for s in cfg.static:
        seen = processes.streams.get(s.id) if processes else None
        hinted_playlist, hinted_progress = (seen.playlist, seen.progress) if seen else (None, None)
        out[s.id] = StreamRef(
            id=s.id,
            name=s.name or names.get(s.id, s.id),
            declared=True,
            playlist=str(s.playlist) if s.playlist else _pattern(cfg.playlist, s.id) or hinted_playlist,
            progress=str(s.progress) if s.progress else _pattern(cfg.progress, s.id) or hinted_progress,
        )
    for stream, seen in (processes.streams.items() if processes else ()):
        if stream in out:
            continue
        out[stream] = StreamRef(
            id=stream,
            name=names.get(stream, stream),
            declared=False,
            playlist=_pattern(cfg.playlist, stream) or seen.playlist,
            progress=_pattern(cfg.progress, stream) or seen.progress,
            restartable=seen.owner_allowed,
        )
    return MappingProxyType(out)



class Inventory:
    """The inventory step: :func:`build_inventory` with the stream names file, read again when it changes."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._names = NamesFile(config.streams.names.file if config.streams.names else None)

    def build(self, processes: ProcessesResult | None) -> Mapping[str, StreamRef]:
        """The round's inventory; ``processes`` None gives the declared streams only (what the processes
        source is given, and the inventory of a round where it failed)."""
        return build_inventory(self._config, processes, self._names.names())
