"""Loan book keeping: lifecycle transitions and the gauges they move.

A loan contributes to the outstanding, past-due and active gauges through one function,
:func:`contributions`; every transition removes the old contributions and adds the new ones,
so gauges can never drift from the loans they describe.
"""

from __future__ import annotations

from decimal import Decimal

from schemas import figure_names as fn
from schemas.enums import RiskClass, dpd_bucket
from schemas.money import to_fen
from streams.state.partition import Counters, LoanState, PartitionState

__all__ = ["RISK_ORDER", "add_loan", "contributions", "effective_risk", "end_loan", "update_loan"]

RISK_ORDER: tuple[str, ...] = tuple(r.value for r in RiskClass)
_RANK = {r: i for i, r in enumerate(RISK_ORDER)}

OUTSTANDING = fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN
PAST_DUE = fn.LOAN_PAST_DUE_PRINCIPAL_YUAN
ACTIVE = fn.LOANS_ACTIVE
BORROWERS = fn.BORROWERS_ACTIVE


def implied_risk(days_past_due: int) -> str:
    """Minimum class implied by days past due (China, 2023 classification rules)."""
    if days_past_due <= 0:
        return RiskClass.normal.value
    if days_past_due <= 90:
        return RiskClass.special_mention.value
    if days_past_due <= 270:
        return RiskClass.substandard.value
    if days_past_due <= 360:
        return RiskClass.doubtful.value
    return RiskClass.loss.value


def effective_risk(loan: LoanState) -> str:
    candidates = [loan.reported_risk, implied_risk(loan.days_past_due)]
    if loan.defaulted:
        candidates.append(RiskClass.substandard.value)
    return max(candidates, key=_RANK.__getitem__)


def contributions(loan: LoanState) -> list[tuple[str, tuple[str, ...], int]]:
    out = [
        (
            OUTSTANDING,
            (loan.institution_type, loan.band, effective_risk(loan)),
            loan.outstanding_fen,
        ),
        (ACTIVE, (loan.institution_type, loan.band), 1),
    ]
    if loan.days_past_due > 0:
        out.append(
            (
                PAST_DUE,
                (loan.institution_type, dpd_bucket(loan.days_past_due).value),
                loan.outstanding_fen,
            )
        )
    return out


def _apply(counters: Counters, loan: LoanState, sign: int) -> None:
    for name, labels, value in contributions(loan):
        counters.add(name, labels, sign * value)


def add_loan(state: PartitionState, loan_id: str, loan: LoanState) -> None:
    state.loans[loan_id] = loan
    state.dirty_loans.add(loan_id)
    _apply(state.counters, loan, +1)
    n = state.borrowers.get(loan.uscc, 0)
    state.borrowers[loan.uscc] = n + 1
    state.borrower_loans.setdefault(loan.uscc, []).append(loan_id)
    credit = state.borrower_credit
    credit[loan.uscc] = credit.get(loan.uscc, 0) + loan.principal_fen
    if n == 0:
        state.counters.add(BORROWERS, (), 1)


def update_loan(
    state: PartitionState,
    loan_id: str,
    *,
    outstanding: Decimal | None = None,
    days_past_due: int | None = None,
    reported_risk: str | None = None,
    defaulted: bool | None = None,
) -> int:
    """Change a loan; returns the change of its CNY outstanding (fen, ≤ 0 for repayments)."""
    loan = state.loans[loan_id]
    _apply(state.counters, loan, -1)
    before = loan.outstanding_fen
    if outstanding is not None:
        loan.outstanding = str(outstanding)
        loan.outstanding_fen = to_fen(outstanding, Decimal(loan.book_rate))
    if days_past_due is not None:
        loan.days_past_due = days_past_due
    if reported_risk is not None:
        loan.reported_risk = reported_risk
    if defaulted is not None:
        loan.defaulted = defaulted
    _apply(state.counters, loan, +1)
    state.dirty_loans.add(loan_id)
    return loan.outstanding_fen - before


def end_loan(state: PartitionState, loan_id: str) -> LoanState:
    """Remove a closed or written-off loan from the book and every gauge."""
    loan = state.loans.pop(loan_id)
    _apply(state.counters, loan, -1)
    state.dirty_loans.add(loan_id)
    ids = state.borrower_loans.get(loan.uscc)
    if ids is not None and loan_id in ids:
        ids.remove(loan_id)
        if not ids:
            del state.borrower_loans[loan.uscc]
    n = state.borrowers.get(loan.uscc, 0) - 1
    credit = state.borrower_credit.get(loan.uscc, 0) - loan.principal_fen
    if credit > 0 and n > 0:
        state.borrower_credit[loan.uscc] = credit
    else:
        state.borrower_credit.pop(loan.uscc, None)
    if n <= 0:
        state.borrowers.pop(loan.uscc, None)
        state.counters.add(BORROWERS, (), -1)
    else:
        state.borrowers[loan.uscc] = n
    return loan
