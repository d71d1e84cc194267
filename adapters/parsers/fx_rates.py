"""FX reference rates in: the CFETS central parity table and the ECB euro reference rates.

Both become `FxRate` events (CNY per one unit of a currency, for one day) on `dfip.fx`,
which the stream uses to convert every non-CNY entry. Formats (docs/adapters.md):

* `fx-cfets` — the CFETS 人民币汇率中间价 (central parity) history as exported (CSV or
  the Excel .xlsx download, first sheet):
  a date column (`日期` / `Date`) and one column per quote. `USD/CNY 7.1064` is CNY per
  USD; `100JPY/CNY 4.7784` is CNY per 100 yen; `CNY/MYR 0.6602` is ringgit per yuan
  (inverted); Chinese titles (`美元/人民币`, `100日元/人民币`) work too.
* `fx-ecb` — the ECB euro foreign exchange reference rates XML (`eurofxref-daily.xml`,
  `eurofxref-hist.xml`) or the CSV of the ECB's zip downloads (`eurofxref.csv`,
  `eurofxref-hist.csv`: `Date, USD, JPY, …` with `N/A` for no rate): units of each
  currency per EUR; EUR itself is CNY per EUR, every other currency is crossed through EUR
  (CNY per EUR / currency per EUR).
* `fx` — either of the two, told apart by content.

Direct quotes are kept exactly as published; inverted and crossed rates are not exact
decimals and are rounded half-even to the `MAX_FRACTION_DIGITS` (8) decimals a rate
carries on the wire.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import openpyxl  # type: ignore[import-untyped]
from lxml import etree

from adapters.base import Parser, ParseResult, Rejected, RejectedEntry, build_model, register
from adapters.encoding import detect_encoding
from adapters.parsers._common import empty_file
from adapters.parsers._lines import DecodedLines
from schemas import SUPPORTED_CURRENCIES, FxRate, make_event_id
from schemas.catalog import FX
from schemas.errors import ErrorClass
from schemas.money import MAX_FRACTION_DIGITS

__all__ = ["CfetsParser", "EcbParser", "FxParser", "looks_like_cfets", "looks_like_ecb_csv"]

_QUANTUM = Decimal(1).scaleb(-MAX_FRACTION_DIGITS)
_EXACT = Context(prec=60)
_BEIJING = ZoneInfo("Asia/Shanghai")
_FRANKFURT = ZoneInfo("Europe/Berlin")
# What a workbook may unpack to (sum of its parts, as its zip directory declares them; a part
# is never read past its declared size). A CFETS export is a few hundred KB; a zip bomb of
# 3 MB unpacking to gigabytes of sheet XML would otherwise be held in memory by openpyxl.
MAX_WORKBOOK_BYTES = 64 << 20
CFETS_PUBLISHED = time(9, 15)  # the central parity is announced at 09:15 Beijing time
ECB_PUBLISHED = time(16, 0)  # the reference rates are published around 16:00 CET

_ZH_CURRENCY = {
    "人民币": "CNY", "美元": "USD", "欧元": "EUR", "日元": "JPY", "港元": "HKD", "港币": "HKD",
    "英镑": "GBP", "澳元": "AUD", "新西兰元": "NZD", "新加坡元": "SGD", "瑞士法郎": "CHF",
    "加元": "CAD", "澳门元": "MOP", "林吉特": "MYR", "卢布": "RUB", "俄罗斯卢布": "RUB",
    "南非兰特": "ZAR", "兰特": "ZAR", "韩元": "KRW", "阿联酋迪拉姆": "AED", "沙特里亚尔": "SAR",
    "匈牙利福林": "HUF", "福林": "HUF", "波兰兹罗提": "PLN", "兹罗提": "PLN", "丹麦克朗": "DKK",
    "瑞典克朗": "SEK", "挪威克朗": "NOK", "土耳其里拉": "TRY", "里拉": "TRY",
    "墨西哥比索": "MXN", "泰铢": "THB",
}  # fmt: skip
_PAIR = re.compile(
    r"^\s*(?P<base_units>\d+)?\s*(?P<base>[A-Z]{3}|[^\W\d_]+)\s*/\s*(?P<quote>[A-Z]{3}|[^\W\d_]+)\s*$"
)
_DATE_TITLES = frozenset({"日期", "date", "日期date", "date日期"})
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d")


def _code(text: str) -> str | None:
    code = _ZH_CURRENCY.get(text, text.upper())
    return code if code in SUPPORTED_CURRENCIES else None


def _quote(title: str) -> tuple[str, Decimal, bool] | None:
    """(currency, units, inverted) of a column title like `USD/CNY`, `100JPY/CNY`, `CNY/MYR`."""
    match = _PAIR.match(title.replace("人民币元", "人民币"))
    if match is None:
        return None
    units = Decimal(match.group("base_units") or 1)
    base, quote = _code(match.group("base")), _code(match.group("quote"))
    if base is None or quote is None:
        return None
    if quote == "CNY" and base != "CNY":
        return base, units, False
    if base == "CNY" and quote != "CNY":
        return quote, units, True
    return None


def looks_like_cfets(lines: list[str]) -> bool:
    """A header row starting with a date title and naming at least one CNY quote."""
    for line in lines[:10]:
        cells = [cell.strip().strip('"') for cell in line.split(",")]
        if cells and cells[0].lower() in _DATE_TITLES and any(_quote(c) for c in cells[1:]):
            return True
    return False


def _ecb_header(line: str) -> list[str] | None:
    """The currency columns of an ECB CSV header (`Date, USD, JPY, …,`), else None."""
    cells = [cell.strip().strip('"') for cell in line.split(",")]
    if not cells or cells[0] != "Date":
        return None
    codes = [cell for cell in cells[1:] if cell]
    if "CNY" in codes and all(len(code) == 3 and code.isalpha() for code in codes):
        return cells[1:]
    return None


def looks_like_ecb_csv(lines: list[str]) -> bool:
    """The ECB's own CSV: `Date` then bare currency codes, CNY among them."""
    return bool(lines) and _ecb_header(lines[0]) is not None


