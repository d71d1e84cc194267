"""The oracle's FX rule (docs/metrics.md, "FX rate in force"), written from the docs, not from
the stream's code: the rate in force, events that wait for a rate (parked), and counted
foreign-currency transactions restated when a rate read later changes their rate in force.

A mixin of :class:`adapters.simulator.oracle.Oracle`, kept apart because it is a rule of its
own; it uses the oracle's figures, watermarks, windows and counted transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from adapters.simulator.model import LOANS, TRANSACTIONS, FxFact, LoanFact, Record, TxFact
from schemas import figure_names as fn
from schemas import to_fen

__all__ = ["FxRules"]

_ONE = Decimal(1)
_BAND_ONLY = ("application_submitted", "approved", "rejected", "withdrawn")
# closed windows the worker still holds (and so can amend): less than a day past end + grace
_RETAIN_CLOSED = timedelta(days=1)
_SIZES = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class _Parked:
    record: Record
    fact: TxFact | LoanFact
    late: bool
    forwarded: bool
    waits_for_rate: bool  # False: waits only behind its loan's parked disbursement
    loan_id: str | None


@dataclass(slots=True)
class _CountedFx:
    uscc: str
    at: datetime
    currency: str
    amount: Decimal
    rate: Decimal
    customs_mode: str | None
    # the oracle's counted-transaction row: [at, inst, direction, windowed, band, sector, fen,
    # partition]; band and fen there follow score restatements
    row: list[Any]


class FxRules:
    # provided by the Oracle
    _add: Callable[[str, tuple[str, ...], int], None]
    _wm: dict[tuple[str, int], datetime]
    _windows: dict[tuple[str, int, str, datetime], Any]
    grace: timedelta
    restate_horizon: timedelta
    fx_max_age_days: int
    _fx: dict[tuple[str, date], tuple[Decimal, datetime]]
    _loans: dict[str, Any]

    def _fx_init(self) -> None:
        self._parked: dict[int, list[_Parked]] = {}  # home partition → arrival order
        self._counted_fx: dict[int, list[_CountedFx]] = {}

    # ---- the rate in force ---------------------------------------------------------------

    def _rate(self, currency: str, at: datetime) -> Decimal | None:
        """Published by ``at``, dated on or before ``at``'s date in Beijing (UTC+8), the
        latest such date and at most fx_max_age_days before it."""
        if currency == "CNY":
            return _ONE
        beijing = (at.astimezone(UTC) + timedelta(hours=8)).date()
        candidates = [
            (day, rate)
            for (cur, day), (rate, published) in self._fx.items()
            if cur == currency
            and published <= at
            and beijing - timedelta(days=self.fx_max_age_days) <= day <= beijing
        ]
        return max(candidates)[1] if candidates else None

    def _floor(self, home: int) -> datetime | None:
        wms = [w for t in (TRANSACTIONS, LOANS) if (w := self._wm.get((t, home))) is not None]
        return max(wms) - self.restate_horizon if wms else None

    def _fx_read(self, fact: FxFact) -> None:
        """A rate: a correction keeps the first publication time; then every partition
        restates its counted transactions and applies what waited."""
        key = (fact.currency, fact.rate_date)
        old = self._fx.get(key)
        published = fact.published_at if old is None else min(old[1], fact.published_at)
        self._fx[key] = (fact.rate_to_cny, published)
        homes = {loan.home for loan in self._loans.values()}
        for home in sorted(set(self._counted_fx) | set(self._parked) | homes):
            self._fx_restate(home, key)
            self._fx_restate_loans(home, key)
            self._fx_drain(home, rates_changed=True)

    # ---- parked events -------------------------------------------------------------------

    def _fx_parked_id(self, home: int, event_id: str) -> bool:
        return any(p.fact.event_id == event_id for p in self._parked.get(home, ()))

    def _fx_must_park(self, home: int, fact: TxFact | LoanFact) -> tuple[bool, bool]:
        """(park it, it waits for a rate itself)."""
        if isinstance(fact, TxFact):
            missing = fact.currency != "CNY" and self._rate(fact.currency, fact.occurred_at) is None
            return missing, missing
        if fact.event_type in _BAND_ONLY:
            return False, False
        behind = any(p.loan_id == fact.loan_id for p in self._parked.get(home, ()))
        if fact.event_type == "disbursed":
            assert fact.currency is not None
            if self._rate(fact.currency, fact.occurred_at) is None:
                return True, True
        return behind, False

    def _fx_park(
        self, record: Record, fact: TxFact | LoanFact, late: bool, forwarded: bool, waits: bool
    ) -> None:
        loan_id = fact.loan_id if isinstance(fact, LoanFact) else None
        home = record.home_partition
        self._parked.setdefault(home, []).append(
            _Parked(record, fact, late, forwarded, waits, loan_id)
        )

    def _fx_drain(self, home: int, *, rates_changed: bool = False) -> None:
        """Apply, in arrival order, parked events that now have a rate (and the events of
        their loans behind them); dead-letter those the restatement floor has passed."""
        parked = self._parked.get(home)
        if not parked:
            return
        floor = self._floor(home)
        if not rates_changed and (
            floor is None or all(p.fact.occurred_at >= floor for p in parked)
        ):
            return  # nothing can have changed (a rate in force never goes away)
        blocked: set[str] = set()
        keep: list[_Parked] = []
        for p in parked:
            if p.loan_id is not None and p.loan_id in blocked:
                keep.append(p)
                continue
            currency = p.fact.currency
            assert currency is not None
            waiting = p.waits_for_rate and self._rate(currency, p.fact.occurred_at) is None
            if waiting and (floor is None or p.fact.occurred_at >= floor):
                keep.append(p)
                if p.loan_id is not None:
                    blocked.add(p.loan_id)
                continue
            if waiting:
                self._add(fn.EVENTS_DEADLETTERED_TOTAL, (p.record.topic, "fx_rate_missing"), 1)
                continue
            self._fx_apply_parked(p)
        self._parked[home] = keep

    def _fx_apply_parked(self, p: _Parked) -> None:
        topic, home = p.record.topic, p.record.home_partition
        wm = self._wm.get((topic, home))
        held = wm is None or wm < p.fact.occurred_at + self.grace + _RETAIN_CLOSED
        self._apply(p.record, p.fact, late=p.late, windowed=not p.late and held)

    def _apply(
        self, record: Record, fact: TxFact | LoanFact, *, late: bool, windowed: bool
    ) -> bool:
        raise NotImplementedError  # the Oracle's

    def _fx_pending(self) -> dict[tuple[str, ...], int]:
        out: dict[tuple[str, ...], int] = {}
        for parked in self._parked.values():
            for p in parked:
                out[(p.record.topic,)] = out.get((p.record.topic,), 0) + 1
        return out

    # ---- restatement of counted transactions ---------------------------------------------

    def _fx_keep(
        self, fact: TxFact, rate: Decimal, row: list[Any], home: int, floor: datetime | None
    ) -> None:
        if fact.currency == "CNY" or (floor is not None and fact.occurred_at < floor):
            return
        self._counted_fx.setdefault(home, []).append(
            _CountedFx(
                fact.uscc, fact.occurred_at, fact.currency, fact.amount, rate,
                fact.customs_mode, row,
            )
        )  # fmt: skip

    def _concerns(self, currency: str, at: datetime, key: tuple[str, date]) -> bool:
        """Can the rate of ``key`` be in force at ``at`` (same currency, dated within the
        staleness bound before the Beijing date)? Only a shortcut: the rule is _rate."""
        beijing = (at.astimezone(UTC) + timedelta(hours=8)).date()
        return key[0] == currency and 0 <= (beijing - key[1]).days <= self.fx_max_age_days

    def _fx_restate(self, home: int, key: tuple[str, date]) -> None:
        floor = self._floor(home)
        wm = self._wm.get((TRANSACTIONS, home))
        for c in self._counted_fx.get(home, ()):
            if floor is not None and c.at < floor:
                continue
            if not self._concerns(c.currency, c.at, key):
                continue
            rate = self._rate(c.currency, c.at)
            assert rate is not None  # a rate in force never goes away
            delta = to_fen(c.amount, rate) - to_fen(c.amount, c.rate)
            c.rate = rate
            if delta == 0:
                continue
            _, inst, direction, windowed, band, _sector, _fen, _ = c.row
            c.row[6] += delta
            region = self._region(c.uscc)
            self._add(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, (inst, band, region, direction), delta)
            if c.customs_mode is not None:
                self._add(fn.CROSSBORDER_ECOMMERCE_AMOUNT_YUAN_TOTAL, (c.customs_mode, inst), delta)
            if windowed:
                for size, width in _SIZES.items():
                    start = _EPOCH + width * ((c.at - _EPOCH) // width)
                    win = self._windows.get((TRANSACTIONS, home, size, start))
                    if win is None:
                        continue
                    if wm is not None and wm >= start + width + self.grace + _RETAIN_CLOSED:
                        continue
                    win.tx_amount_fen[(inst, band)] += delta
            self._add(fn.RESTATED_EVENTS_TOTAL, (TRANSACTIONS,), 1)

    def _fx_restate_loans(self, home: int, key: tuple[str, date]) -> None:
        """Re-book active foreign-currency loans of ``home`` disbursed at or after the floor
        at the rate now in force at their disbursement (ended loans keep theirs)."""
        floor = self._floor(home)
        wm = self._wm.get((LOANS, home))
        for loan_id in sorted(self._loans):
            loan = self._loans[loan_id]
            if loan.home != home or loan.currency == "CNY" or loan.disbursed_at is None:
                continue
            if floor is not None and loan.disbursed_at < floor:
                continue
            if not self._concerns(loan.currency, loan.disbursed_at, key):
                continue
            rate = self._rate(loan.currency, loan.disbursed_at)
            assert rate is not None
            p0, o0 = loan.principal_fen, loan.outstanding_fen
            loan.rate = rate
            loan.principal_fen = p1 = to_fen(loan.principal, rate)
            o1 = loan.outstanding_fen
            dp, dr = p1 - p0, (p1 - o1) - (p0 - o0)
            if dp == 0 and dr == 0:
                continue
            inst, band, region = loan.institution_type, loan.band, self._region(loan.uscc)
            self._add(fn.LOAN_DISBURSED_PRINCIPAL_YUAN_TOTAL, (inst, band, region), dp)
            self._add(
                fn.LOAN_DISBURSED_RATE_WEIGHTED_YUAN_TOTAL, (inst, band), dp * loan.rate_units
            )
            self._add(fn.LOAN_REPAID_PRINCIPAL_YUAN_TOTAL, (inst, band), dr)
            if loan.inclusive_counted:
                self._add(fn.LOAN_INCLUSIVE_SME_DISBURSED_PRINCIPAL_YUAN_TOTAL, (inst,), dp)
            if loan.windowed:
                for size, width in _SIZES.items():
                    start = _EPOCH + width * ((loan.disbursed_at - _EPOCH) // width)
                    win = self._windows.get((LOANS, home, size, start))
                    if win is None:
                        continue
                    if wm is not None and wm >= start + width + self.grace + _RETAIN_CLOSED:
                        continue
                    win.disbursed_fen[(inst,)] += dp
            self._add(fn.RESTATED_EVENTS_TOTAL, (LOANS,), 1)

    @staticmethod
    def _region(uscc: str) -> str:
        raise NotImplementedError  # the Oracle's
