"""What every rule sees: an enterprise's recent transactions in event time, and the
abstract base the rules implement.

Rules decide only on event time that is *final*: everything before `upto` = the partition's
`dfip.transactions` watermark minus the grace period. A later event older than that is late
(it goes to `dfip.late` and no rule sees it), so a decision never depends on the order in
which the events within the grace period arrived.
"""

from __future__ import annotations

from abc import abstractmethod
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from schemas.alerts import AlertRule, RuleSet

__all__ = [
    "CASH",
    "CASH_LARGE",
    "CREDIT",
    "DAY_US",
    "HOUR_US",
    "LARGE",
    "NEVER",
    "ROUND",
    "AnchoredRule",
    "DailyRule",
    "Enterprise",
    "Hit",
    "Rule",
    "Tx",
    "day_end",
    "day_start",
    "hour_floor",
]

NEVER = 1 << 62
HOUR_US = 3_600 * 1_000_000
DAY_US = 24 * HOUR_US
_SHANGHAI_US = 8 * HOUR_US  # Asia/Shanghai has had no DST since 1991: a fixed +08:00

# Tx.flags
CREDIT = 1
CASH = 2
ROUND = 4
LARGE = 8  # at or above the large-value threshold by itself
CASH_LARGE = 16  # at or above the cash threshold by itself


class Tx(NamedTuple):
    """One counted, on-time transaction as the rules keep it (sorted by (ts, event_id))."""

    ts: int  # occurred_at, µs since the epoch
    event_id: str
    fen: int  # CNY fen at the as-of rate
    flags: int
    institution_type: str
    band: str


def day_start(ts: int) -> int:
    """Start (µs, UTC epoch) of the Beijing day containing `ts`."""
    return (ts + _SHANGHAI_US) // DAY_US * DAY_US - _SHANGHAI_US


def day_end(ts: int) -> int:
    return day_start(ts) + DAY_US


@dataclass(slots=True)
class Enterprise:
    """Rule state of one enterprise (changelogged as `al:<uscc>`)."""

    txs: list[Tx] = field(default_factory=list)
    decided: int = 0  # every window closing at or before this has been decided
    cursors: dict[str, int] = field(default_factory=dict)  # anchored rules: next anchor ≥
    hours: dict[int, int] = field(default_factory=dict)  # hour index → transactions
    last_active: int | None = None  # newest decided transaction (dormancy)
    # per rule of the engine: when it next has something to decide (NEVER: nothing); derived
    dues: list[int] = field(default_factory=list)
    # transactions kept since the last commit (the changelog's delta; not itself changelogged)
    added: list[Tx] = field(default_factory=list)

    def first_from(self, start: int) -> Tx | None:
        """The first transaction at or after `start` (no copy of the list)."""
        txs = self.txs
        i = bisect_left(txs, (start,))
        return txs[i] if i < len(txs) else None

    def between(self, start: int, end: int) -> list[Tx]:
        """Transactions with start ≤ ts < end."""
        txs = self.txs
        lo = bisect_left(txs, (start,))
        hi = bisect_left(txs, (end,), lo)
        return txs[lo:hi]


@dataclass(frozen=True, slots=True)
class Hit:
    rule: AlertRule
    txs: tuple[Tx, ...]
    window_start: int
    window_end: int  # exclusive


class Rule:
    """One rule over one enterprise's transactions.

    Not an ``abc.ABC``: compiled (mypyc), its subclasses would share one ABCMeta cache and
    ``isinstance`` from interpreted code would answer wrongly; mypy still checks the abstract
    methods."""

    rule: ClassVar[AlertRule]

    def __init__(self, config: RuleSet) -> None:
        self.config = config

    @property
    def lookback_us(self) -> int:
        """How far before `upto` the rule may still need transactions."""
        return DAY_US

    @abstractmethod
    def decide(self, ent: Enterprise, upto: int) -> list[Hit]:
        """Hits of every window closing in (ent.decided, upto]; moves cursors it owns."""

    @abstractmethod
    def next_due(self, ent: Enterprise, upto: int) -> int | None:
        """The smallest `upto` (> the given one) at which the rule has something to decide."""

    @abstractmethod
    def due_of_new(self, tx: Tx) -> int | None:
        """When a newly kept transaction gives the rule something to decide (None: never)."""

    def decide_due(self, ent: Enterprise, upto: int) -> tuple[list[Hit], int]:
        """`decide`, then `next_due` (NEVER for None): what the engine calls; a rule may do
        both in one pass."""
        hits = self.decide(ent, upto)
        return hits, self.next_due(ent, upto) or NEVER


