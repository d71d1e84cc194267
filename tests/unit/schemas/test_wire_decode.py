"""`schemas.wire.decode_transaction` (msgspec) accepts only what the models accept, with equal
values: for every payload it takes, `codec.decode` gives a `TransactionEvent` whose fields
are equal (same types, same Decimal text, UTC datetimes); every payload it refuses is left to
`codec.decode`, which words the error as before."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schema_strategies import transactions

from schemas import SchemaError, codec, encode
from schemas.events import TransactionEvent
from schemas.examples import example_events
from schemas.money import to_fen
from schemas.wire import TransactionWire, cny_fen, decode_transaction

SETTINGS = settings(
    max_examples=int(os.environ.get("DFIP_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
VALID = [encode(e) for e in example_events() if e.kind == "transaction"]
FIELDS = sorted(TransactionEvent.model_fields)


def fast(raw: bytes) -> TransactionWire | None:
    try:
        return decode_transaction(raw)
    except Exception:
        return None


def reference(raw: bytes) -> Any:
    try:
        return codec.decode(raw)
    except SchemaError as exc:
        return exc


def assert_equal(got: TransactionWire, want: Any) -> None:
    assert type(want) is TransactionEvent, want
    # the struct keeps the wire's amount as amount_raw; `amount` is its Decimal (a property)
    assert sorted({*got.__struct_fields__} - {"amount_raw"} | {"amount"}) == FIELDS
    # the batch path's CNY fen from the text, when it takes one, is to_fen's
    fen = cny_fen(got.amount_raw)
    if fen is not None:
        assert fen == to_fen(want.amount)
    for name in FIELDS:
        a, b = getattr(got, name), getattr(want, name)
        assert type(a) is type(b), name
        assert a == b, name
        if isinstance(a, Decimal):
            assert str(a) == str(b), name
        if isinstance(a, datetime):
            assert a.tzinfo is UTC, name
            assert b.tzinfo is UTC, name


def check(raw: bytes) -> TransactionWire | None:
    got = fast(raw)
    if got is not None:
        assert_equal(got, reference(raw))
    return got


# ---- values that probe each field's rules ---------------------------------------------------


@st.composite
def time_texts(draw: st.DrawFn) -> str:
    """RFC 3339-ish times in the forms parsers disagree on: separators, offsets, fraction
    lengths (past a microsecond too), no seconds, times before the earliest allowed."""
    at = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    head = at.strftime("%Y-%m-%d") + draw(st.sampled_from("Tt _"))
    clock = at.strftime("%H:%M") + draw(st.sampled_from([at.strftime(":%S"), "", ":60"]))
    digits = draw(st.integers(0, 12))
    fraction = draw(st.sampled_from([".", ","])) + draw(
        st.text("0123456789", min_size=digits, max_size=digits)
    )
    fraction = "" if not digits and draw(st.booleans()) else fraction
    offset = draw(
        st.sampled_from(["Z", "z", "+00:00", "-00:00", "+08:00", "-05:30", "+0000", "+00", ""])
    )
    return head + clock + fraction + offset


amount_values = st.one_of(
    st.from_regex(r"-?[0-9]{1,17}(\.[0-9]{0,10})?", fullmatch=True),
    st.sampled_from(["0", "-0", "-0.00", "007", "+1", " 1", "1 ", "1\n", "1e3", "1E3", "NaN"]),
    st.sampled_from(["Infinity", "1_000", "\u0661", ".5", "5.", "0x10", ""]),
    st.integers(min_value=-(10**16), max_value=10**16),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
odd_strings = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "a b", "x\n", "\n", "\x7f", "é", "\ud800", "A" * 200]),
)
json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    odd_strings,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "kind": st.sampled_from(["transaction", "loan", "Transaction", "fx_rate"]),
    "event_id": st.one_of(
        st.text(st.characters(min_codepoint=0, max_codepoint=0x1FF), min_size=0, max_size=130),
        st.sampled_from(["abc\n", " abc", "ab c", "a" * 128, "a" * 129, "\x7e", "\x21"]),
    ),
    "schema_version": st.sampled_from([1, 0, 2, 99, -1, 1.0, "1", True, None]),
    "source": st.one_of(odd_strings, st.sampled_from(["hzbank", "a:b/c.d-e_f", "-x", "x" * 65])),
    "institution_type": st.sampled_from(["bank", "fintech", "joint", "Bank", "", 1]),
    "occurred_at": st.one_of(time_texts(), json_values),
    "enterprise_uscc": st.sampled_from(
        [
            "91330106MA2CDL8K1X",
            "91330106ma2cdl8k1x",
            "91330106MA2CDL8K1Y",
            "91330106MA2CDL8K1X\n",
            " 91330106MA2CDL8K1X",
            "",
        ]
    ),
    "direction": st.sampled_from(["credit", "debit", "CREDIT", None]),
    "amount": amount_values,
    "currency": st.sampled_from(["CNY", "USD", "JPY", "KWD", "XAU", "cny", "ABC", ""]),
    "booking_date": st.one_of(
        st.dates().map(str),
        st.sampled_from(["2024-02-29", "2025-02-29", "2025-3-3", "20250303", "2025-03-03T00:00"]),
    ),
    "value_date": st.sampled_from(["2025-03-03", "2025-03-03Z", "0000-01-01", 20250303]),
    "bank_tx_code": st.one_of(st.none(), odd_strings, st.just("x" * 35), st.just("x" * 36)),
    "counterparty_country": st.sampled_from([None, "CN", "cn", "CN\n", "CHN", "C", "", 1]),
    "channel": st.sampled_from(["online", "mobile", "other", "ONLINE", None]),
    "customs_mode": st.sampled_from([None, "9610", "9710", "9810", "1210", 9610, "0000"]),
    "account_ref": st.sampled_from(
        [None, "acct_" + "0" * 32, "acct_" + "a" * 32 + "\n", "acct_" + "A" * 32, "acct_", ""]
    ),
    "description": st.one_of(st.none(), odd_strings, st.just("d" * 140), st.just("d" * 141)),
}


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid transaction with fields replaced, dropped or added, keys duplicated (the
    last one counts), or the bytes broken."""
    obj = orjson.loads(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from([*FIELDS, "extra"]))
        action = draw(st.sampled_from(["set", "set", "drop", "dup"]))
        value = draw(FIELD_VALUES.get(name, json_values))
        if action == "drop":
            obj.pop(name, None)
        else:
            obj[name] = value
    text = json.dumps(obj)
    if draw(st.booleans()):
        # a duplicate key: a value before the real one (or after it) in the same object
        name = draw(st.sampled_from(FIELDS))
        dup = json.dumps(draw(FIELD_VALUES[name]))
        if draw(st.booleans()):
            text = f'{{"{name}": {dup}, {text[1:]}'
        else:
            text = f'{text[:-1]}, "{name}": {dup}}}'
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 3)) == 0:
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=3)) + raw[cut:]
    return raw


