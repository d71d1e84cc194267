"""Dormant reactivation: a transaction after at least `days` days without any (an
enterprise's first transaction seen here is not one)."""

from __future__ import annotations

from schemas.alerts import AlertRule, RuleSet
from streams.rules.base import DAY_US, Enterprise, Hit, PerEventRule

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
