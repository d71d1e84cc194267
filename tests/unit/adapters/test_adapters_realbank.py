"""Real-bank samples (tests/fixtures/adapters/realbank): every entry accounted for, no crash.

Each sample is a small anonymised cut of a statement a real bank (or a public standard's
example) produced, chosen for one quirk (see realbank/cases.toml and SOURCES.md). Every
entry must end as an event, a located rejection or a counted "not booked", and `auto`
must read the file as the same format.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import FIXTURES, KEY, Parsed

from adapters import AccountDirectory
from adapters.detect import sniff

REAL = FIXTURES / "realbank"
CASES = tomllib.loads((REAL / "cases.toml").read_text(encoding="utf-8"))["case"]
# The location of a rejection: file, then a line (text) or an XPath / JSON pointer.
LOCATED = re.compile(r"^.+(:\d+(#/\S+)?|#/\S+)$")


@pytest.fixture
def parse_real(parse: Callable[..., Parsed]) -> Callable[..., Parsed]:
    accounts = AccountDirectory.load(REAL / "accounts.toml", KEY)

    def run(fmt: str, name: str, mapping: str | None = None) -> Parsed:
        options = {"mapping": Path(mapping)} if mapping else {}
        return parse(fmt, REAL / name, accounts=accounts, **options)

    return run


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_real_sample_accounts_for_every_entry(case: dict, parse_real) -> None:
    parsed = parse_real(case["format"], case["file"], case.get("mapping"))
    stats = parsed.parser.stats
    not_booked = sum(stats.not_booked.values())
    assert (stats.entries, len(parsed.events), not_booked, len(parsed.rejected)) == (
        case["entries"],
        case["events"],
        case["not_booked"],
        case["rejected"],
    )
    if not case["format"].startswith("fx"):  # an FX row (a day) gives one rate per currency
        assert len(parsed.events) + not_booked + len(parsed.rejected) == stats.entries
    for rejected in parsed.rejected:
        assert LOCATED.match(rejected.location), rejected.location
        assert rejected.field
        assert "\n" not in rejected.reason
        assert rejected.original  # the dead letter keeps the entry's bytes
    assert len({event.event_id for event in parsed.events}) == len(parsed.events)


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_real_sample_is_recognised_by_auto(case: dict) -> None:
    found = sniff(REAL / case["file"])
    assert found.format == case["format"], found.looks_like
    assert found.mapping == case.get("mapping")


def amounts(parsed: Parsed) -> list[tuple[str, Decimal, str]]:
    return [(e.direction.value, e.amount, e.currency) for e in parsed.events]


def test_citibank_bai_balance_lines_are_not_bookings(parse_real) -> None:
    parsed = parse_real("mt940", "mt940_citi_bai_balance_lines.txt")
    assert parsed.parser.stats.not_booked == {"balance line": 2}
    assert amounts(parsed) == [
        ("debit", Decimal("212.39"), "USD"),
        ("debit", Decimal("369.28"), "USD"),
        ("debit", Decimal("561.08"), "USD"),
    ]


def test_zero_entry_without_bai_code_is_still_an_event(parse_real, tmp_path: Path) -> None:
    text = (REAL / "mt940_citi_bai_balance_lines.txt").read_text(encoding="utf-8")
    path = tmp_path / "citi.txt"
    path.write_text(text.replace("BAI CD 025", "FEE WAIVED"), encoding="utf-8")
    parsed = parse_real("mt940", str(path))
    assert parsed.parser.stats.not_booked == {"balance line": 1}
    assert Decimal("0.00") in [e.amount for e in parsed.events]


def test_currency_after_account_in_25_finds_the_account(parse_real) -> None:
    parsed = parse_real("mt940", "mt940_raiffeisen_hu_currency_in_25.sta")
    assert not parsed.rejected
    assert {e.currency for e in parsed.events} == {"HUF"}
    assert amounts(parsed)[0] == ("credit", Decimal("2066637.00"), "HUF")


def test_nonref_right_after_the_amount_is_no_type_code(parse_real) -> None:
    parsed = parse_real("mt940", "mt940_penta_de_nonref_no_type.sta")
    assert [e.bank_tx_code for e in parsed.events] == [None] * 4
    assert amounts(parsed)[:2] == [
        ("debit", Decimal("20.00"), "EUR"),
        ("credit", Decimal("11.25"), "EUR"),
    ]


def test_camt053_entry_without_status_is_booked(parse_real) -> None:
    parsed = parse_real("camt", "camt053_v04_no_sts_foreign_instructed.xml")
    # The CHF entry amount counts, not the EUR instructed amount of its transaction.
    assert amounts(parsed) == [
        ("debit", Decimal("579.21"), "CHF"),
        ("credit", Decimal("134.00"), "CHF"),
    ]


def test_camt054_entry_without_status_is_rejected_where_it_is(parse_real) -> None:
    parsed = parse_real("camt", "camt054_v04_no_sts.xml")
    assert [(r.field, r.location.split("#", 1)[1]) for r in parsed.rejected] == [
        ("Sts", "/Document/BkToCstmrDbtCdtNtfctn/Ntfctn[1]/Ntry[1]"),
        ("Sts", "/Document/BkToCstmrDbtCdtNtfctn/Ntfctn[1]/Ntry[2]"),
    ]
    assert parsed.parser.stats.not_booked == {}


def test_utf8_bom_wins_over_the_mapping_encoding(parse_real) -> None:
    parsed = parse_real("csv", "cn_utf8_bom_export.csv", "cn_gb18030_split")
    assert not parsed.rejected
    assert "坯布" in (parsed.events[0].description or "")  # read as UTF-8, not GB18030


def test_excel_text_formula_cells_read_as_their_value(parse_real) -> None:
    guarded = parse_real("csv", "cn_gb18030_excel_text_cells.csv", "cn_gb18030_split")
    plain = parse_real("csv", "cn_utf8_bom_export.csv", "cn_gb18030_split")
    assert (
        amounts(guarded)
        == amounts(plain)
        == [
            ("credit", Decimal("86000.00"), "CNY"),
            ("debit", Decimal("152300.00"), "CNY"),
            ("debit", Decimal("25.00"), "CNY"),
        ]
    )
    assert [e.booking_date for e in guarded.events] == [e.booking_date for e in plain.events]


def test_ecb_csv_gives_the_rates_of_the_ecb_xml(parse_real, parse) -> None:
    from_csv = parse_real("fx-ecb", "ecb_eurofxref_hist.csv")
    from_xml = parse("fx-ecb", "fx_ecb_eurofxref.xml")
    key = lambda e: (e.rate_date, e.currency)  # noqa: E731
    csv_rates = {key(e): e.rate_to_cny for e in from_csv.events}
    assert csv_rates == {key(e): e.rate_to_cny for e in from_xml.events}
    assert {e.event_id for e in from_xml.events} <= {e.event_id for e in from_csv.events}
    (missing,) = from_csv.rejected
    assert (missing.location.rsplit(":", 1)[1], missing.field) == ("4", "CNY")


def test_psd2_account_from_the_links_when_the_page_names_none(parse_real) -> None:
    parsed = parse_real("psd2", "psd2_links_account_only.json")
    assert amounts(parsed) == [("debit", Decimal("256.67"), "EUR")]
    assert parsed.events[0].enterprise_uscc == "91330302MA2CXW5D79"


def test_psd2_booking_date_written_as_date_time(parse, tmp_path: Path) -> None:
    text = (REAL / "psd2_links_account_only.json").read_text(encoding="utf-8")
    path = tmp_path / "page.json"
    path.write_text(text.replace('"2024-03-05"', '"2024-03-05T23:30:00+01:00"'), encoding="utf-8")
    parsed = parse("psd2", path, accounts=AccountDirectory.load(REAL / "accounts.toml", KEY))
    assert [str(e.booking_date) for e in parsed.events] == ["2024-03-05"]  # as written
    bad = tmp_path / "bad.json"
    bad.write_text(text.replace('"2024-03-05"', '"2024-03-05T25:00"'), encoding="utf-8")
    (rejected,) = parse(
        "psd2", bad, accounts=AccountDirectory.load(REAL / "accounts.toml", KEY)
    ).rejected
    assert rejected.field == "bookingDate"


def test_space_after_86_tag_still_splits_the_sub_fields(parse_real) -> None:
    parsed = parse_real("mt940", "mt940_bph_pl_spaces_after_values.sta")
    assert amounts(parsed)[-1] == ("credit", Decimal("40.00"), "PLN")
    # the deposit's 12-digit number in the text is an account number: masked
    assert parsed.events[-1].description == "Odsetki od lokaty nr <masked>"


def test_cp852_hungarian_text_is_detected(parse_real) -> None:
    parsed = parse_real("mt940", "mt940_raiffeisen_hu_currency_in_25.sta")
    assert "összevont utánvét" in (parsed.events[0].description or "")


@pytest.mark.parametrize(
    ("fmt", "name", "mapping"),
    [
        ("mt940", "mt940_bph_pl_spaces_after_values.sta", None),
        ("mt940", "mt940_raiffeisen_hu_currency_in_25.sta", None),
        ("csv", "cn_utf8_bom_export.csv", "cn_gb18030_split"),
    ],
)
def test_lone_cr_line_ends_read_like_lf(
    fmt: str, name: str, mapping: str | None, parse_real, tmp_path: Path
) -> None:
    """Classic-Mac line ends (Excel "CSV (Macintosh)"): not one giant line, no entry lost."""
    data = (REAL / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r")
    path = tmp_path / name
    path.write_bytes(data)
    as_lf = parse_real(fmt, name, mapping)
    as_cr = parse_real(fmt, str(path), mapping)
    assert as_cr.parser.stats.entries == as_lf.parser.stats.entries > 0
    assert [e.event_id for e in as_cr.events] == [e.event_id for e in as_lf.events]
    assert [r.location.rsplit(":", 1)[-1] for r in as_cr.rejected] == [
        r.location.rsplit(":", 1)[-1] for r in as_lf.rejected
    ]


def test_camt_zeros_beyond_minor_units_are_dropped(parse_real, tmp_path: Path) -> None:
    parsed = parse_real("camt", "camt053_v02_three_decimal_amounts.xml")
    assert [str(e.amount) for e in parsed.events] == ["8.85"]  # written 8.850
    text = (REAL / "camt053_v02_three_decimal_amounts.xml").read_text(encoding="utf-8")
    path = tmp_path / "sub_cent.xml"
    path.write_text(text.replace(">8.850<", ">8.855<"), encoding="utf-8")
    assert [str(e.amount) for e in parse_real("camt", str(path)).events] == ["8.855"]  # kept


@pytest.mark.parametrize("separator", ["-", "/", "."])
def test_chinese_export_dates_with_separators(separator: str, parse_real, tmp_path: Path) -> None:
    """CCB writes 20240301, ICBC 2024-03-01, BOC 2024/03/01: the shipped mapping reads all."""
    text = (REAL / "cn_utf8_bom_export.csv").read_text(encoding="utf-8-sig")
    dated = re.sub(r"^(\d{4})(\d{2})(\d{2}),", rf"\1{separator}\2{separator}\3,", text, flags=re.M)
    path = tmp_path / "export.csv"
    path.write_text(dated, encoding="utf-8-sig")
    parsed = parse_real("csv", str(path), "cn_gb18030_split")
    plain = parse_real("csv", "cn_utf8_bom_export.csv", "cn_gb18030_split")
    assert not parsed.rejected
    assert [e.booking_date for e in parsed.events] == [e.booking_date for e in plain.events]


def test_currency_written_after_a_german_account_finds_the_account(parse_real) -> None:
    parsed = parse_real("mt940", "mt940_bnp_paribas_de_currency_after_account.sta")
    assert not parsed.rejected
    assert amounts(parsed) == [("debit", Decimal("10.00"), "EUR")]


def test_account_numbers_in_free_text_are_masked(parse_real) -> None:
    """Raw account numbers never leave an adapter, not even inside a bank's `:86:` text."""
    parsed = parse_real("mt940", "mt940_bil_lu_iban_in_86.sta")
    (event,) = parsed.events
    assert event.description == "COMPTE . IBAN <masked>"
    assert "4475" not in event.model_dump_json()


