"""Reusable annotated field types: decimals, UTC datetimes, USCC, currency, identifiers.

Each type validates in one place, so every model gets the same wire rules and the JSON
Schema files describe exactly what the validators accept.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from operator import methodcaller
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic import StringConstraints as Str
from pydantic_core import CoreSchema
from pydantic_core import core_schema as cs

from schemas.money import AMOUNT_PATTERN, AMOUNT_RE, MAX_INTEGER_DIGITS, SUPPORTED_CURRENCIES
from schemas.uscc import USCC_PATTERN, check_uscc

__all__ = [
    "AccountRef",
    "Amount",
    "AnnualRate",
    "CountryCode",
    "Currency",
    "EventId",
    "Identifier",
    "NonNegativeAmount",
    "PartnerShare",
    "Rate",
    "Score",
    "ShortText",
    "Uscc",
    "UtcDatetime",
    "decimal_field",
    "format_decimal",
    "seen_uscc",
    "wire_function",
    "wire_schema",
]

_INT_LIMIT = 10**MAX_INTEGER_DIGITS

# The codec's fast wire decoder (schemas/codec.py) swaps the Python validators below for
# these: compiled checks, or a lookup of values already validated. They accept a subset of
# what the validator they replace accepts, and give the same value; anything they reject
# is decoded again by the models' own validators, which word the error.
_WIRE_SCHEMAS: dict[Callable[..., Any], CoreSchema] = {}
_WIRE_FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {}


def wire_schema(validator: Callable[..., Any]) -> CoreSchema | None:
    """The compiled JSON-input schema standing in for a plain field validator, if any."""
    return _WIRE_SCHEMAS.get(validator)


def wire_function(validator: Callable[..., Any]) -> Callable[..., Any] | None:
    """The cheaper function standing in for an after-validator on JSON input, if any."""
    return _WIRE_FUNCTIONS.get(validator)


def format_decimal(value: Decimal) -> str:
    """Fixed-point text (`str()` would give `1E-8` or `1E+3`, which the wire rejects)."""
    return format(value, "f")


def _to_decimal(value: object) -> Decimal:
    if type(value) is str:
        if AMOUNT_RE.fullmatch(value) is None:
            raise ValueError("not a plain decimal string like '1234.56'")
        return Decimal(value)
    if type(value) is int:
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise ValueError(f"more than {MAX_INTEGER_DIGITS} integer digits")
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("must be a finite decimal")
        # Canonical fixed-point form, so what we hold is exactly what we will emit.
        return _to_decimal(format_decimal(value))
    if type(value) is float:
        # A JSON float has already been rounded to binary: money must arrive as text.
        raise ValueError("must be a decimal string or an integer, not a float")
    raise ValueError(f"must be a decimal string or an integer, not {type(value).__name__}")


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == int(value) else float(value)


def decimal_field(
    *,
    gt: Decimal | None = None,
    ge: Decimal | None = None,
    le: Decimal | None = None,
    description: str,
) -> Any:
    """An `Annotated[Decimal, ...]` with strict wire rules and optional bounds.

    Accepts a decimal string (`AMOUNT_PATTERN`), an int or a `Decimal`; never a float.
    Serialises as a fixed-point string.
    """

    def validate(value: object) -> Decimal:
        number = _to_decimal(value)
        if gt is not None and not number > gt:
            raise ValueError(f"must be > {gt}")
        if ge is not None and not number >= ge:
            raise ValueError(f"must be >= {ge}")
        if le is not None and not number <= le:
            raise ValueError(f"must be <= {le}")
        return number

    bounds = []
    if gt is not None:
        bounds.append(f"> {gt}")
    if ge is not None:
        bounds.append(f">= {ge}")
    if le is not None:
        bounds.append(f"<= {le}")
    text = description + (f" ({', '.join(bounds)})" if bounds else "")
    _WIRE_SCHEMAS[validate] = _wire_decimal(gt=gt, ge=ge, le=le)
    integer: dict[str, Any] = {
        "type": "integer",
        "minimum": -(_INT_LIMIT - 1),
        "maximum": _INT_LIMIT - 1,
    }
    if gt is not None:
        integer["exclusiveMinimum"] = _json_number(gt)
    if ge is not None:
        integer["minimum"] = _json_number(ge)
    if le is not None:
        integer["maximum"] = _json_number(le)
    schema = {
        "description": text + "; a decimal string, or an integer; never a JSON float",
        "anyOf": [{"type": "string", "pattern": AMOUNT_PATTERN}, integer],
    }
    return Annotated[
        Decimal,
        PlainValidator(validate),
        PlainSerializer(format_decimal, return_type=str, when_used="json"),
        WithJsonSchema(schema, mode="validation"),
        WithJsonSchema({"type": "string", "pattern": AMOUNT_PATTERN}, mode="serialization"),
    ]


def _wire_decimal(*, gt: Decimal | None, ge: Decimal | None, le: Decimal | None) -> CoreSchema:
    """`decimal_field`'s rules in compiled code: a string matching `AMOUNT_PATTERN` or an int
    of at most `MAX_INTEGER_DIGITS` digits, made a `Decimal` by its own constructor (as the
    Python validator does), then bounded."""
    to_decimal = cs.no_info_plain_validator_function(Decimal)
    bounded = cs.decimal_schema(gt=gt, ge=ge, le=le)
    text = cs.str_schema(pattern=AMOUNT_PATTERN)
    integer = cs.int_schema(gt=-_INT_LIMIT, lt=_INT_LIMIT)
    return cs.union_schema(
        [
            cs.chain_schema([text, to_decimal, bounded]),
            cs.chain_schema([integer, to_decimal, bounded]),
        ],
        mode="left_to_right",
    )


_ZERO = Decimal(0)
_ONE = Decimal(1)

if TYPE_CHECKING:
    Amount = Decimal
    NonNegativeAmount = Decimal
    AnnualRate = Decimal
    PartnerShare = Decimal
    Rate = Decimal
    Score = Decimal
else:
    Amount = decimal_field(gt=_ZERO, description="Money amount")
    NonNegativeAmount = decimal_field(ge=_ZERO, description="Money amount")
    AnnualRate = decimal_field(ge=_ZERO, le=_ONE, description="Annual rate as a fraction")
    PartnerShare = decimal_field(
        ge=Decimal("0.3"), le=_ONE, description="Share funded by the partner (joint lending)"
    )
    Rate = decimal_field(gt=_ZERO, description="CNY per one unit of the currency")
    Score = decimal_field(ge=_ZERO, le=Decimal(100), description="Score 0-100")


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("datetime out of range once converted to UTC") from None


# on the wire the offset is pydantic-core's own tzinfo, never `UTC`: convert, in C
_WIRE_FUNCTIONS[_to_utc] = methodcaller("astimezone", UTC)

# Kafka timestamps start at the epoch, and the worker's calendar (Beijing days, windows)
# cannot represent an instant shortly after datetime.min: earlier times are refused
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)

UtcDatetime = Annotated[AwareDatetime, Field(ge=EARLIEST), AfterValidator(_to_utc)]
"""Timezone-aware datetime (an offset is required) from 1970-01-01T00:00:00Z on, normalised
to UTC; serialised with Z."""

if TYPE_CHECKING:
    Currency = str
else:
    Currency = Literal[tuple(sorted(SUPPORTED_CURRENCIES))]
"""ISO 4217 alphabetic code from `SUPPORTED_CURRENCIES`."""


def _uscc(value: object, info: ValidationInfo) -> str:
    canonical = check_uscc(value)
    # On the wire (JSON) the code must be as docs/events.md's pattern writes it: a record
    # keyed by a lower-case or padded code lands on another partition than its enterprise.
    # Python input (adapters building events from bank files) is normalised instead.
    if info.mode == "json" and canonical != value:
        raise ValueError("must be upper case without spaces")
    return canonical


_WIRE_USCC_MAX = 1 << 16


class _SeenUscc(dict[str, str]):
    """The codes already seen valid on the wire, each mapped to itself: every event of an
    enterprise then shares one string. The wire validator is this dict's ``__getitem__``,
    so a code seen before costs a lookup in C, no Python call; a new one comes to
    ``__missing__``, which checks it like `_uscc` does."""

    def __missing__(self, value: object) -> str:
        return _uscc_wire(value)


_WIRE_USCC = _SeenUscc()


def _uscc_wire(value: object) -> str:
    """`_uscc` on JSON input for a code not seen before: checked, then remembered."""
    if type(value) is not str:
        raise ValueError("not a string")  # the models' own validator words the error
    seen = _WIRE_USCC.get(value)
    if seen is not None:
        return seen
    if check_uscc(value, cached=False) != value:  # this dict is the cache
        raise ValueError("not in canonical form")
    if len(_WIRE_USCC) >= _WIRE_USCC_MAX:
        _WIRE_USCC.clear()  # bounded: a cache, not a registry
    _WIRE_USCC[value] = value
    return value


_WIRE_SCHEMAS[_uscc] = cs.no_info_plain_validator_function(_WIRE_USCC.__getitem__)


def seen_uscc() -> dict[str, str]:
    """The wire's USCC check as a dict: ``seen[code]`` is `code` (the shared string) when it
    is a valid USCC in canonical form, and raises ``ValueError`` otherwise (`schemas.wire`)."""
    return _WIRE_USCC


Uscc = Annotated[
    str,
    PlainValidator(_uscc),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": USCC_PATTERN,
            "description": "Unified Social Credit Code (GB 32100-2015), check character verified",
        }
    ),
]
"""USCC validated (length, alphabet, check character); upper-cased from Python input, and
required in that canonical form in JSON (the wire)."""

EventId = Annotated[str, Str(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
"""Printable ASCII without spaces (a UUIDv5 from `make_event_id` in practice)."""

# Explicit ASCII classes: `\w` is Unicode-aware in pydantic-core's regex engine but ASCII
# in JSON Schema (ECMA-262), and the two must accept the same strings.
Identifier = Annotated[
    str, Str(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]*$")
]
"""Institution, loan, application and lender ids: short, no spaces."""

ShortText = Annotated[str, Str(min_length=1, max_length=140)]

CountryCode = Annotated[str, Str(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2."""

AccountRef = Annotated[str, Str(pattern=r"^acct_[0-9a-f]{32}$")]
"""Output of `pseudonymise_account`; the pattern makes raw account numbers unrepresentable."""
