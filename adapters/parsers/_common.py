"""Helpers shared by the parsers: dates, references, accounts, countries, codes, texts,
and the handling (or rejection) of one record of a text file."""

from __future__ import annotations

import csv
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.accounts import AccountDirectory, AmbiguousAccount
from adapters.base import ParseResult, Rejected, RejectedEntry
from adapters.parsers._lines import DecodedLines
from schemas import CustomsMode, SchemaError, TxChannel, make_event_id, parse_amount
from schemas.errors import ErrorClass, mask_account_numbers

__all__ = [
    "ORIGINAL_CAP",
    "EntryRefs",
    "account_ref",
    "amount_or_reject",
    "clip",
    "country_from_bic",
    "country_from_iban",
    "csv_records",
    "customs_mode_in",
    "decoded_record",
    "document_head",
    "empty_file",
    "entry_id_parts",
    "local_zone",
    "lookup_account",
    "mapped_account",
    "parse_iso_date",
    "parse_iso_datetime",
    "servicer_ref",
    "statement_channel",
    "transaction_event_id",
    "utc_midnight",
]

DESCRIPTION_MAX = 140  # TransactionEvent.description limit


def utc_midnight(day: date) -> datetime:
    """Event time of an entry that carries only a date.

    Midnight UTC keeps `occurred_at.date()` equal to the booking date, which is the day the
    stream uses for FX rates and daily windows (midnight Beijing time would be the day before).
    """
    return datetime.combine(day, time(), UTC)


@lru_cache(maxsize=32)
def local_zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)


def parse_iso_date(text: str, field: str) -> date:
    """A strict `YYYY-MM-DD` date, or `RejectedEntry` naming `field`."""
    value = text.strip()
    if not _DATE_RE.match(value):
        raise RejectedEntry(field, f"not a YYYY-MM-DD date (got {value[:40]})")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise RejectedEntry(field, f"invalid date {value}: {exc}") from None


def parse_iso_datetime(text: str, field: str, zone: str) -> datetime:
    """An ISO 8601 date-time; without an offset it is local time in `zone`. Returns UTC."""
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RejectedEntry(field, f"not an ISO 8601 date-time (got {value[:40]})") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=local_zone(zone))
    return parsed.astimezone(UTC)


def amount_or_reject(text: str | None, field: str) -> Decimal:
    """A strict positive-or-signed decimal (`schemas.parse_amount`), or `RejectedEntry`."""
    if text is None or not text.strip():
        raise RejectedEntry(field, "amount is missing")
    try:
        return parse_amount(text.strip(), field)
    except SchemaError as exc:
        raise RejectedEntry(field, f"{exc.errors[0].reason} (got {text.strip()[:40]})") from None


_NO_REF = frozenset({"", "NONREF", "NOTPROVIDED", "NONE", "N/A", "NA"})


def servicer_ref(text: str | None) -> str | None:
    """The account servicer's own entry reference, or None for placeholders like NONREF."""
    if text is None:
        return None
    value = text.strip()
    return None if value.upper() in _NO_REF else value


class EntryRefs:
    """Makes entry references unique within one document, deterministically.

    The n-th repeat of a reference gets `#n` appended (`R`, `R#2`, `R#3`), so two entries
    sharing a reference (a sender bug, or identical CSV rows) keep distinct ids, and the
    same rows in an overlapping export get the same ids again. Memory is bounded: repeats
    are recognised among the last `window` distinct references (repeats sit close together
    in practice: same day, same statement page).
    """

    def __init__(self, window: int = 16384) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._window = window

    def occurrence(self, ref: str) -> int:
        """1 the first time `ref` is seen, 2 the second time, …"""
        count = self._counts.pop(ref, 0) + 1
        self._counts[ref] = count
        if len(self._counts) > self._window:
            self._counts.popitem(last=False)
        return count

    def unique(self, ref: str) -> str:
        count = self.occurrence(ref)
        return ref if count == 1 else f"{ref}#{count}"


def account_ref(accounts: AccountDirectory, raw: str, field: str) -> str:
    """The pseudonymised reference of a raw account, or `RejectedEntry` if it is blank."""
    try:
        return accounts.ref(raw)
    except ValueError:
        raise RejectedEntry(
            field, "account identification is empty", ErrorClass.invalid_shape
        ) from None