def test_february_30_value_date_is_the_end_of_february(
    parse_real, parse: Callable[..., Parsed], tmp_path: Path
) -> None:
    parsed = parse_real("mt940", "mt940_sparkasse_de_february_30.sta")
    (event,) = parsed.events
    assert (event.value_date, event.booking_date) == (date(2016, 2, 29), date(2016, 3, 1))
    text = (REAL / "mt940_sparkasse_de_february_30.sta").read_text(encoding="utf-8")
    path = tmp_path / "non_leap.sta"
    path.write_text(text.replace(":61:1602300301", ":61:1702300301"), encoding="utf-8")
    accounts = AccountDirectory.load(REAL / "accounts.toml", KEY)
    (event,) = parse("mt940", path, accounts=accounts).events
    assert event.value_date == date(2017, 2, 28)
    bad = tmp_path / "april_31.sta"
    bad.write_text(text.replace(":61:1602300301", ":61:1604310501"), encoding="utf-8")
    (rejected,) = parse("mt940", bad, accounts=accounts).rejected
    assert rejected.field == ":61: value date"


def test_statement_information_86_and_funds_code_k(parse_real) -> None:
    """Danske Bank: `:86:` before the first `:61:` describe the statement, not an entry."""
    parsed = parse_real("mt940", "mt940_danske_dk_statement_86_funds_k.sta")
    assert amounts(parsed)[:2] == [
        ("debit", Decimal("829419.78"), "DKK"),
        ("debit", Decimal("2214.00"), "DKK"),
    ]
    assert parsed.events[0].description is None  # its `:86:` lines precede it
    assert (parsed.events[1].booking_date, parsed.events[1].value_date) == (
        date(2009, 9, 30),
        date(2009, 10, 1),
    )
    assert not any("inform" in (e.description or "") for e in parsed.events)


