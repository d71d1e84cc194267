"""apply_loan_event on a plain PartitionState: which figures each loan event type moves, and
the dead-letter verdicts (error class and reason, as docs/metrics.md states them)."""

from __future__ import annotations

import copy
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import events as ev
from schemas import figure_names as fn
from schemas.errors import ErrorClass
from streams.aggregate.apply import (
    ACTIVE_LOAN_HANDLERS,
    INCLUSIVE_SME_LIMIT_FEN,
    NO_LOAN_HANDLERS,
    Join,
    Rejected,
    apply_loan_event,
)
from streams.aggregate.windows import DISBURSED_FEN, SIZES
from streams.state.partition import PartitionState
from tests.unit.streams.aggregate.builders import (
    BORROWER,
    JOIN,
    LOANS,
    Rates,
    figure,
    loan_event,
    partition,
    patient,
)


def apply(state: PartitionState, event: ev.LoanEventBase, rates: Rates | None = None, *,
          windowed: bool = False) -> None:  # fmt: skip
    apply_loan_event(state, event, JOIN, rates or Rates(), topic=LOANS, windowed=windowed)


def rejected(
    state: PartitionState, event: ev.LoanEventBase, rates: Rates | None = None
) -> Rejected:
    """The rejection of ``event``, checking that it left the partition as it was."""
    before = copy.deepcopy(state)
    with pytest.raises(Rejected) as info:
        apply(state, event, rates)
    assert state.counters.values == before.counters.values
    assert state.loans == before.loans
    assert state.borrower_credit == before.borrower_credit
    return info.value


def test_the_tables_dispatch_every_loan_event_type_exactly_once() -> None:
    assert not NO_LOAN_HANDLERS.keys() & ACTIVE_LOAN_HANDLERS.keys()
    assert NO_LOAN_HANDLERS.keys() | ACTIVE_LOAN_HANDLERS.keys() == set(
        ev.LOAN_EVENT_CLASSES.values()
    )


def test_an_application_counts_by_institution_type_and_band() -> None:
    state = partition()
    apply(state, loan_event(ev.LoanApplicationSubmitted, it="fintech"))
    assert state.counters.values == {fn.LOAN_APPLICATIONS_TOTAL: {("fintech", "l2"): 1}}
    assert not state.loans


@pytest.mark.parametrize("kind", [ev.LoanApproved, ev.LoanRejected, ev.LoanWithdrawn])
def test_a_decision_counts_under_its_event_type(kind: type[ev.LoanEventBase]) -> None:
    state = partition()
    event = loan_event(kind)
    apply(state, event)
    decision = event.event_type.value
    assert state.counters.values == {fn.LOAN_DECISIONS_TOTAL: {("bank", "l2", decision): 1}}


def test_a_disbursement_opens_a_loan_and_counts_its_principal() -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed, principal=Decimal("1200000.00"),
                            annual_rate=Decimal("0.0420")))  # fmt: skip
    fen = 120_000_000
    assert figure(state, fn.LOAN_DISBURSEMENTS_TOTAL, ("bank", "l2", "hangzhou")) == 1
    assert figure(state, fn.LOAN_DISBURSED_PRINCIPAL_YUAN_TOTAL, ("bank", "l2", "hangzhou")) == fen
    # docs/metrics.md: 1,200,000.00 yuan at 0.0420 exports 50400.0 (state / 10^6)
    assert figure(state, fn.LOAN_DISBURSED_RATE_WEIGHTED_YUAN_TOTAL, ("bank", "l2")) == fen * 420
    assert figure(state, fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN, ("bank", "l2", "normal")) == fen
    assert figure(state, fn.LOANS_ACTIVE, ("bank", "l2")) == 1
    assert figure(state, fn.BORROWERS_ACTIVE, ()) == 1
    assert figure(state, fn.LOAN_INCLUSIVE_SME_DISBURSED_PRINCIPAL_YUAN_TOTAL) == 0
    loan = state.loans["L1"]
    assert (loan.band, loan.region, loan.rate_units, loan.outstanding) == (
        "l2", "hangzhou", 420, "1200000.00"
    )  # fmt: skip
    assert not state.windows


