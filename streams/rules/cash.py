"""Cash (PBOC Order [2016] No. 3 art. 5(1)): one hit per enterprise-day whose cash deposits
and withdrawals (schemas/txcodes.py) reach the cash threshold, by one or together."""

from __future__ import annotations

from schemas.alerts import AlertRule
from streams.rules.base import CASH, CASH_LARGE, DAY_US, DailyRule, Hit, Tx

__all__ = ["CashDaily"]


class CashDaily(DailyRule):
    rule = AlertRule.cash

    def decide_day(self, day: list[Tx], start: int, hits: list[Hit]) -> None:
        cash = [tx for tx in day if tx.flags & CASH]
        if not cash:
            return
        if sum(tx.fen for tx in cash) < self.config.cash.cny_fen and not any(
            tx.flags & CASH_LARGE for tx in cash
        ):
            return
        hits.append(Hit(self.rule, tuple(cash), start, start + DAY_US))
