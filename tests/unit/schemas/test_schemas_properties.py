"""Property tests: valid events round-trip exactly; bad bytes only ever raise SchemaError."""

from __future__ import annotations

import json
import os
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schema_strategies import dead_letters, events, records

from schemas import DeadLetter, SchemaError, decode, decode_as, encode
from schemas.examples import example_events

# DFIP_HYPOTHESIS_EXAMPLES raises the budget for a long fuzzing run.
SETTINGS = settings(
    max_examples=int(os.environ.get("DFIP_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
VALID_PAYLOADS = [encode(e) for e in example_events() if not isinstance(e, DeadLetter)]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


def decode_or_schema_error(raw: Any) -> Any:
    """Return the event, or None for SchemaError; anything else propagates (fails the test)."""
    error: SchemaError | None = None
    try:
        event = decode(raw)
    except SchemaError as exc:
        error = exc
    if error is not None:
        assert error.error_class
        assert "\n" not in str(error)
        assert all(len(e.value) <= 80 for e in error.errors)
        return None
    # Anything accepted is a proper event that survives its own round trip.
    assert decode(encode(event)) == event
    return event


@SETTINGS
@given(events)
def test_valid_events_round_trip_exactly(event):
    raw = encode(event)
    back = decode(raw)
    assert back == event
    assert type(back) is type(event)
    assert encode(back) == raw


@SETTINGS
@given(dead_letters)
def test_dead_letters_round_trip_exactly(record):
    assert decode_as(encode(record), DeadLetter) == record


@SETTINGS
@given(records)
def test_encoding_is_compact_json_without_floats(record):
    raw = encode(record)

    def no_floats(value: Any) -> None:
        assert not isinstance(value, float)
        if isinstance(value, dict):
            for item in value.values():
                no_floats(item)

    no_floats(json.loads(raw))


@SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_schema_error(raw):
    decode_or_schema_error(raw)


@SETTINGS
@given(
    st.sampled_from(VALID_PAYLOADS),
    st.lists(
        st.tuples(
            st.sampled_from(["flip", "insert", "delete"]),
            st.integers(0, 10**6),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_byte_mutations_of_valid_payloads_raise_only_schema_error(payload, mutations):
    data = bytearray(payload)
    for op, position, byte in mutations:
        index = position % (len(data) + 1)
        if op == "insert":
            data.insert(index, byte)
        elif data and index < len(data):
            if op == "flip":
                data[index] ^= byte or 1
            else:
                del data[index]
    decode_or_schema_error(bytes(data))


@SETTINGS
@given(st.sampled_from(VALID_PAYLOADS), st.data())
def test_json_mutations_of_valid_payloads_raise_only_schema_error(payload, data):
    obj = orjson.loads(payload)
    keys = sorted(obj)
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["replace", "drop", "add", "nest"]))
        if op == "replace":
            obj[data.draw(st.sampled_from(keys))] = data.draw(json_values)
        elif op == "drop":
            obj.pop(data.draw(st.sampled_from(keys)), None)
        elif op == "add":
            obj[data.draw(st.text(max_size=12))] = data.draw(json_values)
        else:
            obj = {"payload": obj} if data.draw(st.booleans()) else [obj]
            break
    # json.dumps writes NaN/Infinity tokens too: that input must be rejected cleanly.
    decode_or_schema_error(json.dumps(obj).encode())


@SETTINGS
@given(st.sampled_from(VALID_PAYLOADS), st.sampled_from(["schema_version", "kind"]), json_values)
def test_any_version_or_kind_value_is_handled(payload, key, value):
    obj = orjson.loads(payload)
    assume(obj.get(key) != value)
    obj[key] = value
    assert decode_or_schema_error(json.dumps(obj).encode()) is None
