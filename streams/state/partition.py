"""The state of one input partition number (all co-partitioned USCC topics share it).

Everything that decides a figure lives here, keyed by partition, so an aggregate is never
updated from two partitions (the Faust changelog trap in DESIGN.md). Changes since the last
commit are tracked so that a commit writes only what changed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Counters", "DedupWindow", "LoanState", "PartitionState", "Window", "WindowKey"]

Labels = tuple[str, ...]


class Counters:
    """figure name → label values → integer (fen, counts). Gauges live here too."""

    __slots__ = ("_dirty", "values")

    def __init__(self) -> None:
        self.values: dict[str, dict[Labels, int]] = {}
        self._dirty = False

    def add(self, name: str, labels: Labels, amount: int) -> None:
        if amount == 0:
            return
        series = self.values.get(name)
        if series is None:
            series = self.values[name] = {}
        new = series.get(labels, 0) + amount
        if new == 0:
            series.pop(labels, None)
        else:
            series[labels] = new
        self._dirty = True

    def get(self, name: str, labels: Labels) -> int:
        return self.values.get(name, {}).get(labels, 0)

    @property
    def dirty(self) -> bool:
        return self._dirty

    def mark_clean(self) -> None:
        self._dirty = False

    def snapshot(self) -> dict[str, dict[Labels, int]]:
        return {name: dict(series) for name, series in self.values.items()}

    def to_json(self) -> list[list[Any]]:
        return [
            [name, list(labels), value]
            for name, series in self.values.items()
            for labels, value in series.items()
        ]

    @classmethod
    def from_json(cls, rows: list[list[Any]]) -> Counters:
        c = cls()
        for name, labels, value in rows:
            c.values.setdefault(name, {})[tuple(labels)] = int(value)
        return c


@dataclass
class LoanState:
    """One loan's book, frozen at origination except for what its lifecycle changes."""

    uscc: str
    institution_type: str
    band: str
    region: str
    currency: str
    # CNY per unit of the loan currency, as a decimal string: the booked (disbursement) rate
    book_rate: str
    outstanding: str  # exact, in the loan currency, as a decimal string
    outstanding_fen: int  # to_fen(outstanding, book_rate)
    days_past_due: int = 0
    reported_risk: str = "normal"
    defaulted: bool = False

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LoanState:
        return cls(**d)


class DedupWindow:
    """Remembers event ids by event time, bounded by horizon and entry count.

    Ids are stored in chunks (one per commit) so that the changelog carries one record per
    commit instead of one per event, and whole chunks expire together.
    """

    __slots__ = ("_pending", "_pending_max_ts", "chunks", "ids", "max_entries", "next_seq")

    def __init__(self, max_entries: int) -> None:
        self.ids: dict[str, int] = {}  # event id → chunk seq
        self.chunks: OrderedDict[int, tuple[int, list[str]]] = OrderedDict()  # seq → (max ts, ids)
        self._pending: list[str] = []
        self._pending_max_ts = 0
        self.next_seq = 0
        self.max_entries = max_entries

    def seen(self, event_id: str) -> bool:
        return event_id in self.ids

    def add(self, event_id: str, ts_us: int) -> None:
        self.ids[event_id] = self.next_seq
        self._pending.append(event_id)
        if ts_us > self._pending_max_ts:
            self._pending_max_ts = ts_us

    def seal(self) -> tuple[int, int, list[str]] | None:
        """Close the current chunk; returns (seq, max_ts, ids) to write, or None."""
        if not self._pending:
            return None
        seq, ids, max_ts = self.next_seq, self._pending, self._pending_max_ts
        self.chunks[seq] = (max_ts, ids)
        self.next_seq += 1
        self._pending = []
        self._pending_max_ts = 0
        return seq, max_ts, ids

    def expire(self, older_than_us: int) -> list[int]:
        """Drop chunks wholly older than the horizon or beyond the cap; returns their seqs."""
        dropped: list[int] = []
        while self.chunks:
            seq, (max_ts, ids) = next(iter(self.chunks.items()))
            if max_ts >= older_than_us and len(self.ids) <= self.max_entries:
                break
            del self.chunks[seq]
            for eid in ids:
                if self.ids.get(eid) == seq:
                    del self.ids[eid]
            dropped.append(seq)
        return dropped

    def restore_chunk(self, seq: int, max_ts: int, ids: list[str]) -> None:
        self.chunks[seq] = (max_ts, ids)
        for eid in ids:
            self.ids[eid] = seq
        self.next_seq = max(self.next_seq, seq + 1)

    def finish_restore(self) -> None:
        self.chunks = OrderedDict(sorted(self.chunks.items()))


@dataclass
class Window:
    """One event-time window of one input topic-partition."""

    counters: Counters = field(default_factory=Counters)
    closed: bool = False
    amended: bool = False  # changed after closing: emit again (not persisted)

    def to_json(self) -> dict[str, Any]:
        return {"c": self.counters.to_json(), "closed": self.closed}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Window:
        return cls(Counters.from_json(d["c"]), bool(d["closed"]))


WindowKey = tuple[str, str, int]  # (topic, size name, start µs)


@dataclass
class PartitionState:
    """All state of partition number ``partition``."""

    partition: int
    dedup_max_entries: int = 2_000_000
    counters: Counters = field(default_factory=Counters)
    loans: dict[str, LoanState] = field(default_factory=dict)
    # next offset to process, per input topic (catalog name) and reference topic
    offsets: dict[str, int] = field(default_factory=dict)
    # largest occurred_at (µs) processed, per input topic
    watermarks: dict[str, int] = field(default_factory=dict)
    # event-time windows, open and recently closed (kept so late forwards can amend them)
    windows: dict[WindowKey, Window] = field(default_factory=dict)
    borrowers: dict[str, int] = field(default_factory=dict)  # uscc → active loans
    dedup: DedupWindow = field(init=False)
    dirty_loans: set[str] = field(default_factory=set)
    dirty_windows: set[WindowKey] = field(default_factory=set)
    expired_dedup: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dedup = DedupWindow(self.dedup_max_entries)
