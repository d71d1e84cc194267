"""Per-partition FX state (streams/aggregate/fx_book.py uses it): counted foreign-currency
transactions kept for restatement and events parked until a rate in force is read.

Kept free of other streams imports: streams/state/partition.py holds a :class:`FxBook`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from streams.reference.fx import SHANGHAI_OFFSET

__all__ = ["MAX_PARKED", "Counted", "FxBook", "Parked", "local_day"]

# parked events per partition (a missing currency feed must not exhaust memory): beyond it a
# transaction or disbursement without a rate is dead-lettered at once (loan events behind a
# parked disbursement are still parked, to keep the loan's order)
MAX_PARKED = 10_000
_US_PER_DAY = 86_400 * 1_000_000


def local_day(occurred_us: int) -> int:
    """The Asia/Shanghai calendar day (proleptic ordinal) of an instant in µs."""
    shifted = occurred_us + int(SHANGHAI_OFFSET.total_seconds()) * 1_000_000
    return date(1970, 1, 1).toordinal() + shifted // _US_PER_DAY


@dataclass(slots=True)
class Counted:
    """A counted foreign-currency transaction, kept for FX restatement."""

    uscc: str
    occurred_us: int
    currency: str
    amount: str  # exact, in the currency, as sent
    rate: str  # the rate in force it was counted at
    institution_type: str
    direction: str
    windowed: bool
    customs_mode: str | None
    # band and sector it was counted under: used only if restate.py no longer keeps it
    band: str
    sector: str


@dataclass(slots=True)
class Parked:
    """An event waiting for a rate (or for its loan's parked disbursement)."""

    topic: str
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int | None
    late: bool  # judged when it arrived
    forwarded: bool
    event_hash: int
    occurred_us: int
    currency: str | None  # None: not waiting for a rate itself, only for its loan
    loan_id: str | None


@dataclass
class FxBook:
    counted: dict[int, Counted] = field(default_factory=dict)
    parked: dict[int, Parked] = field(default_factory=dict)  # seq → event, arrival order
    # (currency, local day ordinal) → seqs of counted transactions of that day
    by_day: dict[tuple[str, int], set[int]] = field(default_factory=dict)
    # (currency, local day ordinal of the disbursement) → ids of foreign-currency loans
    # (derived from the loans on restore; ended loans are dropped lazily)
    loans_by_day: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    # (topic, event hash) of parked events: duplicates are per topic-partition
    parked_hashes: set[tuple[str, int]] = field(default_factory=set)
    parked_loans: set[str] = field(default_factory=set)  # loans with a parked event
    next_seq: int = 0
    dirty: set[int] = field(default_factory=set)
    # FxTable.version reconciled with; -1: not yet (restored), reconciled as a whole
    fx_version: int = -1
    # False while a restore rebuilds the partition: reconciled once its scores are read
    ready: bool = True

    def _seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        self.dirty.add(seq)
        return seq

    def add_counted(self, entry: Counted) -> None:
        seq = self._seq()
        self.counted[seq] = entry
        self.by_day.setdefault((entry.currency, local_day(entry.occurred_us)), set()).add(seq)

    def drop_counted(self, seq: int) -> None:
        entry = self.counted.pop(seq)
        key = (entry.currency, local_day(entry.occurred_us))
        seqs = self.by_day.get(key)
        if seqs is not None:
            seqs.discard(seq)
            if not seqs:
                del self.by_day[key]
        self.dirty.add(seq)

    def park(self, entry: Parked) -> None:
        self.parked[self._seq()] = entry
        self.parked_hashes.add((entry.topic, entry.event_hash))
        if entry.loan_id is not None:
            self.parked_loans.add(entry.loan_id)

    def must_wait(self, loan_id: str | None) -> bool:
        """True if a loan event must wait behind its loan's parked disbursement."""
        return loan_id is not None and loan_id in self.parked_loans

    def full(self) -> bool:
        return len(self.parked) >= MAX_PARKED

    def _reindex_parked(self) -> None:
        self.parked_hashes = {(p.topic, p.event_hash) for p in self.parked.values()}
        self.parked_loans = {p.loan_id for p in self.parked.values() if p.loan_id is not None}
