"""Rapid pass-through: credits followed within `window_hours` by debits of a similar total
(within `tolerance_pct` of the credits, which reach `min_credit_fen`)."""

from __future__ import annotations

from schemas.alerts import AlertRule, RuleSet
from streams.rules.base import CREDIT, HOUR_US, AnchoredRule, Hit, Tx

__all__ = ["PassThrough"]


class PassThrough(AnchoredRule):
    rule = AlertRule.pass_through

    def __init__(self, config: RuleSet) -> None:
        super().__init__(config)
        self.window_us = config.pass_through.window_hours * HOUR_US

    def is_anchor(self, tx: Tx) -> bool:
        return bool(tx.flags & CREDIT)

    def judge(self, window: list[Tx], start: int) -> Hit | None:
        c = self.config.pass_through
        credits = sum(tx.fen for tx in window if tx.flags & CREDIT)
        debits = sum(tx.fen for tx in window if not tx.flags & CREDIT)
        if credits < c.min_credit_fen or abs(debits - credits) * 100 > c.tolerance_pct * credits:
            return None
        return Hit(self.rule, tuple(window), start, start + self.window_us)
