"""The GeoIP databases the exporter answers from: loaded or not, which edition, when built, and the age the
operator allows (``geo.max_age``), so IPTVGeoIPDatabaseStale can tell a geoipupdate that stopped.

A live collector (the databases are reloaded by the sampler's rounds, not part of a snapshot); it reads the
readers' metadata already in memory, no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.geo import GeoDatabaseStatus


class GeoIPCollector:
    def __init__(self, databases: Callable[[], Sequence[GeoDatabaseStatus]], max_age_seconds: float) -> None:
        self._databases = databases
        self._max_age = max_age_seconds

    def collect(self) -> Iterator[Metric]:
        dbs = self._databases()
        loaded = GaugeMetricFamily("iptv_geoip_database_loaded",
                                   "1 if the GeoIP database of this type is open and answering, else 0.",
                                   labels=["type"])
        info = GaugeMetricFamily("iptv_geoip_database_info",
                                 "Always 1 per loaded GeoIP database: its edition and build date (UTC).",
                                 labels=["type", "edition", "build_date"])
        built = GaugeMetricFamily("iptv_geoip_database_build_timestamp_seconds",
                                  "When the loaded GeoIP database was built (its metadata), Unix seconds.",
                                  labels=["type"])
        for db in dbs:
            loaded.add_metric([db.kind], 1 if db.loaded else 0)
            if db.loaded and db.build_epoch is not None:
                date = time.strftime("%Y-%m-%d", time.gmtime(db.build_epoch))
                info.add_metric([db.kind, db.edition, date], 1)
                built.add_metric([db.kind], db.build_epoch)
        yield loaded
        yield info
        yield built
        max_age = GaugeMetricFamily("iptv_geoip_database_max_age_seconds",
                                    "Configured geo.max_age: older databases are stale (IPTVGeoIPDatabaseStale).")
        max_age.add_metric([], self._max_age)
        yield max_age
