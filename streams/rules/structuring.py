"""Structuring: at least `min_count` transactions within `window_hours`, each in
[band_low_pct, band_high_pct) of a threshold, whose sum reaches the threshold."""

from __future__ import annotations

from schemas.alerts import AlertRule, RuleSet
from streams.rules.base import HOUR_US, AnchoredRule, Hit, Tx

__all__ = ["Structuring"]


class Structuring(AnchoredRule):
    rule = AlertRule.structuring

    def __init__(self, config: RuleSet) -> None:
        super().__init__(config)
        c = config.structuring
        self.window_us = c.window_hours * HOUR_US
        # fen * 100 compared with threshold * pct: integer arithmetic, no rounding
        self._low = c.threshold_fen * c.band_low_pct
        self._high = c.threshold_fen * c.band_high_pct

    def is_anchor(self, tx: Tx) -> bool:
        return self._low <= tx.fen * 100 < self._high

    def judge(self, window: list[Tx], start: int) -> Hit | None:
        c = self.config.structuring
        near = tuple(tx for tx in window if self.is_anchor(tx))
        if len(near) < c.min_count or sum(tx.fen for tx in near) < c.threshold_fen:
            return None
        return Hit(self.rule, near, start, start + self.window_us)
