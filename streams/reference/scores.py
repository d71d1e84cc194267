"""Per-partition digitalisation table with a short history of versions per enterprise.

The as-of join takes the newest assessment with ``assessed_at <= occurred_at``, so the result
does not depend on when the score record was read relative to the event (given the score was
read at all: see streams/reference/reader.py).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from dataclasses import dataclass

from schemas.enums import DigitalizationBand

__all__ = ["ScoreTable", "ScoreVersion"]

UNSCORED = DigitalizationBand.unscored.value
UNKNOWN_SECTOR = "unknown"


@dataclass(frozen=True, slots=True, order=True)
class ScoreVersion:
    assessed_us: int
    event_id: str
    band: str
    sector: str


class ScoreTable:
    """uscc → versions sorted by assessed time (bounded), plus the scored-enterprises gauge."""

    def __init__(self, history: int = 8) -> None:
        self.history = history
        self.versions: dict[str, list[ScoreVersion]] = {}
        # (band, sector) → enterprises whose newest assessment is there
        self.scored: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self.versions)

    def has(self, uscc: str, event_id: str) -> bool:
        return any(v.event_id == event_id for v in self.versions.get(uscc, ()))

    def add(self, uscc: str, version: ScoreVersion) -> None:
        versions = self.versions.get(uscc)
        if versions is None:
            versions = self.versions[uscc] = []
        old_newest = versions[-1] if versions else None
        # one version per assessment time: a re-assessment at the same instant replaces it
        versions[:] = [v for v in versions if v.assessed_us != version.assessed_us]
        insort(versions, version)
        if len(versions) > self.history:
            del versions[0]
        new_newest = versions[-1]
        if old_newest != new_newest:
            if old_newest is not None:
                self._count(old_newest, -1)
            self._count(new_newest, +1)

    def _count(self, v: ScoreVersion, sign: int) -> None:
        key = (v.band, v.sector)
        n = self.scored.get(key, 0) + sign
        if n:
            self.scored[key] = n
        else:
            self.scored.pop(key, None)

    def as_of(self, uscc: str, ts_us: int) -> tuple[str, str]:
        """(band, sector) of the newest assessment at or before ``ts_us``."""
        versions = self.versions.get(uscc)
        if not versions:
            return UNSCORED, UNKNOWN_SECTOR
        i = bisect_right(versions, ts_us, key=lambda v: v.assessed_us)
        if i == 0:
            return UNSCORED, UNKNOWN_SECTOR
        v = versions[i - 1]
        return v.band, v.sector
