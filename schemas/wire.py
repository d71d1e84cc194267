"""A lighter decode of the hottest event type: transactions as `msgspec` structs.

`decode_transaction(raw)` parses a transaction's JSON bytes with msgspec into a
`TransactionWire`, a plain struct with the same attributes and the same values as the
`TransactionEvent` that `schemas.codec.decode` returns, and raises on anything it is not sure
of. The caller then decodes the record with `schemas.codec` as before, which decides and
words the error: so whatever this accepts, the models accept with equal values, and every
rejection (error class, field, reason) stays the models'. `TransactionEvent` is still what
adapters build and what the per-event reference path reads; the worker's batch path reads
either (`AnyTransaction`).

Each field is checked by msgspec in C where its rules are msgspec's own (enums, literals,
lengths, int bounds, dates, `None`; the country as the 676 codes its pattern matches), and
where they are not by the models' own Python checks (the amount's regex and sign, the time's
bounds) or by caches of values already seen valid under the models' validators (USCC,
source, account). One attribute differs in kind, not value: the struct keeps the amount as
the wire carries it (`amount_raw`, text or int) and `amount` is a property giving its
Decimal, made only when read; the batch path takes a CNY transaction's fen from the text
(`cny_fen`) and never reads it. msgspec's
patterns run Python's `re` (a call each, and `$` accepts a trailing newline), its datetimes
round a fraction finer than a microsecond where pydantic truncates it (so a time is taken
only in a form short enough not to have one), and it reads a JSON float into a Decimal.
Duplicate keys: msgspec keeps the last value, as pydantic does. Property tests:
tests/unit/schemas/test_wire_decode.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from string import ascii_uppercase
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta, Raw, Struct
from pydantic import TypeAdapter

from schemas.enums import CustomsMode, Direction, InstitutionType, TxChannel
from schemas.events import TransactionEvent
from schemas.fields import EARLIEST, AccountRef, Identifier, seen_uscc
from schemas.money import AMOUNT_RE, MAX_INTEGER_DIGITS, SUPPORTED_CURRENCIES
from schemas.versions import SCHEMA_VERSION

__all__ = ["AnyTransaction", "TransactionWire", "cny_fen", "decode_transaction"]

_SEEN_MAX: Final = 1 << 16

if TYPE_CHECKING:
    _Currency = str
    _Country = str
else:
    _Currency = Literal[tuple(sorted(SUPPORTED_CURRENCIES))]
    # CountryCode's pattern (^[A-Z]{2}$) as the 676 strings it matches: one lookup in C
    _Country = Literal[tuple(a + b for a in ascii_uppercase for b in ascii_uppercase)]


class _Seen(dict[str, str]):
    """Strings already seen valid under a field's own validator, each mapped to itself: a
    repeated value (an institution, a country, an account) costs one lookup in C. A new one
    comes to ``__missing__``, which runs the field's pydantic validator (the same compiled
    pattern and lengths the model uses) and remembers it; bounded (a cache, not a registry)."""

    def __init__(self, field: Any) -> None:
        super().__init__()
        self._validate = TypeAdapter(field).validator.validate_python

    def __missing__(self, value: str) -> str:
        checked: str = self._validate(value, strict=True)  # raises if not valid
        if len(self) >= _SEEN_MAX:
            self.clear()
        self[value] = checked
        return checked


_SOURCE: Final = _Seen(Identifier)
_ACCOUNT: Final = _Seen(AccountRef)
_USCC: Final = seen_uscc()
# the model's amount rules (decimal_field: AMOUNT_PATTERN text, or an int of at most
# MAX_INTEGER_DIGITS digits; >= 0), in its own words: the same Python regex and Decimal()
_AMOUNT_TEXT: Final = AMOUNT_RE.fullmatch
_INT_LIMIT: Final = 10**MAX_INTEGER_DIGITS
# msgspec's RFC 3339 parser (in C) rounds a fraction finer than a microsecond where pydantic
# truncates it: a time is taken only when its JSON is at most 29 bytes. msgspec requires
# seconds, so that leaves at most 6 fraction digits before the shortest offset ("Z").
_TIME: Final = msgspec.json.Decoder(Annotated[datetime, Meta(tz=True)]).decode
_TIME_MAX_JSON: Final = 29


class TransactionWire(Struct, forbid_unknown_fields=True, gc=False):
    """A transaction as the wire carries it, checked as `TransactionEvent` checks it.

    Not frozen only so that ``__post_init__`` can replace the raw fields cheaply; nothing
    writes to one after decoding. No reference cycles, so the cyclic GC skips them."""

    kind: Literal["transaction"]
    # pattern ^[\x21-\x7e]+$ checked in __post_init__ (str methods: no regex call)
    event_id: Annotated[str, Meta(min_length=1, max_length=128)]
    schema_version: Annotated[int, Meta(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)]
    source: str
    institution_type: InstitutionType
    # the annotations mypy reads are the values after __post_init__; msgspec reads the else
    # branches (the field's raw JSON, or its text or int), which __post_init__ replaces
    if TYPE_CHECKING:
        occurred_at: datetime
    else:
        occurred_at: Raw
    enterprise_uscc: str
    direction: Direction
    # the amount as the wire carries it (text or int), checked in __post_init__; `amount`
    # (the property below) is its Decimal, made only when read: the batch path takes a CNY
    # transaction's fen from the text (`cny_fen`) and never needs it
    amount_raw: str | Annotated[int, Meta(gt=-_INT_LIMIT, lt=_INT_LIMIT)] = msgspec.field(
        name="amount"
    )
    currency: _Currency
    booking_date: date
    value_date: date
    bank_tx_code: Annotated[str, Meta(min_length=1, max_length=35)] | None = None
    counterparty_country: _Country | None = None
    channel: TxChannel = TxChannel.other
    customs_mode: CustomsMode | None = None
    account_ref: str | None = None
    description: Annotated[str, Meta(min_length=1, max_length=140)] | None = None

    def __post_init__(self) -> None:
        # any exception here fails the decode (the caller then runs the models' path)
        event_id = self.event_id
        if not event_id.isascii() or not event_id.isprintable() or " " in event_id:
            raise ValueError("event_id")
        raw: Any = self.occurred_at  # the raw JSON until replaced below
        if len(raw) > _TIME_MAX_JSON:
            raise ValueError("occurred_at")
        at = _TIME(raw)
        # UtcDatetime: from EARLIEST on, in UTC (an offset of zero: "Z" or "+00:00")
        if at.tzinfo is not UTC or at < EARLIEST:
            raise ValueError("occurred_at")
        self.occurred_at = at
        amount: Any = self.amount_raw
        if amount.__class__ is str:
            if _AMOUNT_TEXT(amount) is None:
                raise ValueError("amount")
            # >= 0: the text's form leaves only a leading "-" to make it negative ("-0.00"
            # is zero); a sign test and a digit test, not a Decimal
            if amount[0] == "-" and amount.strip("-0."):
                raise ValueError("amount")
        elif amount < 0:
            raise ValueError("amount")
        # the shared string of the enterprise (kept by the rules and the stores keyed by it)
        self.enterprise_uscc = _USCC[self.enterprise_uscc]
        # the others are only checked: the validators do not change a value, and the struct
        # does not outlive its batch (a set attribute costs about as much as the lookup)
        _SOURCE[self.source]
        account = self.account_ref
        if account is not None:
            _ACCOUNT[account]

    @property
    def amount(self) -> Decimal:
        """The model's `amount`: ``Decimal`` of the wire's text or int (equal value, same
        text), made anew on each read."""
        return Decimal(self.amount_raw)


def cny_fen(raw: str | int) -> int | None:
    """CNY fen of a checked wire amount (``TransactionWire.amount_raw``) when it has exactly
    two decimal places or none, read from its text: what ``to_fen(amount)`` gives, without
    a Decimal; None for any other form (the caller then converts the Decimal)."""
    if raw.__class__ is int:
        return raw * 100  # type: ignore[operator]
    text: str = raw  # type: ignore[assignment]
    if text[-3:-2] == ".":
        return int(text.replace(".", ""))
    if "." not in text:
        return int(text) * 100
    return None


AnyTransaction = TransactionEvent | TransactionWire
"""What the worker's batch path reads as a transaction: either decode gives equal values."""

_DECODE: Final = msgspec.json.Decoder(TransactionWire).decode

decode_transaction: Final = _DECODE
"""Bytes → `TransactionWire`; raises (any exception) on anything it does not accept, and
the caller then decodes with `schemas.codec.decode`, which decides and words the error."""
