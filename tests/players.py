"""Loopback HLS players for the end-to-end tests: one thread each, on its own loopback address.

Each panel has its own URL flow (PanelX's /live/ playlist with /streams/ segments, XUI's redirect to
/auth/<token>, a plain restream's relative segment names); a subclass says how one polling round goes, the
base class runs it at a player's pace, counts the body bytes and status classes it got, and reports a
failure when stopped.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Self

import httpx


class Player:
    follow_redirects = False

    def __init__(self, source: str, agent: str) -> None:
        self.source = source
        self.agent = agent
        self.body_bytes = 0
        self.codes: Counter[str] = Counter()
        self.seen: set[str] = set()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> Self:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def get(self, client: httpx.Client, url: str) -> httpx.Response:
        r = client.get(url)
        self.body_bytes += len(r.content)
        self.codes[f"{r.status_code // 100}xx"] += 1
        return r

    def fetch_new_segments(self, client: httpx.Client, playlist: str, pattern: str, prefix: str) -> None:
        """Each segment the playlist lists (``pattern``'s group 1, after ``prefix``) fetched once, as players do."""
        for uri in re.findall(pattern, playlist, flags=re.M):
            if uri not in self.seen:
                self.seen.add(uri)
                self.get(client, prefix + uri)

    def begin(self, client: httpx.Client) -> None:
        """Before the first round (a redirect to follow, a token to take)."""

    def poll(self, client: httpx.Client) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            with httpx.Client(transport=httpx.HTTPTransport(local_address=self.source), timeout=10,
                              follow_redirects=self.follow_redirects,
                              headers={"User-Agent": self.agent}) as client:
                self.begin(client)
                while not self.stop_event.is_set():
                    self.poll(client)
                    self.stop_event.wait(0.5)  # a player's polling pace
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(15)
        if self.error is not None:
            raise AssertionError(f"player {self.source} failed: {self.error!r}")
