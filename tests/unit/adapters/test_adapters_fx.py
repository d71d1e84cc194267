"""FX reference rates in: CFETS central parity (direct, 100-unit, inverted) and ECB XML."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from schemas import FxRate


def rates(events: list) -> dict[tuple[str, str], Decimal]:
    return {(e.currency, e.rate_date.isoformat()): e.rate_to_cny for e in events}


def test_cfets_direct_hundred_unit_and_inverted_quotes(parse) -> None:
    parsed = parse("fx-cfets", "fx_cfets_central_parity.csv")
    assert not parsed.rejected
    assert all(isinstance(e, FxRate) for e in parsed.events)
    got = rates(parsed.events)
    assert got[("USD", "2024-03-05")] == Decimal("7.1020")  # exactly as published
    assert got[("JPY", "2024-03-05")] == Decimal("0.047431")  # 100JPY/CNY 4.7431
    assert got[("MYR", "2024-03-05")] == Decimal("1.51911041")  # CNY/MYR 0.65828, 1/x
    assert got[("KRW", "2024-03-05")] == Decimal("0.00532765")  # CNY/KRW 187.70
    assert ("THB", "2024-03-06") not in got  # empty cell: no quote that day
    assert parsed.parser.stats.entries == 2  # rows (days)
    first = parsed.events[0]
    assert first.published_at.isoformat() == "2024-03-05T01:15:00+00:00"  # 09:15 Beijing


def test_cfets_chinese_titles_gb18030(parse) -> None:
    got = rates(parse("fx", "fx_cfets_zh_gb18030.csv").events)
    assert got == {
        ("USD", "2024-03-05"): Decimal("7.1020"),
        ("EUR", "2024-03-05"): Decimal("7.7068"),
        ("JPY", "2024-03-05"): Decimal("0.047431"),
        ("MYR", "2024-03-05"): Decimal("1.51911041"),
    }


def test_ecb_rates_are_crossed_through_eur(parse) -> None:
    parsed = parse("fx-ecb", "fx_ecb_eurofxref.xml")
    assert not parsed.rejected
    got = rates(parsed.events)
    assert got[("EUR", "2024-03-05")] == Decimal("7.8105")
    # CNY per USD = (CNY per EUR) / (USD per EUR), rounded half-even to 8 decimals.
    assert got[("USD", "2024-03-05")] == (Decimal("7.8105") / Decimal("1.0854")).quantize(
        Decimal("0.00000001")
    )
    assert ("CNY", "2024-03-05") not in got
    assert len(parsed.events) == 14


def test_bad_rate_is_rejected_with_its_row(tmp_path: Path, parse) -> None:
    path = tmp_path / "cfets.csv"
    path.write_text("日期,USD/CNY,CNY/MYR\n2024-03-05,7.1x,0\n2024-03-06,7.1009,0.6595\n", "utf-8")
    parsed = parse("fx-cfets", path)
    assert [(r.location.rsplit(":", 1)[1], r.field) for r in parsed.rejected] == [
        ("2", "rate"),
        ("2", "rate"),
    ]
    assert "7.1x" in parsed.rejected[0].reason
    assert len(parsed.events) == 2


def test_not_a_rate_table(tmp_path: Path, parse) -> None:
    path = tmp_path / "cfets.csv"
    path.write_text("a,b\n1,2\n", "utf-8")
    [rejected] = parse("fx-cfets", path).rejected
    assert rejected.field == "(header)"
    [rejected] = parse("fx", path).rejected
    assert "looks like" in rejected.reason


def test_fx_ids_unique_per_file_and_stable(parse) -> None:
    for fmt, name in (
        ("fx-cfets", "fx_cfets_central_parity.csv"),
        ("fx", "fx_cfets_zh_gb18030.csv"),
        ("fx-ecb", "fx_ecb_eurofxref.xml"),
    ):
        ids = [e.event_id for e in parse(fmt, name).events]
        assert len(ids) == len(set(ids))
        assert ids == [e.event_id for e in parse(fmt, name).events]


def test_cfets_excel_export(tmp_path: Path, parse) -> None:
    """The .xlsx download: a title row, typed dates and numbers, read like the CSV."""
    import datetime as dt

    import openpyxl

    from adapters.detect import sniff

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["人民币汇率中间价"])
    sheet.append(["日期", "USD/CNY", "100JPY/CNY", "CNY/MYR"])
    sheet.append([dt.datetime(2024, 3, 5), 7.102, 4.7431, 0.65828])
    sheet.append([dt.datetime(2024, 3, 6), 7.1009, 4.7398, None])
    path = tmp_path / "cfets.xlsx"
    book.save(path)
    assert sniff(path).format == "fx-cfets"
    parsed = parse("fx", path)
    assert not parsed.rejected
    got = rates(parsed.events)
    assert got[("USD", "2024-03-05")] == Decimal("7.102")
    assert got[("JPY", "2024-03-06")] == Decimal("0.047398")
    assert got[("MYR", "2024-03-05")] == Decimal("1.51911041")
    assert ("MYR", "2024-03-06") not in got
    assert len(parsed.events) == 5


def _workbook_with(tmp_path: Path, name: str, sheet_xml: Callable[[bytes], bytes]) -> Path:
    """A one-sheet CFETS workbook whose sheet XML is rewritten by `sheet_xml`."""
    import zipfile

    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["日期", "USD/CNY"])
    book.active.append(["2024-03-05", 7.102])
    plain = tmp_path / "plain.xlsx"
    book.save(plain)
    path = tmp_path / name
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.namelist():
            data = src.read(item)
            out.writestr(item, sheet_xml(data) if item == "xl/worksheets/sheet1.xml" else data)
    return path


def test_a_workbook_that_unpacks_too_large_is_refused_unread(
    tmp_path: Path, parse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zip bomb: 3 MB on disk, gigabytes of sheet XML (openpyxl held it all in memory)."""
    from adapters.detect import sniff
    from adapters.parsers import fx_rates

    monkeypatch.setattr(fx_rates, "MAX_WORKBOOK_BYTES", 1 << 20)
    filler = b" " * (2 << 20)
    path = _workbook_with(
        tmp_path, "bomb.xlsx", lambda xml: xml.replace(b"<sheetData>", b"<sheetData>" + filler)
    )
    parsed = parse("fx", path)
    (rejected,) = parsed.rejected
    assert rejected.field == "(document)"
    assert "unpacks to" in rejected.reason
    assert "limit" in rejected.reason
    assert not parsed.events
    assert sniff(path).format is None  # auto does not read it either


def test_an_entity_bomb_in_a_workbook_is_a_rejection_not_a_traceback(tmp_path: Path, parse) -> None:
    entities = b"".join(
        b'<!ENTITY l%d "%s">' % (i, (b"&l%d;" % (i - 1)) * 10 if i else b"lol") for i in range(10)
    )
    doctype = b"<!DOCTYPE worksheet [" + entities + b"]>"
    path = _workbook_with(
        tmp_path,
        "lol.xlsx",
        lambda xml: doctype + xml.replace(b"<is><t>", b"<is><t>&l9;", 1),
    )
    parsed = parse("fx", path)
    (rejected,) = parsed.rejected
    assert rejected.field == "(document)"
    assert "an Excel workbook that cannot be read: ParseError" in rejected.reason
    assert not parsed.events
