"""What ``GET /metrics`` answers: the latest snapshot's families encoded at most once per snapshot, then the
live collectors' (the actions', whose state moves between snapshots) encoded on every scrape.

A snapshot never changes, so its part of the body is encoded on the first scrape that asks for it, in that
format, and reused by later scrapes until the next round publishes a new snapshot; a gzip answer keeps the
compressor's state after the snapshot part (``zlib`` ``copy``), so only the small live part is compressed
per scrape. Encoding is lazy rather than done by the sampler after each round: Prometheus scrapes every
15 s and the sampler runs every 5 s, so most snapshots are never scraped. :meth:`MetricsRegistry.render`
blocks for as long as an encoding takes (tens of milliseconds at 500 streams); the app calls it in a worker
thread, never on the event loop that answers the webhook.

Content negotiation is prometheus_client's (``choose_encoder``); the cached path serves the text format
and OpenMetrics 1.x with the default and ``allow-utf-8`` escaping, byte for byte what prometheus_client
writes. Anything else (another escaping scheme, OpenMetrics 2) is written by prometheus_client per scrape.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.exposition import choose_encoder
from prometheus_client.exposition import generate_latest as client_text
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import ALLOWUTF8, UNDERSCORES
from prometheus_client.openmetrics.exposition import generate_latest as client_openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import parse_version

from exporter.metrics import SnapshotCollector
from exporter.metrics import textformat as tf
from exporter.snapshot import Snapshot

GZIP_LEVEL = 5
GZIP_MIN = 512
"""Bodies this small go out uncompressed."""
TEXT, OPENMETRICS = "text", "openmetrics"


def cached_format(encoder: Callable[..., bytes]) -> tuple[str, bool] | None:
    """(format, allow-utf-8 escaping) if the cache can answer for ``choose_encoder``'s choice, else None."""
    func = getattr(encoder, "func", encoder)
    options = getattr(encoder, "keywords", {})
    escaping = options.get("escaping", UNDERSCORES)
    if escaping not in (UNDERSCORES, ALLOWUTF8):
        return None
    if func is client_text:
        return TEXT, escaping == ALLOWUTF8
    if func is client_openmetrics and parse_version(options.get("version", "1.0.0")) < (2, 0, 0):
        return OPENMETRICS, escaping == ALLOWUTF8
    return None


def _join(blocks: Iterable[tf.Block], fmt: str) -> str:
    return tf.text(blocks) if fmt == TEXT else tf.openmetrics(blocks, eof=False)


@dataclass
class _Encoded:
    """One snapshot's families, and its part of each body asked for so far."""

    snapshot: Snapshot
    blocks: list[tf.Block]
    bodies: dict[str, bytes] = field(default_factory=dict)
    gzipped: dict[str, tuple[bytes, zlib._Compress]] = field(default_factory=dict)

    @property
    def plain(self) -> bool:
        return all(b.plain for b in self.blocks)

    def body(self, fmt: str) -> bytes:
        found = self.bodies.get(fmt)
        if found is None:
            found = self.bodies[fmt] = _join(self.blocks, fmt).encode("utf-8")
        return found

    def gzip(self, fmt: str) -> tuple[bytes, zlib._Compress]:
        """The snapshot part compressed and flushed to a byte boundary, and the compressor to go on with."""
        found = self.gzipped.get(fmt)
        if found is None:
            compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # a gzip member
            head = compressor.compress(self.body(fmt)) + compressor.flush(zlib.Z_SYNC_FLUSH)
            found = self.gzipped[fmt] = (head, compressor)
        return found


class MetricsRegistry:
    """The families ``/metrics`` serves: a snapshot collector's, cached per snapshot, then the live ones'.

    ``collect()`` yields every family like a ``CollectorRegistry`` does, so prometheus_client's own
    ``generate_latest(registry)`` still works (tests compare the two).
    """

    def __init__(self, snapshot: SnapshotCollector, live: Iterable[Collector] = ()) -> None:
        self._snapshot = snapshot
        self._live = list(live)
        self._lock = threading.Lock()
        self._encoded: _Encoded | None = None

    def register(self, collector: Collector) -> None:
        """A collector whose families are encoded on every scrape (its state is not in the snapshot)."""
        self._live.append(collector)

    def collect(self) -> Iterator[Metric]:
        yield from self._snapshot.collect()
        for collector in self._live:
            yield from collector.collect()

    def encoded(self) -> _Encoded:
        """The latest snapshot's families, encoded by the first caller that needs them (the others wait)."""
        snap = self._snapshot.latest()
        with self._lock:
            if self._encoded is None or self._encoded.snapshot is not snap:
                self._encoded = _Encoded(snap, tf.Encoder().blocks(self._snapshot.collect_from(snap)))
            return self._encoded

    def render(self, accept: str = "", accept_encoding: str = "") -> tuple[bytes, dict[str, str]]:
        """The body and headers for a scrape with these request headers. Blocks: call it off the event loop."""
        encoder, content_type = choose_encoder(accept)
        headers = {"Content-Type": content_type}
        wants_gzip = "gzip" in accept_encoding
        chosen = cached_format(encoder)
        if chosen is not None:
            fmt, utf8 = chosen
            snap = self.encoded()
            live = tf.Encoder().blocks(m for c in self._live for m in c.collect())
            if not utf8 or (snap.plain and all(b.plain for b in live)):
                tail = (_join(live, fmt) + (tf.EOF if fmt == OPENMETRICS else "")).encode("utf-8")
                with self._lock:  # the compressor copied below is shared by every scrape of this snapshot
                    head = snap.body(fmt)
                    if not wants_gzip or len(head) + len(tail) <= GZIP_MIN:
                        return head + tail, headers
                    gz_head, compressor = snap.gzip(fmt)
                    rest = compressor.copy()
                headers["Content-Encoding"] = "gzip"
                return gz_head + rest.compress(tail) + rest.flush(), headers
        body = encoder(self)  # prometheus_client writes what the cache does not serve
        if wants_gzip and len(body) > GZIP_MIN:
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        return body, headers
