"""Round amounts: at least `min_count` transactions on one Beijing day whose amount is a
whole multiple of `unit` major units of their currency."""

from __future__ import annotations

from schemas.alerts import AlertRule
from streams.rules.base import DAY_US, ROUND, DailyRule, Hit, Tx

__all__ = ["RoundAmounts"]


class RoundAmounts(DailyRule):
    rule = AlertRule.round_amounts

    def decide_day(self, day: list[Tx], start: int, hits: list[Hit]) -> None:
        rounds = tuple(tx for tx in day if tx.flags & ROUND)
        if len(rounds) >= self.config.round_amounts.min_count:
            hits.append(Hit(self.rule, rounds, start, start + DAY_US))