def test_a_windowed_disbursement_enters_its_hour_and_day() -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed), windowed=True)
    assert {size for (_, size, _) in state.windows} == set(SIZES)
    for win in state.windows.values():
        assert win.counters.values == {DISBURSED_FEN: {("bank",): 100_000}}


def test_inclusive_sme_counts_while_the_borrowers_credit_is_within_ten_million() -> None:
    state = partition()
    limit_yuan = Decimal(INCLUSIVE_SME_LIMIT_FEN) / 100
    first = limit_yuan - Decimal("1000.00")
    apply(state, loan_event(ev.LoanDisbursed, "A", principal=first, inclusive_sme=True))
    assert figure(state, fn.LOAN_INCLUSIVE_SME_DISBURSED_PRINCIPAL_YUAN_TOTAL, ("bank",)) == int(
        first * 100
    )
    # exactly at the limit, this loan included: still inclusive
    apply(state, loan_event(ev.LoanDisbursed, "B", principal=Decimal("1000.00"),
                            inclusive_sme=True))  # fmt: skip
    assert figure(state, fn.LOAN_INCLUSIVE_SME_DISBURSED_PRINCIPAL_YUAN_TOTAL) == (
        INCLUSIVE_SME_LIMIT_FEN
    )
    # one fen over: not
    apply(state, loan_event(ev.LoanDisbursed, "C", principal=Decimal("0.01"), inclusive_sme=True))
    assert figure(state, fn.LOAN_INCLUSIVE_SME_DISBURSED_PRINCIPAL_YUAN_TOTAL) == (
        INCLUSIVE_SME_LIMIT_FEN
    )
    assert figure(state, fn.LOAN_DISBURSEMENTS_TOTAL) == 3


def test_a_foreign_currency_disbursement_is_booked_at_the_rate_in_force() -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed, principal=Decimal("100.00"), currency="USD"),
          Rates(USD="7.1234"))  # fmt: skip
    assert state.loans["L1"].book_rate == "7.1234"
    assert state.loans["L1"].outstanding_fen == 71_234


def test_a_second_disbursement_of_an_active_loan_is_invalid_field() -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed))
    exc = rejected(state, loan_event(ev.LoanDisbursed))
    assert (exc.error_class, exc.reason) == (
        "invalid_field",
        "loan_id: disbursed twice while active",
    )
    assert type(exc.error_class) is str  # the plain value goes into labels and dead letters


def test_a_disbursement_without_a_rate_in_force_is_fx_rate_missing() -> None:
    state = partition()
    exc = rejected(state, loan_event(ev.LoanDisbursed, currency="USD"))
    assert exc.error_class == ErrorClass.fx_rate_missing
    assert exc.reason == (
        "no USD/CNY rate in force at 2026-03-02T09:30:00+00:00: none dated "
        "2026-02-23..2026-03-02 (Asia/Shanghai) published by then"
    )


@pytest.mark.parametrize("kind", list(ACTIVE_LOAN_HANDLERS), ids=lambda k: k.__name__)
def test_an_event_for_a_loan_that_is_not_active_is_unknown_loan(
    kind: type[ev.LoanEventBase],
) -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed, "other"))
    event = loan_event(kind)
    exc = rejected(state, event)
    assert exc.error_class == "unknown_loan"
    assert exc.reason == f"{event.event_type.value} for a loan that is not active"


@pytest.mark.parametrize("ending", [ev.LoanClosed, ev.LoanWrittenOff])
def test_an_ended_loan_is_no_longer_active(ending: type[ev.LoanEventBase]) -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed))
    apply(state, loan_event(ending))
    assert rejected(state, loan_event(ev.LoanRepayment)).error_class == "unknown_loan"
    apply(state, loan_event(ev.LoanDisbursed))  # the id opens a new loan
    assert figure(state, fn.LOAN_DISBURSEMENTS_TOTAL) == 2


