"""Large-value transfers (PBOC Order [2016] No. 3 art. 5(2), non-natural persons): one hit
per transfer at or above the threshold, and one per enterprise, Beijing day and direction
whose transfers add up to it when no single transfer of that direction that day reached it by
itself."""

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
    """Counted per direction on its own (the Order's 单边累计): credits and debits of the day
    each have a hit when their transfers add up to the threshold and none of them reaches it
    by itself (that one is reported alone); a day can have two."""

    rule = AlertRule.large_value_daily

    def decide_day(self, day: list[Tx], start: int, hits: list[Hit]) -> None:
        # one pass over the day: each direction's total and whether it has a large transfer
        credits = debits = 0
        credit_large = debit_large = False
        for _, _, fen, flags, _, _ in day:  # unpacked: compiled, faster than attributes
            if flags & CASH:
                continue
            if flags & CREDIT:
                credits += fen
                if flags & LARGE:
                    credit_large = True
            else:
                debits += fen
                if flags & LARGE:
                    debit_large = True
        limit = self.config.large_value.cny_fen
        # credits first: the hits of one day come in a fixed order
        if credits >= limit and not credit_large:
            hits.append(self._side(day, CREDIT, start))
        if debits >= limit and not debit_large:
            hits.append(self._side(day, 0, start))

    def _side(self, day: list[Tx], direction: int, start: int) -> Hit:
        """The hit of one direction (CREDIT or 0): its transfers of the day, in order."""
        side = tuple(tx for tx in day if (tx[3] & (CASH | CREDIT)) == direction)  # Tx.flags
        return Hit(self.rule, side, start, start + DAY_US)