def hour_floor(ts: int) -> int:
    return ts // HOUR_US * HOUR_US


class PerEventRule(Rule):
    """Decides each transaction once its hour is final (deciding by the hour, not the
    instant, halves how often an enterprise is looked at; the hour is the same whatever
    the batches)."""

    @staticmethod
    def pending(ent: Enterprise, upto: int) -> list[Tx]:
        """The transactions this call decides: those whose hour closed in (decided, upto]."""
        return ent.between(hour_floor(ent.decided), hour_floor(upto))

    def next_due(self, ent: Enterprise, upto: int) -> int | None:
        first = ent.first_from(hour_floor(upto))
        return (first.ts // HOUR_US + 1) * HOUR_US if first is not None else None

    def due_of_new(self, tx: Tx) -> int | None:
        return (tx.ts // HOUR_US + 1) * HOUR_US


class DailyRule(Rule):
    """Decides each Beijing day (with transactions) once the day is over."""

    @abstractmethod
    def decide_day(self, day: list[Tx], start: int, hits: list[Hit]) -> None:
        """Append the hits of the Beijing day starting at `start` (its transactions `day`,
        in order) to `hits` (a rule may have more than one a day)."""

    def decide(self, ent: Enterprise, upto: int) -> list[Hit]:
        hits: list[Hit] = []
        start = day_start(ent.decided) if ent.decided > 0 else 0
        first = ent.first_from(start)
        if first is None or day_end(first.ts) > upto:
            return hits  # no day with transactions closed (the common case)
        txs = ent.between(start, upto)
        days: dict[int, list[Tx]] = {}
        for tx in txs:
            d = day_start(tx.ts)
            if ent.decided < d + DAY_US <= upto:
                days.setdefault(d, []).append(tx)
        for d in sorted(days):
            self.decide_day(days[d], d, hits)
        return hits

    def next_due(self, ent: Enterprise, upto: int) -> int | None:
        first = ent.first_from(day_start(upto))
        return day_end(first.ts) if first is not None else None

    def due_of_new(self, tx: Tx) -> int | None:
        return day_end(tx.ts)


class AnchoredRule(Rule):
    """Windows [t0, t0 + W) anchored at the earliest candidate not yet used: a window that
    fires uses up its time (the next anchor is at or after its end); one that does not
    drops only its anchor instant."""

    window_us: int

    @property
    def lookback_us(self) -> int:
        return max(self.window_us, DAY_US)

    @abstractmethod
    def is_anchor(self, tx: Tx) -> bool: ...

    @abstractmethod
    def judge(self, window: list[Tx], start: int) -> Hit | None: ...

    def _anchor(self, ent: Enterprise) -> Tx | None:
        cursor = ent.cursors.get(self.rule._value_, 0)
        txs = ent.txs
        is_anchor = self.is_anchor
        for i in range(bisect_left(txs, (cursor,)), len(txs)):
            if is_anchor(txs[i]):
                return txs[i]
        return None

    def decide(self, ent: Enterprise, upto: int) -> list[Hit]:
        hits = []
        key = self.rule._value_
        while (anchor := self._anchor(ent)) is not None and anchor.ts + self.window_us <= upto:
            end = anchor.ts + self.window_us
            hit = self.judge(ent.between(anchor.ts, end), anchor.ts)
            if hit is not None:
                hits.append(hit)
                ent.cursors[key] = end
            else:
                ent.cursors[key] = anchor.ts + 1
        # skip what cannot anchor any more: anything arriving from now on is at or after
        # `upto` (else it is late), so the next anchor is the one found or at `upto`
        cursor = ent.cursors.get(key, 0)
        floor = min(anchor.ts, upto) if anchor is not None else upto
        if floor > cursor:
            ent.cursors[key] = floor
        return hits

    def next_due(self, ent: Enterprise, upto: int) -> int | None:
        anchor = self._anchor(ent)
        return anchor.ts + self.window_us if anchor is not None else None

    def due_of_new(self, tx: Tx) -> int | None:
        return tx.ts + self.window_us if self.is_anchor(tx) else None
