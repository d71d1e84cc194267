"""Per-partition digitalisation table with a short history of versions per enterprise.

The as-of join takes the newest assessment with ``assessed_at <= occurred_at``, so the result
does not depend on when the score record was read relative to the event (given the score was
read at all: see streams/reference/reader.py).
"""

from __future__ import annotations

from bisect import bisect_right, insort

from mypy_extensions import mypyc_attr

from schemas.enums import DigitalizationBand

__all__ = ["ScoreTable", "ScoreVersion"]

UNSCORED = DigitalizationBand.unscored.value
UNKNOWN_SECTOR = "unknown"
_NONE = (UNSCORED, UNKNOWN_SECTOR)


_LABELS: dict[tuple[str, str], int] = {}  # (band, sector) → index in _LABEL_LIST
_LABEL_LIST: list[tuple[str, str]] = []  # one shared tuple per (band, sector)
_ID_BITS = 64
_IDX_BITS = 16
_ID_MASK = (1 << _ID_BITS) - 1
_IDX_MASK = (1 << _IDX_BITS) - 1
_AT_SHIFT = _ID_BITS + _IDX_BITS


def _label_index(band: str, sector: str) -> int:
    pair = (band, sector)
    idx = _LABELS.get(pair)
    if idx is None:
        idx = _LABELS[pair] = len(_LABEL_LIST)
        _LABEL_LIST.append(pair)
    return idx


# a plain Python class even when compiled: a native one adds a vtable pointer (56 bytes, not
# 48: 8 MB more per million scored enterprises)
@mypyc_attr(native_class=False)
class ScoreVersion:
    """One assessment: when, which (its event id, as a 64-bit hash in the worker), and the
    (band, sector) it gives.

    Two slots, so an object is a 48-byte block: ``uscc`` is the score table's own key
    string, which the other stores keyed by enterprise share (streams/aggregate/restate.py)
    instead of a second copy of each enterprise's USCC; ``_data`` packs the assessed time,
    the 64-bit event id hash and the index of the shared (band, sector) tuple into one int
    (48 bytes, where two ints and a tuple slot took 80 more; bench/RESULTS.md, "1 million
    scored enterprises: memory"). An event id that is not such a hash (tests, tools), or a
    time before 1970, is kept as a plain (assessed_us, event_id, labels) tuple instead.
    """

    __slots__ = ("_data", "uscc")

    _data: int | tuple[int, int | str, tuple[str, str]]

    def __init__(
        self, assessed_us: int, event_id: int | str, band: str, sector: str, uscc: str = ""
    ) -> None:
        idx = _label_index(band, sector)
        if (
            isinstance(event_id, int)
            and 0 <= event_id <= _ID_MASK
            and assessed_us >= 0
            and idx <= _IDX_MASK
        ):
            self._data = (assessed_us << _AT_SHIFT) | (event_id << _IDX_BITS) | idx
        else:
            self._data = (assessed_us, event_id, _LABEL_LIST[idx])
        self.uscc = uscc

    @property
    def assessed_us(self) -> int:
        d = self._data
        return d >> _AT_SHIFT if isinstance(d, int) else d[0]

    @property
    def event_id(self) -> int | str:
        d = self._data
        return (d >> _IDX_BITS) & _ID_MASK if isinstance(d, int) else d[1]

    @property
    def labels(self) -> tuple[str, str]:
        """(band, sector): one shared tuple per pair."""
        d = self._data
        return _LABEL_LIST[d & _IDX_MASK] if isinstance(d, int) else d[2]

    @property
    def band(self) -> str:
        return self.labels[0]

    @property
    def sector(self) -> str:
        return self.labels[1]

    def _key(self) -> tuple[int, str, str, str]:
        return (self.assessed_us, str(self.event_id), *self.labels)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScoreVersion) and self._key() == other._key()

    def __lt__(self, other: ScoreVersion) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"ScoreVersion({self.assessed_us}, {self.event_id!r}, {self.band!r}, {self.sector!r})"
        )


