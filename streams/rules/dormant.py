"""Dormant reactivation: a transaction after at least `days` days without any (an
enterprise's first transaction seen here is not one)."""

from __future__ import annotations

from bisect import bisect_left

from schemas.alerts import AlertRule, RuleSet
from streams.rules.base import DAY_US, HOUR_US, Enterprise, Hit, PerEventRule, Tx, hour_floor

__all__ = ["DormantReactivation"]


class DormantReactivation(PerEventRule):
    rule = AlertRule.dormant_reactivation

    def __init__(self, config: RuleSet) -> None:
        super().__init__(config)
        self.gap_us = config.dormant.days * DAY_US

    def decide(self, ent: Enterprise, upto: int) -> list[Hit]:
        # reads last_active; the engine moves it after every rule has decided
        hits = []
        last = ent.last_active
        for tx in self.pending(ent, upto):
            if last is not None and tx.ts - last >= self.gap_us:
                hits.append(Hit(self.rule, (tx,), last, tx.ts + 1))
            last = tx.ts
        return hits

    def prev_ts(self, ent: Enterprise, i: int) -> int | None:
        """The time of the transaction before ent.txs[i] (kept, or the last decided one)."""
        prev = ent.txs[i - 1].ts if i else None
        last = ent.last_active
        if last is not None and (prev is None or last > prev):
            return last
        return prev

    def candidate(self, ent: Enterprise, i: int) -> bool:
        """Whether ent.txs[i] may reactivate the enterprise: only an insertion before it can
        change that, and only to no."""
        prev = self.prev_ts(ent, i)
        return prev is not None and ent.txs[i].ts - prev >= self.gap_us

    # due only for a candidate: the others leave the enterprise alone until then
    def next_due(self, ent: Enterprise, upto: int) -> int | None:
        txs = ent.txs
        for i in range(bisect_left(txs, (hour_floor(upto),)), len(txs)):
            if self.candidate(ent, i):
                return (txs[i].ts // HOUR_US + 1) * HOUR_US
        return None

    def due_of_new(self, tx: Tx) -> int | None:
        return None  # the engine asks candidate() with the transaction in place
