"""`schemas.loan_wire.decode_loan` (msgspec) accepts only what the models accept, and gives
exactly the models' instance: for every payload it takes, `codec.decode` gives an event of
the same class whose ``__dict__`` (values, types, order, Decimal text, UTC datetimes) and
``model_fields_set`` are equal; every payload it refuses is left to `codec.decode`, which
words the error as before."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schema_strategies import loans
from test_wire_decode import FIELD_VALUES, amount_values, json_values, odd_strings, time_texts

from schemas import SchemaError, codec, encode
from schemas.events import LoanEventBase
from schemas.examples import example_loan_events
from schemas.loan_wire import decode_loan

SETTINGS = settings(
    max_examples=int(os.environ.get("DFIP_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
VALID = [encode(e) for e in example_loan_events()]
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,63}")


def fast(raw: bytes) -> LoanEventBase | None:
    try:
        return decode_loan(raw)
    except Exception:
        return None


def reference(raw: bytes) -> Any:
    try:
        return codec.decode(raw)
    except SchemaError as exc:
        return exc


def assert_equal(got: LoanEventBase, want: Any) -> None:
    assert type(got) is type(want), want
    assert list(got.__dict__) == list(want.__dict__)
    for name, b in want.__dict__.items():
        a = got.__dict__[name]
        assert type(a) is type(b), name
        assert a == b, name
        if isinstance(a, Decimal):
            assert str(a) == str(b), name
        if isinstance(a, datetime):
            assert a.tzinfo is UTC, name
            assert b.tzinfo is UTC, name
    assert got.model_fields_set == want.model_fields_set
    assert got.__pydantic_extra__ == want.__pydantic_extra__
    assert got.__pydantic_private__ == want.__pydantic_private__
    assert got == want
    assert encode(got) == encode(want)


def check(raw: bytes) -> LoanEventBase | None:
    got = fast(raw)
    if got is not None:
        assert_equal(got, reference(raw))
    return got


LOAN_VALUES: dict[str, st.SearchStrategy[Any]] = {
    **FIELD_VALUES,
    "kind": st.sampled_from(["loan", "transaction", "Loan", ""]),
    "event_type": st.sampled_from(
        [
            "application_submitted",
            "approved",
            "rejected",
            "withdrawn",
            "disbursed",
            "repayment",
            "delinquency_changed",
            "risk_class_changed",
            "defaulted",
            "written_off",
            "closed",
            "Approved",
            "",
            "other",
            1,
            None,
        ]
    ),
    "loan_id": st.one_of(
        odd_strings, st.sampled_from(["LN-1", "a:b/c.d-e_f", "-x", "x" * 64, "x" * 65, "ab\n"])
    ),
    "channel": st.sampled_from(["branch", "online", "platform", "mobile", "ONLINE", None]),
    "principal": amount_values,
    "principal_amount": amount_values,
    "interest_amount": amount_values,
    "annual_rate": st.one_of(amount_values, st.sampled_from(["0", "1", "1.0001", "0.5", 1, 2])),
    "partner_share": st.one_of(
        st.none(), amount_values, st.sampled_from(["0.3", "0.29", "1", "1.01", 1, 0])
    ),
    "term_months": st.sampled_from([1, 600, 0, 601, 12.0, "12", True, None]),
    "collateral": st.sampled_from(["credit", "mortgage", "Credit", "", None]),
    "inclusive_sme": st.sampled_from([True, False, 1, 0, "true", None]),
    "repayment_method": st.sampled_from(["bullet", "equal_installment", "Bullet", None]),
    "reason": st.one_of(st.none(), odd_strings, st.just("r" * 140), st.just("r" * 141)),
    "days_past_due": st.sampled_from([0, 100_000, 100_001, -1, 5.0, "5", True, None]),
    "risk_class": st.sampled_from(["normal", "loss", "Loss", "", None]),
    "institution_type": st.sampled_from(["bank", "fintech", "joint", "Joint", "", 1]),
}
LOAN_VALUES["application_id"] = LOAN_VALUES["lender_id"] = LOAN_VALUES["loan_id"]
LOAN_VALUES["amount"] = amount_values
NAMES = sorted({name for raw in VALID for name in orjson.loads(raw)} | {"partner_share", "reason"})


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid loan event with fields replaced, dropped or added, keys duplicated (the last
    one counts), or the bytes broken."""
    obj = orjson.loads(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from([*NAMES, "extra"]))
        action = draw(st.sampled_from(["set", "set", "drop", "dup"]))
        value = draw(LOAN_VALUES.get(name, json_values))
        if action == "drop":
            obj.pop(name, None)
        else:
            obj[name] = value
    text = json.dumps(obj)
    if draw(st.booleans()):
        name = draw(st.sampled_from(NAMES))
        dup = json.dumps(draw(LOAN_VALUES.get(name, json_values)))
        if draw(st.booleans()):
            text = f'{{"{name}": {dup}, {text[1:]}'
        else:
            text = f'{text[:-1]}, "{name}": {dup}}}'
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 3)) == 0:
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=3)) + raw[cut:]
    return raw


@SETTINGS
@given(loans)
def test_valid_loan_events_decode_to_the_models_instance(event):
    raw = encode(event)
    got = check(raw)
    assert got is not None  # what the models write it takes


@SETTINGS
@given(mutated())
@example(b'{"kind":"loan"}')
@example(b'{"kind":"loan","event_type":"closed"}')
def test_what_the_fast_decode_takes_the_models_take_with_equal_values(raw):
    check(raw)


def test_every_example_is_taken():
    for raw in VALID:
        assert check(raw) is not None


@SETTINGS
@given(time_texts())
@example("2025-03-03T00:00:01.1234567Z")
@example("1969-12-31T23:59:59.999999Z")
@example("2025-03-03T00:00:01+08:00")
def test_occurred_at_forms(text):
    payload = orjson.loads(VALID[0])
    payload["occurred_at"] = text
    got = check(orjson.dumps(payload))
    if got is not None:
        assert re.search(r"([Zz]|[+-]00:?00)$", text)


@SETTINGS
@given(st.text(st.characters(min_codepoint=0, max_codepoint=0x17F), max_size=70))
@example("LN-2024\n")
@example("x" * 64)
@example("x" * 65)
def test_the_ids_are_the_models_pattern(text):
    for name in ("loan_id", "application_id", "lender_id", "source"):
        payload = orjson.loads(VALID[0])
        payload[name] = text
        raw = json.dumps(payload).encode()
        got = check(raw)
        assert (got is not None) == (_ID.fullmatch(text) is not None), name


@SETTINGS
@given(st.sampled_from(["bank", "fintech", "joint"]), LOAN_VALUES["partner_share"])
def test_a_partner_share_only_in_joint_lending(institution, share):
    payload = next(orjson.loads(r) for r in VALID if b'"disbursed"' in r)
    payload["institution_type"] = institution
    payload["partner_share"] = share
    raw = json.dumps(payload).encode()
    got = check(raw)
    if got is not None and share is not None:
        assert institution == "joint"
    if institution != "joint" and share is not None:
        assert isinstance(reference(raw), SchemaError)


def test_a_left_out_optional_field_is_not_in_the_fields_set():
    rejected = next(orjson.loads(r) for r in VALID if b'"rejected"' in r)
    rejected.pop("reason", None)
    got = check(orjson.dumps(rejected))
    assert got is not None
    assert "reason" not in got.model_fields_set
    assert got.reason is None  # type: ignore[attr-defined]