def test_a_repayment_in_another_currency_is_invalid_field() -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed))
    exc = rejected(state, loan_event(ev.LoanRepayment, currency="USD"), Rates(USD="7"))
    assert (exc.error_class, exc.reason) == (
        "invalid_field", "currency: differs from the loan's currency"
    )  # fmt: skip


def test_a_repayment_above_the_outstanding_is_invalid_field() -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed, principal=Decimal("100.00")))
    apply(state, loan_event(ev.LoanRepayment, principal_amount=Decimal("60.00")))
    exc = rejected(state, loan_event(ev.LoanRepayment, principal_amount=Decimal("40.01")))
    assert (exc.error_class, exc.reason) == (
        "invalid_field", "principal_amount: exceeds the outstanding principal"
    )  # fmt: skip
    apply(state, loan_event(ev.LoanRepayment, principal_amount=Decimal("40.00")))  # to 0: fine
    assert figure(state, fn.LOAN_REPAID_PRINCIPAL_YUAN_TOTAL, ("bank", "l2")) == 10_000
    assert figure(state, fn.LOANS_ACTIVE) == 1  # repaid to 0 but not closed


def test_later_events_count_under_the_loans_origination_labels() -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed, it="bank"))
    elsewhere = Join(band="l4", sector="K", region="other")
    repayment = loan_event(ev.LoanRepayment, it="fintech")
    apply_loan_event(state, repayment, elsewhere, Rates(), topic=LOANS, windowed=False)
    assert state.counters.values[fn.LOAN_REPAID_PRINCIPAL_YUAN_TOTAL] == {("bank", "l2"): 10_000}


def test_delinquency_risk_class_and_default_move_the_gauges() -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed))
    apply(state, loan_event(ev.LoanDelinquencyChanged, days_past_due=31))
    assert state.counters.values[fn.LOAN_PAST_DUE_PRINCIPAL_YUAN] == {("bank", "30_59"): 100_000}
    assert state.counters.values[fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN] == {
        ("bank", "l2", "special_mention"): 100_000
    }
    apply(state, loan_event(ev.LoanRiskClassChanged, risk_class="doubtful"))
    assert state.counters.values[fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN] == {
        ("bank", "l2", "doubtful"): 100_000
    }
    apply(state, loan_event(ev.LoanDelinquencyChanged, days_past_due=0))
    apply(state, loan_event(ev.LoanRiskClassChanged, risk_class="normal"))
    assert (
        fn.LOAN_PAST_DUE_PRINCIPAL_YUAN not in state.counters.values
        or not (state.counters.values[fn.LOAN_PAST_DUE_PRINCIPAL_YUAN])
    )
    apply(state, loan_event(ev.LoanDefaulted))
    assert state.counters.values[fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN] == {
        ("bank", "l2", "substandard"): 100_000
    }


def test_a_write_off_writes_off_the_whole_outstanding_not_the_events_amount() -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed, principal=Decimal("500.00")))
    apply(state, loan_event(ev.LoanRepayment, principal_amount=Decimal("120.00")))
    apply(state, loan_event(ev.LoanWrittenOff, amount=Decimal("1.00")))
    assert figure(state, fn.LOAN_WRITTEN_OFF_PRINCIPAL_YUAN_TOTAL, ("bank", "l2")) == 38_000
    for gauge in (fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN, fn.LOANS_ACTIVE, fn.BORROWERS_ACTIVE):
        assert figure(state, gauge) == 0
    assert not state.loans
    assert not state.borrower_credit


def test_closing_ends_the_loan_without_a_write_off() -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed))
    apply(state, loan_event(ev.LoanClosed))
    assert figure(state, fn.LOAN_WRITTEN_OFF_PRINCIPAL_YUAN_TOTAL) == 0
    assert figure(state, fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN) == 0
    assert figure(state, fn.LOAN_DISBURSED_PRINCIPAL_YUAN_TOTAL) == 100_000  # counters stay


def _half_even_fen(amount: Decimal, rate: Decimal) -> int:
    """round_half_even(amount x rate x 100), exactly, without Decimal contexts."""
    exact = Fraction(amount) * Fraction(rate) * 100
    low = exact.numerator // exact.denominator
    rest = exact - low
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and low % 2):
        return low + 1
    return low


