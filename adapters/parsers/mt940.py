"""SWIFT MT940 statements and MT942 interim reports (FIN envelope optional), streamed.

The file is read line by line and cut into statements (`:20:`) and, within a statement,
into entry groups (`:61:` + its `:86:`). The `:61:` statement line is parsed here, not by
the `mt-940` library: banks write it in more ways than the library reads (type codes with
spaces or without `N`, dot decimals, amounts without a comma, entry dates of spaces, long
customer references), and the library reads `1,234.00` as 1.234. The library's `:86:`
post-processor still splits German `?20…?32` sub-fields. A bad group is rejected alone.
"""

from __future__ import annotations

import calendar
import codecs
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import mt940

from adapters.base import Parser, ParseResult, Rejected, RejectedEntry, build_model, register
from adapters.encoding import detect_encoding
from adapters.parsers._common import (
    ORIGINAL_CAP,
    EntryRefs,
    amount_or_reject,
    clip,
    country_from_bic,
    country_from_iban,
    customs_mode_in,
    empty_file,
    lookup_account,
    servicer_ref,
    transaction_event_id,
    utc_midnight,
)
from adapters.parsers._lines import AT_LINE_END, text_lines
from schemas import CURRENCY_EXPONENT, Direction, TransactionEvent, TxChannel
from schemas.errors import ErrorClass

__all__ = ["Mt940Parser"]

CHUNK = 256  # entry groups held before they are converted
# mt-940 logs every tag it cannot match at ERROR level; this parser reports those lines
# itself (as rejections naming file and line), so the library's copies would be noise.
logging.getLogger("mt940").setLevel(logging.CRITICAL)
_OPTIONS = mt940.Options(
    applicant_iban=True,
    merge_keeps_values=True,
    case_insensitive_marks=True,
    unbounded_details=True,
    strip_bom=True,
    non_swift_free_text=True,
)
_TAG_RE = re.compile(r"^:(\d{2}[A-Z]?|NS):")
# A statement line inside a line (its line break lost: `…:60F:C240304CNY1,00:61:2403…`)
# cannot be read as an entry; it is reported rather than lost silently.
_HIDDEN_61 = re.compile(r":61:\d{6}")
# :61: = value date, [entry date], mark, [funds code], amount, [type], [customer ref]
# [//bank ref] (first line); supplementary details on the next line.
_LINE_61 = re.compile(
    r"^(?P<vdate>\d{6})(?P<edate>\d{4}|    )?(?P<mark>[Rr]?[DCdc])(?P<funds>[A-Z])?"
    r"(?P<amount>[0-9][0-9.,]*)(?P<rest>.*)$"
)
# `NONREF` straight after the amount is a customer reference, not type code `NONR` (Penta).
_TYPE = re.compile(
    r"^(?!NONREF)(?:(?P<swift>[NSF][A-Z0-9 ]{3})|(?P<bare>[A-Z0-9]{3})(?=NONREF|//| |$))"
)
_SWIFT_AMOUNT = re.compile(r"^\d{1,15}(?:,\d*)?$")  # comma decimal; digits alone too
_DOT_AMOUNT = re.compile(r"^\d{1,15}\.\d{1,2}$")  # old Rabobank layout: dot decimals
_BALANCE = re.compile(r"^[DC](?P<date>\d{6})(?P<ccy>[A-Z]{3})")
_CURRENCY_ALIASES = {"RUR": "RUB"}
_OPENING = ("60F", "60M", "60")
_CARRIED = ("20", "21", "25", "28C", "28")  # what a repeated opening balance continues
# `:25:UBRTHUHB/123456789150ABCDEF002/HUF` (Raiffeisen Hungary): account, then currency.
_TRAILING_CURRENCY = re.compile(r"^(?P<account>.+?)\s*/\s*(?P<ccy>[A-Z]{3})$")
# Citibank writes its BAI balance reports as zero-amount :61: lines whose supplementary
# details name the BAI status code: `/ABC/DEF/C 17376,67 BAI CD 010` (010 = opening
# ledger). BAI codes below 100 are balances, not bookings.
_BAI_BALANCE = re.compile(r"\bBAI CD 0\d\d\b")
# MT942 :34F: floor limit; a space after the currency as FinTS banks write it (`EUR 9,99`).
_FLOOR = re.compile(r"^(?P<ccy>[A-Z]{3}) ?[DC]?\d")
_SLASH_KEYS = re.compile(r"/([A-Z]{4})/")
_FIELDS = {
    "amount": ":61: amount",
    "currency": ":60F: currency",
    "booking_date": ":61: entry date",
    "value_date": ":61: value date",
    "occurred_at": ":61: entry date",
    "counterparty_country": ":86: country",
    "bank_tx_code": ":61: transaction type",
    "description": ":86:",
    "enterprise_uscc": ":25:",
    "source": "(institution)",
}


