"""Berlin Group NextGenPSD2 and UK Open Banking transaction documents."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import money

from schemas import Direction, TxChannel, make_event_id


def write(tmp_path: Path, doc: object, name: str = "doc.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_psd2_booked_and_pending(parse, accounts) -> None:
    parsed = parse("psd2", "psd2_abn_transactions.json")
    assert [(e.direction, e.amount) for e in parsed.events] == [
        (Direction.credit, Decimal("4500.00")),
        (Direction.debit, Decimal("256.67")),
        (Direction.debit, Decimal("64.20")),
    ]
    ref = accounts.ref("NL91ABNA0417164300")
    assert parsed.events[0].event_id == make_event_id(
        "TEST-BANK", ref, "ABN2403050001", money(parsed.events[0])
    )
    assert parsed.events[2].event_id == make_event_id(
        "TEST-BANK", ref, "1234571"
    )  # no entryReference
    assert parsed.events[1].value_date.isoformat() == "2024-03-06"
    assert parsed.events[1].counterparty_country == "NL"
    assert parsed.events[2].channel is TxChannel.pos
    assert parsed.events[2].description == "Betaalautomaat 05-03-2024 12:41 pasnr. 021"
    assert parsed.parser.stats.not_booked == {"pending": 1}
    assert [(r.location.rsplit("#", 1)[1], r.field) for r in parsed.rejected] == [
        ("/transactions/booked/2", "transactionAmount.amount"),
        ("/transactions/booked/3", "transactionAmount.currency"),
    ]
    assert json.loads(parsed.rejected[0].original)["transactionId"] == "1234569"


def test_psd2_amount_must_be_a_string(tmp_path: Path, parse) -> None:
    doc = {
        "account": {"iban": "NL91ABNA0417164300"},
        "transactions": {
            "booked": [
                {
                    "transactionId": "1",
                    "bookingDate": "2024-03-05",
                    "transactionAmount": {"currency": "EUR", "amount": 12.5},
                }
            ]
        },
    }
    [rejected] = parse("psd2", write(tmp_path, doc)).rejected
    assert rejected.reason == "must be a decimal string"


def test_psd2_unmapped_account_rejects_every_booked_entry(tmp_path: Path, parse) -> None:
    doc = {
        "account": {"iban": "DE02100100109307118603"},
        "transactions": {"booked": [{"transactionId": str(i)} for i in range(3)]},
    }
    parsed = parse("psd2", write(tmp_path, doc))
    assert [r.error_class for r in parsed.rejected] == ["unknown_account"] * 3
    assert all("DE02100100109307118603" not in r.reason for r in parsed.rejected)


@pytest.mark.parametrize(
    ("content", "error_class"),
    [
        (b"", "invalid_shape"),
        (b'{"transactions": {"booked": [', "invalid_json"),
        ('{"x": "运费"}'.encode("gb18030"), "undecodable"),
        (b'{"accounts": []}', "invalid_shape"),
    ],
)
def test_psd2_broken_documents(tmp_path: Path, parse, content: bytes, error_class: str) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    [rejected] = parse("psd2", path).rejected
    assert rejected.error_class == error_class


def test_obie_transactions(parse, accounts) -> None:
    parsed = parse("obie", "obie_transactions.json")
    assert [(e.direction, e.amount) for e in parsed.events] == [
        (Direction.credit, Decimal("1230.00")),
        (Direction.debit, Decimal("45.99")),
        (Direction.debit, Decimal("2750.00")),
    ]
    first, card, warehouse = parsed.events
    assert first.occurred_at.isoformat() == "2024-03-05T09:12:01+00:00"
    assert first.counterparty_country == "GB"  # sort code
    assert first.event_id == make_event_id("TEST-BANK", accounts.ref("22289"), "123", money(first))
    assert card.channel is TxChannel.pos
    assert warehouse.customs_mode == "9810"
    assert warehouse.value_date.isoformat() == "2024-03-06"
    assert parsed.parser.stats.not_booked == {"pending": 1}
    [rejected] = parsed.rejected
    assert rejected.error_class == "unknown_account"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Status": "Settled"}, "Status"),
        ({"CreditDebitIndicator": "C"}, "CreditDebitIndicator"),
        ({"BookingDateTime": "05/03/2024"}, "BookingDateTime"),
        ({"Amount": {"Amount": "1,230.00", "Currency": "GBP"}}, "Amount.Amount"),
        ({"Amount": {"Amount": "1230.00", "Currency": "XBT"}}, "Amount.Currency"),
    ],
)
def test_obie_bad_fields(tmp_path: Path, parse, change: dict, field: str) -> None:
    base = {
        "AccountId": "22289",
        "TransactionId": "9",
        "Amount": {"Amount": "1.00", "Currency": "GBP"},
        "CreditDebitIndicator": "Credit",
        "Status": "Booked",
        "BookingDateTime": "2024-03-05T09:12:01+00:00",
    }
    doc = {"Data": {"Transaction": [base | change, base | {"TransactionId": "10"}]}}
    parsed = parse("obie", write(tmp_path, doc))
    assert [r.field for r in parsed.rejected] == [field]
    assert len(parsed.events) == 1


def test_psd2_page_is_streamed_account_may_come_last(tmp_path: Path, parse) -> None:
    entry = {
        "transactionId": "T1",
        "bookingDate": "2024-03-05",
        "transactionAmount": {"amount": "10.00", "currency": "EUR"},
    }
    doc = {
        "transactions": {"booked": [entry, entry | {"transactionId": "T2"}], "pending": [{}]},
        "account": {"iban": "NL91ABNA0417164300"},
    }
    parsed = parse("psd2", write(tmp_path, doc))
    assert not parsed.rejected
    assert len(parsed.events) == 2
    assert parsed.parser.stats.not_booked == {"pending": 1}


def test_psd2_truncated_page_keeps_the_entries_before_the_fault(tmp_path: Path, parse) -> None:
    entry = (
        '{"transactionId": "T%d", "bookingDate": "2024-03-05", '
        '"transactionAmount": {"amount": "10.00", "currency": "EUR"}}'
    )
    text = (
        '{"account": {"iban": "NL91ABNA0417164300"}, "transactions": {"booked": ['
        + ", ".join(entry % i for i in range(3))
        + ', {"transactionId": "T9", "bookingDa'
    )
    path = tmp_path / "page.json"
    path.write_text(text, encoding="utf-8")
    parsed = parse("psd2", path)
    assert len(parsed.events) == 3
    [broken] = parsed.rejected
    assert broken.error_class == "invalid_json"
    assert "nothing after the first 3 complete entries" in broken.reason