# ---- the properties -------------------------------------------------------------------------


@SETTINGS
@given(transactions)
def test_valid_transactions_decode_with_equal_values(event):
    raw = encode(event)
    got = check(raw)
    # what the models write (UTC, "Z", at most 6 fraction digits, canonical fields) it takes
    assert got is not None


@SETTINGS
@given(mutated())
@example(b'{"kind":"transaction"}')
def test_what_the_fast_decode_takes_the_models_take_with_equal_values(raw):
    check(raw)


@SETTINGS
@given(time_texts())
@example("2025-03-03T00:00:01.1234567Z")
@example("2025-03-03T00:00:01.9999999Z")
@example("2025-03-03T00:00:01.999999Z")
@example("1969-12-31T23:59:59.999999Z")
@example("1970-01-01T00:00:00Z")
@example("2025-03-03T00:00:01+08:00")
def test_occurred_at_forms(text):
    payload = orjson.loads(VALID[0])
    payload["occurred_at"] = text
    got = check(orjson.dumps(payload))
    if got is not None:  # taken: the only forms it takes are UTC ones
        assert re.search(r"([Zz]|[+-]00:?00)$", text)


@SETTINGS
@given(amount_values)
def test_amount_forms(value):
    payload = orjson.loads(VALID[0])
    payload["amount"] = value
    got = check(json.dumps(payload).encode())
    if got is not None:
        assert not isinstance(value, float)


def test_taken_values_are_the_models_for_every_example():
    for raw in VALID:
        got = check(raw)
        assert got is not None


def test_offsets_other_than_zero_are_left_to_the_models():
    payload = orjson.loads(VALID[0])
    at = datetime(2025, 3, 3, 8, tzinfo=timezone(timedelta(hours=8)))
    payload["occurred_at"] = at.isoformat()
    raw = orjson.dumps(payload)
    assert fast(raw) is None
    event = reference(raw)
    assert isinstance(event, TransactionEvent)
    assert event.occurred_at == at
    assert event.occurred_at.tzinfo is UTC


def test_duplicate_keys_take_the_last_value_as_the_models_do():
    text = VALID[0].decode()
    raw = ('{"amount": "1.00", ' + text[1:-1] + ', "amount": "2.50"}').encode()
    got = check(raw)
    assert got is not None
    assert got.amount == Decimal("2.50")


@SETTINGS
@given(st.text(st.characters(min_codepoint=0, max_codepoint=0x2FF), min_size=1, max_size=8))
def test_the_event_id_check_is_the_models_pattern(text):
    # __post_init__'s str-method test against the model's pattern (^[\x21-\x7e]+$)
    payload = orjson.loads(VALID[0])
    payload["event_id"] = text
    taken = fast(json.dumps(payload).encode()) is not None
    assert taken == (re.fullmatch(r"[\x21-\x7e]+", text) is not None)


@SETTINGS
@given(st.text(st.characters(min_codepoint=0, max_codepoint=0x17F), max_size=3))
@example("CN")
@example("cn")
@example("CN\n")
@example("ZZ")
def test_the_counterparty_country_is_the_models_pattern(text):
    # a Literal of the 676 codes ^[A-Z]{2}$ matches, checked by msgspec in C
    payload = orjson.loads(VALID[0])
    payload["counterparty_country"] = text
    raw = json.dumps(payload).encode()
    got = check(raw)
    assert (got is not None) == (re.fullmatch(r"[A-Z]{2}", text) is not None)
    assert (got is not None) == isinstance(reference(raw), TransactionEvent)


@SETTINGS
@given(amount_values)
@example("0.00")
@example("-0.00")
@example("-0.10")
@example("12.5")
@example("7")
@example(7)
@example("1234567.12345678")
def test_the_cny_fen_from_the_text_is_to_fen(value):
    payload = orjson.loads(VALID[0])
    payload["amount"] = value
    got = fast(json.dumps(payload).encode())
    if got is not None:
        fen = cny_fen(got.amount_raw)
        assert fen is None or fen == to_fen(got.amount)
        assert got.amount == Decimal(str(value))
