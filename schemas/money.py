"""Money: currencies, strict amount parsing and THE conversion to integer CNY fen.

Amounts are `Decimal` end to end and summed as integer fen; floats appear only at the
Prometheus boundary. On the wire an amount is a JSON string (`"1250.00"`) or a JSON
integer; a JSON float is rejected because it has already been rounded to binary.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Context, Decimal

import iso4217

from schemas.errors import SchemaError, field_error

__all__ = [
    "AMOUNT_PATTERN",
    "AMOUNT_RE",
    "CURRENCY_EXPONENT",
    "MAX_COUNTED_FEN",
    "MAX_FRACTION_DIGITS",
    "MAX_INTEGER_DIGITS",
    "MAX_LOAN_FEN",
    "NUMERIC_CURRENCY",
    "SUPPORTED_CURRENCIES",
    "parse_amount",
    "to_fen",
]

CURRENCY_EXPONENT: dict[str, int] = {
    currency.code: currency.exponent
    for currency in iso4217.Currency
    if currency.exponent is not None  # gold, SDR, test codes: no minor unit, not money here
}
"""ISO 4217 minor-unit exponent of every active currency (List One as published by the
ISO 4217 maintenance agency, via the `iso4217` package): `JPY` 0, `KWD` 3, `CLF` 4."""

SUPPORTED_CURRENCIES: frozenset[str] = frozenset(CURRENCY_EXPONENT)
"""ISO 4217 alphabetic codes accepted in events (and in the FX reference topic)."""

NUMERIC_CURRENCY: dict[str, str] = {
    f"{currency.number:03d}": currency.code
    for currency in iso4217.Currency
    if currency.code in SUPPORTED_CURRENCIES
}
"""ISO 4217 numeric → alphabetic (UnionPay `currencyCode` is numeric)."""

MAX_INTEGER_DIGITS = 15
"""Amounts stay below 10^15 so fen sums fit comfortably in 64 bits and in Decimal precision."""
MAX_COUNTED_FEN = 10**15
"""An event counted in the figures is worth less than this in CNY fen (10 trillion yuan,
10 万亿元), after conversion at the rate in force: a larger one is dead-lettered
(`invalid_field`). The wire allows foreign amounts up to 10^15 units at any rate; sums of
such values would leave the 64-bit integers the changelog stores (the worker would fail
every batch holding one instead of dead-lettering it)."""
MAX_LOAN_FEN = 10**14
"""A disbursed loan's principal is less than this in CNY fen (1 trillion yuan, 1 万亿元):
the rate-weighted principal (fen × annual rate in 1/10000, up to 10^4) must stay in 64 bits."""
MAX_FRACTION_DIGITS = 8
"""Enough for FX rates and interest rates; statement amounts use the currency exponent."""

AMOUNT_PATTERN = rf"^-?[0-9]{{1,{MAX_INTEGER_DIGITS}}}(\.[0-9]{{1,{MAX_FRACTION_DIGITS}}})?$"
"""The wire form of a decimal string (also published in the JSON Schema files)."""

# ASCII only: `\d` and Decimal() would also accept other scripts' digits.
AMOUNT_RE = re.compile(AMOUNT_PATTERN, re.ASCII)


def parse_amount(text: str, path: str = "amount") -> Decimal:
    """Parse a strict decimal string: `-?digits[.digits]`.

    No thousands separators, exponent, whitespace, `+`, NaN or Infinity; at most
    `MAX_INTEGER_DIGITS` integer and `MAX_FRACTION_DIGITS` fraction digits. A leading `-`
    is allowed (signed statement columns); models enforce their own sign rules.
    Raises `SchemaError` (`invalid_field`) naming `path`.
    """
    if type(text) is not str or AMOUNT_RE.fullmatch(text) is None:
        raise SchemaError(
            "invalid_field",
            [field_error(path, text, "not a plain decimal string like '1234.56'")],
        )
    return Decimal(text)


# Wide enough that amount × rate × 100 is exact (the default 28 digits is not, for
# 15+8-digit amounts times a 9-digit rate); only the final quantize rounds.
_EXACT = Context(prec=80)
_HUNDRED = Decimal(100)
_ONE = Decimal(1)


def to_fen(amount: Decimal, rate_to_cny: Decimal = Decimal(1)) -> int:
    """Convert an amount to integer CNY fen, rounding half to even once at the end.

    THE single conversion rule: the stream and the simulator's oracle both call it.
    """
    product = _EXACT.multiply(_EXACT.multiply(amount, rate_to_cny), _HUNDRED)
    return int(product.quantize(_ONE, rounding=ROUND_HALF_EVEN, context=_EXACT))
