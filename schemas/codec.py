"""Bytes ⇄ events. The only way events cross a process boundary.

`decode` has a fast path and a diagnosing slow path. The fast path validates the raw
JSON bytes in one call into pydantic-core (strict JSON mode, no intermediate dict), which
measured faster than `orjson.loads` + `model_validate`. Its validator is the models' own
schema with the Python field validators (decimals, USCC, UTC times) swapped for compiled
checks or a cache of codes already seen (`schemas.fields.wire_schema`): the same events,
the same instances, a subset of what the models accept. When it fails, the models' own
validator runs, and when that fails too the slow path parses with orjson to find out why —
undecodable bytes, invalid JSON, wrong shape, unsupported version, or bad fields — and
upgrades payloads of older supported versions. Either way the only exception that leaves
`decode` is `SchemaError`, worded by the models' validators.

`decode_many` decodes a sequence of values: for each exactly `decode`'s result, or its
error as a value. The worker does not decode ahead: holding a fetch's decoded events (even
256 of them) measured slower per event than decoding each record as it is processed
(`python -m bench.hotpath --decode`; memory locality, with or without the cyclic GC).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, Final, TypeVar, cast, overload

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import CoreSchema, PydanticSerializationError, SchemaValidator

from schemas import versions
from schemas.errors import FieldError, SchemaError, field_error, schema_error_from_validation
from schemas.events import (
    LOAN_EVENT_CLASSES,
    DigitalizationScore,
    Event,
    FxRate,
    LoanEvent,
    TransactionEvent,
)
from schemas.fields import wire_function, wire_schema

__all__ = [
    "EMPTY_VALUE",
    "SUPPORTED_VERSIONS",
    "decode",
    "decode_as",
    "decode_many",
    "encode",
    "validate_wire",
]

SUPPORTED_VERSIONS = versions.SUPPORTED_VERSIONS
"""Re-exported for readers; the source of truth is `schemas.versions`."""

M = TypeVar("M", bound=BaseModel)

# Built once at import: building a validator costs milliseconds.
_EVENT_ADAPTER: Final[TypeAdapter[Event]] = TypeAdapter(Event)
_LOAN_ADAPTER: Final[TypeAdapter[LoanEvent]] = TypeAdapter(LoanEvent)
# The core validator itself: skips TypeAdapter's per-call Python wrapper on the hot path.
_EVENT_VALIDATOR: Final = _EVENT_ADAPTER.validator


def _wire(schema: Any) -> Any:
    """A copy of a core schema with the Python field validators that have a compiled (or
    cached) stand-in replaced by it; model classes, enums and everything else unchanged."""
    if isinstance(schema, list):
        return [_wire(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    function = schema.get("function")
    if kind in ("function-plain", "function-after") and isinstance(function, dict):
        if kind == "function-plain":
            fast = wire_schema(function["function"])
            if fast is not None:
                return fast  # validation only: serialising uses the model's own schema
        else:
            call = wire_function(function["function"])
            if call is not None and function["type"] == "no-info":
                out = {k: _wire(v) for k, v in schema.items()}
                out["function"] = {"type": "no-info", "function": call}
                return out
    return {k: _wire(v) for k, v in schema.items()}


def _model_classes(schema: Any) -> set[type]:
    if isinstance(schema, list):
        return set().union(*map(_model_classes, schema)) if schema else set()
    if not isinstance(schema, dict):
        return set()
    found = {schema["cls"]} if schema.get("type") == "model" else set()
    return found.union(*map(_model_classes, schema.values()))


def _wire_validator(core: CoreSchema) -> SchemaValidator:
    """Build `core` with its stand-ins. pydantic-core would reuse a complete model's own
    validator (`__pydantic_validator__`, with the Python validators) for every model node,
    so each model class reads as not complete while this one is built."""
    classes = _model_classes(core)
    for cls in classes:
        assert cls.__dict__.get("__pydantic_complete__") is True
        cls.__pydantic_complete__ = False  # type: ignore[attr-defined]
    try:
        return SchemaValidator(_wire(core), _EVENT_ADAPTER.core_schema.get("config"))
    finally:
        for cls in classes:
            cls.__pydantic_complete__ = True  # type: ignore[attr-defined]


# The fast path's validator. (A whole fetch in one call, as a list of JSON documents each
# validated on its own, measured slower than one call per value: pydantic-core builds an
# intermediate JSON value per item, where `validate_json` validates while it parses.
# Concatenating the values into one document would be faster, but a value that is two
# documents could then pass for its neighbour.)
_WIRE_EVENT: Final = _wire_validator(_EVENT_ADAPTER.core_schema)

validate_wire: Final = _WIRE_EVENT.validate_json
"""`decode`'s fast path alone, for a loop that cannot afford `decode`'s own call: call it
as ``validate_wire(raw, strict=True)``; it returns exactly `decode`'s event or raises any
exception, and on any exception the caller calls `decode` (which then decides, and words
the error)."""

_KIND_MODELS: Final[dict[str, type[BaseModel]]] = {
    "transaction": TransactionEvent,
    "digitalization_score": DigitalizationScore,
    "fx_rate": FxRate,
}
_LOAN_MODELS: Final[dict[str, type[BaseModel]]] = {str(k): v for k, v in LOAN_EVENT_CLASSES.items()}


def encode(event: BaseModel) -> bytes:
    """Serialise a model to compact JSON bytes.

    Decimals become fixed-point strings, datetimes ISO-8601 with `Z`, enums their values.
    Uses pydantic-core's serializer (Rust), measured faster than `orjson.dumps` of a
    dumped dict with identical output rules. Raises `SchemaError("unencodable")` for the
    rare model that cannot be written (a string holding a lone surrogate).
    """
    try:
        return event.__pydantic_serializer__.to_json(event)
    except PydanticSerializationError as exc:
        raise SchemaError("unencodable", [FieldError("", "", str(exc)[:200])]) from None


def decode(raw: bytes | bytearray | memoryview) -> Event:
    """Bytes → validated event of any ingress kind. Raises only `SchemaError`."""
    if isinstance(raw, memoryview):
        raw = raw.tobytes()
    try:
        # no typing.cast here: a function call per event shows in the worker's profile
        event: Event = _WIRE_EVENT.validate_json(raw, strict=True)
        return event
    except Exception:  # noqa: S110 - the models' own validators decide (and word errors)
        pass
    return _checked_decode(raw)


def _checked_decode(raw: bytes | bytearray) -> Event:
    try:
        event: Event = _EVENT_VALIDATOR.validate_json(raw, strict=True)
        return event
    except Exception:  # noqa: S110 - diagnosed (and re-raised) by the slow path
        pass
    return cast(Event, _slow_decode(raw, None))


EMPTY_VALUE: Final = SchemaError("undecodable", [FieldError("", "", "empty record value")])
"""What a record without a value (None) decodes to."""


def decode_many(raws: Sequence[bytes | bytearray | memoryview | None]) -> list[Event | SchemaError]:
    """`decode` of each value: the event, or the `SchemaError` that `decode` raises for it
    (`EMPTY_VALUE` for None). Never raises for a bad record."""
    validate = _WIRE_EVENT.validate_json
    out: list[Event | SchemaError] = []
    append = out.append
    for raw in raws:
        try:  # the fast path, inlined (None or a memoryview fail here: decided below)
            append(validate(raw, strict=True))  # type: ignore[arg-type]
            continue
        except Exception:  # noqa: S110 - decided below, the record alone
            pass
        if raw is None:
            append(EMPTY_VALUE)
            continue
        try:
            append(decode(raw))
        except SchemaError as exc:
            append(exc)
    return out


@overload
def decode_as(raw: bytes | bytearray | memoryview, model_type: type[M]) -> M: ...
@overload
def decode_as(raw: bytes | bytearray | memoryview, model_type: object) -> Any: ...


def decode_as(raw: bytes | bytearray | memoryview, model_type: object) -> Any:
    """Bytes → an instance of `model_type` (a model class, `LoanEvent` or `Event`).

    Same rules and errors as `decode`; use it on single-type topics and for `DeadLetter`.
    """
    if model_type is Event:
        return decode(raw)
    if isinstance(raw, memoryview):
        raw = raw.tobytes()
    try:
        return _validator_for(model_type)(raw)
    except Exception:  # noqa: S110 - diagnosed (and re-raised) by the slow path
        pass
    return _slow_decode(raw, model_type)


@cache
def _validator_for(model_type: Any) -> Any:
    if isinstance(model_type, type) and issubclass(model_type, BaseModel):
        validator = model_type.__pydantic_validator__
    elif model_type is LoanEvent:
        validator = _LOAN_ADAPTER.validator
    else:
        validator = TypeAdapter(model_type).validator

    def validate(raw: bytes) -> Any:
        return validator.validate_json(raw, strict=True)

    return validate


def _slow_decode(raw: object, target: Any) -> Any:
    """Explain why `raw` failed (raise `SchemaError`), or upgrade and validate it."""
    try:
        return _diagnose(raw, target)
    except SchemaError:
        raise
    except Exception as exc:  # a bug must still dead-letter, not crash
        raise SchemaError(
            "invalid_shape", [FieldError("", "", f"unexpected {type(exc).__name__}")]
        ) from exc


def _diagnose(raw: object, target: Any) -> Any:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise SchemaError("undecodable", [field_error("", type(raw).__name__, "expected bytes")])
    data = bytes(raw)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(
            "undecodable", [field_error("", data[:40], f"not UTF-8 at byte {exc.start}")]
        ) from None
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SchemaError("invalid_json", [FieldError("", "", f"invalid JSON: {exc}")]) from None
    if not isinstance(payload, dict):
        raise SchemaError(
            "invalid_shape",
            [field_error("", payload, f"expected a JSON object, got {_json_type(payload)}")],
        )
    if _is_versioned(target):
        data, payload = _check_version(data, payload)
    model = _model_for(payload, target)
    try:
        return _validator_for(model)(data)
    except ValidationError as exc:
        raise schema_error_from_validation(exc) from None


def _is_versioned(target: Any) -> bool:
    if target is None or target is LoanEvent:
        return True
    return (
        isinstance(target, type)
        and issubclass(target, BaseModel)
        and "schema_version" in target.model_fields
    )


def _check_version(data: bytes, payload: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    if "schema_version" not in payload:
        raise SchemaError("invalid_shape", [FieldError("schema_version", "", "field required")])
    version = payload["schema_version"]
    if type(version) is not int:
        raise SchemaError(
            "invalid_shape", [field_error("schema_version", version, "must be an integer")]
        )
    supported = versions.SUPPORTED_VERSIONS
    if version not in supported:
        reason = f"unsupported schema_version; this reader accepts {sorted(supported)}"
        raise SchemaError("unsupported_version", [field_error("schema_version", version, reason)])
    if version == versions.SCHEMA_VERSION:
        return data, payload
    try:
        upgraded = versions.upgrade(payload, version)
    except Exception as exc:  # an old payload too broken to upgrade
        raise SchemaError(
            "invalid_shape",
            [FieldError("", "", f"cannot upgrade from version {version}: {type(exc).__name__}")],
        ) from None
    return orjson.dumps(upgraded), upgraded


def _model_for(payload: dict[str, Any], target: Any) -> Any:
    """Pick the concrete model so errors carry plain field paths (no union tags)."""
    if target is not None and target is not LoanEvent:
        return target
    if target is None:
        model = _pick(payload, "kind", {**_KIND_MODELS, "loan": LoanEvent})
        if model is not LoanEvent:
            return model
    return _pick(payload, "event_type", _LOAN_MODELS)


def _pick(payload: dict[str, Any], tag: str, choices: dict[str, Any]) -> Any:
    if tag not in payload:
        raise SchemaError("invalid_shape", [FieldError(tag, "", "field required")])
    value = payload[tag]
    if not isinstance(value, str) or value not in choices:
        reason = "must be one of " + ", ".join(sorted(choices))
        raise SchemaError("invalid_shape", [field_error(tag, value, reason)])
    return choices[value]


def _json_type(value: object) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null"
    )
