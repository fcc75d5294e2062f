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

No value may fail the whole scrape (a 4,000-digit frame count once made every scrape a 500 until restart,
and a dead scrape inhibits every alert of the node): a family that cannot be collected or encoded is
dropped, counted in ``iptv_exporter_render_errors_total{family}`` and logged; the rest is served.
"""

from __future__ import annotations

import gzip
import logging
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.exposition import generate_latest as client_text
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import ALLOWUTF8, UNDERSCORES
from prometheus_client.openmetrics.exposition import generate_latest as client_openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import parse_version

from exporter.metrics import SnapshotCollector
from exporter.metrics import textformat as tf
from exporter.redact import redact
from exporter.snapshot import Snapshot

log = logging.getLogger(__name__)

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
        """The snapshot part compressed and flushed to a byte boundary, and the compressor to go on with.

        Prometheus asks for gzip on every scrape. Measured with ``python -m bench.encoder`` (500 streams,
        10k viewers, a 714 KiB body): a scrape of an already encoded snapshot costs 0.3-0.6 ms CPU this way
        against 4.4 ms for compressing the whole body each time (over 7x), so the compressor's state is kept."""
        found = self.gzipped.get(fmt)
        if found is None:
            compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # a gzip member
            head = compressor.compress(self.body(fmt)) + compressor.flush(zlib.Z_SYNC_FLUSH)
            found = self.gzipped[fmt] = (head, compressor)
        return found


class RenderErrors:
    """Families dropped from renders, by family (or by the module whose ``collect`` failed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def record(self, family: str, exc: BaseException) -> None:
        with self._lock:
            first = family not in self._counts
            self._counts[family] = self._counts.get(family, 0) + 1
        # The message may quote a label value: redacted and cut; the traceback once per family.
        error = redact(f"{type(exc).__name__}: {exc}")[:200]
        if first:
            log.error("metric family dropped from /metrics family=%s error=%s", family, error, exc_info=exc)
        else:
            log.warning("metric family dropped from /metrics family=%s error=%s", family, error)

    def collect(self) -> Iterator[Metric]:
        """Nothing until a family was dropped (its label is the family's name, known only then)."""
        with self._lock:
            counts = sorted(self._counts.items())
        if not counts:
            return
        family = CounterMetricFamily(
            "iptv_exporter_render_errors",
            "Metric families dropped from /metrics because they could not be collected or encoded.",
            labels=["family"],
        )
        for name, n in counts:
            family.add_metric([name], n)
        yield family


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
        self.errors = RenderErrors()
        snapshot.on_error = self.errors.record

    def register(self, collector: Collector) -> None:
        """A collector whose families are encoded on every scrape (its state is not in the snapshot)."""
        self._live.append(collector)

    def _live_metrics(self) -> Iterator[Metric]:
        """The live collectors' families (one that raises loses only its own), then the render errors."""
        for collector in self._live:
            try:
                metrics = list(collector.collect())
            except Exception as exc:  # noqa: BLE001 - no collector may fail the whole scrape
                self.errors.record(type(collector).__name__, exc)
                continue
            yield from metrics
        yield from self.errors.collect()

    def _encode(self, metrics: Iterable[Metric]) -> list[tf.Block]:
        """Blocks of the families that encode; the others are dropped and counted."""
        encoder = tf.Encoder()
        out: list[tf.Block] = []
        for metric in metrics:
            try:
                out.append(encoder.block(metric))
            except Exception as exc:  # noqa: BLE001 - e.g. OverflowError from an int too large for a float
                self.errors.record(str(getattr(metric, "name", "?")), exc)
        return out

    def collect(self) -> Iterator[Metric]:
        """Every family that can be encoded (prometheus_client's writers get only those)."""
        encoder = tf.Encoder()
        for metric in (*self._snapshot.collect(), *self._live_metrics()):
            try:
                encoder.block(metric)
            except Exception as exc:  # noqa: BLE001 - as in _encode
                self.errors.record(str(getattr(metric, "name", "?")), exc)
                continue
            yield metric

    def encoded(self) -> _Encoded:
        """The latest snapshot's families, encoded by the first caller that needs them (the others wait)."""
        snap = self._snapshot.latest()
        with self._lock:
            if self._encoded is None or self._encoded.snapshot is not snap:
                self._encoded = _Encoded(snap, self._encode(self._snapshot.collect_from(snap)))
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
            live = self._encode(self._live_metrics())
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