@dataclass
class _Tag:
    tag: str
    line: int
    lines: list[str]
    raw: list[bytes]
    undecodable: bool = False

    @property
    def value(self) -> str:
        return "\n".join(self.lines)

    def text(self) -> str:
        return f":{self.tag}:{self.value}"


@dataclass
class _Group:
    """One statement line (:61:) with its :86: and :NS: tags."""

    ordinal: int
    tags: list[_Tag]
    amount: Decimal = Decimal(0)
    mark: str = ""
    value_date: date | None = None
    entry_date: date | None = None
    type_code: str | None = None
    bank_ref: str | None = None
    cut: bool = False  # the file ends mid-line inside this group: it may be cut short

    @property
    def line(self) -> int:
        return self.tags[0].line

    @property
    def original(self) -> bytes:
        return b"".join(raw for tag in self.tags for raw in tag.raw)

    def text(self) -> str:
        return "\n".join(tag.text() for tag in self.tags)


@dataclass
class _Statement:
    header: list[_Tag] = field(default_factory=list)
    pending: list[_Group] = field(default_factory=list)
    group: _Group | None = None
    in_trailer: bool = False
    entries: int = 0
    checked: bool = False
    error: RejectedEntry | None = None
    statement_id: str = ""
    account_ref: str = ""
    uscc: str = ""
    currency: str = ""


