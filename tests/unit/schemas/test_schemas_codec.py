"""encode/decode: wire format, error classes, versioning and decode_as."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import orjson
import pytest

from schemas import (
    SCHEMA_VERSION,
    SUPPORTED_VERSIONS,
    DeadLetter,
    FxRate,
    LoanApproved,
    LoanEvent,
    SchemaError,
    TransactionEvent,
    decode,
    decode_as,
    encode,
    versions,
)
from schemas.errors import MAX_FIELD_ERRORS
from schemas.examples import example_events

EVENTS = [e for e in example_events() if not isinstance(e, DeadLetter)]
TX = EVENTS[0]


def wire(event: Any = TX, **changes: Any) -> dict[str, Any]:
    return {**orjson.loads(encode(event)), **changes}


def error_of(raw: Any, model: Any = None) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        decode(raw) if model is None else decode_as(raw, model)
    return info.value


@pytest.mark.parametrize("event", example_events(), ids=lambda e: type(e).__name__)
def test_examples_round_trip_exactly(event):
    raw = encode(event)
    back = decode_as(raw, DeadLetter) if isinstance(event, DeadLetter) else decode(raw)
    assert back == event
    assert type(back) is type(event)
    assert encode(back) == raw


def test_wire_format():
    data = orjson.loads(encode(TX))
    assert data["amount"] == "25600.00"  # Decimal as a string, scale kept
    assert data["occurred_at"] == "2024-05-06T01:30:00Z"
    assert data["booking_date"] == "2024-05-06"
    assert data["kind"] == "transaction"
    assert data["schema_version"] == SCHEMA_VERSION
    assert next(iter(data)) == "kind"
    assert b" " not in encode(TX).split(b'"description"')[0]  # compact


def test_small_and_large_decimals_are_written_fixed_point():
    fx = next(e for e in EVENTS if isinstance(e, FxRate))
    for text in ("0.00000001", "100000000000000"):
        event = fx.model_copy(update={"rate_to_cny": Decimal(text)})
        assert orjson.loads(encode(event))["rate_to_cny"] == text
        assert decode(encode(event)) == event


def test_decimal_integers_are_accepted_on_the_wire():
    event = decode(orjson.dumps(wire(amount=25600)))
    assert isinstance(event, TransactionEvent)
    assert str(event.amount) == "25600"


def test_decode_as_specific_models_and_unions():
    approved = next(e for e in EVENTS if isinstance(e, LoanApproved))
    assert decode_as(encode(approved), LoanApproved) == approved
    assert decode_as(encode(approved), LoanEvent) == approved
    assert decode_as(encode(TX), TransactionEvent) == TX
    err = error_of(encode(TX), LoanEvent)
    assert err.error_class == "invalid_shape"
    assert err.errors[0].path == "event_type"
    err = error_of(encode(approved), TransactionEvent)
    assert "kind" in [e.path for e in err.errors]


# ---- error classes -------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00", b'{"kind": "\xc3\x28"}', "text", None, 42])
def test_undecodable(raw):
    assert error_of(raw).error_class == "undecodable"


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"{'kind': 1}", b'{"a":1,}', b"NaN", b"[1, 2", b'{"kind":"transaction"} x']
)
def test_invalid_json(raw):
    assert error_of(raw).error_class == "invalid_json"


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ([1, 2], ""),
        ("transaction", ""),
        (None, ""),
        (12, ""),
        ({"schema_version": 1}, "kind"),
        (wire(schema_version=None), "schema_version"),
        (wire(schema_version="1"), "schema_version"),
        (wire(schema_version=1.0), "schema_version"),
        (wire(schema_version=True), "schema_version"),
        (wire(kind="transfer"), "kind"),
        (wire(kind=None), "kind"),
        (wire(kind="loan"), "event_type"),
        (wire(kind="loan", event_type="repaid"), "event_type"),
        (wire(kind="dead_letter"), "kind"),  # dead letters are not ingress events
    ],
)
def test_invalid_shape(data, path):
    err = error_of(orjson.dumps(data))
    assert err.error_class == "invalid_shape"
    assert err.errors[0].path == path


@pytest.mark.parametrize("version", [0, -1, SCHEMA_VERSION + 1, 2**31])
def test_unsupported_versions_are_rejected_with_a_reason(version):
    err = error_of(orjson.dumps(wire(schema_version=version)))
    assert err.error_class == "unsupported_version"
    assert err.errors[0].path == "schema_version"
    assert "supported" in err.errors[0].reason or "accepts" in err.errors[0].reason
    assert str(sorted(SUPPORTED_VERSIONS)) in str(err)


def test_dead_letter_version_is_checked_too():
    dead = next(e for e in example_events() if isinstance(e, DeadLetter))
    err = error_of(orjson.dumps(wire(dead, schema_version=99)), DeadLetter)
    assert err.error_class == "unsupported_version"


def test_older_supported_versions_are_upgraded_before_validation(monkeypatch):
    # Simulate a past version 0 that called the amount field `amt` and had no kind.
    def v0_to_v1(payload):
        payload = dict(payload)
        payload["amount"] = payload.pop("amt")
        payload["kind"] = "transaction"
        return payload

    monkeypatch.setattr(versions, "SUPPORTED_VERSIONS", frozenset({0, 1}))
    monkeypatch.setitem(versions.UPGRADERS, 0, v0_to_v1)
    old = wire(schema_version=0)
    old["amt"] = old.pop("amount")
    old.pop("kind")
    event = decode(orjson.dumps(old))
    assert event == TX
    assert event.schema_version == SCHEMA_VERSION
    assert decode_as(orjson.dumps(old), TransactionEvent) == TX
    # An upgraded payload is still validated.
    old["amt"] = "-1"
    err = error_of(orjson.dumps(old))
    assert err.error_class == "invalid_field"
    assert err.errors[0].path == "amount"
    # An upgrader that cannot cope is an invalid shape, not a crash.
    del old["amt"]
    assert error_of(orjson.dumps(old)).error_class == "invalid_shape"


def test_a_supported_version_without_upgrader_does_not_crash(monkeypatch):
    monkeypatch.setattr(versions, "SUPPORTED_VERSIONS", frozenset({0, 1}))
    assert error_of(orjson.dumps(wire(schema_version=0))).error_class == "invalid_shape"


def test_error_lists_are_capped():
    data = wire(**{f"extra_{i}": i for i in range(500)})
    err = error_of(orjson.dumps(data))
    assert len(err.errors) == MAX_FIELD_ERRORS + 1
    assert "more errors" in err.errors[-1].reason


def test_duplicate_keys_take_the_last_value():
    raw = encode(TX).replace(b'"amount":"25600.00"', b'"amount":"1.00","amount":"25600.00"')
    assert decode(raw) == TX


def test_lone_surrogates_are_rejected_on_decode():
    raw = encode(TX).replace(b"order batch 0506", b"order \\ud800 batch")
    assert error_of(raw).error_class in {"invalid_json", "undecodable"}


def test_encode_of_an_unencodable_model_raises_schema_error():
    bad = TX.model_copy(update={"description": "\ud800"})
    with pytest.raises(SchemaError) as info:
        encode(bad)
    assert info.value.error_class == "unencodable"


def test_memoryview_and_bytearray_inputs():
    raw = encode(TX)
    assert decode(bytearray(raw)) == TX
    assert decode(memoryview(raw)) == TX


def test_dead_letter_original_bytes_survive():
    dead = next(e for e in example_events() if isinstance(e, DeadLetter))
    back = decode_as(encode(dead), DeadLetter)
    assert base64.b64decode(back.original_b64) == dead.original