@mypyc_attr(allow_interpreted_subclasses=True)  # tests break one to see a defect handled
class ScoreTable:
    """uscc → versions sorted by assessed time (bounded), plus the scored-enterprises gauge.

    Most enterprises have one assessment: their entry is the version itself, not a list of
    one (a list costs about 90 bytes per enterprise; with a million scored enterprises
    that is the difference between fitting in 500 MB and not, bench/RESULTS.md).
    """

    def __init__(self, history: int = 8) -> None:
        self.history = history
        self.versions: dict[str, ScoreVersion | list[ScoreVersion]] = {}
        # (band, sector) → enterprises whose newest assessment is there
        self.scored: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self.versions)

    def canonical(self, uscc: str) -> str:
        """The table's own key string for ``uscc`` if it is scored, else ``uscc``: stores
        keyed by enterprise share it rather than hold another copy."""
        entry = self.versions.get(uscc)
        if entry is None:
            return uscc
        return (entry if isinstance(entry, ScoreVersion) else entry[0]).uscc or uscc

    def has(self, uscc: str, event_id: int | str) -> bool:
        entry = self.versions.get(uscc)
        if entry is None:
            return False
        if isinstance(entry, ScoreVersion):
            return entry.event_id == event_id
        return any(v.event_id == event_id for v in entry)

    def add(self, uscc: str, version: ScoreVersion) -> int | None:
        """Keep ``version``; returns the ``assessed_us`` of an older kept version it pushed
        out of the history (events joined with that one must be joined again), else None."""
        entry = self.versions.get(uscc)
        if entry is None:
            version.uscc = uscc
            self.versions[uscc] = version
            self._count(version, +1)
            return None
        versions = [entry] if isinstance(entry, ScoreVersion) else entry
        version.uscc = versions[0].uscc or uscc
        old_newest = versions[-1]
        # one version per assessment time: a re-assessment at the same instant replaces it
        versions = [v for v in versions if v.assessed_us != version.assessed_us]
        insort(versions, version)
        pushed_out: int | None = None
        if len(versions) > self.history:
            dropped = versions.pop(0)
            if dropped is not version:  # a back-dated one older than all kept joined nothing
                pushed_out = dropped.assessed_us
        self.versions[uscc] = versions[0] if len(versions) == 1 else versions
        new_newest = versions[-1]
        if old_newest != new_newest:
            self._count(old_newest, -1)
            self._count(new_newest, +1)
        return pushed_out

    def _count(self, v: ScoreVersion, sign: int) -> None:
        key = (v.band, v.sector)
        n = self.scored.get(key, 0) + sign
        if n:
            self.scored[key] = n
        else:
            self.scored.pop(key, None)

    def join(self, uscc: str, ts_us: int) -> tuple[str, str, str]:
        """``(*as_of(uscc, ts_us), canonical(uscc))`` in one lookup (once per event)."""
        entry = self.versions.get(uscc)
        if entry is None:
            return UNSCORED, UNKNOWN_SECTOR, uscc
        if isinstance(entry, ScoreVersion):
            d = entry._data
            if type(d) is int:
                band, sector = _LABEL_LIST[d & _IDX_MASK] if d >> _AT_SHIFT <= ts_us else _NONE
            else:
                band, sector = entry.labels if entry.assessed_us <= ts_us else _NONE
            return band, sector, entry.uscc or uscc
        i = bisect_right(entry, ts_us, key=lambda v: v.assessed_us)
        band, sector = entry[i - 1].labels if i else _NONE
        return band, sector, entry[0].uscc or uscc

    def as_of(self, uscc: str, ts_us: int) -> tuple[str, str]:
        """(band, sector) of the newest assessment at or before ``ts_us``."""
        entry = self.versions.get(uscc)
        if entry is None:
            return UNSCORED, UNKNOWN_SECTOR
        if isinstance(entry, ScoreVersion):
            d = entry._data  # inline: this runs for every event
            if type(d) is int:
                return _LABEL_LIST[d & _IDX_MASK] if d >> _AT_SHIFT <= ts_us else _NONE
            return entry.labels if entry.assessed_us <= ts_us else _NONE
        i = bisect_right(entry, ts_us, key=lambda v: v.assessed_us)
        if i == 0:
            return _NONE
        return entry[i - 1].labels
