"""Rapid pass-through: credits followed within `window_hours` by debits of a similar total
(within `tolerance_pct` of the credits, which reach `min_credit_fen`)."""

from __future__ import annotations

from bisect import bisect_left

from schemas.alerts import AlertRule, RuleSet
from streams.rules.base import CREDIT, HOUR_US, NEVER, AnchoredRule, Enterprise, Hit, Tx

__all__ = ["PassThrough"]


class PassThrough(AnchoredRule):
    rule = AlertRule.pass_through

    def __init__(self, config: RuleSet) -> None:
        super().__init__(config)
        c = config.pass_through
        self.window_us = c.window_hours * HOUR_US
        # read once per decision: plain attributes, not the model's and the enum's
        self._least, self._tolerance, self._key = c.min_credit_fen, c.tolerance_pct, self.rule.value

    def is_anchor(self, tx: Tx) -> bool:
        return bool(tx.flags & CREDIT)

    def judge(self, window: list[Tx], start: int) -> Hit | None:
        c = self.config.pass_through
        credits = sum(tx.fen for tx in window if tx.flags & CREDIT)
        debits = sum(tx.fen for tx in window if not tx.flags & CREDIT)
        if credits < c.min_credit_fen or abs(debits - credits) * 100 > c.tolerance_pct * credits:
            return None
        return Hit(self.rule, tuple(window), start, start + self.window_us)

    def decide_due(self, ent: Enterprise, upto: int) -> tuple[list[Hit], int]:
        """`decide` and `next_due` in one pass: the windows of successive anchors slide over
        the transactions with running sums (each transaction is added and dropped once)
        instead of being summed anchor by anchor. The same hits, cursor and due time as
        AnchoredRule's (tests/unit/rules/test_fast_paths.py)."""
        least, tolerance, width, key = self._least, self._tolerance, self.window_us, self._key
        txs = ent.txs
        n = len(txs)
        cursor = start = ent.cursors.get(key, 0)
        hits: list[Hit] = []
        p = lo = hi = bisect_left(txs, (cursor,))  # next anchor ≥ p; window txs[lo:hi]
        credits = debits = 0
        anchor: int | None = None  # the first anchor whose window is not final
        while True:
            while p < n and not txs[p][3] & CREDIT:  # Tx.flags
                p += 1
            if p == n:
                anchor = None
                break
            anchor = anchor_ts = txs[p][0]
            end = anchor_ts + width
            if end > upto:
                break
            # the window [anchor, end): from the first transaction at the anchor's time
            while lo < n and txs[lo][0] < anchor_ts:
                if lo < hi:
                    tx = txs[lo]
                    if tx[3] & CREDIT:
                        credits -= tx[2]
                    else:
                        debits -= tx[2]
                lo += 1
            if hi < lo:
                hi = lo
            # to the last before its end: found by bisection, summed over a slice
            end_i = bisect_left(txs, (end,), hi)
            for _, _, fen, flags, _, _ in txs[hi:end_i]:
                if flags & CREDIT:
                    credits += fen
                else:
                    debits += fen
            hi = end_i
            if credits >= least and abs(debits - credits) * 100 <= tolerance * credits:
                hits.append(Hit(self.rule, tuple(txs[lo:hi]), anchor_ts, end))
                cursor = end  # the window's time is used up: start afresh after it
                p = lo = hi
                credits = debits = 0
            else:
                cursor = anchor_ts + 1  # only the anchor instant is dropped
                p += 1
                while p < n and txs[p][0] < cursor:
                    p += 1
        # as AnchoredRule.decide: what cannot anchor any more is skipped
        floor = min(anchor, upto) if anchor is not None else upto
        if floor > cursor or cursor != start:
            ent.cursors[key] = max(cursor, floor)
        return hits, anchor + width if anchor is not None else NEVER
