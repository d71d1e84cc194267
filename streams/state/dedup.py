"""Duplicate memory of one input topic-partition, by ARRIVAL time (Kafka record timestamps).

Banks re-send whole statements (a camt.053 covers a month) any time later, so how old an
entry's *event* time is says nothing about whether it may come again. What bounds the memory
is how long ago the id *arrived*: each topic-partition keeps an arrival clock, the largest
Kafka record timestamp read from it (deterministic on replay, unlike the wall clock), and an
id remembered while that clock is on UTC day ``d`` is forgotten once the clock reaches day
``d + retention_days + 1``. Nothing else moves the clock: another topic (or partition) being
days ahead never prunes this one.

Ids are kept as 64-bit XXH3 hashes of their UTF-8 bytes (a fixed, platform-independent
function: persisted hashes stay valid across versions), in one Python set for the lookup plus
8 bytes per id in a per-day array for expiry and the changelog; memory per million ids is
measured in bench/RESULTS.md (``python -m bench.dedup_memory``). Two different ids share a
hash with probability about n² / 2⁶⁵ (n ids remembered on the partition): 4 x 10⁻⁵ at 40
million.

Changelog: each commit writes the ids added since the last one as ``dd:<topic>:<day>:<seq>``
(value: little-endian unsigned 64-bit hashes), and tombstones every record of an expired day.
"""

from __future__ import annotations

import sys
from array import array
from typing import Final

from xxhash import xxh3_64_intdigest

__all__ = ["DAY_MS", "ID_HASH", "DedupMemory", "id_hash", "pack", "unpack"]

DAY_MS = 86_400_000


ID_HASH: Final = xxh3_64_intdigest
"""``id_hash(key)`` is ``ID_HASH(key.encode())`` (for a hot loop that inlines it)."""


def id_hash(key: str) -> int:
    """The remembered form of an event id (or a forwarded copy's origin key)."""
    return ID_HASH(key.encode())


def pack(hashes: list[int]) -> bytes:
    arr = array("Q", hashes)
    if sys.byteorder != "little":  # pragma: no cover - the changelog is little-endian
        arr.byteswap()
    return arr.tobytes()


def unpack(raw: bytes) -> array[int]:
    arr = array("Q")
    arr.frombytes(raw)
    if sys.byteorder != "little":  # pragma: no cover
        arr.byteswap()
    return arr


class DedupMemory:
    """Hashes of ids seen on one topic-partition, in buckets by arrival day."""

    __slots__ = ("_pending", "_restoring", "clock_ms", "days", "ids", "next_seq", "seqs")

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.days: dict[int, array[int]] = {}  # arrival day → hashes remembered that day
        self.seqs: dict[int, list[int]] = {}  # arrival day → changelog records holding it
        self._pending: dict[int, list[int]] = {}  # day → hashes not yet in the changelog
        self.clock_ms = -1  # largest record timestamp read (the arrival clock); -1: none yet
        self.next_seq = 0
        # (day, seq) → hashes while a restore reads the changelog (a tombstone may follow)
        self._restoring: dict[tuple[int, int], array[int]] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def observe(self, timestamp_ms: int | None) -> bool:
        """Move the arrival clock to a record's Kafka timestamp (never backwards); True when
        it moved to a later day (the caller then expires, before the record is looked up)."""
        if timestamp_ms is None or timestamp_ms <= self.clock_ms:
            return False
        before = self.clock_ms
        self.clock_ms = timestamp_ms
        return before < 0 or timestamp_ms // DAY_MS != before // DAY_MS

    @property
    def today(self) -> int:
        return max(self.clock_ms, 0) // DAY_MS

    def seen(self, h: int) -> bool:
        return h in self.ids

    def add(self, h: int, day: int | None = None) -> None:
        ids = self.ids
        if h in ids:
            return
        if day is None:  # self.today, inlined: once per event
            clock = self.clock_ms
            day = clock // DAY_MS if clock > 0 else 0
        ids.add(h)
        bucket = self.days.get(day)
        if bucket is None:
            bucket = self.days[day] = array("Q")
        bucket.append(h)
        pending = self._pending.get(day)
        if pending is None:
            self._pending[day] = [h]
        else:
            pending.append(h)

    def seal(self) -> list[tuple[int, int, list[int]]]:
        """(day, seq, hashes) for every day with ids added since the last seal."""
        out = []
        for day, hashes in sorted(self._pending.items()):
            seq = self.next_seq
            self.next_seq += 1
            self.seqs.setdefault(day, []).append(seq)
            out.append((day, seq, hashes))
        self._pending = {}
        return out

    def expire(self, retention_days: int, max_entries: int) -> list[tuple[int, int]]:
        """Forget the days that fell out of the retention (and, beyond ``max_entries``, the
        oldest days); returns the (day, seq) records to tombstone."""
        dropped: list[tuple[int, int]] = []
        oldest_kept = self.today - retention_days
        for day in sorted(self.days):
            if day >= oldest_kept and (len(self.ids) <= max_entries or day >= self.today):
                break
            for h in self.days.pop(day):
                self.ids.discard(h)
            self._pending.pop(day, None)
            dropped.extend((day, seq) for seq in self.seqs.pop(day, ()))
        return dropped

    def restore(self, day: int, seq: int, raw: bytes | None) -> None:
        """Apply one changelog record (``raw`` None: a tombstone); later records win."""
        if self._restoring is None:
            self._restoring = {}
        if raw is None:
            self._restoring.pop((day, seq), None)
        else:
            self._restoring[(day, seq)] = unpack(raw)
        self.next_seq = max(self.next_seq, seq + 1)

    def finish_restore(self) -> None:
        records, self._restoring = self._restoring or {}, None
        for (day, seq), hashes in sorted(records.items()):
            self.days.setdefault(day, array("Q")).extend(hashes)
            self.seqs.setdefault(day, []).append(seq)
            self.ids.update(hashes)