def test_account_number_after_a_spaced_iban_is_masked_whole(parse_real) -> None:
    """`IBAN no.: FI11… DABADKKK 111111-11111111`: no part of either number stays."""
    parsed = parse_real("mt940", "mt940_danske_fi_account_in_86.sta")
    first = parsed.events[0]
    assert first.description == "For your inform. IBAN no.: <masked> DANSKE BANK HOLMENS KANAL 2-12"
    assert amounts(parsed)[0] == ("credit", Decimal("0.23"), "EUR")  # `CR`: funds code R
    for event in parsed.events:
        assert "11111111" not in event.model_dump_json()


def test_lower_case_iban_in_free_text_is_masked(parse_real) -> None:
    parsed = parse_real("mt940", "mt940_sns_nl_lowercase_iban.sta")
    assert amounts(parsed) == [
        ("credit", Decimal("12.45"), "EUR"),
        ("credit", Decimal("15000.00"), "EUR"),
    ]
    described = parsed.events[1].description or ""
    assert "f. spark bedrijf" in described
    assert "0987654321" not in described


def test_bare_iban_keyword_names_the_counterparty_country(parse_real) -> None:
    parsed = parse_real("mt940", "mt940_vanlanschot_nl_summary_86.sta")
    assert [e.counterparty_country for e in parsed.events] == ["NL"] * 4
    assert [e.description for e in parsed.events][:2] == ["201400-001", "2222.44.111.B.02.444.0"]


