"""CSV statement exports, read through a per-bank mapping (adapters/mappings/*.toml).

Lines are decoded one at a time, so a row in the wrong encoding is rejected alone and the
rest of the file still goes through; the table is streamed (constant memory).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import (
    ParseContext,
    Parser,
    ParseResult,
    Rejected,
    RejectedEntry,
    build_model,
    register,
)
from adapters.encoding import bom_encoding
from adapters.parsers._common import (
    EntryRefs,
    amount_or_reject,
    clip,
    country_from_bic,
    country_from_iban,
    csv_records,
    customs_mode_in,
    decoded_record,
    empty_file,
    local_zone,
    mapped_account,
    servicer_ref,
    statement_channel,
    transaction_event_id,
    utc_midnight,
)
from adapters.parsers._lines import DecodedLines, text_lines
from adapters.parsers.csv_mapping import ColumnRef, CsvMapping, MappingError, load_mapping
from schemas import CustomsMode, Direction, TransactionEvent, TxChannel
from schemas.errors import ErrorClass

__all__ = ["CsvStatementParser"]

_EMPTY_AMOUNTS = frozenset({"", "-", "--", "0", "0.00", "0.0", "0,00"})
_FIELDS = {
    "currency": "currency",
    "counterparty_country": "counterparty_country",
    "enterprise_uscc": "account",
    "description": "description",
    "bank_tx_code": "tx_code",
    "source": "(institution)",
}


@dataclass
class _Table:
    header: dict[str, int]
    account_ref: str = ""
    uscc: str = ""
    account_error: RejectedEntry | None = None
    refs: EntryRefs = field(default_factory=EntryRefs)
    width: int = 0
    last_account: str | None = None
    names: list[str] = field(default_factory=list)  # the header row's cells, stripped


@register
class CsvStatementParser(Parser):
    name: ClassVar[str] = "csv"
    description: ClassVar[str] = "CSV statement export with a per-bank mapping (--mapping)"

    def __init__(self, context: ParseContext) -> None:
        super().__init__(context)
        if context.mapping is None:
            raise MappingError("format csv needs --mapping (a shipped mapping name or a file)")
        self._m = load_mapping(context.mapping)

    def parse(self, path: Path) -> Iterator[ParseResult]:
        display = str(path)
        m = self._m
        with self.open(path) as fh:
            # --encoding wins; then a UTF-8 byte-order mark; then the mapping's encoding.
            encoding = self.context.encoding or _bom_encoding(path) or m.encoding
            lines = DecodedLines(text_lines(fh, path), encoding)
            table_or_error = self._header(lines, display)
            if isinstance(table_or_error, Rejected):
                yield table_or_error
                return
            table = table_or_error
            reader = csv.reader(lines, delimiter=m.delimiter)
            undecodable = f"row is not valid {lines.encoding} (mapping {m.name})"
            # A stop marker ends a page of the table, not necessarily the table: exports
            # printed in pages (a `本页合计` page total, the header again) go on after it.
            paused = False
            for start, row in csv_records(lines, reader, display):
                if isinstance(row, Rejected):
                    self.stats.entries += 1
                    yield row
                    continue
                cells = [cell.strip() for cell in row]
                if cells[: table.width] == table.names:
                    paused = False  # the header again, at the top of the next page
                    continue
                first = next(cell for cell in cells if cell)
                if any(first.startswith(marker) for marker in m.stop_markers):
                    paused = True  # totals, then a footer or the next page
                    continue
                if paused and not self._is_row(row, table):
                    continue  # print footer, signatures: not table rows
                paused = False
                self.stats.entries += 1
                build = partial(self._event, row, table, start)
                yield decoded_record(lines, f"{display}:{start}", undecodable, build)

    # -- header and account --------------------------------------------------------------

    def _header(self, lines: DecodedLines, display: str) -> _Table | Rejected:
        m = self._m
        preamble: list[str] = []
        header_text: str | None = None
        for text in lines:
            if lines.lineno > m.max_preamble_lines + 1:
                break
            is_header = (
                lines.lineno == m.header_line
                if m.header_line is not None
                else (
                    m.header_marker in text if m.header_marker is not None else bool(text.strip())
                )
            )
            if is_header:
                header_text = text
                break
            preamble.append(text)
        if header_text is None:
            if lines.lineno == 0 or not "".join(preamble).strip():
                return empty_file(display)
            what = f"containing {m.header_marker!r}" if m.header_marker else "row"
            return Rejected(
                f"{display}:1",
                "(header)",
                f"no header {what} in the first {m.max_preamble_lines} lines "
                f"(mapping {m.name}, encoding {lines.encoding}: wrong mapping or encoding?)",
                lines.original[:65536],
                ErrorClass.invalid_shape,
            )
        if lines.undecodable:
            return Rejected(
                f"{display}:{lines.lineno}",
                "(encoding)",
                f"header row is not valid {lines.encoding} (mapping {m.name})",
                lines.original[:65536],
                ErrorClass.undecodable,
            )
        try:
            names = next(csv.reader([header_text], delimiter=m.delimiter))
        except csv.Error as exc:
            return Rejected(
                f"{display}:{lines.lineno}",
                "(header)",
                f"CSV: {exc}",
                lines.original[:65536],
                ErrorClass.invalid_shape,
            )
        table = _Table(
            {name.strip(): i for i, name in enumerate(names)},
            width=len(names),
            names=[name.strip() for name in names],
        )
        for ref in _column_refs(m):
            if isinstance(ref, str) and ref not in table.header:
                return Rejected(
                    f"{display}:{lines.lineno}",
                    f"(header) {ref}",
                    f"mapping {m.name} names column {ref!r}, which the header does not have",
                    lines.original[:65536],
                    ErrorClass.invalid_shape,
                )
        if m.account.preamble_pattern is not None:
            pattern = re.compile(m.account.preamble_pattern)
            found = next((mt for mt in map(pattern.search, preamble) if mt), None)
            if found is None:
                table.account_error = RejectedEntry(
                    "account",
                    "no account number in the lines above the table",
                    ErrorClass.invalid_shape,
                )
            else:
                self._resolve(table, found.group("account"))
        return table

    def _resolve(self, table: _Table, raw_account: str) -> None:
        try:
            table.account_ref, table.uscc = mapped_account(
                self.context.accounts, raw_account, "account"
            )
        except RejectedEntry as rej:
            table.account_error = rej
        else:
            table.account_error = None

    # -- rows ----------------------------------------------------------------------------

    def _is_row(self, row: list[str], table: _Table) -> bool:
        """Whether a line after a stop marker is a table row: a date where the booking
        date goes (a page that starts without repeating the header)."""
        ref = self._m.columns.booking_date
        index = ref - 1 if isinstance(ref, int) else table.header[ref]
        if index >= len(row):
            return False
        try:
            self._date(_unguard(row[index]), ref)
        except RejectedEntry:
            return False
        return True

    def _event(self, row: list[str], table: _Table, line: int) -> TransactionEvent:
        m, c = self._m, self._m.columns
        get = _Getter(row, table)
        if m.account.column is not None:
            raw_account = get(m.account.column, "account")
            if not raw_account:
                raise RejectedEntry(_name(m.account.column), "account is empty")
            if raw_account != table.last_account:  # exports list one account per block
                self._resolve(table, raw_account)
                table.last_account = raw_account
        if table.account_error is not None:
            raise table.account_error
        direction, amount = self._amount(get)
        booking_date = self._date(get(c.booking_date, "booking_date"), c.booking_date)
        value_text = get(c.value_date, "value_date") if c.value_date is not None else ""
        value_date = self._date(value_text, c.value_date) if value_text else booking_date
        occurred_at = utc_midnight(booking_date)
        if c.booking_time is not None and get(c.booking_time, "booking_time"):
            occurred_at = self._time(
                booking_date, get(c.booking_time, "booking_time"), c.booking_time
            )
        currency = self._currency(get)
        description = " ".join(v for v in (get(ref, "description") for ref in c.description) if v)
        reference = servicer_ref(get(c.reference, "reference")) if c.reference is not None else None
        balance = get(c.balance, "balance") if c.balance is not None else ""
        counterparty = get(c.counterparty_name, "") if c.counterparty_name is not None else ""
        content = "|".join(
            (
                booking_date.isoformat(),
                direction,
                str(amount),
                currency,
                balance,
                description,
                counterparty,
            )
        )
        digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:24]
        code = get(c.tx_code, "tx_code")[:35] if c.tx_code is not None else ""
        data = {
            "event_id": transaction_event_id(
                self.context.institution,
                account_ref=table.account_ref,
                seen=table.refs,
                servicer=reference,
                statement_id=table.account_ref,
                entry_ref=f"row:{digest}",
                direction=direction,
                amount=amount,
                currency=currency,
            ),
            "source": self.context.institution,
            "institution_type": self.context.institution_type,
            "occurred_at": occurred_at,
            "enterprise_uscc": table.uscc,
            "direction": direction,
            "amount": amount,
            "currency": currency,
            "booking_date": booking_date,
            "value_date": value_date,
            "bank_tx_code": code or None,
            "counterparty_country": self._country(get),
            "channel": self._channel(get, code),
            "customs_mode": self._customs(get, description),
            "account_ref": table.account_ref,
            "description": clip(description),
        }
        return build_model(TransactionEvent, data, _FIELDS | _column_names(m))

    def _amount(self, get: _Getter) -> tuple[Direction, Decimal]:
        m, c = self._m, self._m.columns
        if m.amount_mode == "debit_credit":
            assert c.debit is not None
            assert c.credit is not None
            debit, credit = get(c.debit, "debit"), get(c.credit, "credit")
            has_debit, has_credit = debit not in _EMPTY_AMOUNTS, credit not in _EMPTY_AMOUNTS
            if has_debit == has_credit:
                which = "both do" if has_debit else "neither does"
                raise RejectedEntry(
                    f"{_name(c.debit)}/{_name(c.credit)}",
                    f"exactly one of debit and credit must hold an amount; {which}",
                )
            ref, text = (c.debit, debit) if has_debit else (c.credit, credit)
            amount = self._number(text, ref)
            if amount <= 0:
                raise RejectedEntry(_name(ref), f"must be > 0 (got {text})")
            return (Direction.debit if has_debit else Direction.credit), amount
        assert c.amount is not None
        text = get(c.amount, "amount")
        amount = self._number(text, c.amount)
        if m.amount_mode == "signed":
            if amount == 0:
                raise RejectedEntry(_name(c.amount), "amount is zero")
            return (Direction.debit if amount < 0 else Direction.credit), abs(amount)
        assert c.indicator is not None
        flag = get(c.indicator, "indicator")
        side = m.indicator_values.get(flag)
        if side is None:
            raise RejectedEntry(_name(c.indicator), f"unknown debit/credit indicator {flag}")
        if amount <= 0:
            raise RejectedEntry(_name(c.amount), f"must be > 0 (got {text})")
        return Direction(side), amount

    def _number(self, text: str, ref: ColumnRef) -> Decimal:
        m = self._m
        value = text.strip().replace("\u00a0", " ")
        sep = m.thousands_separator
        if sep is not None and sep in value:
            body = value.lstrip("-")
            point = m.decimal_separator
            integer = body.split(point, 1)[0]
            groups = integer.split(sep)
            if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
                raise RejectedEntry(_name(ref), f"misplaced thousands separator (got {text})")
            value = value.replace(sep, "")
        if m.decimal_separator == "," and "," in value:
            value = value.replace(",", ".")
        elif sep is None and (grouped := _GROUPED.match(value)) is not None:
            # ICBC and BOC exports group thousands (`1,234.56`): say how to read them.
            raise RejectedEntry(
                _name(ref),
                f"amount grouped in thousands (got {text.strip()}); if the bank writes "
                f'amounts so, set thousands_separator = "{grouped.group("sep")}" in the mapping',
            )
        return amount_or_reject(value, _name(ref))

    def _date(self, text: str, ref: ColumnRef | None) -> date:
        formats = self._m.date_format
        formats = [formats] if isinstance(formats, str) else formats
        for pattern in formats:
            try:
                return datetime.strptime(text.strip(), pattern).date()
            except ValueError:
                continue
        else:
            raise RejectedEntry(
                _name(ref), f"not a date in format {' or '.join(formats)} (got {text[:30]})"
            ) from None

    def _time(self, day: date, text: str, ref: ColumnRef) -> datetime:
        try:
            clock = datetime.strptime(text.strip(), self._m.time_format).time()
        except ValueError:
            raise RejectedEntry(
                _name(ref), f"not a time in format {self._m.time_format} (got {text[:20]})"
            ) from None
        local = datetime.combine(day, clock, local_zone(self._m.timezone))
        return local.astimezone(UTC)

    def _currency(self, get: _Getter) -> str:
        m = self._m
        if m.columns.currency is None:
            assert m.currency is not None
            return m.currency
        text = get(m.columns.currency, "currency")
        return m.currency_aliases.get(text, text.upper()) if text else (m.currency or "")

    def _country(self, get: _Getter) -> str | None:
        c = self._m.columns
        if c.counterparty_country is not None:
            text = get(c.counterparty_country, "counterparty_country")
            if text:
                return text.upper()
        account = get(c.counterparty_account, "") if c.counterparty_account is not None else ""
        bic = get(c.counterparty_bic, "") if c.counterparty_bic is not None else ""
        return country_from_iban(account) or country_from_bic(bic)

    def _channel(self, get: _Getter, code: str) -> TxChannel:
        c = self._m.columns
        if c.channel is not None:
            text = get(c.channel, "channel")
            if text in self._m.channel_values:
                return self._m.channel_values[text]
        return statement_channel(code)

    def _customs(self, get: _Getter, description: str) -> CustomsMode | None:
        c = self._m.columns
        if c.customs_mode is not None:
            text = get(c.customs_mode, "customs_mode")
            if text:
                try:
                    return CustomsMode(text)
                except ValueError:
                    raise RejectedEntry(
                        _name(c.customs_mode),
                        f"unknown customs mode {text} (9610/9710/9810/1210)",
                    ) from None
        return customs_mode_in(description)


class _Getter:
    """Cell lookup by header name or 1-based position; a short row is an error."""

    def __init__(self, row: list[str], table: _Table) -> None:
        self.row = row
        self.table = table

    def __call__(self, ref: ColumnRef | None, what: str) -> str:
        if ref is None:
            return ""
        index = ref - 1 if isinstance(ref, int) else self.table.header[ref]
        if index >= len(self.row):
            raise RejectedEntry(
                _name(ref),
                f"row has {len(self.row)} cells, the header {self.table.width}",
                ErrorClass.invalid_shape,
            )
        return _unguard(self.row[index])


# Exports meant for Excel wrap numbers and dates as text formulas (`="86000.00"`,
# `="20240301"`) so Excel keeps leading zeros and digits; the cell's value is inside.
_EXCEL_TEXT = re.compile(r'^="(?P<value>[^"]*)"$')
# An amount grouped in thousands (`86,000.00`, `1'234.50`) read by a mapping that has none.
_GROUPED = re.compile(r"^-?\d{1,3}(?P<sep>[,' ])\d{3}(?:(?P=sep)\d{3})*(?:\.\d+)?$")


def _bom_encoding(path: Path) -> str | None:
    with path.open("rb") as fh:
        return bom_encoding(fh.read(3))


def _unguard(cell: str) -> str:
    value = cell.strip()
    match = _EXCEL_TEXT.match(value)
    return match.group("value").strip() if match else value


def _name(ref: ColumnRef | None) -> str:
    return f"column {ref}" if isinstance(ref, int) else str(ref)


def _column_refs(m: CsvMapping) -> list[ColumnRef]:
    refs: list[Any] = [v for k, v in m.columns if k != "description" and v is not None]
    refs.extend(m.columns.description)
    if m.account.column is not None:
        refs.append(m.account.column)
    return refs


def _column_names(m: CsvMapping) -> dict[str, str]:
    """Event field → the mapping's column, so errors name the column the bank wrote."""
    c = m.columns
    names = {
        "currency": c.currency,
        "counterparty_country": c.counterparty_country
        or c.counterparty_account
        or c.counterparty_bic,
        "description": c.description[0] if c.description else None,
        "bank_tx_code": c.tx_code,
    }
    return {k: _name(v) for k, v in names.items() if v is not None}
