"""Inclusive SME principal: total credit per borrower of CNY 10 million or less, inclusive."""

from __future__ import annotations

from schemas.events import LoanClosed
from streams.processor import LOANS
from tests.unit.streams.helpers import disbursed, feed, loan_common, processor, t, value

SME = "dfip_loan_inclusive_sme_disbursed_principal_yuan_total"


def test_the_borrowers_total_credit_decides_inclusively() -> None:
    proc = processor()
    feed(proc, LOANS, disbursed(t("09:00"), "A", "6000000.00"))
    assert value(proc, SME) == 600_000_000  # 6 million: in
    feed(proc, LOANS, disbursed(t("10:00"), "B", "4000000.00"))
    assert value(proc, SME) == 1_000_000_000  # total exactly 10 million: still in
    feed(proc, LOANS, disbursed(t("11:00"), "C", "0.01"))
    assert value(proc, SME) == 1_000_000_000  # 10,000,000.01 in total: not inclusive
    # A closes: its credit no longer counts for the borrower's total
    feed(proc, LOANS, LoanClosed(**loan_common(t("12:00"), "A")))
    feed(proc, LOANS, disbursed(t("13:00"), "D", "5999999.99"))
    assert value(proc, SME) == 1_000_000_000 + 599_999_999  # 4M + 0.01 + 5,999,999.99 = 10M


def test_a_loan_not_flagged_inclusive_is_never_counted() -> None:
    proc = processor()
    feed(proc, LOANS, disbursed(t("09:00"), "A", "100.00", inclusive=False))
    assert value(proc, SME) == 0
    assert value(proc, "dfip_loan_disbursed_principal_yuan_total") == 10_000