def test_entry_date_in_the_year_before_the_value_date(parse_real) -> None:
    parsed = parse_real("mt940", "mt940_moneyou_nl_tag_28.sta")
    assert [(e.booking_date, e.value_date) for e in parsed.events] == [
        (date(2018, 12, 31), date(2019, 1, 1)),
        (date(2019, 3, 29), date(2019, 4, 1)),
    ]


def test_booked_camt052_with_zero_foreign_tx_amounts_is_the_entry(
    parse_real, tmp_path: Path
) -> None:
    text = (REAL / "camt052_v06_zero_tx_amounts.xml").read_text(encoding="utf-8")
    path = tmp_path / "booked.xml"
    path.write_text(text.replace("<Sts>PDNG</Sts>", "<Sts>BOOK</Sts>"), encoding="utf-8")
    parsed = parse_real("camt", str(path))
    assert amounts(parsed) == [("debit", Decimal("200000"), "SEK")]
    assert parsed.events[0].description == "Example Remittance - 6 - V1"


@pytest.mark.parametrize(
    "name",
    [
        "mt940_danske_dk_statement_86_funds_k.sta",
        "mt940_vanlanschot_nl_summary_86.sta",
        "mt940_kbs_mk_envelope_funds_code.sta",
    ],
)
def test_file_cut_inside_an_entry_rejects_that_entry(name: str, parse_real, tmp_path: Path) -> None:
    """A transfer cut off mid-line: `:61:…CK2072226,11` read as `CK207` would be 207."""
    data = (REAL / name).read_bytes()
    start = data.rindex(b"\n:61:") + 1
    whole = parse_real("mt940", name)
    cut = tmp_path / name
    cut.write_bytes(data[: start + 20])  # inside the amount of the last :61: line
    parsed = parse_real("mt940", str(cut))
    assert [e.event_id for e in parsed.events] == [e.event_id for e in whole.events[:-1]]
    (rejected,) = parsed.rejected
    line = data[:start].count(b"\n") + 1
    assert (rejected.location, rejected.field) == (f"{cut}:{line}", ":62F:")
    assert rejected.original == data[start : start + 20]
    # Cut at a line end the entry's lines are whole: it stands.
    at_line_end = tmp_path / f"line_end_{name}"
    at_line_end.write_bytes(data[: data.index(b"\n", start) + 1])
    parsed = parse_real("mt940", str(at_line_end))
    assert not parsed.rejected
    assert parsed.events[-1].event_id == whole.events[-1].event_id


