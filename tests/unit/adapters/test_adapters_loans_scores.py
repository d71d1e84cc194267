"""Loan lifecycle JSON lines and digitalisation-assessment CSV."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from schemas import (
    DigitalizationBand,
    InstitutionType,
    LoanDisbursed,
    LoanEventType,
    LoanRepayment,
    make_event_id,
)


def test_loan_lifecycle(parse) -> None:
    parsed = parse("loans", "loans.jsonl")
    assert [e.event_type for e in parsed.events] == [
        LoanEventType.application_submitted,
        LoanEventType.approved,
        LoanEventType.disbursed,
        LoanEventType.repayment,
        LoanEventType.application_submitted,
        LoanEventType.disbursed,
        LoanEventType.delinquency_changed,
        LoanEventType.risk_class_changed,
        LoanEventType.rejected,
    ]
    disbursed = parsed.events[2]
    assert isinstance(disbursed, LoanDisbursed)
    assert disbursed.event_id == make_event_id("TEST-BANK", "ZJ-L-2024-000117", "DISB-000117")
    assert disbursed.lender_id == "TEST-BANK"
    repayment = parsed.events[3]
    assert isinstance(repayment, LoanRepayment)
    assert repayment.principal_amount == Decimal("245340.12")  # a JSON number, read exactly
    assert repayment.interest_amount == Decimal("9625.00")
    joint = parsed.events[5]
    assert joint.institution_type is InstitutionType.joint
    assert joint.partner_share == Decimal("0.70")
    assert joint.lender_id == "WEBANK-ZJ"
    rejected_application = parsed.events[8]
    assert rejected_application.loan_id == "ZJ-A-2024-000118"  # defaults to the application id
    assert rejected_application.event_id == make_event_id(
        "TEST-BANK", "ZJ-A-2024-000118", "rejected@2024-03-05T03:20:00Z"
    )
    assert parsed.parser.stats.entries == 13  # the blank line is not an entry
    reasons = {r.location.rsplit(":", 1)[1]: (r.field, r.error_class) for r in parsed.rejected}
    assert reasons == {
        "11": ("borrower_uscc", "invalid_field"),
        "12": ("annual_rate", "invalid_field"),
        "13": ("(line)", "invalid_json"),
        "14": ("event_type", "invalid_field"),
    }


def test_loan_lines_in_another_time_zone(tmp_path: Path, parse) -> None:
    path = tmp_path / "loans.jsonl"
    path.write_text(
        '{"event_type":"withdrawn","application_id":"A1","borrower_uscc":"91330106MA2H3K4P70",'
        '"channel":"online","occurred_at":"2024-03-05 08:00:00"}\n',
        encoding="utf-8",
    )
    [event] = parse("loans", path).events
    assert event.occurred_at.isoformat() == "2024-03-05T00:00:00+00:00"  # Beijing by default
    [event] = parse("loans", path, timezone="UTC").events
    assert event.occurred_at.isoformat() == "2024-03-05T08:00:00+00:00"


def test_empty_jsonl(tmp_path: Path, parse) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    [rejected] = parse("loans", path).rejected
    assert rejected.reason == "empty file"


def test_scores(parse) -> None:
    parsed = parse("scores", "scores.csv")
    assert [(e.enterprise_uscc, e.band) for e in parsed.events] == [
        ("91330106MA2H3K4P70", DigitalizationBand.l3),
        ("91330203MA2B7Q1X6F", DigitalizationBand.l2),
        ("91330302MA2CXW5D79", DigitalizationBand.l2),
        ("91330782MA28N9T37W", DigitalizationBand.l0),
    ]
    second = parsed.events[1]
    assert second.assessed_at.isoformat() == "2024-01-15T02:00:00+00:00"
    assert second.dimensions.management is None
    assert [(r.field, r.location.rsplit(":", 1)[1]) for r in parsed.rejected] == [
        ("overall_score", "6"),
        ("uscc", "7"),  # bad check character
        ("valid_until", "8"),
    ]


def test_scores_with_chinese_headers(parse) -> None:
    parsed = parse("scores", "scores_zh.csv")
    assert [e.level for e in parsed.events] == ["1.0", "L4"]
    assert parsed.events[0].framework == "zj_industrial"


def test_scores_missing_columns(tmp_path: Path, parse) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("uscc,overall_score\n91330106MA2H3K4P70,50\n", encoding="utf-8")
    [rejected] = parse("scores", path).rejected
    assert rejected.field == "(header)"
    assert "framework" in rejected.reason