def lookup_account(
    accounts: AccountDirectory, raw: str, field: str, scheme: str | None = None
) -> tuple[str, str | None]:
    """(account_ref, uscc or None) by `AccountDirectory.resolve`: most specific form first.

    `RejectedEntry` for a blank account or an ambiguous one (error class
    `ambiguous_account`, naming the candidates by reference).
    """
    if not raw.strip():
        raise RejectedEntry(field, "account identification is empty", ErrorClass.invalid_shape)
    try:
        return accounts.resolve(raw, scheme)
    except AmbiguousAccount as exc:
        raise RejectedEntry(field, str(exc), ErrorClass.ambiguous_account) from None


def mapped_account(
    accounts: AccountDirectory, raw: str, field: str, scheme: str | None = None
) -> tuple[str, str]:
    """(account_ref, uscc) of a raw account the account map knows, or `RejectedEntry`."""
    ref, uscc = lookup_account(accounts, raw, field, scheme)
    if uscc is None:
        raise RejectedEntry(
            field, f"account {ref} is not in the account map", ErrorClass.unknown_account
        )
    return ref, uscc


def entry_id_parts(
    institution: str,
    *,
    seen: EntryRefs,
    account_ref: str,
    servicer: str | None,
    statement_id: str,
    entry_ref: str,
    direction: str,
    amount: Decimal,
    currency: str | None,
) -> list[str]:
    """The `make_event_id` parts of a booked entry.

    With the account servicer's entry reference (camt AcctSvcrRef, MT940 `//` bank
    reference, PSD2 entryReference) they are (institution, account, that reference,
    direction + amount + currency): the same booking reported in camt.052, .053, .054 or
    MT940 gets the same id and the stream deduplicates it, while two bookings that share a
    reference (banks reuse batch references) differ by their money, whatever order they
    come in. Without one they are (institution, statement id, entry reference). `seen` is
    the document's register: a key repeated inside one document gets `#2`, `#3` … so no
    two entries of a file share an id, and a re-sent file gets the same ids again.
    """
    if servicer:
        parts = [institution, account_ref, servicer, f"{direction}:{_plain(amount)}:{currency}"]
    else:
        parts = [institution, statement_id, entry_ref]
    repeat = seen.occurrence("\x1f".join(parts))
    if repeat > 1:
        parts.append(f"#{repeat}")
    return parts


def transaction_event_id(
    institution: str,
    *,
    seen: EntryRefs,
    account_ref: str,
    servicer: str | None,
    statement_id: str,
    entry_ref: str,
    direction: str,
    amount: Decimal,
    currency: str | None,
) -> str:
    """The event id of a booked entry with one transaction (see `entry_id_parts`)."""
    return make_event_id(
        *entry_id_parts(
            institution,
            seen=seen,
            account_ref=account_ref,
            servicer=servicer,
            statement_id=statement_id,
            entry_ref=entry_ref,
            direction=direction,
            amount=amount,
            currency=currency,
        )
    )


def _plain(amount: Decimal) -> str:
    """`800`, `800.5`: one spelling whatever the trailing zeros (`800,` vs `800.00`)."""
    return format(amount.normalize(), "f")


def clip(text: str | None) -> str | None:
    """Collapse whitespace, mask account numbers, cut to the 140-character description limit."""
    if not text:
        return None
    value = mask_account_numbers(" ".join(text.split()))
    if not value:
        return None
    return value if len(value) <= DESCRIPTION_MAX else value[: DESCRIPTION_MAX - 1] + "…"


_IBAN_RE = re.compile(r"^([A-Z]{2})[0-9]{2}[A-Z0-9]{10,30}$")
_BIC_RE = re.compile(r"^[A-Z]{4}([A-Z]{2})[A-Z0-9]{2}([A-Z0-9]{3})?$")


def country_from_iban(iban: str | None) -> str | None:
    if not iban:
        return None
    match = _IBAN_RE.match("".join(iban.split()).upper())
    return match.group(1) if match else None


def country_from_bic(bic: str | None) -> str | None:
    if not bic:
        return None
    match = _BIC_RE.match(bic.strip().upper())
    return match.group(1) if match else None


# Customs supervision modes are written into remittance texts by exporters' banks, e.g.
# "监管方式:9610" or "customs mode 9710"; a bare 4-digit number is not enough (it could be
# an invoice number), so a keyword must precede it.
_CUSTOMS_RE = re.compile(
    r"(?:监管方式|贸易方式|海关监管|customs(?:[ _-]?mode)?|CUSTMODE)"
    r"\s*[:：/=]?\s*(9610|9710|9810|1210)\b",
    re.IGNORECASE,
)


def customs_mode_in(*texts: str | None) -> CustomsMode | None:
    """The cross-border e-commerce customs mode named in a remittance text, if any."""
    for text in texts:
        if text:
            match = _CUSTOMS_RE.search(text)
            if match:
                return CustomsMode(match.group(1))
    return None


