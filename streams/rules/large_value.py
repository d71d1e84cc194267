"""Large-value transfers (PBOC Order [2016] No. 3 art. 5(2), non-natural persons): one hit
per transfer at or above the threshold, and one per enterprise-day whose transfers in one
direction add up to it when no single transfer of that day reached it by itself."""

from __future__ import annotations

from bisect import bisect_left

from schemas.alerts import AlertRule
from streams.rules.base import (
    CASH,
    CREDIT,
    DAY_US,
    HOUR_US,
    LARGE,
    DailyRule,
    Enterprise,
    Hit,
    PerEventRule,
    Tx,
    hour_floor,
)

__all__ = ["LargeValueDaily", "LargeValueSingle"]


class LargeValueSingle(PerEventRule):
    rule = AlertRule.large_value

    @staticmethod
    def fires(tx: Tx) -> bool:
        return bool(tx.flags & LARGE) and not tx.flags & CASH

    # due only for a large transfer: the others leave the enterprise alone until then
    def next_due(self, ent: Enterprise, upto: int) -> int | None:
        txs = ent.txs
        for i in range(bisect_left(txs, (hour_floor(upto),)), len(txs)):
            if self.fires(txs[i]):
                return (txs[i].ts // HOUR_US + 1) * HOUR_US
        return None

    def due_of_new(self, tx: Tx) -> int | None:
        return (tx.ts // HOUR_US + 1) * HOUR_US if self.fires(tx) else None

    def decide(self, ent: Enterprise, upto: int) -> list[Hit]:
        return [
            Hit(self.rule, (tx,), tx.ts, tx.ts + 1)
            for tx in self.pending(ent, upto)
            if tx.flags & LARGE and not tx.flags & CASH
        ]


class LargeValueDaily(DailyRule):
    rule = AlertRule.large_value_daily

    def decide_day(self, day: list[Tx], start: int) -> Hit | None:
        transfers = [tx for tx in day if not tx.flags & CASH]
        if any(tx.flags & LARGE for tx in transfers):
            return None  # reported transfer by transfer
        limit = self.config.large_value.cny_fen
        credits = sum(tx.fen for tx in transfers if tx.flags & CREDIT)
        debits = sum(tx.fen for tx in transfers if not tx.flags & CREDIT)
        if credits < limit and debits < limit:
            return None
        return Hit(self.rule, tuple(transfers), start, start + DAY_US)
