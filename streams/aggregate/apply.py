"""Apply one joined event to a partition's figures (the semantics in schemas/figures.py).

Functions here are pure over :class:`PartitionState`: no Kafka, no clock. They raise
:class:`Rejected` for events that are valid on the wire but cannot be applied (unknown loan,
missing FX rate, overpayment); the processor dead-letters those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Protocol

from schemas import figure_names as fn
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
from schemas.money import to_fen
from streams.aggregate import loans as book
from streams.aggregate.windows import QUARTER_US, to_us, window_add
from streams.reference.fx import SHANGHAI_OFFSET
from streams.state.partition import LoanState, PartitionState, TxGroup, WindowGroup

__all__ = [
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

    def __init__(self, error_class: str, reason: str) -> None:
        super().__init__(reason)
        self.error_class = error_class
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


_HUNDRED = Decimal(100)
# exact for any wire amount (at most 15 + 8 digits) times 100, whatever the thread's context
_EXACT = Context(prec=80)


def _rate(rates: RateSource, currency: str, at: datetime) -> Decimal:
    if currency == "CNY":
        return Decimal(1)
    rate = rates.rate_at(currency, at)
    if rate is None:
        local = (at.astimezone(UTC) + SHANGHAI_OFFSET).date()
        oldest = local - timedelta(days=rates.max_age_days)
        raise Rejected(
            "fx_rate_missing",
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
    fen = to_fen(ev.amount, _rate(rates, ev.currency, ev.occurred_at))
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
            state, topic, to_us(ev.occurred_at), (("tx_count", ib, 1), ("tx_amount_fen", ib, fen))
        )
    return fen


def tally_transaction(
    state: PartitionState,
    ev: TransactionEvent,
    band: str,
    sector: str,
    region: str,
    rates: RateSource,
    *,
    topic: str,
    ts_us: int,
    windowed: bool,
) -> int:
    """:func:`apply_transaction` for the batch path: the same figures, summed into the
    partition's :class:`~streams.state.partition.Tally` by group and applied by
    :func:`flush_tally`; returns the transaction's CNY fen. ``ts_us`` is
    ``to_us(ev.occurred_at)``."""
    currency = ev.currency
    if currency == "CNY":
        # to_fen's result without its rounding steps when amount × 100 is a whole number
        # (every CNY statement amount: 2 places); otherwise to_fen itself
        hundredfold = _EXACT.multiply(ev.amount, _HUNDRED)
        fen = int(hundredfold)
        if fen != hundredfold:
            fen = to_fen(ev.amount)
    else:
        fen = to_fen(ev.amount, _rate(rates, currency, ev.occurred_at))
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
        wkey: WindowGroup = (topic, ts_us // QUARTER_US, it, band)
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
    for (it, band, region, direction, sector, cm), (n, fen) in tally.tx.items():
        labels = (it, band, region, direction)
        add(fn.TRANSACTIONS_TOTAL, labels, n)
        add(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, labels, fen)
        add(fn.TRANSACTIONS_BY_SECTOR_TOTAL, (sector, band), n)
        if cm is not None:
            add(fn.CROSSBORDER_ECOMMERCE_PAYMENTS_TOTAL, (cm, it), n)
            add(fn.CROSSBORDER_ECOMMERCE_AMOUNT_YUAN_TOTAL, (cm, it), fen)
    for (topic, quarter, it, band), (n, fen) in tally.windows.items():
        ib = (it, band)
        # the quarter hour's first instant lies in the same windows as every event of it
        window_add(
            state, topic, quarter * QUARTER_US, (("tx_count", ib, n), ("tx_amount_fen", ib, fen))
        )
    tally.flow.clear()
    tally.tx.clear()
    tally.windows.clear()


def _rate_units(rate: Decimal) -> int:
    return int((rate * RATE_SCALE).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def apply_loan_event(
    state: PartitionState,
    ev: LoanEventBase,
    join: Join,
    rates: RateSource,
    *,
    topic: str,
    windowed: bool,
) -> None:
    it = ev.institution_type.value
    c = state.counters
    loan = state.loans.get(ev.loan_id)

    if isinstance(ev, LoanApplicationSubmitted):
        c.add(fn.LOAN_APPLICATIONS_TOTAL, (it, join.band), 1)
        return
    if isinstance(ev, LoanApproved | LoanRejected | LoanWithdrawn):
        c.add(fn.LOAN_DECISIONS_TOTAL, (it, join.band, ev.event_type.value), 1)
        return
    if isinstance(ev, LoanDisbursed):
        if loan is not None:
            raise Rejected("invalid_field", "loan_id: disbursed twice while active")
        rate = _rate(rates, ev.currency, ev.occurred_at)
        fen = to_fen(ev.principal, rate)
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
                rate_units=_rate_units(ev.annual_rate),
            ),
        )
        loan_labels = (it, join.band, join.region)
        c.add(fn.LOAN_DISBURSEMENTS_TOTAL, loan_labels, 1)
        c.add(fn.LOAN_DISBURSED_PRINCIPAL_YUAN_TOTAL, loan_labels, fen)
        c.add(
            fn.LOAN_DISBURSED_RATE_WEIGHTED_YUAN_TOTAL,
            (it, join.band),
            fen * state.loans[ev.loan_id].rate_units,
        )
        # the borrower's total credit: principal of its active loans here, this one included
        if (
            ev.inclusive_sme
            and state.borrower_credit[ev.enterprise_uscc] <= INCLUSIVE_SME_LIMIT_FEN
        ):
            c.add(fn.LOAN_INCLUSIVE_SME_DISBURSED_PRINCIPAL_YUAN_TOTAL, (it,), fen)
        if windowed:
            window_add(state, topic, to_us(ev.occurred_at), (("disbursed_fen", (it,), fen),))
        return

    if loan is None:
        raise Rejected("unknown_loan", f"{ev.event_type.value} for a loan that is not active")
    if isinstance(ev, LoanRepayment):
        if ev.currency != loan.currency:
            raise Rejected("invalid_field", "currency: differs from the loan's currency")
        remaining = Decimal(loan.outstanding) - ev.principal_amount
        if remaining < 0:
            raise Rejected("invalid_field", "principal_amount: exceeds the outstanding principal")
        drop = -book.update_loan(state, ev.loan_id, outstanding=remaining)
        c.add(fn.LOAN_REPAID_PRINCIPAL_YUAN_TOTAL, (loan.institution_type, loan.band), drop)
    elif isinstance(ev, LoanDelinquencyChanged):
        book.update_loan(state, ev.loan_id, days_past_due=ev.days_past_due)
    elif isinstance(ev, LoanRiskClassChanged):
        book.update_loan(state, ev.loan_id, reported_risk=ev.risk_class.value)
    elif isinstance(ev, LoanDefaulted):
        book.update_loan(state, ev.loan_id, defaulted=True)
    elif isinstance(ev, LoanWrittenOff):
        ended = book.end_loan(state, ev.loan_id)
        c.add(
            fn.LOAN_WRITTEN_OFF_PRINCIPAL_YUAN_TOTAL,
            (ended.institution_type, ended.band),
            ended.outstanding_fen,
        )
    elif isinstance(ev, LoanClosed):
        book.end_loan(state, ev.loan_id)
