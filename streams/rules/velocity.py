"""Velocity: an hour with at least `min_count` transactions and more than `factor` times the
enterprise's average hour over the `baseline_hours` before it."""

from __future__ import annotations

from schemas.alerts import AlertRule, RuleSet
from streams.rules.base import HOUR_US, Enterprise, Hit, Rule, Tx

__all__ = ["Velocity"]


class Velocity(Rule):
    rule = AlertRule.velocity

    def __init__(self, config: RuleSet) -> None:
        super().__init__(config)
        self.baseline = config.velocity.baseline_hours

    def decide(self, ent: Enterprise, upto: int) -> list[Hit]:
        c = self.config.velocity
        hits: list[Hit] = []
        first = ent.first_from(ent.decided // HOUR_US * HOUR_US)
        if first is None or (first.ts // HOUR_US + 1) * HOUR_US > upto:
            return hits  # no hour with transactions closed (the common case)
        for hour in sorted(ent.hours):
            start = hour * HOUR_US
            if not ent.decided < start + HOUR_US <= upto:
                continue
            count = ent.hours[hour]
            if count < c.min_count:
                continue
            base = sum(ent.hours.get(h, 0) for h in range(hour - self.baseline, hour))
            if count * self.baseline > c.factor * base:
                hits.append(
                    Hit(
                        self.rule,
                        tuple(ent.between(start, start + HOUR_US)),
                        start,
                        start + HOUR_US,
                    )
                )
        return hits

    def next_due(self, ent: Enterprise, upto: int) -> int | None:
        # due only for an hour with at least min_count transactions (the others cannot fire);
        # every hour still to decide has its transactions kept (upto - lookback < its start)
        low, least = upto // HOUR_US, self.config.velocity.min_count
        busy = [h for h, n in ent.hours.items() if h >= low and n >= least]
        return (min(busy) + 1) * HOUR_US if busy else None

    def due_of_new(self, tx: Tx) -> int | None:
        return None  # the engine schedules the hour once its count reaches min_count

    def keep_hours_from(self, upto: int) -> int:
        """Hour index below which no decision will need a count again."""
        return upto // HOUR_US - self.baseline