@register
class Mt940Parser(Parser):
    name: ClassVar[str] = "mt940"
    description: ClassVar[str] = "SWIFT MT940 customer statements (FIN envelope optional)"

    def parse(self, path: Path) -> Iterator[ParseResult]:
        display = str(path)
        self._display = display
        self._seen = EntryRefs()  # event-id keys of this file: a repeat gets #2, #3 …
        # --encoding wins; else the file's own (UTF-8, CP1252, CP852 or GB18030).
        encoding = self.context.encoding or detect_encoding(path)
        self._encoding = encoding
        stmt: _Statement | None = None
        seen_any = tags_seen = False
        first = b""
        raw = b""
        with self.open(path) as fh:
            for lineno, raw in enumerate(text_lines(fh, path), start=1):
                line = raw.removesuffix(AT_LINE_END)  # FinTS line end (`@@`), if that
                try:
                    text = line.decode(encoding).rstrip("\r\n")
                    undecodable = False
                except UnicodeDecodeError:
                    text = line.decode(encoding, errors="replace").rstrip("\r\n")
                    undecodable = True
                if lineno == 1:
                    text = text.removeprefix("\ufeff")
                if text.strip() and not seen_any:
                    seen_any, first = True, raw
                content = _strip_envelope(text)
                if content is None:  # end of a FIN message, or envelope header only
                    if stmt is not None and _ends_message(raw):
                        yield from self._finish(stmt)
                        stmt = None
                    continue
                text = content
                # A tag indented by spaces or tabs is still a tag: read as text, an indented
                # `:61:` would vanish into the `:86:` before it with its money.
                tagged = text.lstrip(" \t")
                hidden = len(_HIDDEN_61.findall(tagged, 1))
                if hidden:
                    self.stats.entries += 1
                    yield Rejected(
                        f"{display}:{lineno}",
                        ":61:",
                        f"{hidden} statement line(s) (:61:) inside this line, not at its "
                        "start: the file's line breaks are missing or damaged, so they "
                        "cannot be read as entries",
                        raw[:ORIGINAL_CAP],
                        ErrorClass.invalid_shape,
                    )
                match = _TAG_RE.match(tagged)
                if match is None:
                    if stmt is not None:
                        current = _current_tag(stmt)
                        if current is not None:
                            current.lines.append(text)
                            current.raw.append(raw)
                            current.undecodable |= undecodable
                    continue
                tag = _Tag(match.group(1), lineno, [tagged[match.end() :]], [raw], undecodable)
                tags_seen = True
                # A `:25:` after a statement's entries or closing balance starts another
                # statement, even without its `:20:` (which the header check then names):
                # its entries are not the account and currency of the one before.
                if tag.tag == "20" or (
                    tag.tag == "25" and stmt is not None and (stmt.entries or stmt.in_trailer)
                ):
                    if stmt is not None:
                        yield from self._finish(stmt)
                    stmt = _Statement()
                elif tag.tag in _OPENING and stmt is not None and (stmt.entries or stmt.in_trailer):
                    # Another opening balance after the closing one: the next day (or the
                    # next currency) of the same statement; its entries are in the currency
                    # of this balance, not of the one before.
                    carried = [t for t in stmt.header if t.tag in _CARRIED]
                    yield from self._finish(stmt)
                    stmt = _Statement(header=carried)
                if stmt is None:
                    stmt = _Statement()  # tolerate a missing :20:; the header check names it
                yield from self._add(stmt, tag)
        if stmt is not None:
            # A file cut off inside an entry (a transfer that stopped) would have its last
            # line read as if whole: `:61:…D152300,00` cut after `D15230` is 15,230.
            # (Trailing blanks, a DOS end-of-file Ctrl-Z or NUL padding cut nothing.)
            ended = raw.endswith((b"\n", b"\r", AT_LINE_END)) or not raw.strip(b" \t\x1a\x00")
            if stmt.group is not None and not ended:
                stmt.group.cut = True
            yield from self._finish(stmt)
        if not seen_any:
            yield empty_file(display)
        elif not tags_seen:
            # text, but not one :20:/:25:/:61: tag: read in the wrong encoding (--encoding
            # utf-16 made CJK of it) it was "0 entries", exit 0, with nothing ingested
            yield Rejected(
                f"{display}:1",
                "(document)",
                f"no MT940 field tag (:20:, :25:, :61: …) in the file read as {encoding} "
                "(a wrong --encoding?)",
                first[:ORIGINAL_CAP],
                ErrorClass.invalid_shape,
            )

    # -- statement assembly --------------------------------------------------------------

    def _add(self, stmt: _Statement, tag: _Tag) -> Iterator[ParseResult]:
        if tag.tag == "61":
            self._close_group(stmt)
            stmt.in_trailer = False  # an entry after the closing balance keeps its :86:
            stmt.entries += 1
            stmt.group = _Group(stmt.entries, [tag])
            if len(stmt.pending) >= CHUNK:
                yield from self._flush(stmt)
        elif tag.tag in ("86", "NS") and stmt.group is not None and not stmt.in_trailer:
            stmt.group.tags.append(tag)
        elif tag.tag[:2] in ("62", "64", "65", "90"):
            self._close_group(stmt)
            stmt.in_trailer = True
        elif not stmt.in_trailer and stmt.group is None:
            stmt.header.append(tag)
        # A :86: after the closing balance is statement-level information: not an entry.

    def _close_group(self, stmt: _Statement) -> None:
        if stmt.group is not None:
            stmt.pending.append(stmt.group)
            stmt.group = None

    def _finish(self, stmt: _Statement) -> Iterator[ParseResult]:
        self._close_group(stmt)
        yield from self._flush(stmt)

    def _flush(self, stmt: _Statement) -> Iterator[ParseResult]:
        groups, stmt.pending = stmt.pending, []
        if not groups:
            return
        if not stmt.checked:
            self._check_header(stmt)
        for group in groups:
            self.stats.entries += 1
            try:
                if stmt.error is not None:
                    raise stmt.error
                if group.cut:
                    raise RejectedEntry(
                        ":62F:",
                        "the file ends in the middle of a line of this entry, before the "
                        "statement's closing balance (:62F:/:62M:; MT942 :90D:/:90C:) or the "
                        "end of its message (-}): it looks truncated, so the entry may be cut",
                        ErrorClass.invalid_shape,
                    )
                self._check_line(group)
                if _is_balance_line(group):
                    self.skip("balance line")
                    continue
                yield self._build(stmt, group)
            except RejectedEntry as rej:
                yield rej.at(self._where(group), group.original)

    def _check_header(self, stmt: _Statement) -> None:
        """Validate :20:/:25:/:60F: once and resolve the enterprise of the account."""
        stmt.checked = True
        tags = {tag.tag: tag for tag in stmt.header}
        try:
            if not all(_rejoin(tag, self._encoding) for tag in stmt.header):
                raise RejectedEntry(
                    "(encoding)",
                    f"statement header is not valid {self._encoding}{self._encoding_hint()}",
                    ErrorClass.undecodable,
                )
            if "20" not in tags:
                raise RejectedEntry(
                    ":20:", "statement has no :20: reference", ErrorClass.invalid_shape
                )
            account = tags["25"].value.strip() if "25" in tags else ""
            if not account:
                raise RejectedEntry(
                    ":25:", "statement has no account identification", ErrorClass.invalid_shape
                )
            opening = tags.get("60F") or tags.get("60M") or tags.get("60")
            match = _BALANCE.match(opening.value.strip()) if opening else None
            floor = tags.get("34F")  # MT942 interim report: no balance, a floor limit
            floor_match = _FLOOR.match(floor.value.strip()) if floor else None
            if match is not None:
                stmt.currency, as_of = match.group("ccy"), match.group("date")
                # Russian banks still write the pre-1998 code RUR for the rouble.
                stmt.currency = _CURRENCY_ALIASES.get(stmt.currency, stmt.currency)
            elif floor_match is not None:
                stmt.currency = _CURRENCY_ALIASES.get(
                    floor_match.group("ccy"), floor_match.group("ccy")
                )
                as_of = tags["13D"].value.strip() if "13D" in tags else ""
            else:
                raise RejectedEntry(
                    ":60F:", "no valid opening balance (nor MT942 :34F:), so no currency"
                )
            stmt.account_ref, uscc = self._account(account)
            if uscc is None:
                raise RejectedEntry(
                    ":25:",
                    f"account {stmt.account_ref} is not in the account map",
                    ErrorClass.unknown_account,
                )
            stmt.uscc = uscc
            number = (
                tags["28C"].value.strip() if "28C" in tags else tags.get("28", tags["20"]).value
            )
            stmt.statement_id = "/".join(
                (stmt.account_ref, tags["20"].value.strip(), number.strip(), as_of)
            )
        except RejectedEntry as rej:
            stmt.error = rej

    def _account(self, account: str) -> tuple[str, str | None]:
        """(account_ref, uscc): the whole `:25:` first, then `BIC/number`'s number alone.

        A `:25:` ending in `/<currency>` that is not mapped as written is looked up again
        without the currency, so `BIC/number/HUF` finds `number` (not the fall-back `HUF`).
        """
        ref, uscc = lookup_account(self.context.accounts, account, ":25:")
        trailing = _TRAILING_CURRENCY.match(account.strip())
        if uscc is None and trailing and trailing.group("ccy") in CURRENCY_EXPONENT:
            bare_ref, bare_uscc = lookup_account(
                self.context.accounts, trailing.group("account"), ":25:"
            )
            if bare_uscc is not None:
                return bare_ref, bare_uscc
        return ref, uscc

    def _check_line(self, group: _Group) -> None:
        """Parse the :61: statement line (first line; the second is supplementary)."""
        if not all(_rejoin(tag, self._encoding) for tag in group.tags):
            raise RejectedEntry(
                "(encoding)",
                f"entry is not valid {self._encoding}{self._encoding_hint()}",
                ErrorClass.undecodable,
            )
        first = group.tags[0].lines[0].strip()  # `:61: 2403…`: a space after the tag too
        match = _LINE_61.match(first)
        if match is None:
            raise RejectedEntry(
                ":61:", f"not a statement line (got {first[:40]})", ErrorClass.invalid_shape
            )
        group.value_date = _yymmdd(match.group("vdate"), ":61: value date")
        entry = (match.group("edate") or "").strip()
        group.entry_date = _entry_date(entry, group.value_date) if entry else None
        mark = match.group("mark").upper()
        if mark.startswith("R"):
            raise RejectedEntry(
                ":61: mark",
                f"reversal ({mark}) of an earlier booked entry: not booked "
                "money; the original entry's event stands and must be reconciled",
                ErrorClass.reversal,
            )
        group.mark = mark
        group.amount = _amount(match.group("amount"))
        rest = match.group("rest").lstrip(" ")  # `C50,00 NTRF…` (Deutsche Bank): a space
        kind = _TYPE.match(rest)
        if kind is not None:
            group.type_code = (kind.group("swift") or kind.group("bare")).rstrip() or None
            rest = rest[kind.end() :]
        if "//" in rest:
            group.bank_ref = servicer_ref(rest.split("//", 1)[1].strip()[:35])

    # -- conversion ----------------------------------------------------------------------

    def _build(self, stmt: _Statement, group: _Group) -> TransactionEvent:
        assert group.value_date is not None  # set by _check_line
        value_date = group.value_date
        booking_date = group.entry_date or value_date
        data = _details(group)
        details = _details_text(data)
        slash = _slash_fields(details)
        entry_ref = f"#{group.ordinal}"  # the position: :61: has no statement-local reference
        amount = _to_minor_units(group.amount, stmt.currency)
        direction = Direction.debit if group.mark == "D" else Direction.credit
        event = {
            "event_id": transaction_event_id(
                self.context.institution,
                account_ref=stmt.account_ref,
                seen=self._seen,
                servicer=group.bank_ref,
                statement_id=stmt.statement_id,
                entry_ref=entry_ref,
                direction=direction,
                amount=group.amount,
                currency=stmt.currency,
            ),
            "source": self.context.institution,
            "institution_type": self.context.institution_type,
            "occurred_at": utc_midnight(booking_date),
            "enterprise_uscc": stmt.uscc,
            "direction": direction,
            "amount": amount,
            "currency": stmt.currency,
            "booking_date": booking_date,
            "value_date": value_date,
            "bank_tx_code": group.type_code,
            "counterparty_country": _country(data, slash),
            "channel": TxChannel.other,
            "customs_mode": customs_mode_in(details),
            "account_ref": stmt.account_ref,
            "description": clip(_description(data, slash, details)),
        }
        return build_model(TransactionEvent, event, _FIELDS)

    def _encoding_hint(self) -> str:
        if self.context.encoding:
            return ""  # the operator named it
        # Detection chooses among UTF-8 and a few code pages; Big5 (Taiwan, Hong Kong)
        # cannot be told from GB18030 on short texts, so it is never guessed.
        return " (detected for the file; --encoding names another, such as big5)"

    def _where(self, group: _Group) -> str:
        return f"{self._display}:{group.line}"


