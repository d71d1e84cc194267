"""Strict amount parsing, currency tables and THE fen conversion rule."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import (
    CURRENCY_EXPONENT,
    NUMERIC_CURRENCY,
    SUPPORTED_CURRENCIES,
    SchemaError,
    parse_amount,
    to_fen,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", "0"),
        ("1", "1"),
        ("1000.00", "1000.00"),
        ("0.5", "0.5"),
        ("-12.34", "-12.34"),
        ("007.10", "7.10"),
        ("999999999999999.99999999", "999999999999999.99999999"),
    ],
)
def test_parse_amount_accepts_plain_decimals(text, value):
    parsed = parse_amount(text)
    assert parsed == Decimal(value)
    assert str(parsed) == text or parsed == Decimal(text)


@pytest.mark.parametrize(
    "text",
    [
        "1,000.00",
        "1e3",
        "1E3",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "",
        " ",
        " 1.00",
        "1.00 ",
        "1.00\n",
        "+1.00",
        "1.",
        ".5",
        "1..0",
        "1.0.0",
        "1_000",
        "١٢٣",  # Arabic-Indic digits: Decimal() would accept them
        "１２３",  # full-width digits
        "1,5",
        "0x10",
        "--1",
        "1234567890123456",  # 16 integer digits
        "1.123456789",  # 9 fraction digits
    ],
)
def test_parse_amount_rejects_everything_else(text):
    with pytest.raises(SchemaError) as info:
        parse_amount(text)
    assert info.value.error_class == "invalid_field"
    assert info.value.errors[0].path == "amount"


@pytest.mark.parametrize("value", [1.5, 100, None, Decimal("1.5"), b"1.5"])
def test_parse_amount_takes_text_only(value):
    with pytest.raises(SchemaError):
        parse_amount(value)  # type: ignore[arg-type]


def test_parse_amount_names_the_given_path():
    with pytest.raises(SchemaError) as info:
        parse_amount("1,0", path="principal")
    assert info.value.errors[0].path == "principal"


@pytest.mark.parametrize(
    ("amount", "rate", "fen"),
    [
        ("1", "1", 100),
        ("12.34", "1", 1234),
        ("0.005", "1", 0),  # half to even: 0.5 fen → 0
        ("0.015", "1", 2),  # 1.5 fen → 2
        ("0.025", "1", 2),  # 2.5 fen → 2
        ("0.035", "1", 4),
        ("-0.015", "1", -2),
        ("100", "7.1006", 71006),
        ("0.01", "7.1006", 7),  # 7.1006 fen
        ("1.23", "0.0487", 6),  # JPY→CNY: 5.9901 fen
        ("3", "0.005", 2),  # 1.5 fen exactly → 2
        ("5", "0.005", 2),  # 2.5 fen exactly → 2
    ],
)
def test_to_fen_rounds_half_even_once(amount, rate, fen):
    assert to_fen(Decimal(amount), Decimal(rate)) == fen


def test_to_fen_default_rate_is_one():
    assert to_fen(Decimal("99.99")) == 9999


def test_to_fen_is_exact_beyond_default_decimal_precision():
    # The exact product is ...10000.5000000000000005 fen: above the tie, so it rounds up.
    # Python's default 28-digit context would first round it to an exact tie (...10000.5)
    # and then, half to even, down: one fen lost.
    amount = Decimal("100000000000000.00500000")
    rate = Decimal("1.000000000001")
    naive = int((amount * rate * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    assert naive == 10000000000010000
    assert to_fen(amount, rate) == 10000000000010001


@given(
    st.decimals(min_value=-(10**12), max_value=10**12, places=2),
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(1000), places=6),
)
def test_to_fen_matches_the_contract_formula(amount, rate):
    expected = int((amount * rate * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    assert to_fen(amount, rate) == expected


def test_currency_tables_are_consistent():
    required = {"CNY", "USD", "EUR", "HKD", "JPY", "GBP", "SGD", "KRW", "AUD", "CAD", "CHF"}
    assert required <= SUPPORTED_CURRENCIES
    assert set(CURRENCY_EXPONENT) == SUPPORTED_CURRENCIES
    assert CURRENCY_EXPONENT["JPY"] == 0
    assert CURRENCY_EXPONENT["KRW"] == 0
    # Every active ISO 4217 currency, with its own minor unit (issue 12: PLN, HUF, MKD …).
    assert {"PLN", "HUF", "MKD", "CZK", "RUB", "TWD", "MOP"} <= SUPPORTED_CURRENCIES
    assert (CURRENCY_EXPONENT["KWD"], CURRENCY_EXPONENT["CLF"], CURRENCY_EXPONENT["VND"]) == (
        3,
        4,
        0,
    )
    assert not {"XAU", "XDR", "XTS", "XXX", "RMB", "CNH"} & SUPPORTED_CURRENCIES
    assert len(SUPPORTED_CURRENCIES) > 150
    assert set(NUMERIC_CURRENCY.values()) == SUPPORTED_CURRENCIES
    assert NUMERIC_CURRENCY["156"] == "CNY"
    assert NUMERIC_CURRENCY["840"] == "USD"
    assert all(len(code) == 3 and code.isdigit() for code in NUMERIC_CURRENCY)
