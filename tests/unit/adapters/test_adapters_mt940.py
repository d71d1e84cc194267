"""SWIFT MT940 in two bank styles, strict :61: checks, chunking and bad input."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from conftest import money

from adapters.parsers import mt940 as mt940_parser
from schemas import Direction, make_event_id

HEADER = ":20:REF1\n:25:BKCHCNBJ300/350055667788\n:28C:7/1\n:60F:C240304CNY1000,00\n"


def line(i: int, amount: str = "10,00", mark: str = "C") -> str:
    return f":61:2403050305{mark}{amount}NTRFNONREF//BR{i:06d}\n:86:/REMI/entry {i}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stmt.sta"
    path.write_text(text, encoding="utf-8")
    return path


def test_bank_of_china_style_with_fin_envelope(parse, accounts) -> None:
    parsed = parse("mt940", "mt940_boc_envelope.sta")
    assert [(e.direction, e.amount) for e in parsed.events] == [
        (Direction.credit, Decimal("180000.00")),
        (Direction.debit, Decimal("25000.00")),
        (Direction.credit, Decimal("9800.00")),
        (Direction.debit, Decimal("356.00")),
        (Direction.credit, Decimal("42000.00")),
    ]
    first = parsed.events[0]
    assert first.enterprise_uscc == "91330203MA2B7Q1X6F"
    assert first.account_ref == accounts.ref("350055667788")  # the number after BIC/
    assert first.event_id == make_event_id(
        "TEST-BANK", first.account_ref, "BOC24030512345", money(first)
    )
    assert first.description == "货款 PO-2024-0311"
    assert parsed.events[2].customs_mode == "9610"
    assert parsed.events[2].counterparty_country == "LU"
    assert parsed.events[4].counterparty_country == "DE"  # from /CNTP/ IBAN
    assert [(r.field, r.error_class) for r in parsed.rejected] == [
        (":61: mark", "reversal"),
        (":61: amount", "invalid_field"),
    ]
    assert parsed.rejected[1].location.endswith("mt940_boc_envelope.sta:22")
    assert parsed.rejected[1].original.startswith(b":61:2403060306D1,234.00NTRF")


def test_german_structured_style(parse) -> None:
    parsed = parse("mt940", "mt940_de_structured.sta")
    assert [e.amount for e in parsed.events] == [
        Decimal("4500.00"),
        Decimal("1250.00"),
        Decimal("89.90"),
        Decimal("12000.00"),
    ]
    assert [e.counterparty_country for e in parsed.events] == ["DE", "DE", "AT", "NL"]
    assert parsed.events[0].description == "Rechnung RE2024-0117 Schuhe Lieferung KW09"
    assert parsed.events[0].currency == "EUR"
    assert not parsed.rejected


def test_ids_without_bank_reference_are_stable_and_distinct(parse) -> None:
    first = parse("mt940", "mt940_de_structured.sta").events
    again = parse("mt940", "mt940_de_structured.sta").events
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert len({e.event_id for e in first}) == 4  # :20:STARTUMS repeats; dates differ


def test_undecodable_entry_is_rejected_alone(parse) -> None:
    parsed = parse("mt940", "mt940_bad_encoding.sta")
    assert [e.amount for e in parsed.events] == [Decimal("5000.00"), Decimal("120.00")]
    [rejected] = parsed.rejected
    assert (rejected.field, rejected.error_class) == ("(encoding)", "undecodable")


def test_encoding_override(tmp_path: Path, parse) -> None:
    path = tmp_path / "gbk.sta"
    path.write_bytes(
        (HEADER + ":61:2403050305C10,00NTRFNONREF//B1\n:86:/REMI/运费\n").encode("gb18030")
    )
    [event] = parse("mt940", path, encoding="gb18030").events
    assert event.description == "运费"


def test_many_entries_cross_chunk_boundaries(tmp_path: Path, parse, monkeypatch) -> None:
    monkeypatch.setattr(mt940_parser, "CHUNK", 16)
    body = "".join(line(i, "1.000,00" if i == 37 else "10,00") for i in range(100))
    parsed = parse("mt940", write(tmp_path, HEADER + body + ":62F:C240305CNY1990,00\n"))
    assert len(parsed.events) == 99
    assert [r.location.rsplit(":", 1)[1] for r in parsed.rejected] == [str(5 + 2 * 37)]
    descriptions = [e.description for e in parsed.events]
    assert descriptions == [f"entry {i}" for i in range(100) if i != 37]  # file order kept


@pytest.mark.parametrize(
    ("statement_line", "field"),
    [
        (":61:2402300230C10,00NTRFNONREF//B1\n", ":61: value date"),
        (":61:2403050305C10.00NTRFNONREF//B1\n", ":61: amount"),
        (":61:2403050305C10,00//B1\n", ":61: transaction type"),
        (":61:garbage\n", ":61:"),
    ],
)
def test_strict_statement_line_checks(
    tmp_path: Path, parse, statement_line: str, field: str
) -> None:
    parsed = parse("mt940", write(tmp_path, HEADER + statement_line + line(2)))
    assert [r.field for r in parsed.rejected] == [field]
    assert len(parsed.events) == 1


def test_statement_without_opening_balance(tmp_path: Path, parse) -> None:
    text = HEADER.replace(":60F:C240304CNY1000,00\n", "") + line(1)
    [rejected] = parse("mt940", write(tmp_path, text)).rejected
    assert rejected.field == ":60F:"


def test_unknown_account(tmp_path: Path, parse) -> None:
    text = HEADER.replace("350055667788", "111122223333") + line(1)
    [rejected] = parse("mt940", write(tmp_path, text)).rejected
    assert rejected.error_class == "unknown_account"
    assert "111122223333" not in rejected.reason


def test_statement_level_86_is_not_an_entry(tmp_path: Path, parse) -> None:
    text = HEADER + line(1) + ":62F:C240305CNY1010,00\n:86:/SUM/closing info\n"
    parsed = parse("mt940", write(tmp_path, text))
    assert len(parsed.events) == 1
    assert parsed.events[0].description == "entry 1"


def test_empty_file(tmp_path: Path, parse) -> None:
    [rejected] = parse("mt940", write(tmp_path, "\n\n")).rejected
    assert rejected.reason == "empty file"
