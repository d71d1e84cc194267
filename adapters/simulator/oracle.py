"""The exact expected value of every figure, computed from the simulator's ground truth.

It replays the records in produce order, as Kafka delivers them per partition, applying the
semantics of `schemas.figures` written out again here on purpose: band thresholds, regions,
risk classes and DPD buckets are re-implemented rather than imported, so the oracle and the
stream share nothing but `schemas.money.to_fen` (THE conversion rule) and the figure names.

Output (JSON-ready, integer base units: fen; fen x RATE_SCALE for the rate-weighted principal):
``{"figures": {name: [{"labels": {...}, "value": int}]}, "windows": [...], "meta": {...}}``.
Series whose value is 0 are omitted (a missing series means 0), except the unlabelled
`dfip_borrowers_active`, which is always present.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from adapters.simulator.aml import RTx, expected_hits
from adapters.simulator.model import (
    LOANS,
    SCORES,
    TRANSACTIONS,
    FxFact,
    LoanFact,
    Record,
    ScoreFact,
    TxFact,
)
from adapters.simulator.oracle_fx import FxRules
from schemas import figure_names as fn
from schemas import to_fen
from schemas.alerts import RuleSet, load_ruleset
from schemas.figures import FIGURES, HEALTH_FIGURES, RATE_SCALE
from schemas.txcodes import is_cash

__all__ = ["WINDOW_SIZES", "Oracle"]

WINDOW_SIZES = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}
WINDOW_ZONE = "Asia/Shanghai"  # windows follow the Beijing calendar (docs/metrics.md)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# GB/T 2260 prefecture prefix (USCC characters 3-6) of Zhejiang's 11 cities.
_PREFECTURES = {
    "3301": "hangzhou", "3302": "ningbo", "3303": "wenzhou", "3304": "jiaxing",
    "3305": "huzhou", "3306": "shaoxing", "3307": "jinhua", "3308": "quzhou",
    "3309": "zhoushan", "3310": "taizhou", "3311": "lishui",
}  # fmt: skip
_INCLUSIVE_SME_LIMIT_FEN = 10_000_000 * 100  # CNY 10 million per borrower, inclusive
_RISK_ORDER = ("normal", "special_mention", "substandard", "doubtful", "loss")
_RISK_RANK = {r: i for i, r in enumerate(_RISK_ORDER)}

# The label order of every figure as this module writes it; checked against
# schemas.figures at import so a change there cannot silently scramble labels here.
_TX = ("institution_type", "digitalization_band", "region", "direction")
_LOAN = ("institution_type", "digitalization_band", "region")
_IB = ("institution_type", "digitalization_band")
_ALERT = ("rule", "region", "institution_type", "digitalization_band")
_LABELS: dict[str, tuple[str, ...]] = {
    fn.TRANSACTIONS_TOTAL: _TX,
    fn.TRANSACTION_AMOUNT_YUAN_TOTAL: _TX,
    fn.TRANSACTIONS_BY_SECTOR_TOTAL: ("sector", "digitalization_band"),
    fn.CROSSBORDER_ECOMMERCE_PAYMENTS_TOTAL: ("customs_mode", "institution_type"),
    fn.CROSSBORDER_ECOMMERCE_AMOUNT_YUAN_TOTAL: ("customs_mode", "institution_type"),
    fn.LOAN_APPLICATIONS_TOTAL: _IB,
    fn.LOAN_DECISIONS_TOTAL: (*_IB, "decision"),
    fn.LOAN_DISBURSEMENTS_TOTAL: _LOAN,
    fn.LOAN_DISBURSED_PRINCIPAL_YUAN_TOTAL: _LOAN,
    fn.LOAN_DISBURSED_RATE_WEIGHTED_YUAN_TOTAL: _IB,
    fn.LOAN_INCLUSIVE_SME_DISBURSED_PRINCIPAL_YUAN_TOTAL: ("institution_type",),
    fn.LOAN_REPAID_PRINCIPAL_YUAN_TOTAL: _IB,
    fn.LOAN_WRITTEN_OFF_PRINCIPAL_YUAN_TOTAL: _IB,
    fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN: (*_IB, "risk_class"),
    fn.LOAN_PAST_DUE_PRINCIPAL_YUAN: ("institution_type", "dpd_bucket"),
    fn.LOANS_ACTIVE: _IB,
    fn.BORROWERS_ACTIVE: (),
    fn.ENTERPRISES_SCORED: ("digitalization_band", "sector"),
    fn.ALERTS_TOTAL: _ALERT,
    fn.ALERT_AMOUNT_YUAN_TOTAL: _ALERT,
    fn.ALERTS_OVERDUE: _ALERT,
    fn.EVENTS_RECEIVED_TOTAL: ("topic",),
    fn.EVENTS_PROCESSED_TOTAL: ("topic",),
    fn.EVENTS_DUPLICATE_TOTAL: ("topic",),
    fn.EVENTS_DEADLETTERED_TOTAL: ("topic", "error_class"),
    fn.EVENTS_LATE_TOTAL: ("topic",),
    fn.RESTATED_EVENTS_TOTAL: ("topic",),
    fn.SCORES_BEYOND_RESTATEMENT_TOTAL: (),
    fn.FX_PENDING_EVENTS: ("topic",),
}
_DECLARED = {f.name: f.labels for f in (*FIGURES, *HEALTH_FIGURES)}
if _DECLARED != _LABELS:
    raise ImportError(f"schemas.figures changed; update the oracle: {_DECLARED}")


def _band(score: Decimal | None) -> str:
    if score is None:
        return "unscored"
    for limit, band in ((20, "l0"), (40, "l1"), (60, "l2"), (80, "l3")):
        if score < limit:
            return band
    return "l4"


def _region(uscc: str) -> str:
    return _PREFECTURES.get(uscc[2:6], "other")


def _implied_risk(dpd: int) -> str:
    if dpd <= 0:
        return "normal"
    if dpd <= 90:
        return "special_mention"
    if dpd <= 270:
        return "substandard"
    if dpd <= 360:
        return "doubtful"
    return "loss"


def _dpd_bucket(dpd: int) -> str:
    for limit, bucket in ((30, "1_29"), (60, "30_59"), (90, "60_89")):
        if dpd < limit:
            return bucket
    return "90_plus"


@dataclass(slots=True)
class _Loan:
    """True state of a disbursed loan; labels and FX rate frozen at disbursement."""

    uscc: str
    institution_type: str
    band: str
    currency: str
    rate: Decimal  # CNY per unit of the loan currency, booked at disbursement
    outstanding: Decimal  # exact, in the loan currency
    days_past_due: int = 0
    reported: str = "normal"
    defaulted: bool = False
    principal_fen: int = 0  # to_fen(principal, rate): the credit it takes of its borrower
    disbursed_at: datetime | None = None  # for restating its vintage band
    rate_units: int = 0  # round_half_even(annual_rate x RATE_SCALE)
    # for re-booking it when a later-read FX rate changes the rate in force at disbursement
    principal: Decimal = Decimal(0)
    inclusive_counted: bool = False
    windowed: bool = False
    home: int = -1

    @property
    def outstanding_fen(self) -> int:
        return to_fen(self.outstanding, self.rate)

    def risk_class(self) -> str:
        classes = [self.reported, _implied_risk(self.days_past_due)]
        if self.defaulted:
            classes.append("substandard")
        return max(classes, key=_RISK_RANK.__getitem__)


@dataclass(slots=True)
class _Window:
    tx_count: Counter[tuple[str, ...]] = field(default_factory=Counter)
    tx_amount_fen: Counter[tuple[str, ...]] = field(default_factory=Counter)
    disbursed_fen: Counter[tuple[str, ...]] = field(default_factory=Counter)


_DAY_MS = 86_400_000
# the worker keeps a closed window this long (event time) so that it can still be amended
_RETAIN_CLOSED = timedelta(hours=24)


class _Dedup:
    """Event ids seen on one topic-partition, by arrival day: the largest Kafka record
    timestamp read from that topic-partition is its clock; an id remembered on UTC day d is
    forgotten once the clock reaches day d + retention + 1. No other topic moves it."""

    __slots__ = ("clock", "ids")

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}  # event id → arrival day it was remembered on
        self.clock: int | None = None  # ms

    def tick(self, timestamp_ms: int | None, retention_days: int) -> None:
        if timestamp_ms is None or (self.clock is not None and timestamp_ms <= self.clock):
            return
        new_day = self.clock is None or timestamp_ms // _DAY_MS != self.clock // _DAY_MS
        self.clock = timestamp_ms
        if new_day:  # ids are forgotten only when the clock enters a new day
            oldest = timestamp_ms // _DAY_MS - retention_days
            for eid in [e for e, day in self.ids.items() if day < oldest]:
                del self.ids[eid]

    def add(self, event_id: str) -> None:
        self.ids.setdefault(event_id, 0 if self.clock is None else self.clock // _DAY_MS)


class Oracle(FxRules):
    """Feed it every record in produce order with `observe`; read `result()` at the end."""

    def __init__(
        self,
        *,
        grace_seconds: int = 600,
        dedup_retention_days: int = 45,
        dedup_horizon_hours: int | None = None,  # the old event-time horizon: no longer used
        fx_max_age_days: int = 10,
        restate_horizon_days: int = 120,
        window_zone: str = WINDOW_ZONE,
        rules: RuleSet | None = None,
    ) -> None:
        self.zone = ZoneInfo(window_zone)
        # the stream's rule set (streams/rules/); the oracle's own pass is adapters/simulator/aml
        self.rules = rules or load_ruleset()
        self._rule_txs: dict[int, list[RTx]] = {}  # home partition → on-time, not forwarded
        self._acked: set[str] = set()  # alert ids acknowledged on dfip.alerts.ack
        self.restate_horizon = timedelta(days=restate_horizon_days)
        # uscc → counted transactions, each [occurred_at, inst, direction, windowed, band,
        # sector, fen, home partition]: the oracle keeps them all (no memory bound)
        self._counted: dict[str, list[list[Any]]] = {}
        self.grace = timedelta(seconds=grace_seconds)
        self.retention_days = dedup_retention_days
        self.records = 0
        self._figures: dict[str, Counter[tuple[str, ...]]] = {n: Counter() for n in _LABELS}
        self._wm: dict[tuple[str, int], datetime] = {}
        self._seen: dict[tuple[str, int], _Dedup] = {}
        self._history: dict[str, list[tuple[datetime, Decimal, str]]] = {}
        # (currency, rate date) → (rate, published_at)
        self._fx: dict[tuple[str, date], tuple[Decimal, datetime]] = {}
        self.fx_max_age_days = fx_max_age_days
        self._loans: dict[str, _Loan] = {}
        self._windows: dict[tuple[str, int, str, datetime], _Window] = {}
        self._fx_init()

    # ---- replay --------------------------------------------------------------------------

    def observe(self, record: Record) -> None:
        self.records += 1
        topic = record.topic
        self._add(fn.EVENTS_RECEIVED_TOTAL, (topic,), 1)
        # the arrival clocks: where it lands, and (a forwarded copy, written moments later)
        # at home. Scores are not bounded by it: every assessment version is kept, and with
        # it its id
        if topic != SCORES:
            for p in {record.partition, record.home_partition}:
                self._memory(topic, p).tick(record.timestamp_ms, self.retention_days)
        fact = record.fact
        if fact is None:
            # Not decodable or not valid: the record itself says which class it is.
            assert record.anomaly is not None
            self._add(fn.EVENTS_DEADLETTERED_TOTAL, (topic, record.anomaly), 1)
        elif isinstance(fact, FxFact):
            self._add(fn.EVENTS_PROCESSED_TOTAL, (topic,), 1)
            self._fx_read(fact)  # adapters/simulator/oracle_fx.py
        elif isinstance(fact, ScoreFact):
            self._score(record, fact)
        else:
            self._event(record, fact)

    def _add(self, name: str, labels: tuple[str, ...], value: int) -> None:
        self._figures[name][labels] += value

    def _memory(self, topic: str, partition: int) -> _Dedup:
        seen = self._seen.get((topic, partition))
        if seen is None:
            seen = self._seen[(topic, partition)] = _Dedup()
        return seen

    def _first_seen(self, topic: str, partition: int, event_id: str) -> bool:
        if event_id in self._memory(topic, partition).ids:
            self._add(fn.EVENTS_DUPLICATE_TOTAL, (topic,), 1)
            return False
        return True

    def _remember(self, topic: str, partition: int, event_id: str) -> None:
        self._memory(topic, partition).add(event_id)

    def _score(self, record: Record, fact: ScoreFact) -> None:
        # Reference data: no lateness (the feed publishes it in time order anyway).
        if not self._first_seen(record.topic, record.home_partition, fact.event_id):
            return
        history = self._history.setdefault(fact.uscc, [])
        # one version per assessment instant: a re-assessment at the same time replaces it
        history[:] = [v for v in history if v[0] != fact.assessed_at]
        insort(history, (fact.assessed_at, fact.overall_score, fact.sector))
        self._remember(record.topic, record.home_partition, fact.event_id)
        self._add(fn.EVENTS_PROCESSED_TOTAL, (record.topic,), 1)
        self._restate(fact.uscc, fact.assessed_at, record.home_partition)

    def _restate(self, uscc: str, assessed_at: datetime, home: int) -> None:
        """Move counted transactions of ``uscc`` at or after max(assessed_at, floor) whose
        as-of join the new assessment changes; floor = the home partition's transactions
        watermark minus the restatement horizon."""
        wm = self._wm.get((TRANSACTIONS, home))
        wms = [w for t in (TRANSACTIONS, LOANS) if (w := self._wm.get((t, home))) is not None]
        floor = max(wms) - self.restate_horizon if wms else None
        if floor is not None and assessed_at < floor:
            self._add(fn.SCORES_BEYOND_RESTATEMENT_TOTAL, (), 1)
        start = assessed_at if floor is None else max(assessed_at, floor)
        # active loans disbursed at or after start: their vintage band
        for loan in self._loans.values():
            if loan.uscc != uscc or loan.disbursed_at is None or loan.disbursed_at < start:
                continue
            new_band = self._as_of(uscc, loan.disbursed_at)[0]
            if new_band == loan.band:
                continue
            inst, region, fen = loan.institution_type, _region(uscc), loan.principal_fen
            repaid = fen - loan.outstanding_fen
            for b, sign in ((loan.band, -1), (new_band, 1)):
                self._add(fn.LOAN_DISBURSEMENTS_TOTAL, (inst, b, region), sign)
                self._add(fn.LOAN_DISBURSED_PRINCIPAL_YUAN_TOTAL, (inst, b, region), sign * fen)
                self._add(
                    fn.LOAN_DISBURSED_RATE_WEIGHTED_YUAN_TOTAL,
                    (inst, b),
                    sign * fen * loan.rate_units,
                )
                self._add(fn.LOAN_REPAID_PRINCIPAL_YUAN_TOTAL, (inst, b), sign * repaid)
            loan.band = new_band
            self._add(fn.RESTATED_EVENTS_TOTAL, (LOANS,), 1)
        for tx in self._counted.get(uscc, ()):
            at, inst, direction, windowed, band, sector, fen, partition = tx
            if at < start:
                continue
            new_band, new_sector = self._as_of(uscc, at)
            if (new_band, new_sector) == (band, sector):
                continue
            if direction in ("application_submitted", "approved", "rejected", "withdrawn"):
                tx[4], tx[5] = new_band, new_sector
                if new_band == band:
                    continue
                if direction == "application_submitted":
                    self._add(fn.LOAN_APPLICATIONS_TOTAL, (inst, band), -1)
                    self._add(fn.LOAN_APPLICATIONS_TOTAL, (inst, new_band), 1)
                else:
                    self._add(fn.LOAN_DECISIONS_TOTAL, (inst, band, direction), -1)
                    self._add(fn.LOAN_DECISIONS_TOTAL, (inst, new_band, direction), 1)
                self._add(fn.RESTATED_EVENTS_TOTAL, (LOANS,), 1)
                continue
            region = _region(uscc)
            self._add(fn.TRANSACTIONS_TOTAL, (inst, band, region, direction), -1)
            self._add(fn.TRANSACTIONS_TOTAL, (inst, new_band, region, direction), 1)
            self._add(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, (inst, band, region, direction), -fen)
            self._add(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, (inst, new_band, region, direction), fen)
            self._add(fn.TRANSACTIONS_BY_SECTOR_TOTAL, (sector, band), -1)
            self._add(fn.TRANSACTIONS_BY_SECTOR_TOTAL, (new_sector, new_band), 1)
            if windowed and new_band != band:
                # windows the worker still holds: open, or closed less than a day ago
                for size in WINDOW_SIZES:
                    start_w, end_w = self._bounds(size, at)
                    win = self._windows.get((TRANSACTIONS, partition, size, start_w))
                    if win is None or wm is None:
                        continue
                    if wm >= end_w + self.grace + _RETAIN_CLOSED:
                        continue
                    win.tx_count[(inst, band)] -= 1
                    win.tx_amount_fen[(inst, band)] -= fen
                    win.tx_count[(inst, new_band)] += 1
                    win.tx_amount_fen[(inst, new_band)] += fen
            tx[4], tx[5] = new_band, new_sector
            self._add(fn.RESTATED_EVENTS_TOTAL, (TRANSACTIONS,), 1)

    def _event(self, record: Record, fact: TxFact | LoanFact) -> None:
        topic, home, at = record.topic, record.home_partition, fact.occurred_at
        forwarded = record.partition != home
        if forwarded:
            # Judged where it landed, and it moves that watermark; then forwarded home.
            late = self._is_late(topic, record.partition, at)
            if not late:
                self._move(topic, record.partition, at)
        if not self._first_seen(topic, home, fact.event_id):
            return
        if self._fx_parked_id(home, fact.event_id):
            self._add(fn.EVENTS_DUPLICATE_TOTAL, (topic,), 1)
            return
        if not forwarded:
            late = self._is_late(topic, home, at)
        # no FX rate in force yet (or its loan's disbursement waits): the event waits
        park, waits = self._fx_must_park(home, fact)
        if park:
            self._fx_park(record, fact, late, forwarded, waits)
        elif not self._apply(record, fact, late=late, windowed=not late):
            return
        if not late and not forwarded:
            self._move(topic, home, at)
        self._fx_drain(home)  # parked events the restatement floor has passed: dead letters

    def _apply(
        self, record: Record, fact: TxFact | LoanFact, *, late: bool, windowed: bool
    ) -> bool:
        topic, home, at = record.topic, record.home_partition, fact.occurred_at
        band, sector = self._as_of(fact.uscc, at)
        if isinstance(fact, TxFact):
            error = self._transaction(fact, band, sector, home, windowed=windowed)
        else:
            error = self._loan(fact, band, sector, home, windowed=windowed)
        if error is not None:
            self._add(fn.EVENTS_DEADLETTERED_TOTAL, (topic, error), 1)
            return False
        self._add(fn.EVENTS_PROCESSED_TOTAL, (topic,), 1)
        self._remember(topic, home, fact.event_id)
        if late:
            self._add(fn.EVENTS_LATE_TOTAL, (topic,), 1)
        elif record.partition == home and isinstance(fact, TxFact):  # rules: on time, at home
            fen, band = self._counted[fact.uscc][-1][6], self._counted[fact.uscc][-1][4]
            self._rule_txs.setdefault(home, []).append(_rule_tx(fact, fen, band))
        return True

    @staticmethod
    def _region(uscc: str) -> str:
        return _region(uscc)

    def _is_late(self, topic: str, partition: int, at: datetime) -> bool:
        wm = self._wm.get((topic, partition))
        return wm is not None and at < wm - self.grace

    def _move(self, topic: str, partition: int, at: datetime) -> None:
        wm = self._wm.get((topic, partition))
        if wm is None or at > wm:
            self._wm[(topic, partition)] = at

    def _as_of(self, uscc: str, at: datetime) -> tuple[str, str]:
        """Band and sector of the newest assessment with assessed_at <= at."""
        history = self._history.get(uscc)
        if history:
            i = bisect_right(history, at, key=lambda item: item[0])
            if i:
                _, score, sector = history[i - 1]
                return _band(score), sector
        return "unscored", "unknown"

    def _bounds(self, size: str, at: datetime) -> tuple[datetime, datetime]:
        """[start, end) in UTC of the ``size`` window of ``at``: a clock hour, or the day
        from local midnight to local midnight, in the windows' zone."""
        local = at.astimezone(self.zone)
        if size == "1h":
            start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
            return start, start + WINDOW_SIZES[size]
        day = local.date()
        after = day + timedelta(days=1)
        return (
            datetime(day.year, day.month, day.day, tzinfo=self.zone).astimezone(UTC),
            datetime(after.year, after.month, after.day, tzinfo=self.zone).astimezone(UTC),
        )

    def _window(self, topic: str, partition: int, at: datetime) -> list[_Window]:
        out = []
        for size in WINDOW_SIZES:
            start = self._bounds(size, at)[0]
            key = (topic, partition, size, start)
            win = self._windows.get(key)
            if win is None:
                win = self._windows[key] = _Window()
            out.append(win)
        return out

    # ---- business figures ----------------------------------------------------------------

    def _transaction(
        self, fact: TxFact, band: str, sector: str, partition: int, *, windowed: bool
    ) -> str | None:
        rate = self._rate(fact.currency, fact.occurred_at)
        if rate is None:
            return "fx_rate_missing"
        fen = to_fen(fact.amount, rate)
        inst = fact.institution_type
        labels = (inst, band, _region(fact.uscc), fact.direction)
        self._add(fn.TRANSACTIONS_TOTAL, labels, 1)
        self._add(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, labels, fen)
        self._add(fn.TRANSACTIONS_BY_SECTOR_TOTAL, (sector, band), 1)
        if fact.customs_mode is not None:
            self._add(fn.CROSSBORDER_ECOMMERCE_PAYMENTS_TOTAL, (fact.customs_mode, inst), 1)
            self._add(fn.CROSSBORDER_ECOMMERCE_AMOUNT_YUAN_TOTAL, (fact.customs_mode, inst), fen)
        if windowed:
            for win in self._window(TRANSACTIONS, partition, fact.occurred_at):
                win.tx_count[(inst, band)] += 1
                win.tx_amount_fen[(inst, band)] += fen
        row = [fact.occurred_at, inst, fact.direction, windowed, band, sector, fen, partition]
        self._counted.setdefault(fact.uscc, []).append(row)
        self._fx_keep(fact, rate, row, partition, self._floor(partition))
        return None

    def _keep(self, uscc: str, at: datetime, inst: str, kind: str, band: str, sector: str) -> None:
        """Remember a loan application or decision for restatement (by band only)."""
        self._counted.setdefault(uscc, []).append([at, inst, kind, False, band, sector, 0, -1])

    def _loan(
        self, fact: LoanFact, band: str, sector: str, partition: int, *, windowed: bool
    ) -> str | None:
        kind, inst = fact.event_type, fact.institution_type
        if kind == "application_submitted":
            self._add(fn.LOAN_APPLICATIONS_TOTAL, (inst, band), 1)
            self._keep(fact.uscc, fact.occurred_at, inst, kind, band, sector)
            return None
        if kind in ("approved", "rejected", "withdrawn"):
            self._add(fn.LOAN_DECISIONS_TOTAL, (inst, band, kind), 1)
            self._keep(fact.uscc, fact.occurred_at, inst, kind, band, sector)
            return None
        if kind == "disbursed":
            return self._disbursed(fact, band, partition, windowed=windowed)
        loan = self._loans.get(fact.loan_id)
        if loan is None:
            return "unknown_loan"
        ib = (loan.institution_type, loan.band)
        if kind == "repayment":
            assert fact.amount is not None
            if fact.currency != loan.currency or fact.amount > loan.outstanding:
                return "invalid_field"  # cannot be applied: other currency, or overpaid
            before = loan.outstanding_fen
            loan.outstanding -= fact.amount
            # the drop in CNY value, so disbursed = repaid + written off + outstanding exactly
            self._add(fn.LOAN_REPAID_PRINCIPAL_YUAN_TOTAL, ib, before - loan.outstanding_fen)
        elif kind == "delinquency_changed":
            assert fact.days_past_due is not None
            loan.days_past_due = fact.days_past_due
        elif kind == "risk_class_changed":
            assert fact.risk_class is not None
            loan.reported = fact.risk_class
        elif kind == "defaulted":
            loan.defaulted = True
        elif kind == "written_off":
            self._add(fn.LOAN_WRITTEN_OFF_PRINCIPAL_YUAN_TOTAL, ib, loan.outstanding_fen)
            del self._loans[fact.loan_id]
        elif kind == "closed":
            del self._loans[fact.loan_id]
        else:
            raise ValueError(f"unknown loan event type {kind!r}")
        return None

    def _disbursed(
        self, fact: LoanFact, band: str, partition: int, *, windowed: bool
    ) -> str | None:
        assert fact.amount is not None
        assert fact.currency is not None
        assert fact.annual_rate is not None
        rate = self._rate(fact.currency, fact.occurred_at)
        if rate is None:
            return "fx_rate_missing"
        if fact.loan_id in self._loans:
            return "invalid_field"  # a second drawdown of an active loan id
        fen = to_fen(fact.amount, rate)
        inst, region = fact.institution_type, _region(fact.uscc)
        # the rate in units of 1/RATE_SCALE (basis points), rounded half to even
        rate_units = int((fact.annual_rate * RATE_SCALE).to_integral_value(ROUND_HALF_EVEN))
        self._loans[fact.loan_id] = _Loan(
            fact.uscc, inst, band, fact.currency, rate, outstanding=fact.amount, principal_fen=fen,
            disbursed_at=fact.occurred_at, rate_units=rate_units,
        )  # fmt: skip
        # total credit per borrower: the principal of all its active loans, this one included
        credit = sum(x.principal_fen for x in self._loans.values() if x.uscc == fact.uscc)
        self._add(fn.LOAN_DISBURSEMENTS_TOTAL, (inst, band, region), 1)
        self._add(fn.LOAN_DISBURSED_PRINCIPAL_YUAN_TOTAL, (inst, band, region), fen)
        self._add(fn.LOAN_DISBURSED_RATE_WEIGHTED_YUAN_TOTAL, (inst, band), fen * rate_units)
        loan = self._loans[fact.loan_id]
        loan.principal, loan.windowed, loan.home = fact.amount, windowed, partition
        if fact.inclusive_sme and credit <= _INCLUSIVE_SME_LIMIT_FEN:
            loan.inclusive_counted = True
            self._add(fn.LOAN_INCLUSIVE_SME_DISBURSED_PRINCIPAL_YUAN_TOTAL, (inst,), fen)
        if windowed:
            for win in self._window(LOANS, partition, fact.occurred_at):
                win.disbursed_fen[(inst,)] += fen
        return None

    # ---- results -------------------------------------------------------------------------

    def _gauges(self) -> dict[str, Counter[tuple[str, ...]]]:
        out: dict[str, Counter[tuple[str, ...]]] = {
            name: Counter()
            for name in (
                fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN,
                fn.LOAN_PAST_DUE_PRINCIPAL_YUAN,
                fn.LOANS_ACTIVE,
                fn.BORROWERS_ACTIVE,
                fn.ENTERPRISES_SCORED,
                fn.FX_PENDING_EVENTS,
            )
        }
        out[fn.FX_PENDING_EVENTS].update(self._fx_pending())
        borrowers: set[str] = set()
        for loan in self._loans.values():
            ib = (loan.institution_type, loan.band)
            out[fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN][(*ib, loan.risk_class())] += (
                loan.outstanding_fen
            )
            if loan.days_past_due > 0:
                bucket = (loan.institution_type, _dpd_bucket(loan.days_past_due))
                out[fn.LOAN_PAST_DUE_PRINCIPAL_YUAN][bucket] += loan.outstanding_fen
            out[fn.LOANS_ACTIVE][ib] += 1
            borrowers.add(loan.uscc)
        out[fn.BORROWERS_ACTIVE][()] = len(borrowers)
        for history in self._history.values():
            _, score, sector = max(history, key=lambda item: item[0])
            out[fn.ENTERPRISES_SCORED][(_band(score), sector)] += 1
        return out

    def alerts(self) -> list[Any]:
        """Every rule hit the stream decides by the end (adapters.simulator.aml.ExpectedHit)."""
        out = []
        for p, txs in sorted(self._rule_txs.items()):
            wm = self._wm.get((TRANSACTIONS, p))
            if wm is not None:
                upto = (wm - self.grace - _EPOCH) // timedelta(microseconds=1)
                out.extend(expected_hits(txs, self.rules, upto))
        return sorted(out)

    def acknowledge(self, alert_id: str) -> None:
        """An acknowledgement written to dfip.alerts.ack for a hit already decided."""
        self._acked.add(alert_id)

    def _alert_figures(self) -> dict[str, Counter[tuple[str, ...]]]:
        hits: Counter[tuple[str, ...]] = Counter()
        amounts: Counter[tuple[str, ...]] = Counter()
        late: Counter[tuple[str, ...]] = Counter()
        today = (datetime.now(tz=UTC) + timedelta(hours=8)).date()  # Beijing, as the export
        reports: set[str] = set()  # a hit id written twice is one report to make
        for hit in self.alerts():
            labels = (hit.rule, _region(hit.uscc), hit.institution_type, hit.band)
            hits[labels] += 1
            amounts[labels] += hit.total_fen
            if hit.alert_id in reports:
                continue
            reports.add(hit.alert_id)
            if hit.report_due < today and hit.alert_id not in self._acked:
                late[labels] += 1
        return {
            fn.ALERTS_TOTAL: hits,
            fn.ALERT_AMOUNT_YUAN_TOTAL: amounts,
            fn.ALERTS_OVERDUE: late,
        }

    def figures(self) -> dict[str, list[dict[str, Any]]]:
        values = {**self._figures, **self._gauges(), **self._alert_figures()}
        out: dict[str, list[dict[str, Any]]] = {}
        for name, labels in _LABELS.items():
            series = [
                {"labels": dict(zip(labels, key, strict=True)), "value": value}
                for key, value in sorted(values[name].items())
                if value != 0 or not labels
            ]
            if not labels and not series:
                series = [{"labels": {}, "value": 0}]
            out[name] = series
        return out

    def watermark(self, topic: str, partition: int) -> datetime | None:
        return self._wm.get((topic, partition))

    def windows(self) -> list[dict[str, Any]]:
        """One record per (topic, partition, size, start) with at least one contribution;
        `closed` is whether the partition's final watermark passed end + grace."""
        out = []
        for (topic, partition, size, start), win in sorted(self._windows.items()):
            end = self._bounds(size, start)[1]
            wm = self._wm.get((topic, partition))
            figures: dict[str, list[dict[str, Any]]] = {}
            if topic == TRANSACTIONS:
                figures["tx_count"] = _series(_IB, win.tx_count)
                figures["tx_amount_fen"] = _series(_IB, win.tx_amount_fen)
            else:
                figures["disbursed_fen"] = _series(("institution_type",), win.disbursed_fen)
            out.append(
                {
                    "size": size,
                    "window_start": start.isoformat(),
                    "window_end": end.isoformat(),
                    "local_date": start.astimezone(self.zone).date().isoformat(),
                    "topic": topic,
                    "partition": partition,
                    "closed": wm is not None and wm >= end + self.grace,
                    "figures": figures,
                }
            )
        return out

    def result(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {
            "figures": self.figures(),
            "windows": self.windows(),
            "meta": {**meta, "grace_seconds": int(self.grace.total_seconds()),
                     "dedup_retention_days": self.retention_days},
        }  # fmt: skip


def _series(labels: tuple[str, ...], values: Counter[tuple[str, ...]]) -> list[dict[str, Any]]:
    return [
        {"labels": dict(zip(labels, key, strict=True)), "value": value}
        for key, value in sorted(values.items())
        if value != 0
    ]


def _rule_tx(fact: TxFact, fen: int, band: str) -> RTx:
    at_us = (fact.occurred_at - _EPOCH) // timedelta(microseconds=1)
    return RTx(
        at_us,
        fact.event_id,
        fact.uscc,
        fen,
        fact.direction == "credit",
        is_cash(fact.bank_tx_code),
        fact.amount,
        fact.currency,
        fact.institution_type,
        band,
    )
