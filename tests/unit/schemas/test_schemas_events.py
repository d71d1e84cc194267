"""Every model: the example is valid; each invalid case gives SchemaError at the right path."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest

from schemas import (
    DeadLetter,
    DigitalizationBand,
    DigitalizationScore,
    DimensionScores,
    DpdBucket,
    FxRate,
    LoanDelinquencyChanged,
    LoanDisbursed,
    Region,
    SchemaError,
    TransactionEvent,
    decode,
    decode_as,
    encode,
)
from schemas.examples import EXAMPLE_USCC, example_events

EXAMPLES = {type(e).__name__: e for e in example_events()}


def payload(name: str, **changes: Any) -> dict[str, Any]:
    data = orjson.loads(encode(EXAMPLES[name]))
    for key, value in changes.items():
        if value is _DROP:
            data.pop(key)
        elif key == "dimensions":
            data["dimensions"] = {**data["dimensions"], **value}
        else:
            data[key] = value
    return data


_DROP = object()


def reject(name: str, data: dict[str, Any]) -> SchemaError:
    raw = orjson.dumps(data)
    model = DeadLetter if name == "DeadLetter" else None
    with pytest.raises(SchemaError) as info:
        decode_as(raw, model) if model else decode(raw)
    return info.value


def test_every_example_model_is_valid_and_frozen():
    assert len(EXAMPLES) == 15  # transaction, 11 loan events, score, fx, dead letter
    for event in EXAMPLES.values():
        with pytest.raises(Exception, match="frozen"):
            event.event_id = "other"  # type: ignore[misc]


CASES: list[tuple[str, dict[str, Any], str]] = [
    # envelope (checked on TransactionEvent; every envelope model shares the field types)
    ("TransactionEvent", {"event_id": ""}, "event_id"),
    ("TransactionEvent", {"event_id": "has space"}, "event_id"),
    ("TransactionEvent", {"event_id": "x" * 129}, "event_id"),
    ("TransactionEvent", {"source": ""}, "source"),
    ("TransactionEvent", {"source": "银行"}, "source"),
    ("TransactionEvent", {"institution_type": "insurer"}, "institution_type"),
    ("TransactionEvent", {"occurred_at": "2024-05-06T01:30:00"}, "occurred_at"),
    ("TransactionEvent", {"occurred_at": "2024-05-06"}, "occurred_at"),
    ("TransactionEvent", {"occurred_at": 1714959000}, "occurred_at"),
    ("TransactionEvent", {"occurred_at": "yesterday"}, "occurred_at"),
    ("TransactionEvent", {"enterprise_uscc": EXAMPLE_USCC[:-1] + "0"}, "enterprise_uscc"),
    ("TransactionEvent", {"enterprise_uscc": "123"}, "enterprise_uscc"),
    ("TransactionEvent", {"enterprise_uscc": None}, "enterprise_uscc"),
    # transaction fields
    ("TransactionEvent", {"direction": "sideways"}, "direction"),
    ("TransactionEvent", {"amount": "-0.01"}, "amount"),  # zero is allowed: the entry says so
    ("TransactionEvent", {"amount": "-5.00"}, "amount"),
    ("TransactionEvent", {"amount": 12.5}, "amount"),
    ("TransactionEvent", {"amount": "1e3"}, "amount"),
    ("TransactionEvent", {"amount": "1,000.00"}, "amount"),
    ("TransactionEvent", {"amount": "NaN"}, "amount"),
    ("TransactionEvent", {"amount": True}, "amount"),
    ("TransactionEvent", {"amount": 10**15}, "amount"),
    ("TransactionEvent", {"amount": _DROP}, "amount"),
    ("TransactionEvent", {"currency": "XXX"}, "currency"),
    ("TransactionEvent", {"currency": "usd"}, "currency"),
    ("TransactionEvent", {"booking_date": "06/05/2024"}, "booking_date"),
    ("TransactionEvent", {"value_date": "2024-02-30"}, "value_date"),
    ("TransactionEvent", {"bank_tx_code": "x" * 36}, "bank_tx_code"),
    ("TransactionEvent", {"counterparty_country": "usa"}, "counterparty_country"),
    ("TransactionEvent", {"channel": "fax"}, "channel"),
    ("TransactionEvent", {"customs_mode": "9999"}, "customs_mode"),
    ("TransactionEvent", {"customs_mode": 9610}, "customs_mode"),
    ("TransactionEvent", {"account_ref": "6222021234567890123"}, "account_ref"),
    ("TransactionEvent", {"description": "x" * 141}, "description"),
    ("TransactionEvent", {"iban": "DE89370400440532013000"}, "iban"),
    # loans
    ("LoanApplicationSubmitted", {"loan_id": ""}, "loan_id"),
    ("LoanApplicationSubmitted", {"application_id": _DROP}, "application_id"),
    ("LoanApplicationSubmitted", {"lender_id": "a b"}, "lender_id"),
    ("LoanApplicationSubmitted", {"channel": "mobile"}, "channel"),
    ("LoanApplicationSubmitted", {"annual_rate": "1.5"}, "annual_rate"),
    ("LoanApplicationSubmitted", {"annual_rate": 0.0435}, "annual_rate"),
    ("LoanApplicationSubmitted", {"term_months": 0}, "term_months"),
    ("LoanApplicationSubmitted", {"term_months": "12"}, "term_months"),
    ("LoanApplicationSubmitted", {"term_months": 12.0}, "term_months"),
    ("LoanApplicationSubmitted", {"collateral": "house"}, "collateral"),
    ("LoanApplicationSubmitted", {"inclusive_sme": "yes"}, "inclusive_sme"),
    ("LoanApplicationSubmitted", {"inclusive_sme": 1}, "inclusive_sme"),
    ("LoanApproved", {"principal": _DROP}, "principal"),
    ("LoanApproved", {"currency": "RMB"}, "currency"),
    ("LoanRejected", {"reason": "x" * 141}, "reason"),
    ("LoanWithdrawn", {"principal": "1.00"}, "principal"),
    ("LoanDisbursed", {"partner_share": "0.2"}, "partner_share"),
    ("LoanDisbursed", {"partner_share": "1.01"}, "partner_share"),
    ("LoanDisbursed", {"institution_type": "bank"}, "partner_share"),
    ("LoanDisbursed", {"repayment_method": "balloon"}, "repayment_method"),
    ("LoanRepayment", {"principal_amount": "-1"}, "principal_amount"),
    ("LoanRepayment", {"interest_amount": _DROP}, "interest_amount"),
    ("LoanDelinquencyChanged", {"days_past_due": -1}, "days_past_due"),
    ("LoanDelinquencyChanged", {"days_past_due": "35"}, "days_past_due"),
    ("LoanRiskClassChanged", {"risk_class": "bad"}, "risk_class"),
    ("LoanDefaulted", {"days_past_due": 91}, "days_past_due"),
    ("LoanWrittenOff", {"amount": "0"}, "amount"),
    ("LoanClosed", {"channel": None}, "channel"),
    # digitalisation score
    ("DigitalizationScore", {"overall_score": "100.01"}, "overall_score"),
    ("DigitalizationScore", {"overall_score": "-1"}, "overall_score"),
    ("DigitalizationScore", {"overall_score": 63.5}, "overall_score"),
    ("DigitalizationScore", {"dimensions": {"foundation": "-1"}}, "dimensions.foundation"),
    ("DigitalizationScore", {"dimensions": {"outcomes": "101"}}, "dimensions.outcomes"),
    ("DigitalizationScore", {"dimensions": {"culture": "50"}}, "dimensions.culture"),
    ("DigitalizationScore", {"framework": "MIIT 2022"}, "framework"),
    ("DigitalizationScore", {"level": ""}, "level"),
    ("DigitalizationScore", {"industry_section": "Z"}, "industry_section"),
    ("DigitalizationScore", {"assessed_at": "2024-04-01T00:00:00Z"}, "assessed_at"),
    ("DigitalizationScore", {"valid_until": "2024-03-30"}, "valid_until"),
    # fx
    ("FxRate", {"rate_to_cny": "0"}, "rate_to_cny"),
    ("FxRate", {"rate_to_cny": 7.1}, "rate_to_cny"),
    ("FxRate", {"currency": "ABC"}, "currency"),
    ("FxRate", {"published_at": "2024-05-06T01:15:00"}, "published_at"),
    ("FxRate", {"rate_date": "2024-13-01"}, "rate_date"),
    ("FxRate", {"enterprise_uscc": EXAMPLE_USCC}, "enterprise_uscc"),
    # dead letter
    ("DeadLetter", {"stage": "nowhere"}, "stage"),
    ("DeadLetter", {"partition": -1}, "partition"),
    ("DeadLetter", {"offset": "12"}, "offset"),
    ("DeadLetter", {"original_b64": "not base64!"}, "original_b64"),
    ("DeadLetter", {"error_class": "Bad Class"}, "error_class"),
    ("DeadLetter", {"first_seen": _DROP}, "first_seen"),
]


@pytest.mark.parametrize(("name", "changes", "path"), CASES)
def test_invalid_field_names_its_path(name, changes, path):
    err = reject(name, payload(name, **changes))
    assert err.error_class == "invalid_field"
    assert path in [e.path for e in err.errors], str(err)
    for e in err.errors:
        assert len(e.value) <= 80
    assert path in str(err)


def test_values_of_account_fields_are_masked_in_errors():
    err = reject("TransactionEvent", payload("TransactionEvent", iban="DE89370400440532013000"))
    assert "DE89" not in str(err)
    err = reject("TransactionEvent", payload("TransactionEvent", account_ref="6222021234567890"))
    assert "6222" not in str(err)


def test_long_values_are_truncated_in_errors():
    err = reject("TransactionEvent", payload("TransactionEvent", description="é" * 5000))
    (field,) = err.errors
    assert field.path == "description"
    assert len(field.value) == 80


def _tx(**changes: Any) -> TransactionEvent:
    base = EXAMPLES["TransactionEvent"].model_dump()
    base.pop("kind")
    base.pop("schema_version")
    return TransactionEvent(**{**base, **changes})


def test_python_construction_fills_constants_and_raises_schema_error():
    event = _tx()
    assert event == EXAMPLES["TransactionEvent"]
    assert event.kind == "transaction"
    assert event.schema_version == 1
    with pytest.raises(SchemaError) as info:
        _tx(amount=Decimal("-1"), currency="XXX")
    assert [e.path for e in info.value.errors] == ["amount", "currency"]


def test_python_construction_is_lenient_about_types_but_not_floats():
    event = _tx(amount="12.5", booking_date="2024-05-06", channel="mobile")
    assert event.amount == Decimal("12.5")
    assert event.booking_date == date(2024, 5, 6)
    assert _tx(amount=Decimal("1E+2")).amount == Decimal(100)
    with pytest.raises(SchemaError, match="not a float"):
        _tx(amount=12.5)
    with pytest.raises(SchemaError):
        _tx(amount=Decimal("Infinity"))
    with pytest.raises(SchemaError):
        _tx(amount=Decimal("1E+20"))


def test_occurred_at_is_normalised_to_utc():
    plus8 = timezone(timedelta(hours=8))
    event = _tx(occurred_at=datetime(2024, 5, 6, 9, 30, tzinfo=plus8))
    assert event.occurred_at == datetime(2024, 5, 6, 1, 30, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC
    raw = orjson.loads(encode(event))
    assert raw["occurred_at"] == "2024-05-06T01:30:00Z"
    wire = payload("TransactionEvent", occurred_at="2024-05-06T09:30:00+08:00")
    assert decode(orjson.dumps(wire)).occurred_at.tzinfo is UTC
    with pytest.raises(SchemaError, match="timezone"):
        _tx(occurred_at=datetime(2024, 5, 6, 9, 30))


def test_extreme_offsets_that_leave_the_datetime_range_are_rejected():
    wire = payload("TransactionEvent", occurred_at="0001-01-01T00:00:00+08:00")
    assert reject("TransactionEvent", wire).errors[0].path == "occurred_at"


def test_uscc_is_normalised_and_region_derived():
    event = _tx(enterprise_uscc=EXAMPLE_USCC.lower())
    assert event.enterprise_uscc == EXAMPLE_USCC
    assert event.region is Region.hangzhou


def test_wire_requires_kind_and_schema_version():
    for key in ("kind", "schema_version"):
        data = payload("TransactionEvent", **{key: _DROP})
        with pytest.raises(SchemaError) as info:
            decode(orjson.dumps(data))
        assert info.value.errors[0].path == key
        with pytest.raises(SchemaError):
            decode_as(orjson.dumps(data), TransactionEvent)


def test_loan_properties():
    dpd = EXAMPLES["LoanDelinquencyChanged"]
    assert isinstance(dpd, LoanDelinquencyChanged)
    assert dpd.dpd_bucket is DpdBucket.d30_59
    disbursed = EXAMPLES["LoanDisbursed"]
    assert isinstance(disbursed, LoanDisbursed)
    assert disbursed.partner_share == Decimal("0.30")


def test_score_band_and_dimensions():
    score = EXAMPLES["DigitalizationScore"]
    assert isinstance(score, DigitalizationScore)
    assert score.band is DigitalizationBand.l3
    assert score.dimensions.foundation == Decimal(70)
    assert DimensionScores() == DimensionScores(foundation=None)
    with pytest.raises(SchemaError) as info:
        DimensionScores(foundation=Decimal(101))
    assert info.value.errors[0].path == "foundation"


def test_fx_key():
    fx = EXAMPLES["FxRate"]
    assert isinstance(fx, FxRate)
    assert fx.key == "USD:2024-05-06"


def test_dead_letter_from_failure():
    dead = EXAMPLES["DeadLetter"]
    assert isinstance(dead, DeadLetter)
    assert dead.error_class == "invalid_field"
    assert dead.reason.startswith("invalid_field: amount:")
    assert b'"amount":25600.5' in dead.original
    again = DeadLetter.from_failure(
        dead.original,
        ValueError("x"),
        stage="ingress",
        first_seen=datetime(2024, 1, 1, tzinfo=UTC),
        topic="dfip.transactions",
        partition=7,
        offset=118204,
    )
    assert again.event_id == dead.event_id  # deterministic from topic/partition/offset
    assert again.error_class == "processing_error"
    by_bytes = DeadLetter.from_failure(
        b"abc", RuntimeError(), stage="adapter", first_seen=datetime(2024, 1, 1, tzinfo=UTC)
    )
    assert by_bytes.reason == "RuntimeError"
    long = DeadLetter.from_failure(
        b"abc", ValueError("x" * 10_000), stage="join", first_seen=datetime.now(UTC)
    )
    assert len(long.reason) == DeadLetter.MAX_REASON