# Structured :86: sub-fields (?20..?29) are joined with spaces, not glued together.
_PROCESSORS: dict[str, list[Callable[..., dict[str, Any]]]] = {
    "post_transaction_details": [mt940.processors.transaction_details_post_processor_with_space]
}


_TRANSACTIONS = mt940.models.Transactions(processors=_PROCESSORS, options=_OPTIONS)


def _details(group: _Group) -> dict[str, Any]:
    """The :86: information to account owner, German `?NN` sub-fields split (by mt-940)."""
    # Polish banks (BPH) write a space after the tag (`:86: 020?00…`), which would hide the
    # `?NN` sub-fields from the splitter.
    text = "\n".join(tag.value for tag in group.tags if tag.tag == "86").lstrip(" ")
    data: dict[str, Any] = {"transaction_details": text}
    if text:
        for processor in _PROCESSORS["post_transaction_details"]:
            data = processor(_TRANSACTIONS, None, {"transaction_details": text}, data)
    return data


def _is_balance_line(group: _Group) -> bool:
    """A zero `:61:` carrying a BAI balance code (Citibank): a balance, not a booking."""
    supplementary = group.tags[0].lines[1:2]
    return group.amount == 0 and bool(supplementary and _BAI_BALANCE.search(supplementary[0]))


