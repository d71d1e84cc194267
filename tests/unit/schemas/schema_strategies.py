"""Hypothesis strategies that build valid DFIP events of every type (shared by tests)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from schemas import (
    SUPPORTED_CURRENCIES,
    Collateral,
    CustomsMode,
    DeadLetter,
    DeadLetterStage,
    DigitalizationScore,
    DimensionScores,
    Direction,
    FxRate,
    InstitutionType,
    LoanChannel,
    LoanEventType,
    RepaymentMethod,
    RiskClass,
    Sector,
    TransactionEvent,
    TxChannel,
    make_uscc,
    pseudonymise_account,
)
from schemas.events import LOAN_EVENT_CLASSES
from schemas.uscc import ZHEJIANG_PREFECTURES

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"

event_ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64)
identifiers = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,30}", fullmatch=True)
divisions = st.one_of(
    st.sampled_from(sorted(ZHEJIANG_PREFECTURES)).flatmap(
        lambda p: st.from_regex(rf"{p}[0-9]{{2}}", fullmatch=True)
    ),
    st.from_regex(r"[0-9]{6}", fullmatch=True),
)
usccs = st.builds(
    make_uscc,
    divisions,
    st.text(st.sampled_from(USCC_ALPHABET), min_size=8, max_size=8),
    authority=st.sampled_from("0123456789"),
    entity_type=st.sampled_from("0123456789"),
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
aware_datetimes = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets
)
utc_datetimes = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 1, 1))
texts = st.text(min_size=1, max_size=140)
currencies = st.sampled_from(sorted(SUPPORTED_CURRENCIES))


@st.composite
def decimals(
    draw: st.DrawFn, *, max_int_digits: int = 15, places: int = 8, positive: bool = True
) -> Decimal:
    """Wire-representable decimals (built from text, as a bank file would give them)."""
    whole = draw(st.integers(min_value=0, max_value=10**max_int_digits - 1))
    frac_len = draw(st.integers(min_value=0, max_value=places))
    frac = draw(st.text("0123456789", min_size=frac_len, max_size=frac_len))
    value = Decimal(f"{whole}.{frac}" if frac else str(whole))
    if positive and value == 0:
        value = Decimal("0.01")
    return value


def bounded(low: str, high: str, places: int = 4) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=Decimal(low), max_value=Decimal(high), places=places)


amounts = decimals()
non_negative = decimals(positive=False)
rates = bounded("0", "1", 6)


def _make(model: type[Any]) -> Any:
    # Call the model through a plain function: st.builds(Model) would make hypothesis
    # infer the wire constants (kind, schema_version) that the constructor fills in.
    def build(**fields: Any) -> Any:
        return model(**fields)

    return build


def _envelope() -> dict[str, st.SearchStrategy[object]]:
    return {
        "event_id": event_ids,
        "source": identifiers,
        "institution_type": st.sampled_from(InstitutionType),
        "occurred_at": aware_datetimes,
        "enterprise_uscc": usccs,
    }


transactions = st.builds(
    _make(TransactionEvent),
    **_envelope(),
    direction=st.sampled_from(Direction),
    amount=amounts,
    currency=currencies,
    booking_date=dates,
    value_date=dates,
    bank_tx_code=st.none() | st.text(min_size=1, max_size=35),
    counterparty_country=st.none() | st.from_regex(r"[A-Z]{2}", fullmatch=True),
    channel=st.sampled_from(TxChannel),
    customs_mode=st.none() | st.sampled_from(CustomsMode),
    account_ref=st.none()
    | st.builds(pseudonymise_account, st.from_regex(r"[0-9]{8,20}", fullmatch=True), st.just(b"k")),
    description=st.none() | texts,
)

_LOAN_EXTRA: dict[LoanEventType, dict[str, st.SearchStrategy[object]]] = {
    LoanEventType.application_submitted: {
        "principal": amounts,
        "currency": currencies,
        "annual_rate": rates,
        "term_months": st.integers(1, 600),
        "collateral": st.sampled_from(Collateral),
        "inclusive_sme": st.booleans(),
    },
    LoanEventType.approved: {"principal": amounts, "currency": currencies, "annual_rate": rates},
    LoanEventType.rejected: {"reason": st.none() | texts},
    LoanEventType.disbursed: {
        "principal": amounts,
        "currency": currencies,
        "annual_rate": rates,
        "term_months": st.integers(1, 600),
        "collateral": st.sampled_from(Collateral),
        "inclusive_sme": st.booleans(),
        "repayment_method": st.sampled_from(RepaymentMethod),
    },
    LoanEventType.repayment: {
        "principal_amount": non_negative,
        "interest_amount": non_negative,
        "currency": currencies,
    },
    LoanEventType.delinquency_changed: {"days_past_due": st.integers(0, 100_000)},
    LoanEventType.risk_class_changed: {"risk_class": st.sampled_from(RiskClass)},
    LoanEventType.written_off: {"amount": amounts, "currency": currencies},
}


def _loan(event_type: LoanEventType) -> st.SearchStrategy[object]:
    fields = {
        **_envelope(),
        "loan_id": identifiers,
        "application_id": identifiers,
        "lender_id": identifiers,
        "channel": st.sampled_from(LoanChannel),
        **_LOAN_EXTRA.get(event_type, {}),
    }
    if event_type is LoanEventType.disbursed:
        # A partner share exists only for joint lending.
        joint = st.builds(
            _make(LOAN_EVENT_CLASSES[event_type]),
            **{**fields, "institution_type": st.just(InstitutionType.joint)},
            partner_share=st.none() | bounded("0.3", "1", 4),
        )
        return st.builds(_make(LOAN_EVENT_CLASSES[event_type]), **fields) | joint
    return st.builds(_make(LOAN_EVENT_CLASSES[event_type]), **fields)


loans = st.one_of([_loan(t) for t in LoanEventType])

scores_0_100 = bounded("0", "100", 2)


@st.composite
def digitalization_scores(draw: st.DrawFn) -> DigitalizationScore:
    assessed = draw(aware_datetimes)
    valid_until = draw(st.none() | st.dates(min_value=date(2101, 1, 1), max_value=date(2200, 1, 1)))
    return DigitalizationScore(
        **{k: draw(v) for k, v in _envelope().items() if k != "occurred_at"},
        occurred_at=assessed,
        framework=draw(st.from_regex(r"[a-z0-9_]{1,20}", fullmatch=True)),
        overall_score=draw(scores_0_100),
        dimensions=DimensionScores(
            **{
                name: draw(st.none() | scores_0_100)
                for name in ("foundation", "operations", "management", "outcomes")
            }
        ),
        level=draw(st.text(min_size=1, max_size=16)),
        assessed_at=assessed,
        valid_until=valid_until,
        industry_section=draw(st.sampled_from(Sector)),
    )


fx_rates = st.builds(
    _make(FxRate),
    event_id=event_ids,
    source=identifiers,
    currency=currencies,
    rate_date=dates,
    rate_to_cny=decimals(max_int_digits=6),
    published_at=aware_datetimes,
)

dead_letters = st.builds(
    DeadLetter.from_failure,
    st.binary(max_size=200),
    st.builds(ValueError, st.text(max_size=100)),
    stage=st.sampled_from(DeadLetterStage),
    first_seen=aware_datetimes,
    topic=st.none() | st.just("dfip.transactions"),
    partition=st.none() | st.integers(0, 11),
    offset=st.none() | st.integers(0, 2**62),
    key=st.none() | st.binary(max_size=30),
    source_location=st.none() | st.just("statement.xml#/Ntry[3]"),
)

events = st.one_of(transactions, loans, digitalization_scores(), fx_rates)
"""Any valid ingress event."""

records = st.one_of(events, dead_letters)
