"""What every benchmark is given: the scale, how many runs, a scratch directory, the geo test data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Options:
    quick: bool
    runs: int
    tmp: Path
    geo: tuple[Path, Path] | None
    """City and ASN test databases (bench/geodata.py); None: lookups answer ``unknown``."""
    profile: bool = True
    """Profile our side where a target is missed."""

    def geo_config(self) -> dict[str, str]:
        return {"city_db": str(self.geo[0]), "asn_db": str(self.geo[1])} if self.geo else {}
