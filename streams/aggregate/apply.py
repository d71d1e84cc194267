"""Apply one joined event to a partition's figures (the semantics in schemas/figures.py).

Functions here are pure over :class:`PartitionState`: no Kafka, no clock. They raise
:class:`Rejected` for events that are valid on the wire but cannot be applied (unknown loan,
missing FX rate, overpayment); the processor dead-letters those. Loan events are applied by
one small handler per event type, chosen from a table (:data:`NO_LOAN_HANDLERS`,
:data:`ACTIVE_LOAN_HANDLERS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType
from typing import Any, Final, NoReturn, Protocol

from schemas import figure_names as fn
from schemas.errors import ErrorClass
from schemas.events import (
    LoanApplicationSubmitted,
    LoanApproved,
    LoanClosed,
    LoanDefaulted,
    LoanDelinquencyChanged,
    LoanDisbursed,
    LoanEventBase,
    LoanRejected,
    LoanRepayment,
    LoanRiskClassChanged,
    LoanWithdrawn,
    LoanWrittenOff,
    TransactionEvent,
)
from schemas.figures import RATE_SCALE
from schemas.money import MAX_COUNTED_FEN, MAX_LOAN_FEN, to_fen
from schemas.wire import AnyTransaction, TransactionWire, cny_fen
from streams.aggregate import loans as book
from streams.aggregate.windows import (
    DISBURSED_FEN,
    QUARTER_US,
    TX_AMOUNT_FEN,
    TX_COUNT,
    to_us,
    window_add,
)
from streams.reference.fx import SHANGHAI_OFFSET
from streams.state.partition import LoanState, PartitionState, TxGroup, WindowGroup

__all__ = [
    "ACTIVE_LOAN_HANDLERS",
    "INCLUSIVE_SME_LIMIT_FEN",
    "NO_LOAN_HANDLERS",
    "Join",
    "RateSource",
    "Rejected",
    "apply_loan_event",
    "apply_transaction",
    "flush_tally",
    "tally_transaction",
]

# NFRA/PBOC inclusive SME loan (普惠型小微企业贷款): total credit per borrower (单户授信总额)
# of CNY 10 million or less, inclusive
INCLUSIVE_SME_LIMIT_FEN = 10_000_000 * 100


class Rejected(Exception):
    """An event that cannot be applied; goes to the dead-letter topic."""

    def __init__(self, error_class: ErrorClass, reason: str) -> None:
        super().__init__(reason)
        # the plain string, as it goes into labels, changelogs and dead letters
        self.error_class: str = error_class.value
        self.reason = reason


class RateSource(Protocol):
    max_age_days: int

    def rate_at(self, currency: str, at: datetime) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class Join:
    """What the as-of join found for an event."""

    band: str
    sector: str
    region: str


def _too_large(field: str, fen: int, limit: int) -> NoReturn:
    raise Rejected(
        ErrorClass.invalid_field,
        f"{field}: {fen // 100:,} yuan once in CNY, not below the largest amount counted "
        f"({limit // 100:,} yuan)",
    )


def _counted(fen: int) -> int:
    """``fen`` if a transaction of that CNY value may be counted (see MAX_COUNTED_FEN)."""
    if fen >= MAX_COUNTED_FEN:
        _too_large("amount", fen, MAX_COUNTED_FEN)
    return fen


def _rate(rates: RateSource, currency: str, at: datetime) -> Decimal:
    if currency == "CNY":
        return Decimal(1)
    rate = rates.rate_at(currency, at)
    if rate is None:
        local = (at.astimezone(UTC) + SHANGHAI_OFFSET).date()
        oldest = local - timedelta(days=rates.max_age_days)
        raise Rejected(
            ErrorClass.fx_rate_missing,
            f"no {currency}/CNY rate in force at {at.isoformat()}: none dated "
            f"{oldest.isoformat()}..{local.isoformat()} (Asia/Shanghai) published by then",
        )
    return rate


def apply_transaction(
    state: PartitionState,
    ev: TransactionEvent,
    join: Join,
    rates: RateSource,
    *,
    topic: str,
    windowed: bool,
) -> int:
    """Count a transaction; returns its CNY fen."""
    fen = _counted(to_fen(ev.amount, _rate(rates, ev.currency, ev.occurred_at)))
    it = ev.institution_type.value
    labels = (it, join.band, join.region, ev.direction.value)
    c = state.counters
    c.add(fn.TRANSACTIONS_TOTAL, labels, 1)
    c.add(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, labels, fen)
    c.add(fn.TRANSACTIONS_BY_SECTOR_TOTAL, (join.sector, join.band), 1)
    if ev.customs_mode is not None:
        cm = (ev.customs_mode.value, it)
        c.add(fn.CROSSBORDER_ECOMMERCE_PAYMENTS_TOTAL, cm, 1)
        c.add(fn.CROSSBORDER_ECOMMERCE_AMOUNT_YUAN_TOTAL, cm, fen)
    if windowed:
        ib = (it, join.band)
        window_add(
            state, topic, to_us(ev.occurred_at), ((TX_COUNT, ib, 1), (TX_AMOUNT_FEN, ib, fen))
        )
    return fen


# the quarter hour tally_transaction last computed, as [its first µs, the next one's, its
# number] (none yet: an empty range): a cache of a pure division, the same for any state
_QUARTER = [0, 0, 0]


def tally_transaction(
    state: PartitionState,
    ev: AnyTransaction,
    band: str,
    sector: str,
    region: str,
    rates: RateSource,
    topic: str,
    ts_us: int,
    windowed: bool,
) -> int:
    """:func:`apply_transaction` for the batch path: the same figures, summed into the
    partition's :class:`~streams.state.partition.Tally` by group and applied by
    :func:`flush_tally`; returns the transaction's CNY fen. ``ts_us`` is
    ``to_us(ev.occurred_at)``. Positional parameters (the hot path calls it once per event:
    keywords cost a dict of names per call)."""
    currency = ev.currency
    if currency == "CNY":
        # to_fen's result without its rounding steps when amount × 100 is a whole number
        # (every CNY statement amount: 2 places): from a wire struct's text (cny_fen, no
        # Decimal made), or when the denominator of the Decimal in lowest terms divides 100
        # (exact integers, cheaper than Decimal arithmetic); otherwise to_fen itself
        if ev.__class__ is TransactionWire:
            fen = cny_fen(ev.amount_raw)  # type: ignore[union-attr]
            if fen is None:
                fen = to_fen(ev.amount)
        else:
            num, den = ev.amount.as_integer_ratio()
            fen = num * (100 // den) if 100 % den == 0 else to_fen(ev.amount)
    else:
        fen = to_fen(ev.amount, _rate(rates, currency, ev.occurred_at))
    if fen >= MAX_COUNTED_FEN:  # _counted, inlined
        _too_large("amount", fen, MAX_COUNTED_FEN)
    cm = ev.customs_mode
    # _value_: the plain attribute behind Enum.value (whose descriptor costs a call)
    it = ev.institution_type._value_
    tally = state.tally
    key: TxGroup = (
        it, band, region, ev.direction._value_, sector, None if cm is None else cm._value_
    )  # fmt: skip
    acc = tally.tx.get(key)
    if acc is None:
        tally.tx[key] = [1, fen]
    else:
        acc[0] += 1
        acc[1] += fen
    if windowed:
        # ts_us // QUARTER_US, from the quarter last computed when ts_us lies in it (a long
        # division costs more than the rest of this line)
        quarter = _QUARTER
        if quarter[0] <= ts_us < quarter[1]:
            q = quarter[2]
        else:
            q = ts_us // QUARTER_US
            quarter[0] = q * QUARTER_US
            quarter[1] = quarter[0] + QUARTER_US
            quarter[2] = q
        wkey: WindowGroup = (topic, q, it, band)
        acc = tally.windows.get(wkey)
        if acc is None:
            tally.windows[wkey] = [1, fen]
        else:
            acc[0] += 1
            acc[1] += fen
    return fen


def flush_tally(state: PartitionState) -> None:
    """Apply the batch's summed figure updates to the counters and windows (exactly what
    applying each event in turn gives: every update is a sum)."""
    tally = state.tally
    if not tally:
        return
    add = state.counters.add
    for (name, labels), n in tally.flow.items():
        add(name, labels, n)
    # the groups summed again per series first (a series spans several groups: sectors and
    # customs modes): one counter update per series, not per group
    live: dict[tuple[str, str, str, str], list[int]] = {}
    by_sector: dict[tuple[str, str], int] = {}
    crossborder: dict[tuple[str, str], list[int]] = {}
    for (it, band, region, direction, sector, cm), (n, fen) in tally.tx.items():
        labels = (it, band, region, direction)
        acc = live.get(labels)
        if acc is None:
            live[labels] = [n, fen]
        else:
            acc[0] += n
            acc[1] += fen
        sb = (sector, band)
        by_sector[sb] = by_sector.get(sb, 0) + n
        if cm is not None:
            ci = (cm, it)
            acc = crossborder.get(ci)
            if acc is None:
                crossborder[ci] = [n, fen]
            else:
                acc[0] += n
                acc[1] += fen
    for labels, (n, fen) in live.items():
        add(fn.TRANSACTIONS_TOTAL, labels, n)
        add(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, labels, fen)
    for sb, n in by_sector.items():
        add(fn.TRANSACTIONS_BY_SECTOR_TOTAL, sb, n)
    for ci, (n, fen) in crossborder.items():
        add(fn.CROSSBORDER_ECOMMERCE_PAYMENTS_TOTAL, ci, n)
        add(fn.CROSSBORDER_ECOMMERCE_AMOUNT_YUAN_TOTAL, ci, fen)
    for (topic, quarter, it, band), (n, fen) in tally.windows.items():
        ib = (it, band)
        # the quarter hour's first instant lies in the same windows as every event of it
        window_add(
            state, topic, quarter * QUARTER_US, ((TX_COUNT, ib, n), (TX_AMOUNT_FEN, ib, fen))
        )
    tally.flow.clear()
    tally.tx.clear()
    tally.windows.clear()


def _rate_units(rate: Decimal) -> int:
    return int((rate * RATE_SCALE).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


# ---- loan events: one small handler per event type, chosen from a table ---------------------
#
# The verdict of a loan event here is "apply" (the handler returns) or "dead letter" (it raises
# Rejected before changing anything). Waiting for an FX rate and duplicates are decided before
# (streams/aggregate/fx_book.py, streams/processor.py): an event reaches this point once.


@dataclass(frozen=True, slots=True)
class _LoanCall:
    """What every loan handler gets besides the event."""

    state: PartitionState
    join: Join
    rates: RateSource
    topic: str
    windowed: bool
    it: str  # the event's institution type (value)


def _unknown_loan(ev: LoanEventBase) -> Rejected:
    return Rejected(ErrorClass.unknown_loan, f"{ev.event_type.value} for a loan that is not active")


def _application(call: _LoanCall, ev: LoanApplicationSubmitted) -> None:
    call.state.counters.add(fn.LOAN_APPLICATIONS_TOTAL, (call.it, call.join.band), 1)


def _decision(call: _LoanCall, ev: LoanApproved | LoanRejected | LoanWithdrawn) -> None:
    labels = (call.it, call.join.band, ev.event_type.value)
    call.state.counters.add(fn.LOAN_DECISIONS_TOTAL, labels, 1)


def _disbursed(call: _LoanCall, ev: LoanDisbursed) -> None:
    state, join, it = call.state, call.join, call.it
    if ev.loan_id in state.loans:
        raise Rejected(ErrorClass.invalid_field, "loan_id: disbursed twice while active")
    rate = _rate(call.rates, ev.currency, ev.occurred_at)
    fen = to_fen(ev.principal, rate)
    if fen >= MAX_LOAN_FEN:
        _too_large("principal", fen, MAX_LOAN_FEN)
    rate_units = _rate_units(ev.annual_rate)
    book.add_loan(
        state,
        ev.loan_id,
        LoanState(
            uscc=ev.enterprise_uscc,
            institution_type=it,
            band=join.band,
            region=join.region,
            currency=ev.currency,
            book_rate=str(rate),
            outstanding=str(ev.principal),
            outstanding_fen=fen,
            principal_fen=fen,
            disbursed_us=to_us(ev.occurred_at),
            rate_units=rate_units,
        ),
    )
    c = state.counters
    loan_labels = (it, join.band, join.region)
    c.add(fn.LOAN_DISBURSEMENTS_TOTAL, loan_labels, 1)
    c.add(fn.LOAN_DISBURSED_PRINCIPAL_YUAN_TOTAL, loan_labels, fen)
    c.add(fn.LOAN_DISBURSED_RATE_WEIGHTED_YUAN_TOTAL, (it, join.band), fen * rate_units)
    # the borrower's total credit: principal of its active loans here, this one included
    if ev.inclusive_sme and state.borrower_credit[ev.enterprise_uscc] <= INCLUSIVE_SME_LIMIT_FEN:
        c.add(fn.LOAN_INCLUSIVE_SME_DISBURSED_PRINCIPAL_YUAN_TOTAL, (it,), fen)
    if call.windowed:
        window_add(state, call.topic, to_us(ev.occurred_at), ((DISBURSED_FEN, (it,), fen),))


def _repayment(call: _LoanCall, ev: LoanRepayment, loan: LoanState) -> None:
    if ev.currency != loan.currency:
        raise Rejected(ErrorClass.invalid_field, "currency: differs from the loan's currency")
    remaining = Decimal(loan.outstanding) - ev.principal_amount
    if remaining < 0:
        raise Rejected(
            ErrorClass.invalid_field, "principal_amount: exceeds the outstanding principal"
        )
    drop = -book.update_loan(call.state, ev.loan_id, outstanding=remaining)
    labels = (loan.institution_type, loan.band)
    call.state.counters.add(fn.LOAN_REPAID_PRINCIPAL_YUAN_TOTAL, labels, drop)


def _delinquency(call: _LoanCall, ev: LoanDelinquencyChanged, loan: LoanState) -> None:
    book.update_loan(call.state, ev.loan_id, days_past_due=ev.days_past_due)


def _risk_class(call: _LoanCall, ev: LoanRiskClassChanged, loan: LoanState) -> None:
    book.update_loan(call.state, ev.loan_id, reported_risk=ev.risk_class.value)


def _defaulted(call: _LoanCall, ev: LoanDefaulted, loan: LoanState) -> None:
    book.update_loan(call.state, ev.loan_id, defaulted=True)


def _written_off(call: _LoanCall, ev: LoanWrittenOff, loan: LoanState) -> None:
    # the loan's whole outstanding principal, at its book rate (not the event's amount)
    ended = book.end_loan(call.state, ev.loan_id)
    labels = (ended.institution_type, ended.band)
    call.state.counters.add(fn.LOAN_WRITTEN_OFF_PRINCIPAL_YUAN_TOTAL, labels, ended.outstanding_fen)


def _closed(call: _LoanCall, ev: LoanClosed, loan: LoanState) -> None:
    book.end_loan(call.state, ev.loan_id)


def _nothing(call: _LoanCall, ev: LoanEventBase, loan: LoanState) -> None:
    """A loan event type with no handler of its own: it needs an active loan, changes nothing."""


# Each handler is typed for its event class; the tables hold them as taking any loan event
# (a dict cannot say that the value's parameter matches its key).
_NoLoanHandler = Callable[[_LoanCall, Any], None]
_ActiveLoanHandler = Callable[[_LoanCall, Any, LoanState], None]

# events that need no active loan (a disbursement opens one; applications and decisions
# come before it)
NO_LOAN_HANDLERS: Final[Mapping[type[LoanEventBase], _NoLoanHandler]] = MappingProxyType(
    {
        LoanApplicationSubmitted: _application,
        LoanApproved: _decision,
        LoanRejected: _decision,
        LoanWithdrawn: _decision,
        LoanDisbursed: _disbursed,
    }
)
# events that change an active loan; for a loan that is not active they are unknown_loan
ACTIVE_LOAN_HANDLERS: Final[Mapping[type[LoanEventBase], _ActiveLoanHandler]] = MappingProxyType(
    {
        LoanRepayment: _repayment,
        LoanDelinquencyChanged: _delinquency,
        LoanRiskClassChanged: _risk_class,
        LoanDefaulted: _defaulted,
        LoanWrittenOff: _written_off,
        LoanClosed: _closed,
    }
)


def apply_loan_event(
    state: PartitionState,
    ev: LoanEventBase,
    join: Join,
    rates: RateSource,
    *,
    topic: str,
    windowed: bool,
) -> None:
    """Apply one loan event to the partition's loan book and figures (docs/metrics.md, the
    loan rules); raises :class:`Rejected` (before changing anything) for one that cannot
    apply: ``unknown_loan``, ``invalid_field`` or ``fx_rate_missing``."""
    call = _LoanCall(state, join, rates, topic, windowed, ev.institution_type.value)
    kind = type(ev)
    first = NO_LOAN_HANDLERS.get(kind)
    if first is not None:
        first(call, ev)
        return
    loan = state.loans.get(ev.loan_id)
    if loan is None:
        raise _unknown_loan(ev)
    ACTIVE_LOAN_HANDLERS.get(kind, _nothing)(call, ev, loan)
