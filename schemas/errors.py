"""The one error type of the schema layer, and its conversion from pydantic errors.

Everything that rejects a payload (decode, USCC and amount parsing, model construction)
raises `SchemaError`, so callers — the ingress stage, adapters, tests — need one `except`
and always get a field path, a safe preview of the value and a reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import ValidationError

__all__ = [
    "ERROR_CLASSES",
    "MAX_FIELD_ERRORS",
    "VALUE_PREVIEW_CHARS",
    "ErrorClass",
    "FieldError",
    "SchemaError",
    "field_error",
    "mask_account_numbers",
    "preview",
    "schema_error_from_validation",
]

VALUE_PREVIEW_CHARS = 80
"""Longest value preview kept in a `FieldError` (error records are logged and dead-lettered)."""

MAX_FIELD_ERRORS = 20
"""Errors listed per `SchemaError` (a payload with 10,000 unknown keys gives 21 entries)."""


class ErrorClass(StrEnum):
    """Every dead-letter `error_class`: one list, so a misspelt class is a type error and
    not a new dashboard series (docs/metrics.md and docs/adapters.md say what each means)."""

    # the decode path (schemas.codec)
    undecodable = "undecodable"
    invalid_json = "invalid_json"
    invalid_shape = "invalid_shape"
    unsupported_version = "unsupported_version"
    invalid_field = "invalid_field"
    unencodable = "unencodable"
    processing_error = "processing_error"
    # the stream workers
    future_dated = "future_dated"
    unknown_loan = "unknown_loan"
    fx_rate_missing = "fx_rate_missing"
    # the adapters
    unknown_account = "unknown_account"
    ambiguous_account = "ambiguous_account"
    reversal = "reversal"


ERROR_CLASSES = frozenset(
    {
        ErrorClass.undecodable,
        ErrorClass.invalid_json,
        ErrorClass.invalid_shape,
        ErrorClass.unsupported_version,
        ErrorClass.invalid_field,
    }
)
"""Codes the decode path uses; `unencodable` is added by `encode` for unserialisable models."""

_MASK = "<masked>"
# Field names that may hold account identifiers: their values are never echoed back.
_SENSITIVE_NAME = re.compile(r"acc(oun)?t|iban|card", re.IGNORECASE)
# Account-number shapes inside any echoed value: IBANs and long digit runs (card / account
# numbers). A USCC is not matched: its digits run into its trailing check letter.
# A spaced IBAN can run on into the next word; `-digits` right after it are the rest of
# a number it ran into (Danske Bank: `FI11… DABADKKK 111111-11111111`), so they go too.
# An IBAN in lower case is matched unspaced and as a word of its own (SNS writes
# `nl11rabo0987654321`); in upper case it is found glued to what precedes it too (a
# Triodos sub-field number `>21NL13RABO…`, an MT940 type code `NOVBNL11RABO…`).
_SENSITIVE_VALUE = re.compile(
    r"[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,30}\b(?:-[0-9]+)*"
    r"|(?<![A-Za-z0-9_])[A-Za-z]{2}[0-9]{2}[A-Za-z0-9]{11,30}\b"
    r"|(?<![\w.])[0-9](?:[ -]?[0-9]){11,29}(?!\w)"
)


class FieldError(NamedTuple):
    """One rejected field: where (`path`), what (safe `value` preview) and why (`reason`)."""

    path: str
    value: str
    reason: str

    def __str__(self) -> str:
        where = self.path or "(payload)"
        return (
            f"{where}: {self.reason} (got {self.value})"
            if self.value
            else f"{where}: {self.reason}"
        )


class SchemaError(ValueError):
    """A payload or value that does not satisfy the event schema.

    `error_class` is a short stable code (see `ERROR_CLASSES`) used as the dead-letter
    `error_class`; `errors` lists every rejected field. `str()` is one line.
    """

    def __init__(self, error_class: str, errors: Sequence[FieldError] = ()) -> None:
        self.error_class = error_class
        self.errors: list[FieldError] = list(errors)
        super().__init__(self._line())

    def _line(self) -> str:
        if not self.errors:
            return self.error_class
        text = f"{self.error_class}: " + "; ".join(str(e) for e in self.errors)
        return text.replace("\r", "\\r").replace("\n", "\\n")  # always one line

    def __str__(self) -> str:
        return self._line()

    def __reduce__(self) -> tuple[Any, ...]:
        # Default exception pickling passes only args; keep the structured fields
        # (errors cross process boundaries in worker pools).
        return (type(self), (self.error_class, self.errors))


def mask_account_numbers(text: str) -> str:
    """`text` with IBANs and long digit runs (card and account numbers) replaced by `<masked>`.

    Free text from a bank (remittance lines, `:86:` details) often names accounts; events
    carry it as `description`, and raw account numbers never leave an adapter.
    """
    return _SENSITIVE_VALUE.sub(_MASK, text)


def preview(value: object, path: str = "") -> str:
    """A short, safe rendering of `value` for an error record."""
    if path and _SENSITIVE_NAME.search(path):
        return _MASK
    if isinstance(value, dict):
        # Never echo a whole object: it may hold raw account data under any key.
        return f"<object with {len(value)} keys>"
    if isinstance(value, list | tuple):
        return f"<array of {len(value)}>"
    if isinstance(value, bytes | bytearray | memoryview):
        text = repr(bytes(value[:VALUE_PREVIEW_CHARS]))
    else:
        text = repr(value)
    text = _SENSITIVE_VALUE.sub(_MASK, text)
    if len(text) > VALUE_PREVIEW_CHARS:
        text = text[: VALUE_PREVIEW_CHARS - 1] + "…"
    return text


def field_error(path: str, value: object, reason: str) -> FieldError:
    """Build a `FieldError` with the value rendered by `preview` (masked and truncated)."""
    return FieldError(path, preview(value, path), reason)


_MISSING_TYPES = frozenset({"missing", "missing_argument"})


_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_]{1,64}", re.ASCII)
_MAX_SEGMENT = 40


def _segment(part: int | str) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    if _PLAIN_SEGMENT.fullmatch(part) and not _SENSITIVE_VALUE.search(part):
        return part
    # Unknown keys come from the payload: keep the path one short, masked line.
    text = _SENSITIVE_VALUE.sub(_MASK, repr(part))
    if len(text) > _MAX_SEGMENT:
        text = text[: _MAX_SEGMENT - 1] + "…"
    return f"[{text}]"


def _path(loc: Iterable[int | str], prefix: str) -> str:
    text = ".".join(_segment(p) for p in loc).replace(".[", "[")
    if prefix:
        return f"{prefix}.{text}" if text else prefix
    return text


def schema_error_from_validation(
    exc: ValidationError, *, prefix: str = "", error_class: str = "invalid_field"
) -> SchemaError:
    """Convert a pydantic `ValidationError` into a `SchemaError` with dotted paths."""
    out: list[FieldError] = []
    items = exc.errors(include_url=False, include_context=False)
    for item in items[:MAX_FIELD_ERRORS]:
        path = _path(item["loc"], prefix)
        if item["type"] in _MISSING_TYPES:
            out.append(FieldError(path, "", "field required"))
            continue
        reason = str(item["msg"])
        # Our own validators raise ValueError("…"); pydantic prefixes "Value error, ".
        reason = reason.removeprefix("Value error, ")
        out.append(field_error(path, item.get("input"), reason))
    if len(items) > MAX_FIELD_ERRORS:
        out.append(FieldError("", "", f"and {len(items) - MAX_FIELD_ERRORS} more errors"))
    return SchemaError(error_class, out)
