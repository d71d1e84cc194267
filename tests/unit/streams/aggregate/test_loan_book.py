"""streams/aggregate/loans.py: the risk class a loan counts under, and gauges that always
equal the sum of the active loans' contributions, whatever the sequence of transitions."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import figure_names as fn
from streams.aggregate import loans as book
from streams.state.partition import LoanState, PartitionState
from tests.unit.streams.aggregate.builders import BORROWER, OTHER, partition, patient

GAUGES = (
    fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN,
    fn.LOAN_PAST_DUE_PRINCIPAL_YUAN,
    fn.LOANS_ACTIVE,
    fn.BORROWERS_ACTIVE,
)


def loan(uscc: str = BORROWER, yuan: str = "100.00", **kw: object) -> LoanState:
    fen = int(Decimal(yuan) * 100)
    return LoanState(
        uscc=uscc, institution_type="bank", band="l1", region="hangzhou", currency="CNY",
        book_rate="1", outstanding=yuan, outstanding_fen=fen, principal_fen=fen,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("days", "risk"),
    [
        (0, "normal"),
        (1, "special_mention"),
        (90, "special_mention"),
        (91, "substandard"),
        (270, "substandard"),
        (271, "doubtful"),
        (360, "doubtful"),
        (361, "loss"),
    ],
)
def test_days_past_due_imply_a_minimum_class(days: int, risk: str) -> None:
    assert book.implied_risk(days) == risk


def test_the_effective_class_is_the_worst_of_reported_implied_and_default() -> None:
    assert book.effective_risk(loan(reported_risk="doubtful", days_past_due=10)) == "doubtful"
    assert book.effective_risk(loan(reported_risk="normal", days_past_due=100)) == "substandard"
    assert book.effective_risk(loan(defaulted=True)) == "substandard"
    assert book.effective_risk(loan(defaulted=True, reported_risk="loss")) == "loss"
    assert book.RISK_ORDER[0] == "normal"
    assert book.RISK_ORDER[-1] == "loss"


def test_contributions_name_the_past_due_bucket_only_when_past_due() -> None:
    current = book.contributions(loan())
    assert [name for name, _, _ in current] == [fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN, fn.LOANS_ACTIVE]
    late = book.contributions(loan(days_past_due=45))
    assert (fn.LOAN_PAST_DUE_PRINCIPAL_YUAN, ("bank", "30_59"), 10_000) in late


def expected_gauges(state: PartitionState) -> dict[str, dict[tuple[str, ...], int]]:
    out: dict[str, dict[tuple[str, ...], int]] = {}
    for one in state.loans.values():
        for name, labels, value in book.contributions(one):
            series = out.setdefault(name, {})
            series[labels] = series.get(labels, 0) + value
    if state.loans:
        out[fn.BORROWERS_ACTIVE] = {(): len({one.uscc for one in state.loans.values()})}
    nonzero = {name: {k: v for k, v in s.items() if v} for name, s in out.items()}
    return {name: s for name, s in nonzero.items() if s}


def gauges(state: PartitionState) -> dict[str, dict[tuple[str, ...], int]]:
    values = state.counters.values
    return {name: dict(values[name]) for name in GAUGES if values.get(name)}


ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "repay", "dpd", "risk", "default", "end"]),
        st.integers(min_value=0, max_value=4),  # which loan id
        st.integers(min_value=0, max_value=400),  # an amount, days or a class index
    ),
    max_size=40,
)


@patient
@given(ops)
def test_gauges_equal_the_sum_of_the_active_loans_contributions(
    steps: list[tuple[str, int, int]],
) -> None:
    state = partition()
    for op, n, x in steps:
        loan_id = f"L{n}"
        active = loan_id in state.loans
        if op == "add":
            if not active:
                uscc = BORROWER if n % 2 else OTHER
                book.add_loan(state, loan_id, loan(uscc, f"{100 + x}.00"))
        elif not active:
            continue
        elif op == "repay":
            left = Decimal(state.loans[loan_id].outstanding)
            book.update_loan(state, loan_id, outstanding=max(left - x, Decimal(0)))
        elif op == "dpd":
            book.update_loan(state, loan_id, days_past_due=x)
        elif op == "risk":
            book.update_loan(state, loan_id, reported_risk=book.RISK_ORDER[x % 5])
        elif op == "default":
            book.update_loan(state, loan_id, defaulted=True)
        else:
            book.end_loan(state, loan_id)
        assert gauges(state) == expected_gauges(state)
        credit: dict[str, int] = {}
        for one in state.loans.values():
            credit[one.uscc] = credit.get(one.uscc, 0) + one.principal_fen
        assert state.borrower_credit == credit
        assert {u: len(ids) for u, ids in state.borrower_loans.items()} == state.borrowers


def test_update_returns_the_change_of_the_cny_outstanding() -> None:
    state = partition()
    book.add_loan(state, "L", loan(yuan="10.00"))
    state.loans["L"].book_rate = "7.1"  # a foreign-currency loan's book rate
    # 4.005 x 7.1 = 28.4355 yuan: 2,843.55 fen rounds to 2,844
    assert book.update_loan(state, "L", outstanding=Decimal("4.005")) == 2_844 - 1_000
    state.loans["L"].book_rate = "1"
    # ties go to the even fen: 1.005 → 100, 1.015 → 102
    assert book.update_loan(state, "L", outstanding=Decimal("1.005")) == 100 - 2_844
    assert book.update_loan(state, "L", outstanding=Decimal("1.015")) == 2
    assert book.update_loan(state, "L", days_past_due=3) == 0
    assert "L" in state.dirty_loans


def test_ending_a_loan_returns_it_and_forgets_the_borrower() -> None:
    state = partition()
    book.add_loan(state, "L", loan())
    ended = book.end_loan(state, "L")
    assert ended.outstanding_fen == 10_000
    assert not state.loans
    assert not state.borrowers
    assert not state.borrower_loans
    assert not state.borrower_credit
    assert gauges(state) == {}
