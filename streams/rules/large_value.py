"""Large-value transfers (PBOC Order [2016] No. 3 art. 5(2), non-natural persons): one hit
per transfer at or above the threshold, and one per enterprise-day whose transfers in one
direction add up to it when no single transfer of that day reached it by itself."""

from __future__ import annotations

from schemas.alerts import AlertRule
from streams.rules.base import (
    CASH,
    CREDIT,
    DAY_US,
    LARGE,
    DailyRule,
    Enterprise,
    Hit,
    PerEventRule,
    Tx,
)

__all__ = ["LargeValueDaily", "LargeValueSingle"]


class LargeValueSingle(PerEventRule):
    rule = AlertRule.large_value

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
