"""The codec's fast wire path (compiled stand-ins for the Python field validators, and
`decode_many` over a whole fetch) decodes exactly as the models' own validators do: the same
events, and for a bad record the same error class and text."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from pydantic_core import SchemaValidator
from schema_strategies import events, usccs

from schemas import SchemaError, codec, encode
from schemas.examples import example_events
from schemas.fields import NonNegativeAmount, Score, wire_schema

SETTINGS = settings(
    max_examples=int(os.environ.get("DFIP_HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
VALID = [encode(e) for e in example_events() if e.kind != "dead_letter"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(
        ["0", "-0.00", "1.5", "1e3", " 1", "1.123456789", "9" * 16, "91330106MA2CDL8K1X"]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


def reference(raw: Any) -> Any:
    """What the models' own validators make of ``raw``: the event, or (class, text)."""
    try:
        if raw is None:
            raise codec.EMPTY_VALUE
        return codec._checked_decode(raw)
    except SchemaError as exc:
        return (exc.error_class, str(exc))


def fast(raw: Any) -> Any:
    try:
        return codec.decode(raw)
    except SchemaError as exc:
        return (exc.error_class, str(exc))


def of_many(raws: list[Any]) -> list[Any]:
    return [
        (r.error_class, str(r)) if isinstance(r, SchemaError) else r
        for r in codec.decode_many(raws)
    ]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        return a == b
    return type(a) is type(b) and a == b and encode(a) == encode(b)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid payload with some fields replaced by arbitrary JSON (or the bytes broken)."""
    obj = orjson.loads(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(obj)))
        obj[key] = draw(json_values)
    raw = json.dumps(obj).encode()
    if draw(st.booleans()) and draw(st.booleans()):
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=3)) + raw[cut:]
    return raw


@SETTINGS
@given(events)
def test_valid_events_decode_as_the_models_do(event):
    raw = encode(event)
    assert same(fast(raw), reference(raw))
    assert same(of_many([raw])[0], reference(raw))


@SETTINGS
@given(mutated())
def test_bad_and_odd_payloads_decode_or_fail_as_the_models_do(raw):
    want = reference(raw)
    assert same(fast(raw), want)
    assert same(of_many([raw])[0], want)


@SETTINGS
@given(st.lists(st.one_of(mutated(), st.sampled_from(VALID), st.none(), st.binary(max_size=20))))
def test_decode_many_equals_decoding_one_by_one(raws):
    got = of_many(raws)
    assert len(got) == len(raws)
    for raw, item in zip(raws, got, strict=True):
        assert same(item, reference(raw))


def test_decode_many_takes_memoryviews_and_bytearrays():
    raws = [memoryview(VALID[0]), bytearray(VALID[1]), VALID[2], b""]
    got = of_many(raws)
    assert same(got[0], reference(VALID[0]))
    assert same(got[1], reference(VALID[1]))
    assert same(got[2], reference(VALID[2]))
    assert got[3] == reference(b"")


@SETTINGS
@given(
    st.one_of(
        st.text(max_size=25),
        st.integers(min_value=-(10**16), max_value=10**16),
        st.decimals(allow_nan=False, allow_infinity=False).map(str),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
    ),
    st.sampled_from([NonNegativeAmount, Score]),
)
def test_wire_decimal_accepts_a_subset_with_equal_values(value, field):
    ref = TypeAdapter(field).validator
    function = TypeAdapter(field).core_schema["function"]["function"]
    stand_in = SchemaValidator(wire_schema(function))
    raw = orjson.dumps(value)
    try:
        got = stand_in.validate_json(raw, strict=True)
    except Exception:
        return  # rejected: the models' validator decides (any answer is fine)
    want = ref.validate_json(raw, strict=True)
    assert type(got) is Decimal
    assert got == want
    assert str(got) == str(want)


@SETTINGS
@given(usccs)
def test_a_seen_uscc_in_another_form_is_still_rejected_with_the_same_reason(uscc):
    payload = orjson.loads(VALID[0])
    payload["enterprise_uscc"] = uscc
    good = orjson.dumps(payload)
    assert fast(good).enterprise_uscc == uscc  # now cached
    for variant in (uscc.lower(), f" {uscc}", uscc + "\n"):
        if variant == uscc:
            continue
        payload["enterprise_uscc"] = variant
        raw = orjson.dumps(payload)
        want = reference(raw)
        assert isinstance(want, tuple)
        assert fast(raw) == want
        assert of_many([good, raw])[1] == want


def test_events_of_an_enterprise_share_one_uscc_string():
    a, b = codec.decode_many([VALID[0], VALID[0]])
    assert not isinstance(a, SchemaError)
    assert not isinstance(b, SchemaError)
    assert a.enterprise_uscc is b.enterprise_uscc  # type: ignore[union-attr]


@pytest.mark.parametrize("validator", [codec._WIRE_EVENT])
def test_the_fast_validators_call_no_replaced_python_validator(validator):
    tree = repr(validator)
    assert "function-plain[__getitem__()]" in tree  # fields._WIRE_USCC, a dict
    assert "astimezone" in tree
    # not the models' prebuilt validators, nor the Python validators the stand-ins replace
    for name in ("Prebuilt", "_to_utc()", "validate()", "_uscc()"):
        assert name not in tree
