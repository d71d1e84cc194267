"""CSV statement exports through per-bank mappings."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from conftest import FIXTURES, money

from adapters import ParseContext, get_parser
from adapters.parsers.csv_mapping import MappingError, load_mapping, shipped_mappings
from schemas import Direction, TxChannel, make_event_id

CN = Path("cn_gb18030_split")
HK = Path("hk_utf8_signed")


def test_shipped_mappings_load() -> None:
    assert set(shipped_mappings()) == {"cn_gb18030_split", "hk_utf8_signed"}
    for name in shipped_mappings():
        assert load_mapping(name).name == name


def test_gb18030_debit_credit_export(parse, accounts) -> None:
    parsed = parse("csv", "cn_gb18030_statement.csv", mapping=CN)
    assert [(e.direction, e.amount) for e in parsed.events] == [
        (Direction.credit, Decimal("86000.00")),
        (Direction.debit, Decimal("152300.00")),
        (Direction.debit, Decimal("25.00")),
        (Direction.credit, Decimal("210000.00")),
        (Direction.debit, Decimal("38500.00")),
    ]
    first = parsed.events[0]
    assert first.enterprise_uscc == "91330683MA29JE6L08"  # account from the 账号 line
    assert first.occurred_at.isoformat() == "2024-03-01T01:15:22+00:00"  # 09:15:22 Beijing
    assert first.description == "货款 坯布 PO-0301"
    ref = accounts.ref("33001616781059000123")
    assert first.event_id == make_event_id("TEST-BANK", ref, "310620240301000118", money(first))
    assert [e.channel for e in parsed.events] == [
        TxChannel.online,
        TxChannel.online,
        TxChannel.branch,
        TxChannel.api,
        TxChannel.mobile,
    ]
    assert parsed.events[3].customs_mode == "9710"
    [both] = parsed.rejected
    assert both.location.endswith("cn_gb18030_statement.csv:12")
    assert both.reason.endswith("both do")
    assert parsed.parser.stats.entries == 6  # the 合计 row and the footer are not entries


def test_signed_ddmmyyyy_export(parse) -> None:
    parsed = parse("csv", "hk_utf8_statement.csv", mapping=HK)
    assert [(e.direction, e.amount, e.currency) for e in parsed.events] == [
        (Direction.credit, Decimal("15800.00"), "USD"),
        (Direction.debit, Decimal("42000.50"), "HKD"),
        (Direction.debit, Decimal("150.00"), "HKD"),
    ]
    assert parsed.events[1].value_date.isoformat() == "2024-03-05"
    assert parsed.events[0].customs_mode == "9610"
    assert [(r.field, r.error_class) for r in parsed.rejected] == [
        ("Amount", "invalid_field"),
        ("account", "unknown_account"),
        ("Transaction Date", "invalid_field"),
    ]
    assert "1,234.00" in parsed.rejected[0].reason


def test_row_in_the_wrong_encoding(parse) -> None:
    parsed = parse("csv", "hk_utf8_bad_encoding.csv", mapping=HK)
    assert len(parsed.events) == 2
    [rejected] = parsed.rejected
    assert rejected.error_class == "undecodable"
    assert rejected.original.startswith(b"012-345678-001,06/03/2024")


def test_gb18030_file_with_a_utf8_mapping(parse) -> None:
    [rejected] = parse("csv", "cn_gb18030_statement.csv", mapping=HK).rejected
    assert rejected.field == "(encoding)"


def test_overlapping_exports_give_the_same_ids(tmp_path: Path, parse) -> None:
    # Exports without a serial number: ids come from the row content, so a row that
    # appears again in the next day's (overlapping) export keeps its id.
    mapping = tmp_path / "noref.toml"
    mapping.write_text(
        'name = "noref"\namount_mode = "signed"\ndate_format = "%Y-%m-%d"\n'
        'currency = "CNY"\n[account]\ncolumn = "acct"\n'
        '[columns]\nbooking_date = "date"\namount = "amount"\ndescription = "memo"\n'
        'balance = "balance"\n',
        encoding="utf-8",
    )
    rows = [
        "350055667788,2024-03-04,100.00,a,1100.00",
        "350055667788,2024-03-04,100.00,a,1200.00",
        "350055667788,2024-03-05,-50.00,b,1150.00",
    ]
    day1 = tmp_path / "day1.csv"
    day1.write_text(
        "acct,date,amount,memo,balance\n" + "\n".join(rows[:2]) + "\n", encoding="utf-8"
    )
    day2 = tmp_path / "day2.csv"
    day2.write_text("acct,date,amount,memo,balance\n" + "\n".join(rows) + "\n", encoding="utf-8")
    first = [e.event_id for e in parse("csv", day1, mapping=mapping).events]
    second = [e.event_id for e in parse("csv", day2, mapping=mapping).events]
    assert second[:2] == first
    assert len(set(second)) == 3


def test_positions_indicator_and_thousands(tmp_path: Path, parse) -> None:
    mapping = tmp_path / "pos.toml"
    mapping.write_text(
        'name = "by_position"\namount_mode = "indicator"\ndelimiter = ";"\n'
        'date_format = "%d.%m.%Y"\nthousands_separator = "."\ndecimal_separator = ","\n'
        'header_line = 3\n[indicator_values]\nS = "debit"\nH = "credit"\n'
        '[account]\npreamble_pattern = "Konto: (?P<account>\\\\d+)"\n'
        "[columns]\nbooking_date = 1\namount = 3\nindicator = 4\ncurrency = 5\n"
        "description = [2]\n",
        encoding="utf-8",
    )
    path = tmp_path / "de.csv"
    path.write_text(
        "Umsatzliste\nKonto: 7000123456\nDatum;Text;Betrag;S/H;WKZ\n"
        "05.03.2024;Miete;1.250,00;S;EUR\n06.03.2024;Gutschrift;12.000,50;H;EUR\n"
        "06.03.2024;Kaputt;12.00,50;H;EUR\n07.03.2024;Unklar;5,00;X;EUR\n",
        encoding="utf-8",
    )
    parsed = parse("csv", path, mapping=mapping)
    assert [(e.direction, e.amount) for e in parsed.events] == [
        (Direction.debit, Decimal("1250.00")),
        (Direction.credit, Decimal("12000.50")),
    ]
    assert [r.field for r in parsed.rejected] == ["column 3", "column 4"]


def test_short_row_and_missing_column(tmp_path: Path, parse) -> None:
    path = tmp_path / "short.csv"
    path.write_text(
        "Account Number,Transaction Date,Value Date,Description,Bank Reference,Amount,Currency,"
        "Balance,Counterparty Country\n012-345678-001,04/03/2024\n",
        encoding="utf-8",
    )
    [rejected] = parse("csv", path, mapping=HK).rejected
    assert rejected.error_class == "invalid_shape"
    path.write_text("Date,Amount\n04/03/2024,1.00\n", encoding="utf-8")
    [rejected] = parse("csv", path, mapping=HK).rejected
    assert "which the header does not have" in rejected.reason


def test_empty_csv(tmp_path: Path, parse) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    [rejected] = parse("csv", path, mapping=HK).rejected
    assert rejected.reason == "empty file"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\namount_mode = "signed"\n', "account"),
        (
            'name = "x"\namount_mode = "signed"\ncurrency = "CNY"\n[account]\ncolumn = "a"\n'
            '[columns]\nbooking_date = "d"\n',
            "needs columns: amount",
        ),
        (
            'name = "x"\namount_mode = "signed"\nencoding = "klingon"\ncurrency = "CNY"\n'
            '[account]\ncolumn = "a"\n[columns]\nbooking_date = "d"\namount = "m"\n',
            "unknown encoding",
        ),
        ('name = "x"\nbogus = 1\n', "bogus"),
    ],
)
def test_bad_mappings(tmp_path: Path, text: str, message: str) -> None:
    mapping = tmp_path / "bad.toml"
    mapping.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError, match=message):
        load_mapping(mapping)


def test_csv_needs_a_mapping(accounts) -> None:
    with pytest.raises(MappingError, match="needs --mapping"):
        get_parser("csv")(ParseContext("TEST-BANK", accounts))
    with pytest.raises(MappingError, match="no such file or shipped mapping"):
        get_parser("csv")(ParseContext("TEST-BANK", accounts, mapping=Path("nope")))


def test_fixture_is_really_gb18030() -> None:
    data = (FIXTURES / "cn_gb18030_statement.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert "交易日期" in data.decode("gb18030")


def test_unclosed_quote_rejects_one_row_and_reads_the_rest(tmp_path: Path, parse) -> None:
    """Issue 19: an unclosed quote folded 2,003 rows into one rejection and undercounted."""
    header = (
        "Account Number,Transaction Date,Value Date,Description,Bank Reference,Amount,"
        "Currency,Balance,Counterparty Country\n"
    )
    row = "012-345678-001,04/03/2024,04/03/2024,PAYMENT {i},HK{i:010d},10.00,HKD,0.00,HK\n"
    bad = '012-345678-001,04/03/2024,04/03/2024,"BROKEN REMARK,HKX,10.00,HKD,0.00,HK\n'
    rows = [row.format(i=i) for i in range(2003)]
    path = tmp_path / "runaway.csv"
    path.write_text(header + rows[0] + bad + "".join(rows[1:]), encoding="utf-8")
    parsed = parse("csv", path, mapping=Path("hk_utf8_signed"))
    [rejected] = parsed.rejected
    assert rejected.location.endswith("runaway.csv:3")
    assert "unclosed quote" in rejected.reason
    assert rejected.original.startswith(b'012-345678-001,04/03/2024,04/03/2024,"BROKEN')
    assert len(parsed.events) == 2003
    assert parsed.parser.stats.entries == 2004  # every row is counted, the bad one too


def test_multi_line_quoted_cell_is_still_one_row(tmp_path: Path, parse) -> None:
    text = (
        "Account Number,Transaction Date,Value Date,Description,Bank Reference,Amount,"
        "Currency,Balance,Counterparty Country\n"
        '012-345678-001,04/03/2024,04/03/2024,"TWO\nLINES",HK1,10.00,HKD,0.00,HK\n'
    )
    path = tmp_path / "multi.csv"
    path.write_text(text, encoding="utf-8")
    parsed = parse("csv", path, mapping=Path("hk_utf8_signed"))
    assert not parsed.rejected
    assert parsed.events[0].description == "TWO LINES"
