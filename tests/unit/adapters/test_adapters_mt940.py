"""SWIFT MT940 in two bank styles, strict :61: checks, chunking and bad input."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from conftest import FIXTURES, money

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
        (":61:2404310501C10,00NTRFNONREF//B1\n", ":61: value date"),  # 31 April
        (":61:2403050305C1.234,00NTRFNONREF//B1\n", ":61: amount"),
        (":61:2403050305C10,00,5NTRFNONREF//B1\n", ":61: amount"),
        (":61:2403051305C10,00NTRFNONREF//B1\n", ":61: entry date"),
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


@pytest.mark.parametrize(
    ("statement_line", "amount", "code", "booked"),
    [
        (":61:2403050305C10,00NOV NONREF//B1", "10.00", "NOV", "2024-03-05"),  # ING
        (":61:2403050305DR125,00S   NONREF", "125.00", "S", "2024-03-05"),  # Commerzbank
        (":61:2403050305D35,50MSCNONREF//T1", "35.50", "MSC", "2024-03-05"),  # no N
        (":61:240305C000000000009.95N1020123456789", "9.95", "N102", "2024-03-05"),  # Rabo
        (":61:2403050305C1000NTRFNONREF//B1", "1000.00", "NTRF", "2024-03-05"),  # no comma
        (":61:2403050305C10,00//B1", "10.00", None, "2024-03-05"),  # no type code
        (":61:240305    C10,00NTRFNONREF//B1", "10.00", "NTRF", "2024-03-05"),  # spaces
        (":61:2403050306C10,00NTRF123456789012345678//B1", "10.00", "NTRF", "2024-03-06"),
        (":61:2312291229C10,00NTRFNONREF", "10.00", "NTRF", "2023-12-29"),
        (":61:2401020102C0,00NCHGNONREF", "0.00", "NCHG", "2024-01-02"),  # zero: kept
    ],
)
def test_statement_line_dialects(
    tmp_path: Path, parse, statement_line: str, amount: str, code: str | None, booked: str
) -> None:
    parsed = parse("mt940", write(tmp_path, HEADER + statement_line + "\n"))
    assert not parsed.rejected
    [event] = parsed.events
    assert event.amount == Decimal(amount)
    assert str(event.amount) == amount
    assert event.bank_tx_code == code
    assert event.booking_date.isoformat() == booked


def test_entry_date_across_the_year_end(tmp_path: Path, parse) -> None:
    [event] = parse("mt940", write(tmp_path, HEADER + ":61:2312310102C10,00NTRFNONREF\n")).events
    assert event.booking_date.isoformat() == "2024-01-02"


def test_mt942_interim_report(parse) -> None:
    parsed = parse("mt940", "mt942_ing_interim.sta")
    assert not parsed.rejected
    assert [(e.direction, e.amount, e.currency) for e in parsed.events] == [
        (Direction.credit, Decimal("750.00"), "EUR"),
        (Direction.debit, Decimal("42.10"), "EUR"),
    ]


def test_ing_booking_shared_with_mt942_gets_the_same_id(tmp_path: Path, parse) -> None:
    """The interim report's booking, sent again in the day's MT940, is one event."""
    interim = parse("mt940", "mt942_ing_interim.sta").events[0]
    day = (FIXTURES / "mt942_ing_interim.sta").read_text("utf-8")
    statement = (
        day.replace(":34F:EURD0,\n:34F:EURC0,\n:13D:2403061200+0100", ":60F:C240305EUR0,00")
        .replace(":90D:1EUR42,10\n:90C:1EUR750,00", ":62F:C240306EUR707,90")
        .replace("{2:I942", "{2:I940")
    )
    final = parse("mt940", write(tmp_path, statement)).events[0]
    assert final.event_id == interim.event_id


@pytest.mark.parametrize(
    ("name", "encoding", "text"),
    [
        ("mt940_commerzbank_cp1252.sta", "cp1252", "Gebühren März"),
        ("mt940_mbank_cp852.sta", "cp852", "Łukowski"),
    ],
)
def test_encoding_is_detected(parse, name: str, encoding: str, text: str) -> None:
    from adapters.encoding import detect_encoding

    assert detect_encoding(FIXTURES / name) == encoding
    parsed = parse("mt940", name)
    assert not parsed.rejected
    assert text in (parsed.events[0].description or "")


def test_gb18030_is_detected_and_encoding_option_wins(tmp_path: Path, parse) -> None:
    path = tmp_path / "gbk.sta"
    body = ":61:2403050305C10,00NTRFNONREF//B1\n:86:/REMI/运费 杭州云栖智造科技有限公司货款\n"
    path.write_bytes((HEADER + body).encode("gb18030"))
    [event] = parse("mt940", path).events
    assert event.description == "运费 杭州云栖智造科技有限公司货款"
    forced = parse("mt940", path, encoding="cp1252")  # --encoding wins, even when wrong
    assert "运费" not in (forced.events[0].description or "") if forced.events else True


def test_dialect_fixtures_reject_nothing(parse) -> None:
    for name in (
        "mt940_ing_swift.sta",
        "mt940_rabobank_old.sta",
        "mt940_commerzbank_cp1252.sta",
        "mt940_triodos.sta",
        "mt940_mbank_cp852.sta",
    ):
        parsed = parse("mt940", name)
        assert not parsed.rejected, (name, [str(r) for r in parsed.rejected])
        assert parsed.parser.stats.entries == len(parsed.events)


def test_lower_case_mark_and_rur_currency(tmp_path: Path, parse) -> None:
    text = HEADER.replace("CNY1000,00", "RUR1000,00") + ":61:2403050305c10,00NTRFNONREF//B1\n"
    [event] = parse("mt940", write(tmp_path, text)).events
    assert (event.direction, event.currency) == (Direction.credit, "RUB")


def test_cp1251_russian_statement_is_detected(tmp_path: Path, parse) -> None:
    body = (
        ":61:2403050305C1500,00NTRFNONREF//SB0001\n"
        ":86:Оплата по счету 15 от 01.03.2024, НДС не облагается, ООО Ромашка\n"
    )
    path = tmp_path / "sber.sta"
    path.write_bytes((HEADER.replace("CNY", "RUR") + body).encode("cp1251"))
    parsed = parse("mt940", path)
    assert not parsed.rejected
    assert "ООО Ромашка" in (parsed.events[0].description or "")
    assert parsed.events[0].currency == "RUB"


def test_a_file_read_in_the_wrong_encoding_is_not_an_empty_statement(parse) -> None:
    # --encoding utf-16 made CJK text of it: "0 entries", exit 0, nothing ingested
    parsed = parse("mt940", "mt940_triodos.sta", encoding="utf-16")
    assert parsed.events == []
    assert len(parsed.rejected) == 1
    assert parsed.rejected[0].field == "(document)"
    assert "no MT940 field tag" in parsed.rejected[0].reason
    assert "utf-16" in parsed.rejected[0].reason
    assert parse("mt940", "mt940_triodos.sta").rejected == []