def test_cut_file_through_the_cli_exits_3_naming_line_and_field(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from adapters.cli import ingest_command

    app = typer.Typer()
    app.command("ingest")(ingest_command)
    app.command("noop")(lambda: None)
    data = (REAL / "mt940_danske_fi_account_in_86.sta").read_bytes()
    cut = tmp_path / "danske_fi.sta"
    cut.write_bytes(data[: data.rindex(b":61:") + 18])
    accounts = str(REAL / "accounts.toml")
    result = CliRunner().invoke(
        app, ["ingest", "auto", str(cut), "--dry-run", "-i", "DANSKE", "--accounts", accounts]
    )
    assert result.exit_code == 3, result.output
    assert len(result.stdout_bytes.splitlines()) == 5
    line = data[: data.rindex(b":61:")].count(b"\n") + 1
    assert f"danske_fi.sta:{line}: :62F:" in result.stderr.replace("\n", "")


@pytest.mark.parametrize(
    "name", ["mt940_sns_nl_lowercase_iban.sta", "mt940_kbs_mk_envelope_funds_code.sta"]
)
def test_lone_cr_file_with_fin_envelope_is_recognised(name: str, tmp_path: Path) -> None:
    """`{1:…}{2:…}{4:` then CR-only line ends: the tags start no `\\n` line."""
    path = tmp_path / name
    path.write_bytes((REAL / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r"))
    assert sniff(path).format == "mt940"


def test_fints_at_line_ends_read_like_newlines(parse_real, tmp_path: Path) -> None:
    """FinTS (German banks' HBCI download) writes `@@` for every line end."""
    data = (REAL / "mt942_de_fints_at_line_ends.sta").read_bytes()
    assert b"\n" not in data
    parsed = parse_real("mt940", "mt942_de_fints_at_line_ends.sta")
    assert amounts(parsed) == [("debit", Decimal("0.02"), "EUR")]  # currency from :34F:
    as_lf = tmp_path / "as_lf.sta"
    as_lf.write_bytes(data.replace(b"@@", b"\n"))
    assert [e.event_id for e in parse_real("mt940", str(as_lf)).events] == [
        e.event_id for e in parsed.events
    ]
    # a bad entry is located by its @@-separated line, as it would be in the LF file
    bad = tmp_path / "bad.sta"
    bad.write_bytes(data.replace(b"D0,02", b"D0.0.2"))
    (rejected,) = parse_real("mt940", str(bad)).rejected
    assert (rejected.location, rejected.field) == (f"{bad}:7", ":61: amount")
    assert rejected.original.startswith(b":61:160421D0.0.2")
    assert rejected.original.endswith(b"@@")  # the bytes as sent


def test_dash_at_the_start_of_an_86_line_is_text(parse_real) -> None:
    parsed = parse_real("mt940", "mt940_de_dash_line_in_86.sta")
    (event,) = parsed.events
    assert "UBIGER-ID:" in (event.description or "")
    assert amounts(parsed) == [("debit", Decimal("437.69"), "EUR")]


def test_statement_without_balances_is_rejected_not_guessed(parse_real) -> None:
    parsed = parse_real("mt940", "mt940_bofa_us_no_balances.sta")
    assert [(r.location.rsplit(":", 1)[1], r.field) for r in parsed.rejected] == [
        ("4", ":60F:"),
        ("5", ":60F:"),
    ]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_camt_is_recognised_and_read(encoding: str, parse_real, tmp_path: Path) -> None:
    """camt saved by a Windows tool in UTF-16 (with its byte-order mark) is legal XML."""
    text = (REAL / "camt052_v06_zero_tx_amounts.xml").read_text(encoding="utf-8")
    text = text.replace("<Sts>PDNG</Sts>", "<Sts>BOOK</Sts>")
    as_utf8 = tmp_path / "utf8.xml"
    as_utf8.write_text(text, encoding="utf-8")
    path = tmp_path / "utf16.xml"
    data = text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode(encoding)
    path.write_bytes(data if encoding == "utf-16" else b"\xfe\xff" + data)
    assert sniff(path).format == "camt"
    assert [e.event_id for e in parse_real("camt", str(path)).events] == [
        e.event_id for e in parse_real("camt", str(as_utf8)).events
    ]


def test_amounts_grouped_in_thousands_are_rejected_with_the_fix(parse_real, tmp_path: Path) -> None:
    """ICBC/BOC-style `"86,000.00"` under a mapping without a thousands separator: the
    row is rejected (it could be 86.000), and the reason says which mapping key reads it."""
    text = (REAL / "cn_utf8_bom_export.csv").read_text(encoding="utf-8-sig")
    path = tmp_path / "grouped.csv"
    path.write_text(text.replace(",86000.00,", ',"86,000.00",'), encoding="utf-8-sig")
    parsed = parse_real("csv", str(path), "cn_gb18030_split")
    (rejected,) = parsed.rejected
    assert (rejected.location.rsplit(":", 1)[1], rejected.field) == ("7", "贷方发生额")
    assert 'set thousands_separator = ","' in rejected.reason
    assert len(parsed.events) == 2


def test_undecodable_entry_names_the_encoding_option(parse, tmp_path: Path) -> None:
    """A detected encoding can be wrong for the file (Big5 is never guessed: on short texts
    it reads as valid GB18030); the rejection says how to name the right one."""
    (rejected,) = parse("mt940", "mt940_bad_encoding.sta").rejected
    assert rejected.error_class == "undecodable"
    assert "--encoding names another, such as big5" in rejected.reason
    (named,) = parse("mt940", "mt940_bad_encoding.sta", encoding="utf-8").rejected
    assert "--encoding" not in named.reason  # the operator named it already
    text = (REAL / "mt940_hsbc_hk_funds_code.sta").read_text(encoding="ascii")
    path = tmp_path / "big5.sta"
    path.write_bytes(text.replace("BENEFICIARY INFO", "貨款 匯款").encode("big5"))
    accounts = AccountDirectory.load(REAL / "accounts.toml", KEY)
    (event,) = parse("mt940", path, accounts=accounts, encoding="big5").events
    assert "貨款 匯款" in (event.description or "")


@pytest.mark.parametrize("indent", [b"  ", b"\t"])
def test_indented_tags_are_tags(indent: bytes, parse_real, tmp_path: Path) -> None:
    """An indented `:61:` read as text would vanish into the `:86:` before it, money and
    all (exit 0): it is a statement line like any other."""
    name = "mt940_danske_dk_statement_86_funds_k.sta"
    data = (REAL / name).read_bytes()
    whole = parse_real("mt940", name)
    for pattern in (b"\n:61:", b"\n"):  # some entries indented, then every line
        path = tmp_path / name
        path.write_bytes(data.replace(pattern, b"\n" + indent + pattern[1:]))
        assert sniff(path).format == "mt940"
        parsed = parse_real("mt940", str(path))
        assert not parsed.rejected, parsed.rejected[:1]
        assert [e.event_id for e in parsed.events] == [e.event_id for e in whole.events]
        assert [e.description for e in parsed.events] == [e.description for e in whole.events]


@pytest.mark.parametrize(
    "page_break",
    [
        ["本页合计,,,,,152300.00,86000.00,,,,,,", "{header}"],  # the header again
        ["本页合计,,,,,152300.00,86000.00,,,,,,", "第1页 共2页"],  # a page line, no header
        ["{header}"],  # the header repeated with no page total
    ],
    ids=["total-and-header", "total-and-page-line", "header-only"],
)
def test_export_printed_in_pages_keeps_every_page(
    page_break: list[str], parse_real, tmp_path: Path
) -> None:
    """A page total (`本页合计`) ended the table: the rows of the next pages were lost,
    exit 0. It ends a page; the table goes on when the header or a dated row follows."""
    text = (REAL / "cn_utf8_bom_export.csv").read_text(encoding="utf-8-sig")
    lines = text.split("\n")
    header = next(line for line in lines if line.startswith("交易日期"))
    first_row = lines.index(header) + 1
    paged = [*lines[: first_row + 2], *(p.format(header=header) for p in page_break)]
    path = tmp_path / "paged.csv"
    path.write_text("\n".join(paged + lines[first_row + 2 :]), encoding="utf-8-sig")
    parsed = parse_real("csv", str(path), "cn_gb18030_split")
    whole = parse_real("csv", "cn_utf8_bom_export.csv", "cn_gb18030_split")
    assert not parsed.rejected
    assert parsed.parser.stats.entries == whole.parser.stats.entries == 3
    assert [e.event_id for e in parsed.events] == [e.event_id for e in whole.events]


def test_iban_glued_to_a_sub_field_number_is_masked(parse_real) -> None:
    """Triodos numbers its `:86:` sub-fields after `>`: `>21NL13RABO0123456789`."""
    (event,) = parse_real("mt940", "mt940_triodos_nl_angle_subfields.sta").events
    assert "0123456789" not in event.model_dump_json()
    assert ">21<masked>" in (event.description or "")


def test_dotted_account_with_currency_after_it_is_found(parse_real) -> None:
    """Old Rabobank `:25:1567.50.961EUR`: the account map names `1567.50.961`."""
    parsed = parse_real("mt940", "mt940_rabobank_nl_dotted_accounts.sta")
    assert not parsed.rejected
    assert amounts(parsed) == [
        ("debit", Decimal("6098.75"), "EUR"),
        ("debit", Decimal("500.00"), "EUR"),
        ("credit", Decimal("250.00"), "EUR"),
    ]


def test_rejection_reasons_quote_no_account_number(parse_real, tmp_path: Path) -> None:
    """`not a statement line (got …)` quotes the line, whose reference is an IBAN glued to
    the type code (SNS `NOVBNL11RABO0987654321`): the reason reaches stderr and the dead
    letter's text masked; only the dead letter's original keeps the bytes."""
    data = (REAL / "mt940_sns_nl_lowercase_iban.sta").read_bytes()
    path = tmp_path / "sns.sta"
    path.write_bytes(data.replace(b":61:1409100910C", b":61:14091009X10C"))
    (rejected,) = parse_real("mt940", str(path)).rejected
    assert rejected.field == ":61:"
    assert "NOVB<masked>" in rejected.reason
    assert "0987654321" not in rejected.reason
    assert b"NL11RABO0987654321" in rejected.original


def test_gb18030_character_cut_by_a_65_byte_wrap(parse, tmp_path: Path) -> None:
    """A bank wrapping `:86:` at 65 bytes cuts a GB18030 character in two: each line alone
    is undecodable (detection fell back to UTF-8 and every Chinese entry was rejected);
    the halves make the character again, with no line end between them."""
    text = (FIXTURES / "mt940_boc_envelope.sta").read_text(encoding="utf-8")
    remark = "/BENM/SHENZHEN HUAXIN ELECTRONICS/REMI/采购款 电子元件"
    # padded so that byte 65 falls inside a two-byte character
    candidates = [
        f"/REMI/货款 PO-2024-0311{pad} 绍兴柯桥纺织印染有限公司 杭州云栖智造科技有限公司"
        for pad in ("", "0")
    ]
    long_remark = next(c for c in candidates if _cuts_a_character(c.encode("gb18030")[:65]))
    data = long_remark.encode("gb18030")
    wrapped = data[:65] + b"\r\n" + data[65:]
    raw = text.encode("gb18030").replace(remark.encode("gb18030"), wrapped)
    path = tmp_path / "boc_wrapped.sta"
    path.write_bytes(raw)
    plain = tmp_path / "boc_plain.sta"
    plain.write_bytes(text.replace(remark, long_remark).encode("gb18030"))
    parsed, whole = parse("mt940", path), parse("mt940", plain)
    assert [r.field for r in parsed.rejected] == [r.field for r in whole.rejected]
    assert [e.event_id for e in parsed.events] == [e.event_id for e in whole.events]
    assert [e.description for e in parsed.events] == [e.description for e in whole.events]
    assert "杭州云栖智造科技有限公司" in (parsed.events[1].description or "")


def _cuts_a_character(head: bytes) -> bool:
    try:
        head.decode("gb18030")
    except UnicodeDecodeError:
        return True
    return False


def test_account_after_a_closed_statement_starts_another(parse, tmp_path: Path) -> None:
    """A second statement whose `:20:` is missing was read as more entries of the first:
    another account's USD entries booked to the first account in CNY, exit 0."""
    text = (FIXTURES / "mt940_boc_envelope.sta").read_text(encoding="utf-8")
    first, second = text.split("-}\n", 1)  # read_text made the CRLFs LFs
    second = second.split(":20:BOC2403060001\n", 1)[1]
    second = second.replace("BKCHCNBJ300/350055667788", "BKCHCNBJ300/111122223333")
    path = tmp_path / "no_20.sta"
    path.write_text(first + second.replace("CNY", "USD"), encoding="utf-8")
    whole = parse("mt940", "mt940_boc_envelope.sta")
    parsed = parse("mt940", path)
    first_ids = [e.event_id for e in whole.events if e.booking_date.day == 5]
    assert [e.event_id for e in parsed.events] == first_ids  # only the first statement's
    assert {e.currency for e in parsed.events} == {"CNY"}
    missing = [r for r in parsed.rejected if r.field == ":20:"]
    assert len(missing) == 3  # every entry of the second statement, at its line
    assert all("no :20: reference" in r.reason for r in missing)


def test_second_opening_balance_in_one_statement_sets_its_currency(
    parse_real, tmp_path: Path
) -> None:
    """Days (or currencies) listed under one `:20:`/`:25:`, each with its own opening and
    closing balance: the USD day's entry was booked in EUR, its `:86:` dropped, exit 0."""
    name = "mt940_danske_fi_account_in_86.sta"
    text = (REAL / name).read_text(encoding="utf-8")
    extra = (
        ":60F:C091001USD100,00\n:61:0910011001C5,00NMSCNONREF//X1\n"
        ":86:second day\n:62F:C091001USD105,00\n"
    )
    path = tmp_path / name
    path.write_text(text + extra, encoding="utf-8")
    whole = parse_real("mt940", name)
    parsed = parse_real("mt940", str(path))
    assert not parsed.rejected
    assert [e.event_id for e in parsed.events[:-1]] == [e.event_id for e in whole.events]
    last = parsed.events[-1]
    assert (last.currency, last.amount, last.description) == ("USD", Decimal("5.00"), "second day")
    assert last.account_ref == whole.events[0].account_ref


def test_entry_after_the_closing_balance_keeps_its_86(parse_real, tmp_path: Path) -> None:
    name = "mt940_danske_fi_account_in_86.sta"
    text = (REAL / name).read_text(encoding="utf-8")
    path = tmp_path / name
    path.write_text(text + ":61:0910011001C5,00NMSCNONREF//X1\n:86:late entry\n", "utf-8")
    last = parse_real("mt940", str(path)).events[-1]
    assert (last.currency, last.amount, last.description) == ("EUR", Decimal("5.00"), "late entry")


def test_space_after_the_61_tag(parse_real, tmp_path: Path) -> None:
    name = "mt940_danske_fi_account_in_86.sta"
    path = tmp_path / name
    path.write_bytes((REAL / name).read_bytes().replace(b":61:", b":61: "))
    parsed = parse_real("mt940", str(path))
    assert not parsed.rejected
    whole = parse_real("mt940", name)
    assert [e.event_id for e in parsed.events] == [e.event_id for e in whole.events]


@pytest.mark.parametrize("tail", [b"   ", b"\x1a", b"\x00\x00"])
def test_blank_or_eof_marker_after_the_last_line_is_no_cut(
    tail: bytes, parse_real, tmp_path: Path
) -> None:
    data = (REAL / "mt940_danske_fi_account_in_86.sta").read_bytes()
    open_entry = data[: data.index(b":62F:")]  # no closing balance: the last entry open
    path = tmp_path / "tail.sta"
    path.write_bytes(open_entry + tail)
    parsed = parse_real("mt940", str(path))
    assert not parsed.rejected
    assert len(parsed.events) == 6


@pytest.mark.parametrize("joiner", [b"", b" "], ids=["glued", "spaces"])
def test_statement_lines_inside_a_line_are_reported(
    joiner: bytes, parse_real, tmp_path: Path
) -> None:
    """Line breaks lost (the whole file one line, or one `:86:` run into the next `:61:`):
    the hidden entries were 0 entries read, exit 0; they are a located rejection now."""
    data = (REAL / "mt940_danske_fi_account_in_86.sta").read_bytes()
    body = data[data.index(b":20:") :]
    path = tmp_path / "one_line.sta"
    path.write_bytes(body.replace(b"\n", joiner))
    parsed = parse_real("mt940", str(path))
    (rejected,) = parsed.rejected
    assert (rejected.location, rejected.field) == (f"{path}:1", ":61:")
    assert rejected.reason.startswith("6 statement line(s)")
    # one :86: run into the next :61:: that entry is reported, the others stand
    joined = tmp_path / "one_join.sta"
    joined.write_bytes(data.replace(b"to advice\n:61:", b"to advice:61:"))
    parsed = parse_real("mt940", str(joined))
    assert [r.field for r in parsed.rejected] == [":61:"]
    assert len(parsed.events) == 5


def test_space_between_amount_and_type_code(parse_real) -> None:
    (event,) = parse_real("mt940", "mt940_deutsche_bank_de_space_before_type.sta").events
    assert (event.bank_tx_code, event.amount) == ("NTRF", Decimal("50.00"))