def _amount(text: str) -> Decimal:
    """`1234,56`, `1234,`, `1234` (SWIFT) or `1234.56` (old Rabobank); never `1,234.00`."""
    if _SWIFT_AMOUNT.match(text):
        whole, _, fraction = text.partition(",")
    elif _DOT_AMOUNT.match(text):
        whole, _, fraction = text.partition(".")
    else:
        raise RejectedEntry(
            ":61: amount",
            f"expected digits with one decimal comma, no thousands separators (got {text})",
        )
    number = whole.lstrip("0") or "0"
    return amount_or_reject(f"{number}.{fraction}" if fraction else number, ":61: amount")


def _to_minor_units(amount: Decimal, currency: str) -> Decimal:
    """`250` → `250.00` in EUR (exact: only ever adds zeros), so amounts read alike."""
    exponent = CURRENCY_EXPONENT.get(currency)
    places = -int(amount.as_tuple().exponent)
    if exponent is None or places >= exponent:
        return amount
    return amount.quantize(Decimal(1).scaleb(-exponent))


def _entry_date(mmdd: str, value_date: date) -> date:
    """The entry (booking) date MMDD, in the year that puts it nearest the value date."""
    candidates = []
    for year in (value_date.year - 1, value_date.year, value_date.year + 1):
        try:
            candidates.append(date(year, int(mmdd[:2]), int(mmdd[2:])))
        except ValueError:
            continue  # 29 February outside a leap year, or no such day at all
    if not candidates:
        raise RejectedEntry(":61: entry date", f"not a valid MMDD date (got {mmdd})")
    return min(candidates, key=lambda day: abs((day - value_date).days))


