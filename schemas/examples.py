"""One realistic, fully populated instance of every record type.

Used by docs/events.md (example payloads are these instances, encoded by the codec),
the benchmark and the tests — so an example can never drift from the models.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from schemas.codec import decode, encode
from schemas.enums import (
    Collateral,
    CustomsMode,
    DeadLetterStage,
    Direction,
    InstitutionType,
    LoanChannel,
    RepaymentMethod,
    RiskClass,
    Sector,
    TxChannel,
)
from schemas.errors import SchemaError
from schemas.events import (
    DeadLetter,
    DigitalizationScore,
    DimensionScores,
    FxRate,
    LoanApplicationSubmitted,
    LoanApproved,
    LoanClosed,
    LoanDefaulted,
    LoanDelinquencyChanged,
    LoanDisbursed,
    LoanRejected,
    LoanRepayment,
    LoanRiskClassChanged,
    LoanWithdrawn,
    LoanWrittenOff,
    Record,
    TransactionEvent,
)
from schemas.ids import make_event_id, pseudonymise_account
from schemas.uscc import make_uscc

__all__ = ["EXAMPLE_USCC", "example_events", "example_loan_events"]

EXAMPLE_USCC = make_uscc("330106", "MA2CDL8K")
"""A Hangzhou (Xihu district) enterprise."""

_AT = datetime(2024, 5, 6, 1, 30, tzinfo=UTC)
_KEY = b"example-pseudonymisation-key"


def _loan_common(event_type: str, minute: int) -> dict[str, object]:
    return {
        "event_id": make_event_id("zjrcb", "loan-feed-20240506", "LN-2024-000173", event_type),
        "source": "zjrcb",
        "institution_type": InstitutionType.bank,
        "occurred_at": _AT.replace(minute=minute),
        "enterprise_uscc": EXAMPLE_USCC,
        "loan_id": "LN-2024-000173",
        "application_id": "APP-2024-004411",
        "lender_id": "zjrcb",
        "channel": LoanChannel.online,
    }


def example_loan_events() -> list[Record]:
    """One instance per loan lifecycle `event_type`, in lifecycle order."""
    cny = "CNY"
    return [
        LoanApplicationSubmitted(
            **_loan_common("application_submitted", 1),
            principal=Decimal("1500000.00"),
            currency=cny,
            annual_rate=Decimal("0.0435"),
            term_months=24,
            collateral=Collateral.guarantee,
            inclusive_sme=True,
        ),
        LoanApproved(
            **_loan_common("approved", 2),
            principal=Decimal("1200000.00"),
            currency=cny,
            annual_rate=Decimal("0.0420"),
        ),
        LoanRejected(**_loan_common("rejected", 3), reason="insufficient cash flow history"),
        LoanWithdrawn(**_loan_common("withdrawn", 4)),
        LoanDisbursed(
            **{**_loan_common("disbursed", 5), "institution_type": InstitutionType.joint},
            principal=Decimal("1200000.00"),
            currency=cny,
            annual_rate=Decimal("0.0420"),
            term_months=24,
            collateral=Collateral.guarantee,
            inclusive_sme=True,
            repayment_method=RepaymentMethod.equal_installment,
            partner_share=Decimal("0.30"),
        ),
        LoanRepayment(
            **_loan_common("repayment", 6),
            principal_amount=Decimal("47619.05"),
            interest_amount=Decimal("4200.00"),
            currency=cny,
        ),
        LoanDelinquencyChanged(**_loan_common("delinquency_changed", 7), days_past_due=35),
        LoanRiskClassChanged(
            **_loan_common("risk_class_changed", 8), risk_class=RiskClass.special_mention
        ),
        LoanDefaulted(**_loan_common("defaulted", 9)),
        LoanWrittenOff(
            **_loan_common("written_off", 10), amount=Decimal("350000.00"), currency=cny
        ),
        LoanClosed(**_loan_common("closed", 11)),
    ]


def example_events() -> list[Record]:
    """Transaction, every loan event, score, FX rate and a dead letter."""
    transaction = TransactionEvent(
        event_id=make_event_id("icbc-zj", "camt053-20240506-0001", "NTRY-000042"),
        source="icbc-zj",
        institution_type=InstitutionType.bank,
        occurred_at=_AT,
        enterprise_uscc=EXAMPLE_USCC,
        direction=Direction.credit,
        amount=Decimal("25600.00"),
        currency="USD",
        booking_date=date(2024, 5, 6),
        value_date=date(2024, 5, 6),
        bank_tx_code="PMNT/RCDT/XBCT",
        counterparty_country="US",
        channel=TxChannel.online,
        customs_mode=CustomsMode("9610"),
        account_ref=pseudonymise_account("6222 0212 3456 7890 123", _KEY),
        description="cross-border e-commerce settlement, order batch 0506",
    )
    assessed = datetime(2024, 3, 31, 16, 0, tzinfo=UTC)
    score = DigitalizationScore(
        event_id=make_event_id("zj-eitc", "assessment-2024Q1", EXAMPLE_USCC),
        source="zj-eitc",
        institution_type=InstitutionType.bank,
        occurred_at=assessed,
        enterprise_uscc=EXAMPLE_USCC,
        framework="miit_sme_2022",
        overall_score=Decimal("63.5"),
        dimensions=DimensionScores(
            foundation=Decimal("70"),
            operations=Decimal("61.5"),
            management=Decimal("58"),
            outcomes=Decimal("64.5"),
        ),
        level="L3",
        assessed_at=assessed,
        valid_until=date(2026, 3, 31),
        industry_section=Sector.C,
    )
    fx = FxRate(
        event_id=make_event_id("cfets", "central-parity", "USD", "2024-05-06"),
        source="cfets",
        currency="USD",
        rate_date=date(2024, 5, 6),
        rate_to_cny=Decimal("7.1006"),
        published_at=datetime(2024, 5, 6, 1, 15, tzinfo=UTC),
    )
    bad = encode(transaction).replace(b'"25600.00"', b"25600.5")
    try:
        decode(bad)
    except SchemaError as exc:
        error = exc
    else:
        raise AssertionError("the dead-letter example payload must be invalid")
    dead = DeadLetter.from_failure(
        bad,
        error,
        stage=DeadLetterStage.ingress,
        first_seen=datetime(2024, 5, 6, 1, 30, 2, tzinfo=UTC),
        topic="dfip.transactions",
        partition=7,
        offset=118204,
        key=EXAMPLE_USCC.encode(),
    )
    return [transaction, *example_loan_events(), score, fx, dead]
