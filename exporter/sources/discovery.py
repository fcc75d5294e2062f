"""Which processes are streams: the config's rules, compiled, and matched against one process (pure).

A rule says three things: the program (``ffmpeg``), what the command line must show (a preset: one of
its OUTPUTS matches the panel's output path; a custom rule or a declared stream's ``cmdline``: the whole
command line matches), and who must run it (the owners: the panel's user by default). A process that
matches a pattern but belongs to nobody the rule allows is *refused*: it never becomes a stream, and the
processes source counts it, so an operator sees that something tried.

Owners are resolved to uids once, when the rules are built; a user that does not exist on this host
makes the rule match nothing (a PanelX host has no ``xtreamcodes`` user), which is logged once.
"""

from __future__ import annotations

import logging
import pwd
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from exporter.config import Config
from exporter.linear_re import LinearPattern, compile_linear
from exporter.sources.ffmpeg_argv import parse_ffmpeg_argv

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rule:
    process: str | None
    pattern: LinearPattern[str]
    """RE2: command lines are written by any local user, the pattern by the config (exporter.linear_re)."""
    stream: str | None = None
    """Set for a static stream's own ``cmdline``: every match belongs to that stream."""
    uids: frozenset[int] | None = None
    """Owners allowed to run the stream's processes; None: any owner."""
    on_outputs: bool = False
    """Match ``pattern`` against each output of the command line (presets), not the joined line."""
    paths: tuple[str, ...] = ()
    """Folders (ending in ``/``) an output must be in; empty: anywhere."""


@dataclass(frozen=True, slots=True)
class Match:
    stream: str | None
    """The stream id, or None."""
    refused: bool = False
    """A rule's pattern matched, but the process's owner is not one the rule allows."""
    declared: bool = False
    """The id comes from a declared (static) stream's own pattern."""


NO_MATCH = Match(None)


def resolve_owners(owners: Iterable[str | int]) -> frozenset[int]:
    """uids of ``owners``; names unknown on this host are left out (and logged)."""
    uids: set[int] = set()
    for owner in owners:
        if isinstance(owner, int):
            uids.add(owner)
            continue
        try:
            uids.add(pwd.getpwnam(owner).pw_uid)
        except KeyError:
            log.info("discovery owner does not exist on this host, its rule matches nothing user=%s", owner)
    return frozenset(uids)


def rules_from_config(config: Config) -> list[Rule]:
    """Static streams' own patterns first (they pin an id), then the discovery rules in order.

    A static stream's pattern allows its own ``user``, else every owner the discovery rules allow (any
    owner when there are no discovery rules: the operator declared exactly what to watch).
    """
    discover = [(rule, resolve_owners(rule.owners)) for rule in config.streams.discover]
    every: frozenset[int] | None = frozenset().union(*(u for _, u in discover)) if discover else None
    rules = [
        Rule(None, compile_linear(s.cmdline), stream=s.id,
             uids=resolve_owners(s.user) if s.user is not None else every)
        for s in config.streams.static if s.cmdline is not None
    ]
    for rule, uids in discover:
        name, pattern = rule.resolved()
        paths = tuple(str(p).rstrip("/") + "/" for p in rule.paths or ())
        rules.append(Rule(name, pattern, uids=uids, on_outputs=rule.preset is not None, paths=paths))
    return rules


def process_name_matches(wanted: str | None, name: str, cmdline: Sequence[str]) -> bool:
    if wanted is None or name == wanted:
        return True
    # comm is cut at 15 characters and a panel may ship its own binary: compare argv[0]'s base name too.
    return bool(cmdline) and cmdline[0].rsplit("/", 1)[-1] == wanted


def match(name: str, cmdline: Sequence[str], uid: int | None, rules: Sequence[Rule]) -> Match:
    """The stream this process serves, from the first rule whose pattern matches and whose owners allow
    ``uid`` (None: owner unknown, allowed only by rules that allow any owner)."""
    if not cmdline:
        return NO_MATCH  # kernel threads and zombies have no command line
    joined: str | None = None
    outputs: tuple[str, ...] | None = None
    refused = False
    for rule in rules:
        if not process_name_matches(rule.process, name, cmdline):
            continue
        stream: str | None = None
        if rule.on_outputs:
            if outputs is None:
                outputs = parse_ffmpeg_argv(cmdline).outputs
            for output in outputs:
                if rule.paths and not output.startswith(rule.paths):
                    continue
                found = rule.pattern.search(output)
                if found:
                    stream = found.group("stream")
                    break
        else:
            if joined is None:
                joined = " ".join(cmdline)
            found = rule.pattern.search(joined)
            if found:
                stream = rule.stream or found.group("stream")
        if stream is None:
            continue
        if rule.uids is not None and (uid is None or uid not in rule.uids):
            refused = True
            continue  # a later rule may allow this owner
        return Match(stream, declared=rule.stream is not None)
    return Match(None, refused=refused)


def stream_for(name: str, cmdline: Sequence[str], rules: Sequence[Rule], uid: int | None = None) -> str | None:
    """The stream id a process of this name, command line and owner serves, or None."""
    return match(name, cmdline, uid, rules).stream