def _strip_envelope(text: str) -> str | None:
    """Drop FIN envelope blocks ({1:}{2:}{3:}{4: … -}{5:}); None if nothing is left."""
    if text.startswith("{"):
        start = text.find("{4:")
        if start < 0:
            return None
        text = text[start + 3 :]
        if not text.strip():
            return None
    stripped = text.strip()
    if stripped in ("-", "-}") or stripped.startswith(("-}", "{5:")):
        return None
    return text


def _rejoin(tag: _Tag, encoding: str) -> bool:
    """Whether `tag` reads in `encoding`, decoding it again across its line ends if a line
    alone did not: a bank that wraps `:86:` at 65 bytes cuts a GB18030 character in two,
    and the halves, each undecodable, make one character joined (no line end between)."""
    if not tag.undecodable:
        return True
    decoder = codecs.getincrementaldecoder(encoding)()
    parts: list[str] = []
    try:
        for raw in tag.raw:
            parts.append(decoder.decode(raw.removesuffix(AT_LINE_END).rstrip(b"\r\n")))
            if not decoder.getstate()[0]:  # the line ended between characters
                parts.append("\n")
        parts.append(decoder.decode(b"", final=True))
    except UnicodeDecodeError:
        return False
    text = (_strip_envelope("".join(parts).rstrip("\n")) or "").lstrip(" \t")
    match = _TAG_RE.match(text)
    if match is None or match.group(1) != tag.tag:
        return False
    tag.lines = text[match.end() :].split("\n")
    tag.undecodable = False
    return True


def _ends_message(raw: bytes) -> bool:
    return raw.strip().startswith((b"-}", b"-", b"{5:"))


def _current_tag(stmt: _Statement) -> _Tag | None:
    if stmt.group is not None:
        return stmt.group.tags[-1]
    if stmt.header and not stmt.in_trailer:
        return stmt.header[-1]
    return None


def _yymmdd(text: str, field: str) -> date:
    year, month, day = 2000 + int(text[:2]), int(text[2:4]), int(text[4:6])
    if month == 2 and day in (29, 30):
        # German savings banks value quarterly closings on "30 February": the month's end
        day = min(day, 29 if calendar.isleap(year) else 28)
    try:
        return date(year, month, day)
    except ValueError:
        raise RejectedEntry(field, f"not a valid YYMMDD date (got {text})") from None


def _as_date(value: Any) -> date | None:
    return date(value.year, value.month, value.day) if isinstance(value, date) else None


def _details_text(data: dict[str, Any]) -> str:
    text = data.get("transaction_details")
    if isinstance(text, str):
        return " ".join(text.split("\n"))
    parts = [data.get(k) for k in ("posting_text", "purpose", "applicant_name")]
    return " ".join(p for p in parts if isinstance(p, str))


def _slash_fields(details: str) -> dict[str, str]:
    """`/KEY/value/KEY/value` :86: sub-fields (SWIFT-style, used by many banks)."""
    if not details.startswith("/"):
        return {}
    found: dict[str, str] = {}
    matches = list(_SLASH_KEYS.finditer(details))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(details)
        found.setdefault(match.group(1), details[match.end() : end].strip("/ "))
    return found


def _country(data: dict[str, Any], slash: dict[str, str]) -> str | None:
    country = slash.get("CTRY")
    if country:
        return country.strip().upper()
    counterparty = slash.get("CNTP") or slash.get("BENM") or slash.get("ORDP") or ""
    for part in counterparty.split("/"):
        found = country_from_iban(part) or country_from_bic(part)
        if found:
            return found
    # Dutch banks (ABN AMRO, Van Lanschot, bunq) name the counterparty in bare keywords
    # instead of a `/CNTP/` group: `/IBAN/NL81RABO…/BIC/RABONL2U/NAME/…` (the three-letter
    # `BIC` key stays in the `IBAN` value).
    iban, _, rest = slash.get("IBAN", "").partition("/")
    bic = rest.removeprefix("BIC/").partition("/")[0] if rest.startswith("BIC/") else ""
    found = country_from_iban(iban.strip()) or country_from_bic(bic.strip())
    if found:
        return found
    return country_from_iban(data.get("applicant_iban")) or country_from_bic(
        data.get("applicant_bin")
    )


def _description(data: dict[str, Any], slash: dict[str, str], details: str) -> str | None:
    remittance = slash.get("REMI") or slash.get("USTD")
    if remittance:
        return remittance.removeprefix("USTD//").strip("/")
    purpose = data.get("purpose")
    if isinstance(purpose, str) and purpose:
        return purpose
    return details or None
