"""SchemaError / FieldError: one-line messages, safe value previews."""

from __future__ import annotations

import pickle
import re

import pytest

from schemas import FieldError, SchemaError
from schemas.errors import VALUE_PREVIEW_CHARS, field_error, mask_account_numbers, preview


def test_str_is_one_line_naming_each_field_and_reason():
    err = SchemaError(
        "invalid_field",
        [FieldError("amount", "'-1'", "must be > 0"), FieldError("currency", "'XXX'", "bad")],
    )
    text = str(err)
    assert "\n" not in text
    assert text == "invalid_field: amount: must be > 0 (got '-1'); currency: bad (got 'XXX')"
    assert err.error_class == "invalid_field"
    assert err.errors[0].path == "amount"


def test_is_a_value_error_and_pickles_with_its_fields():
    err = SchemaError("unsupported_version", [FieldError("schema_version", "2", "unsupported")])
    assert isinstance(err, ValueError)
    copy = pickle.loads(pickle.dumps(err))
    assert copy.error_class == err.error_class
    assert copy.errors == err.errors
    assert str(copy) == str(err)


def test_without_errors_the_message_is_the_class():
    assert str(SchemaError("invalid_json")) == "invalid_json"


def test_preview_truncates_to_80_chars():
    text = preview("x" * 500)
    assert len(text) == VALUE_PREVIEW_CHARS
    assert text.endswith("…")
    assert preview("short") == "'short'"


def test_preview_of_bytes_is_bounded():
    assert len(preview(b"\x00" * 10_000)) <= VALUE_PREVIEW_CHARS


@pytest.mark.parametrize(
    "path", ["account", "debtor_account", "creditorAccount", "iban", "IBAN", "acct_no", "card"]
)
def test_values_of_account_like_fields_are_masked(path):
    assert field_error(path, "DE89370400440532013000", "bad").value == "<masked>"


@pytest.mark.parametrize(
    "value",
    [
        "DE89370400440532013000",  # IBAN
        "GB29 NWBK 6016 1331 9268 19",  # IBAN, spaced
        "6222021234567890123",  # bank card / account number
        "pay 6222-0212-3456-7890 now",
    ],
)
def test_account_numbers_are_masked_in_any_field(value):
    shown = field_error("description", value, "bad").value
    assert "<masked>" in shown
    assert re.search(r"[0-9]{4}", shown) is None


def test_uscc_and_amounts_stay_readable():
    assert field_error("enterprise_uscc", "91110000600037341L", "x").value == "'91110000600037341L'"
    assert field_error("amount", "1250.00", "x").value == "'1250.00'"


def test_containers_are_summarised_not_echoed():
    assert preview({"account": "DE89370400440532013000"}) == "<object with 1 keys>"
    assert preview([1, 2, 3]) == "<array of 3>"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("COMPTE . IBAN LU28 0019 4006 4475 0000", "COMPTE . IBAN <masked>"),
        ("an NL69INGB0123456789 bezahlt", "an <masked> bezahlt"),
        ("转入 6222 0212 3456 7890 123 工资", "转入 <masked> 工资"),
        ("card 4111-1111-1111-1111", "card <masked>"),
        # Danske Bank: a spaced IBAN runs on into the next words and stops inside the
        # account number `111111-11111111`; its tail must not stay readable
        (
            "IBAN no.: FI1111111111111111 DABADKKK 111111-11111111 DANSKE BANK",
            "IBAN no.: <masked> DANSKE BANK",
        ),
        # SNS: the counterparty IBAN in lower case, glued to a reference
        ("358857495-nl11rabo0987654321-f. spark bedrijf", "358857495-<masked>-f. spark bedrijf"),
        # Triodos: a sub-field number glued before the IBAN
        (">21NL13RABO0123456789 >22RABO", ">21<masked> >22RABO"),
        # an MT940 type code glued before it
        ("C15000,00NOVBNL11RABO0987654321", "C15000,00NOVB<masked>"),
        # not account numbers: a USCC, dates, short references, amounts, a phone number
        ("91330106MA2CDL8K41 2024-03-05 PO-0301 1,234.56", None),
        ("tel 13812345678 ref 500106875", None),
        ("invoice ab12 of 2024-03-05", None),
    ],
)
def test_mask_account_numbers(text: str, masked: str | None) -> None:
    assert mask_account_numbers(text) == (masked if masked is not None else text)