# eurofxref-hist.csv writes 2024-03-05; the daily eurofxref.csv writes 05 March 2024.
_ECB_DATE_FORMATS = ("%Y-%m-%d", "%d %B %Y")


def _ecb_date(text: str) -> date:
    for pattern in _ECB_DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), pattern).date()
        except ValueError:
            continue
    raise RejectedEntry("Date", f"not a date like 2024-03-05 (got {text[:20]})")


def _rate(value: Decimal, units: Decimal, inverted: bool) -> Decimal:
    rate = _EXACT.divide(units, value) if inverted else _EXACT.divide(value, units)
    if int(rate.as_tuple().exponent) >= -MAX_FRACTION_DIGITS:
        return rate  # exact as published (7.1020; 4.7431 per 100 yen is 0.047431)
    return rate.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN, context=_EXACT)


def _published(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, zone).astimezone(UTC)


def _fx_event(parser: Parser, currency: str, day: date, rate: Decimal, at: datetime) -> FxRate:
    data: dict[str, Any] = {
        "event_id": make_event_id(parser.context.institution, "fx", currency, day.isoformat()),
        "source": parser.context.institution,
        "currency": currency,
        "rate_date": day,
        "rate_to_cny": rate,
        "published_at": at,
    }
    return build_model(FxRate, data, {"rate_to_cny": "rate", "currency": "currency"})


@register
class CfetsParser(Parser):
    name: ClassVar[str] = "fx-cfets"
    reads_accounts: ClassVar[bool] = False
    description: ClassVar[str] = "CFETS RMB central parity table (CSV or .xlsx export)"
    topics: ClassVar[tuple[str, ...]] = (FX.name,)

    def parse(self, path: Path) -> Iterator[ParseResult]:
        display = str(path)
        columns: list[tuple[int, str, Decimal, bool]] | None = None
        seen = False
        for row in self._rows(path):
            if isinstance(row, Rejected):
                yield row
                return
            line, cells, original, undecodable = row
            if not any(cells):
                continue
            seen = True
            if columns is None:
                if cells[0].lower() in _DATE_TITLES:
                    columns = [
                        (i, *quote)
                        for i, title in enumerate(cells)
                        if i and (quote := _quote(title)) is not None
                    ]
                continue  # title lines above the header
            if not cells[0] or not cells[0][0].isdigit():
                continue  # notes and footers below the table
            where = f"{display}:{line}"
            if undecodable:
                self.stats.entries += 1
                yield Rejected(
                    where, "(encoding)", "row is not valid text", original, ErrorClass.undecodable
                )
                continue
            yield from self._row(where, cells, original, columns)
        if not seen:
            yield empty_file(display)
        elif columns is None:
            yield Rejected(
                f"{display}:1",
                "(header)",
                "no header row starting with 日期/Date and naming a quote like USD/CNY",
                b"",
                ErrorClass.invalid_shape,
            )

    def _rows(self, path: Path) -> Iterator[tuple[int, list[str], bytes, bool] | Rejected]:
        """(line or sheet row, cells, original bytes, undecodable) of a CSV or .xlsx export."""
        if is_workbook(path):
            yield from _sheet_rows(path)
            return
        encoding = self.context.encoding or detect_encoding(path)
        with self.open(path) as fh:
            lines = DecodedLines(fh, encoding)
            while True:
                lines.start_record()
                try:
                    text = next(lines)
                except StopIteration:
                    return
                cells = [cell.strip().strip('"') for cell in text.rstrip("\r\n").split(",")]
                yield lines.lineno, cells, lines.original, lines.undecodable

    def _row(
        self,
        where: str,
        cells: list[str],
        original: bytes,
        columns: list[tuple[int, str, Decimal, bool]],
    ) -> Iterator[ParseResult]:
        self.stats.entries += 1
        try:
            day = _date(cells[0])
        except RejectedEntry as rej:
            yield rej.at(where, original)
            return
        at = _published(day, CFETS_PUBLISHED, _BEIJING)
        for index, currency, units, inverted in columns:
            value = cells[index] if index < len(cells) else ""
            if not value or value in ("-", "--"):
                continue  # no quote for that currency that day
            try:
                rate = _rate(_number(value), units, inverted)
                yield _fx_event(self, currency, day, rate, at)
            except RejectedEntry as rej:
                yield rej.at(where, original)