amounts = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("10000000"), places=3)
rates = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("200"), places=4)


@patient
@given(amounts, rates)
def test_the_booked_principal_is_half_even_fen_at_the_rate(
    principal: Decimal, rate: Decimal
) -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed, principal=principal, currency="USD"),
          Rates(USD=str(rate)))  # fmt: skip
    assert state.loans["L1"].principal_fen == _half_even_fen(principal, rate)


@patient
@given(st.decimals(min_value=0, max_value=1, places=6))
def test_the_rate_units_are_the_annual_rate_in_ten_thousandths_half_even(rate: Decimal) -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed, annual_rate=rate))
    assert state.loans["L1"].rate_units == int(
        (rate * 10_000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    )
    assert figure(state, fn.LOAN_DISBURSED_RATE_WEIGHTED_YUAN_TOTAL) == 100_000 * int(
        (rate * 10_000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    )


def test_half_even_examples() -> None:
    assert _half_even_fen(Decimal("1.005"), Decimal(1)) == 100
    assert _half_even_fen(Decimal("1.015"), Decimal(1)) == 102
    for principal, fen in (("1.005", 100), ("1.015", 102), ("0.025", 2), ("0.035", 4)):
        state = partition()
        apply(state, loan_event(ev.LoanDisbursed, principal=Decimal(principal)))
        assert state.loans["L1"].principal_fen == fen


@patient
@given(
    principal=st.integers(min_value=1, max_value=10**9),
    repayments=st.lists(st.integers(min_value=0, max_value=10**8), max_size=8),
    rate=st.sampled_from(["1", "7.1234", "0.0512", "19.87"]),
    write_off=st.booleans(),
)
def test_outstanding_is_principal_minus_repaid_minus_written_off(
    principal: int, repayments: list[int], rate: str, write_off: bool
) -> None:
    """In CNY fen at the book rate, whatever the currency: the drops telescope."""
    state = partition()
    currency = "CNY" if rate == "1" else "USD"
    cents = Decimal(principal).scaleb(-2)
    apply(state, loan_event(ev.LoanDisbursed, principal=cents, currency=currency),
          Rates(USD=rate))  # fmt: skip
    principal_fen = state.loans["L1"].principal_fen
    left = principal
    for amount in repayments:
        event = loan_event(ev.LoanRepayment, principal_amount=Decimal(amount).scaleb(-2),
                           currency=currency)  # fmt: skip
        if amount > left:
            assert rejected(state, event).error_class == "invalid_field"
            continue
        apply(state, event)
        left -= amount
    repaid = figure(state, fn.LOAN_REPAID_PRINCIPAL_YUAN_TOTAL)
    assert state.loans["L1"].outstanding == str(Decimal(left).scaleb(-2))
    if write_off:
        apply(state, loan_event(ev.LoanWrittenOff))
    written_off = figure(state, fn.LOAN_WRITTEN_OFF_PRINCIPAL_YUAN_TOTAL)
    outstanding = figure(state, fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN)
    assert outstanding == principal_fen - repaid - written_off
    assert outstanding == (
        0 if write_off else _half_even_fen(Decimal(left).scaleb(-2), Decimal(rate))
    )


def test_a_borrower_counts_once_while_any_of_its_loans_is_active() -> None:
    state = partition()
    apply(state, loan_event(ev.LoanDisbursed, "A"))
    apply(state, loan_event(ev.LoanDisbursed, "B"))
    assert figure(state, fn.BORROWERS_ACTIVE, ()) == 1
    assert state.borrower_credit == {BORROWER: 200_000}
    apply(state, loan_event(ev.LoanClosed, "A"))
    assert figure(state, fn.BORROWERS_ACTIVE, ()) == 1
    assert state.borrower_credit == {BORROWER: 100_000}
    apply(state, loan_event(ev.LoanClosed, "B"))
    assert figure(state, fn.BORROWERS_ACTIVE, ()) == 0
