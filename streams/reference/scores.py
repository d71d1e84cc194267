"""Per-partition digitalisation table with a short history of versions per enterprise.

The as-of join takes the newest assessment with ``assessed_at <= occurred_at``, so the result
does not depend on when the score record was read relative to the event (given the score was
read at all: see streams/reference/reader.py).
"""

from __future__ import annotations

from array import array
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

    The score table keeps a worker's single assessment per enterprise in flat arrays, not as
    this object (:class:`ScoreTable`); objects are for enterprises with several versions,
    ids that are not such hashes, and answers. Two slots, so an object is a 48-byte block:
    ``uscc`` is the table's key string for such an enterprise, which the other stores keyed
    by enterprise share (streams/aggregate/restate.py); ``_data`` packs the assessed time,
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


_KEY_LEN = 18  # a USCC: the worker's keys are canonical 18-character codes
_SIDE = _IDX_MASK  # a slot's label value: this enterprise's versions are in ``_other``
_AT_MAX = (1 << 63) - 1
_FIRST_SLOTS = 64


def _tag(h: int) -> int:
    """A non-zero byte from the hash bits the slot index does not use (0 = empty slot)."""
    return ((h >> 56) & 0x7F) | 0x80


@mypyc_attr(allow_interpreted_subclasses=True)  # tests break one to see a defect handled
class ScoreTable:
    """uscc → versions sorted by assessed time (bounded), plus the scored-enterprises gauge.

    Most enterprises have one assessment, taken by the worker (a 64-bit event id hash, a time
    after 1970). Those live in an open-addressing table of flat arrays, not as Python
    objects: per slot a tag byte, the 18 key bytes, the assessed time, the id hash and the
    (band, sector) index, 37 bytes, so ~60 bytes an enterprise at the table's load, where
    a dict of key strings and version objects took ~210 (a million scored enterprises are
    ~150 MB less; bench/RESULTS.md, "Score table in flat arrays"). Anything else (several
    versions, an id that is not such a hash, an odd key) is kept as :class:`ScoreVersion`
    objects in ``_other``; a slot whose enterprise moved there says so (``_SIDE``).
    """

    _mask: int
    _tags: bytearray
    _keys: bytearray
    _at: array[int]
    _eid: array[int]
    _lab: array[int]

    def __init__(self, history: int = 8) -> None:
        self.history = history
        # (band, sector) → enterprises whose newest assessment is there
        self.scored: dict[tuple[str, str], int] = {}
        self._other: dict[str, ScoreVersion | list[ScoreVersion]] = {}
        self._count = 0  # enterprises
        self._used = 0  # slots in use
        self._allocate(_FIRST_SLOTS)

    def __len__(self) -> int:
        return self._count

    # -- the flat table ---------------------------------------------------------------
    def _slot(self, uscc: str) -> int:
        """The slot holding ``uscc``, or -1."""
        h = hash(uscc)
        mask = self._mask
        i = h & mask
        tag = _tag(h)
        tags = self._tags
        key = b""
        while True:
            t = tags[i]
            if t == 0:
                return -1
            if t == tag:
                if not key:  # only now: most unscored enterprises stop at an empty slot
                    if len(uscc) != _KEY_LEN or not uscc.isascii():
                        return -1  # never stored flat
                    key = uscc.encode("ascii")
                if self._keys.startswith(key, i * _KEY_LEN):
                    return i
            i = (i + 1) & mask

    def _insert(self, uscc: str, at: int, eid: int, lab: int) -> None:
        """A new slot for ``uscc`` (known absent; an 18-character ASCII key)."""
        if (self._used + 1) * 4 > (self._mask + 1) * 3:
            self._grow()
        self._place(uscc.encode("ascii"), hash(uscc), at, eid, lab)
        self._used += 1

    def _place(self, key: bytes, h: int, at: int, eid: int, lab: int) -> None:
        mask = self._mask
        i = h & mask
        tags = self._tags
        while tags[i]:
            i = (i + 1) & mask
        tags[i] = _tag(h)
        o = i * _KEY_LEN
        self._keys[o : o + _KEY_LEN] = key
        self._at[i] = at
        self._eid[i] = eid
        self._lab[i] = lab

    def _allocate(self, slots: int) -> None:
        """Empty arrays of ``slots`` slots (a power of two)."""
        self._mask = slots - 1
        self._tags = bytearray(slots)
        self._keys = bytearray(slots * _KEY_LEN)
        self._at = array("q", bytes(8 * slots))
        self._eid = array("Q", bytes(8 * slots))
        self._lab = array("H", bytes(2 * slots))

    def _grow(self) -> None:
        old_tags, old_keys = self._tags, self._keys
        old_at, old_eid, old_lab = self._at, self._eid, self._lab
        self._allocate(2 * (self._mask + 1))
        for i in range(len(old_tags)):
            if old_tags[i]:
                key = bytes(old_keys[i * _KEY_LEN : (i + 1) * _KEY_LEN])
                # the hash of the str, as lookups compute it
                self._place(key, hash(key.decode("ascii")), old_at[i], old_eid[i], old_lab[i])

    def _flat(self, i: int, uscc: str) -> ScoreVersion:
        lab = _LABEL_LIST[self._lab[i]]
        return ScoreVersion(self._at[i], self._eid[i], lab[0], lab[1], uscc)

    # -- reads -------------------------------------------------------------------------
    def versions_of(self, uscc: str) -> list[ScoreVersion]:
        """The kept versions of ``uscc``, oldest first (none if it is not scored)."""
        i = self._slot(uscc)
        if i >= 0 and self._lab[i] != _SIDE:
            return [self._flat(i, uscc)]
        entry = self._other.get(uscc)
        if entry is None:
            return []
        return [entry] if isinstance(entry, ScoreVersion) else list(entry)

    def canonical(self, uscc: str) -> str:
        """The table's own key string for ``uscc`` where it keeps one (an enterprise held as
        objects), else ``uscc``: stores keyed by enterprise share it rather than hold
        another copy."""
        if not self._other:
            return uscc
        entry = self._other.get(uscc)
        if entry is None:
            return uscc
        return (entry if isinstance(entry, ScoreVersion) else entry[0]).uscc or uscc

    def has(self, uscc: str, event_id: int | str) -> bool:
        i = self._slot(uscc)
        if i >= 0 and self._lab[i] != _SIDE:
            return isinstance(event_id, int) and self._eid[i] == event_id
        entry = self._other.get(uscc)
        if entry is None:
            return False
        if isinstance(entry, ScoreVersion):
            return entry.event_id == event_id
        return any(v.event_id == event_id for v in entry)

    # -- writes ------------------------------------------------------------------------
    def add(self, uscc: str, version: ScoreVersion) -> int | None:
        """Keep ``version``; returns the ``assessed_us`` of an older kept version it pushed
        out of the history (events joined with that one must be joined again), else None."""
        i = self._slot(uscc)
        if i < 0 and uscc not in self._other:
            self._count += 1
            self._count_labels(version.labels, +1)
            d = version._data
            # (label index _SIDE is the slot's own mark: such a version is kept as an object)
            if type(d) is int and len(uscc) == _KEY_LEN and uscc.isascii():
                at = d >> _AT_SHIFT
                if at <= _AT_MAX and d & _IDX_MASK != _SIDE:
                    self._insert(uscc, at, (d >> _IDX_BITS) & _ID_MASK, d & _IDX_MASK)
                    return None
            version.uscc = uscc
            self._other[uscc] = version
            return None
        versions = self.versions_of(uscc)
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
        if i >= 0:
            self._lab[i] = _SIDE  # kept as objects from now on
        self._other[uscc] = versions[0] if len(versions) == 1 else versions
        new_newest = versions[-1]
        if old_newest != new_newest:
            self._count_labels(old_newest.labels, -1)
            self._count_labels(new_newest.labels, +1)
        return pushed_out

    def _count_labels(self, key: tuple[str, str], sign: int) -> None:
        n = self.scored.get(key, 0) + sign
        if n:
            self.scored[key] = n
        else:
            self.scored.pop(key, None)

    # -- the as-of join ----------------------------------------------------------------
    def join(self, uscc: str, ts_us: int) -> tuple[str, str, str]:
        """``(*as_of(uscc, ts_us), canonical(uscc))`` in one lookup (once per event)."""
        i = self._slot(uscc)
        if i >= 0:
            lab = self._lab[i]
            if lab != _SIDE:
                if self._at[i] <= ts_us:
                    band, sector = _LABEL_LIST[lab]
                    return band, sector, uscc
                return UNSCORED, UNKNOWN_SECTOR, uscc
        if not self._other:
            return UNSCORED, UNKNOWN_SECTOR, uscc
        entry = self._other.get(uscc)
        if entry is None:
            return UNSCORED, UNKNOWN_SECTOR, uscc
        if isinstance(entry, ScoreVersion):
            band, sector = entry.labels if entry.assessed_us <= ts_us else _NONE
            return band, sector, entry.uscc or uscc
        j = bisect_right(entry, ts_us, key=lambda v: v.assessed_us)
        band, sector = entry[j - 1].labels if j else _NONE
        return band, sector, entry[0].uscc or uscc

    def as_of(self, uscc: str, ts_us: int) -> tuple[str, str]:
        """(band, sector) of the newest assessment at or before ``ts_us``."""
        band, sector, _ = self.join(uscc, ts_us)
        return band, sector