def is_workbook(path: Path) -> bool:
    """An Excel .xlsx workbook (a zip with an `xl/` part), e.g. the CFETS Excel export."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.startswith("xl/") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def workbook_lines(path: Path, limit: int = 10) -> list[str]:
    """The first rows of the first sheet as comma-joined text (format detection)."""
    rows: list[str] = []
    for row in _sheet_rows(path):
        if isinstance(row, Rejected) or len(rows) >= limit:
            break
        rows.append(",".join(row[1]))
    return rows


def workbook_problem(path: Path) -> str | None:
    """Why the workbook cannot be read (too large unpacked, broken sheet XML), if so."""
    for number, row in enumerate(_sheet_rows(path)):
        if isinstance(row, Rejected):
            return row.reason
        if number >= 10:
            break
    return None


def _unpacked_size(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist())


def _sheet_rows(path: Path) -> Iterator[tuple[int, list[str], bytes, bool] | Rejected]:
    """Rows of the first sheet, cells as text: dates as YYYY-MM-DD, numbers as typed."""

    def unreadable(row: int, why: str) -> Rejected:
        return Rejected(
            f"{path}:{row}",
            "(document)",
            f"not a readable .xlsx workbook: {why}",
            b"",
            ErrorClass.invalid_shape,
        )

    try:
        size = _unpacked_size(path)
    except (zipfile.BadZipFile, OSError) as exc:
        yield unreadable(1, str(exc))
        return
    if size > MAX_WORKBOOK_BYTES:
        yield unreadable(
            1, f"it unpacks to {size} bytes, over the {MAX_WORKBOOK_BYTES} byte limit (not read)"
        )
        return
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged workbook
        yield unreadable(1, str(exc))
        return
    number = 0
    try:
        sheet = book.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell_text(value) for value in values]
            yield number, cells, ",".join(cells).encode("utf-8"), False
    except Exception as exc:  # the sheet XML is read lazily: broken XML, an entity bomb
        yield unreadable(number + 1, f"{type(exc).__name__}: {exc}")
    finally:
        book.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the typed number
    return str(value).strip()


def _date(text: str) -> date:
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), pattern).date()
        except ValueError:
            continue
    raise RejectedEntry("日期", f"not a date like 2024-03-05 (got {text[:20]})")


def _number(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise RejectedEntry("rate", f"not a number (got {text[:20]})") from None
    if not value.is_finite() or value <= 0:
        raise RejectedEntry("rate", f"must be a positive number (got {text[:20]})")
    return value


@register
class EcbParser(Parser):
    name: ClassVar[str] = "fx-ecb"
    reads_accounts: ClassVar[bool] = False
    description: ClassVar[str] = "ECB euro foreign exchange reference rates (XML or CSV)"
    topics: ClassVar[tuple[str, ...]] = (FX.name,)

    def parse(self, path: Path) -> Iterator[ParseResult]:
        display = str(path)
        if path.stat().st_size == 0:
            yield empty_file(display)
            return
        with path.open("rb") as probe:
            head = probe.read(512).removeprefix(b"\xef\xbb\xbf").lstrip()
        if not head.startswith(b"<"):
            yield from self._csv(path, display)
            return
        with self.open(path) as fh:
            days = etree.iterparse(
                fh, events=("end",), tag="{*}Cube", resolve_entities=False, no_network=True
            )
            try:
                for _, cube in days:
                    day_text = cube.get("time")
                    if day_text is None:
                        continue
                    yield from self._day(display, cube, day_text)
                    cube.clear(keep_tail=False)
            except etree.XMLSyntaxError as exc:
                yield Rejected(
                    f"{display}:{exc.position[0] if exc.position else 1}",
                    "(document)",
                    f"XML is not well-formed: {exc.msg}",
                    b"",
                    ErrorClass.invalid_shape,
                )

    def _day(self, display: str, cube: Any, day_text: str) -> Iterator[ParseResult]:
        where = f"{display}:{cube.sourceline}#Cube[@time='{day_text}']"
        original = etree.tostring(cube)
        self.stats.entries += 1
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            yield Rejected(where, "Cube/@time", f"not a date (got {day_text[:20]})", original)
            return
        per_eur: dict[str, Decimal] = {}
        for rate in cube:
            currency, value = rate.get("currency"), rate.get("rate")
            if currency and value:
                try:
                    per_eur[currency.strip().upper()] = _number(value)
                except RejectedEntry as rej:
                    yield rej.at(f"{where}/Cube[@currency='{currency}']", original)
        yield from self._crossed(
            day, per_eur, where, original, "Cube[@currency='CNY']", "/Cube[@currency='{}']"
        )

    def _crossed(
        self,
        day: date,
        per_eur: dict[str, Decimal],
        where: str,
        original: bytes,
        cny_field: str,
        currency_suffix: str,
    ) -> Iterator[ParseResult]:
        """EUR (CNY per EUR) and every other currency crossed through EUR, for one day."""
        cny = per_eur.pop("CNY", None)
        if cny is None:
            yield Rejected(where, cny_field, "no CNY rate that day", original)
            return
        at = _published(day, ECB_PUBLISHED, _FRANKFURT)
        try:
            yield _fx_event(self, "EUR", day, _rate(cny, Decimal(1), False), at)
        except RejectedEntry as rej:
            yield rej.at(where, original)
        for currency, value in per_eur.items():
            if currency not in SUPPORTED_CURRENCIES:
                continue  # not an ISO 4217 currency we know: nothing to convert
            try:
                crossed = _EXACT.divide(cny, value)
                yield _fx_event(self, currency, day, _rate(crossed, Decimal(1), False), at)
            except RejectedEntry as rej:
                yield rej.at(where + currency_suffix.format(currency), original)

    def _csv(self, path: Path, display: str) -> Iterator[ParseResult]:
        """The ECB CSV: a `Date, USD, …` header, one row per day, `N/A` for no rate."""
        with self.open(path) as fh:
            lines = DecodedLines(fh, "utf-8")
            columns: list[str] | None = None
            for text in lines:
                lines.start_record()
                if not text.strip():
                    continue
                if columns is None:
                    columns = _ecb_header(text)
                    if columns is None:
                        yield Rejected(
                            f"{display}:{lines.lineno}",
                            "(header)",
                            "not an ECB rates CSV: no `Date, USD, …, CNY, …` header row",
                            text.encode("utf-8"),
                            ErrorClass.invalid_shape,
                        )
                        return
                    continue
                yield from self._csv_day(display, lines.lineno, text, columns)

    def _csv_day(
        self, display: str, lineno: int, text: str, columns: list[str]
    ) -> Iterator[ParseResult]:
        where = f"{display}:{lineno}"
        original = text.encode("utf-8")
        self.stats.entries += 1
        cells = [cell.strip() for cell in text.split(",")]
        try:
            day = _ecb_date(cells[0])
        except RejectedEntry as rej:
            yield rej.at(where, original)
            return
        per_eur: dict[str, Decimal] = {}
        for currency, value in zip(columns, cells[1:], strict=False):
            if not currency or not value or value.upper() == "N/A":
                continue  # no rate that day (a currency before its euro area entry, …)
            try:
                per_eur[currency.upper()] = _number(value)
            except RejectedEntry as rej:
                yield rej.at(f"{where}#{currency}", original)
        yield from self._crossed(day, per_eur, where, original, "CNY", "#{}")


@register
class FxParser(Parser):
    name: ClassVar[str] = "fx"
    reads_accounts: ClassVar[bool] = False
    description: ClassVar[str] = "FX reference rates: CFETS central parity CSV or ECB XML"
    topics: ClassVar[tuple[str, ...]] = (FX.name,)

    def parse(self, path: Path) -> Iterator[ParseResult]:
        from adapters.detect import sniff  # late: detect imports this module

        found = sniff(path)
        kind = found.format if found.format in ("fx-cfets", "fx-ecb") else None
        if kind is None:
            yield Rejected(
                f"{path}:1",
                "(document)",
                f"not a CFETS central parity table or ECB rates document: "
                f"it looks like {found.looks_like}",
                b"",
                ErrorClass.invalid_shape,
            )
            return
        inner = (CfetsParser if kind == "fx-cfets" else EcbParser)(self.context)
        inner.stats = self.stats
        yield from inner.parse(path)