# ISO 20022 bank transaction codes (Domain-Family-SubFamily) that say how the money moved.
_CARD_FAMILIES = frozenset({"CCRD", "DCRD"})
_POS_SUBFAMILIES = frozenset({"POSD", "POSC", "SMRT", "POSP"})
_COUNTER_FAMILIES = frozenset({"CNTR"})
_CASH_SUBFAMILIES = frozenset({"CWDL", "CDPT", "BCWD", "BCDP"})


def statement_channel(bank_tx_code: str | None) -> TxChannel:
    """A channel from an ISO bank transaction code where the code is explicit; else other."""
    if not bank_tx_code:
        return TxChannel.other
    parts = bank_tx_code.upper().split("-")
    family = parts[1] if len(parts) > 1 else ""
    sub = parts[2] if len(parts) > 2 else ""
    if family in _CARD_FAMILIES and sub in _POS_SUBFAMILIES:
        return TxChannel.pos
    if family in _COUNTER_FAMILIES or sub in _CASH_SUBFAMILIES:
        return TxChannel.branch
    return TxChannel.other


def empty_file(display: str) -> Rejected:
    """The rejection of a file with nothing in it (`display` is the file as reported)."""
    return Rejected(f"{display}:1", "(document)", "empty file", b"", ErrorClass.invalid_shape)


def decoded_record(
    lines: DecodedLines,
    location: str,
    undecodable: str,
    build: Callable[[], ParseResult],
) -> ParseResult:
    """What `build()` makes of the record `lines` has just read, or the record's rejection.

    A record that is not valid in `lines.encoding` is rejected (reason `undecodable`)
    without calling `build`; a `RejectedEntry` from `build` is rejected too. Either
    rejection is at `location` and keeps the record's raw bytes.
    """
    try:
        if lines.undecodable:
            raise RejectedEntry("(encoding)", undecodable, ErrorClass.undecodable)
        return build()
    except RejectedEntry as rej:
        return rej.at(location, lines.original)


MAX_QUOTED_LINES = 20  # a quoted cell (a multi-line remark) never spans more in practice


def csv_records(
    lines: DecodedLines, reader: Iterator[list[str]], display: str
) -> Iterator[tuple[int, list[str] | Rejected]]:
    """(first line, cells) of each record `reader` reads from `lines`; blank rows are skipped.

    A record the csv module cannot read comes as its rejection instead of its cells. While
    the caller handles a record, `lines.original` and `lines.undecodable` describe it.

    An **unclosed quote** would make the csv module read every following line into one
    cell, to the end of the file. A record whose quotes do not pair up, or whose quoted
    cell runs over `MAX_QUOTED_LINES` lines, is therefore taken for one: its first line is
    rejected (the reason names the lines it swallowed) and the other lines are read again
    as rows of their own, so each is counted and ingested or rejected on its own.
    """
    while True:
        lines.start_record()
        start = lines.lineno + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if len(lines.raw) > 1:
                yield start, _unclosed(lines, start, display, f"CSV: {exc}")
                continue
            yield start, Rejected(f"{display}:{start}", "(row)", f"CSV: {exc}", lines.original)
            continue
        if len(lines.raw) > 1 and (
            len(lines.raw) > MAX_QUOTED_LINES or lines.original.count(b'"') % 2
        ):
            yield start, _unclosed(lines, start, display, "")
            continue
        if any(cell.strip() for cell in row):
            yield start, row


def _unclosed(lines: DecodedLines, start: int, display: str, detail: str) -> Rejected:
    """Reject the first line of a runaway quoted record; give the rest back to `lines`."""
    end = lines.lineno
    first, rest = lines.raw[0], lines.raw[1:]
    lines.push_back(rest, start)
    reason = (
        f"unclosed quote: the quoted cell opened on line {start} would swallow lines "
        f"{start + 1}–{end} ({end - start} rows); line {start} is rejected and the "
        "following lines are read as rows"
    ) + (f" ({detail})" if detail else "")
    return Rejected(f"{display}:{start}", "(row)", reason, first, ErrorClass.invalid_shape)


ORIGINAL_CAP = 4 << 20  # bytes of a broken document kept as the dead letter's original


def document_head(path: Path) -> bytes:
    """The first `ORIGINAL_CAP` bytes of a document: the original kept with a rejection of
    the whole document (streamed documents are not held in memory)."""
    with path.open("rb") as fh:
        return fh.read(ORIGINAL_CAP)
