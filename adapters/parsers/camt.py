"""ISO 20022 camt.052 / camt.053 / camt.054 (versions .001.02 to .001.13), streamed.

Elements are matched by local name; the namespace only tells message type and version, so
one code path reads every version (Sts as plain code or `Sts/Cd`, party as `Dbtr/Nm` or
`Dbtr/Pty/Nm`, `BIC` or `BICFI`, per-transaction amount as `TxDtls/Amt` or
`AmtDtls/TxAmt/Amt`). `iterparse` releases each entry once read, so memory stays constant
whatever the file size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from lxml import etree

from adapters.base import (
    Parser,
    ParseResult,
    Rejected,
    RejectedEntry,
    build_model,
    register,
)
from adapters.parsers._common import (
    EntryRefs,
    amount_or_reject,
    clip,
    country_from_bic,
    country_from_iban,
    customs_mode_in,
    document_head,
    empty_file,
    entry_id_parts,
    local_zone,
    lookup_account,
    servicer_ref,
    statement_channel,
    utc_midnight,
)
from schemas import (
    CURRENCY_EXPONENT,
    Direction,
    SchemaError,
    TransactionEvent,
    make_event_id,
    normalize_uscc,
)
from schemas.errors import ErrorClass

__all__ = ["Camt052Parser", "Camt053Parser", "Camt054Parser", "CamtParser"]

MIN_VERSION, MAX_VERSION = 1, 13
_NS_RE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.(05[234])\.001\.(\d{2})$")
_MESSAGES = {  # message number → (message element, statement element)
    "052": ("BkToCstmrAcctRpt", "Rpt"),
    "053": ("BkToCstmrStmt", "Stmt"),
    "054": ("BkToCstmrDbtCdtNtfctn", "Ntfctn"),
}
_DIRECTIONS = {"CRDT": Direction.credit, "DBIT": Direction.debit}
_USCC_SCHEMES = frozenset({"USCC", "TXID"})  # the USCC is also the taxpayer id in China
_TAIL_CAP = 1 << 20  # bytes of a broken document kept as the dead letter's original
_FIELDS = {  # event field → camt field, for error messages
    "amount": "Amt",
    "currency": "Amt/@Ccy",
    "booking_date": "BookgDt",
    "value_date": "ValDt",
    "occurred_at": "BookgDt",
    "counterparty_country": "RltdPties/*/PstlAdr/Ctry",
    "bank_tx_code": "BkTxCd",
    "description": "RmtInf/Ustrd",
    "enterprise_uscc": "Acct/Ownr/Id/OrgId/Othr/Id",
    "source": "(institution)",
}


def _paths(*wanted: str) -> frozenset[str]:
    """The wanted leaf paths and every path on the way to them."""
    out: set[str] = set()
    for path in wanted:
        parts = path.split("/")
        out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return frozenset(out)


_CODES = ("BkTxCd/Domn/Cd", "BkTxCd/Domn/Fmly/Cd", "BkTxCd/Domn/Fmly/SubFmlyCd", "BkTxCd/Prtry/Cd")
_PARTIES = (
    *(
        f"RltdPties/{party}/{leaf}"
        for party in ("Dbtr", "Cdtr")
        for leaf in ("PstlAdr/Ctry", "Pty/PstlAdr/Ctry", "CtryOfRes", "Pty/CtryOfRes")
    ),
    "RltdPties/DbtrAcct/Id/IBAN",
    "RltdPties/CdtrAcct/Id/IBAN",
)
_AGENTS = tuple(
    f"RltdAgts/{agent}/FinInstnId/{bic}"
    for agent in ("DbtrAgt", "CdtrAgt")
    for bic in ("BIC", "BICFI")
)
_USTRD = tuple(f"RmtInf/Ustrd[{i}]" for i in range(1, 5))  # the first four lines
# Everything read of an entry (outside NtryDtls) and of each TxDtls, by local-name path;
# the rest of the subtree (addresses, structured remittance, charges) is never touched.
ENTRY_FIELDS = (
    "NtryRef", "Amt", "Amt/@Ccy", "CdtDbtInd", "RvslInd", "Sts", "BookgDt/Dt",
    "BookgDt/DtTm", "ValDt/Dt", "ValDt/DtTm", "AcctSvcrRef", "AddtlNtryInf", *_CODES,
)  # fmt: skip
TX_FIELDS = (
    "Amt", "Amt/@Ccy", "AmtDtls/TxAmt/Amt", "AmtDtls/TxAmt/Amt/@Ccy", "CdtDbtInd", *_USTRD,
    "AddtlTxInf", "Purp/Prtry", *_CODES, *_PARTIES, *_AGENTS,
)  # fmt: skip


class _Fields:
    """Compiled XPath readers for one namespace (one camt message type and version).

    One XPath `concat(normalize-space(...), ...)` per entry and per transaction does all
    the lookups inside libxml2, about twice as fast as walking the subtree from Python.
    `normalize-space` leaves no tab in a value, so a tab separates the values.
    """

    def __init__(self, ns: str) -> None:
        spaces = {"c": ns}
        self.entry = etree.XPath(_concat(ENTRY_FIELDS), namespaces=spaces)
        self.tx = etree.XPath(_concat(TX_FIELDS), namespaces=spaces)
        # .001.01 has TxDtls directly in Ntry; later versions wrap them in NtryDtls.
        self.txs = etree.XPath("c:NtryDtls/c:TxDtls | c:TxDtls", namespaces=spaces)

    def read_entry(self, el: Any) -> dict[str, str]:
        return _pairs(ENTRY_FIELDS, self.entry(el))

    def read_tx(self, el: Any) -> dict[str, str]:
        found = _pairs(TX_FIELDS, self.tx(el))
        lines = [found.pop(key) for key in _USTRD if key in found]
        if lines:
            found["RmtInf/Ustrd"] = " ".join(lines)
        return found


def _concat(fields: tuple[str, ...]) -> str:
    def qualified(path: str) -> str:
        return "/".join(p if p.startswith("@") else f"c:{p}" for p in path.split("/"))

    return "concat(" + ", '\t', ".join(f"normalize-space({qualified(f)})" for f in fields) + ")"


def _pairs(fields: tuple[str, ...], joined: str) -> dict[str, str]:
    return {name: value for name, value in zip(fields, joined.split("\t"), strict=True) if value}


def _flatten(el: Any, wanted: frozenset[str]) -> dict[str, str]:
    """Leaf texts of an element by local-name path ("RltdPties/Dbtr/Pty/PstlAdr/Ctry").

    Used for the statement header (once per statement). Repeated leaves are joined with
    a space; `Amt` elements also give their currency as `<path>/@Ccy`.
    """
    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        for child in node:
            tag = child.tag
            if not isinstance(tag, str):
                continue  # comment or processing instruction
            path = prefix + tag[tag.rfind("}") + 1 :]
            if path not in wanted:
                continue
            if len(child):
                walk(child, path + "/")
                continue
            text = child.text
            if text is not None and (text := text.strip()):
                previous = out.get(path)
                out[path] = text if previous is None else f"{previous} {text}"
            if path.endswith("Amt"):
                currency = child.get("Ccy")
                if currency is not None:
                    out[path + "/@Ccy"] = currency.strip()

    walk(el, "")
    return out


@lru_cache(maxsize=64)
def _fields_for(ns: str) -> _Fields:
    return _Fields(ns)


def _local(el: Any) -> str:
    tag: str = el.tag
    return tag[tag.rfind("}") + 1 :]


def _children(el: Any, local: str) -> list[Any]:
    return [child for child in el if isinstance(child.tag, str) and _local(child) == local]


@dataclass
class _Statement:
    """Header facts of one Stmt/Rpt/Ntfctn, read at its first entry."""

    index: int
    id: str | None = None
    account: str | None = None  # raw: used for lookup and hashing, never emitted
    account_scheme: str | None = None  # Othr/SchmeNm: `<scheme>:<id>` is looked up first
    created: str | None = None  # CreDtTm of the statement (else of the message)
    owner_ids: list[tuple[str, str]] = field(default_factory=list)  # (scheme, id)
    header_read: bool = False
    resolved: bool = False
    uscc: str = ""
    account_ref: str = ""
    error: RejectedEntry | None = None


@register
class CamtParser(Parser):
    name: ClassVar[str] = "camt"
    description: ClassVar[str] = "ISO 20022 camt.052/053/054 statements and notifications"
    message: ClassVar[str | None] = None  # restrict to one message number ("053")

    def parse(self, path: Path) -> Iterator[ParseResult]:
        display = str(path)
        if path.stat().st_size == 0:
            yield empty_file(display)
            return
        with self.open(path) as fh:
            yield from _Reader(self, display, path).run(fh)


@register
class Camt052Parser(CamtParser):
    name = "camt.052"
    description = "ISO 20022 camt.052 intraday account reports"
    message = "052"


@register
class Camt053Parser(CamtParser):
    name = "camt.053"
    description = "ISO 20022 camt.053 end-of-day statements"
    message = "053"


@register
class Camt054Parser(CamtParser):
    name = "camt.054"
    description = "ISO 20022 camt.054 debit/credit notifications"
    message = "054"


_ACCOUNT_PATHS = _paths(
    "Id/IBAN",
    "Id/Othr/Id",
    "Id/Othr/SchmeNm/Cd",
    "Id/Othr/SchmeNm/Prtry",
    "Id/BBAN",  # .001.01: BBAN, UPIC or PrtryAcct/Id instead of Othr
    "Id/UPIC",
    "Id/PrtryAcct/Id",
)
_OTHER_ID_PATHS = _paths("Id", "SchmeNm/Cd", "SchmeNm/Prtry")
# The only elements iterparse reports: everything else is read from the entry subtree.
_WATCHED = [
    "{*}Document",
    *(f"{{*}}{message}{suffix}" for message, _ in _MESSAGES.values() for suffix in ("", "V01")),
    *(f"{{*}}{statement}" for _, statement in _MESSAGES.values()),
    "{*}Ntry",
    *(f"{{*}}{name}" for name in ("Bal", "TxsSummry", "Intrst", "RltdAcct", "FrToDt")),
    *(f"{{*}}{name}" for name in ("AddtlStmtInf", "AddtlRptInf", "AddtlNtfctnInf")),
    *(f"{{*}}{name}" for name in ("StmtPgntn", "RptPgntn", "NtfctnPgntn", "RptgSrc")),
    "{*}SplmtryData",
]
# Statement- and message-level siblings of the entries, freed as soon as they end, so 100 MB
# of balances (or of anything else the standard puts there) never pile up in memory.
_FREED = frozenset(tag[3:] for tag in _WATCHED[-13:])
# Version .001.01 (2008) names its message element with the version: BkToCstmrStmtV01.
_MESSAGE_NAMES = frozenset(
    name for message, _ in _MESSAGES.values() for name in (message, f"{message}V01")
)


class _Reader:
    """One pass over one document."""

    def __init__(self, parser: CamtParser, display: str, path: Path) -> None:
        self.p = parser
        self.ctx = parser.context
        self.display = display
        self.path = path
        self.seen_root = False
        self.msg_el = ""
        self.stmt_el = ""
        self.entry_line: int | None = None  # start line of the entry being read
        self.fields: _Fields | None = None
        self.seen = EntryRefs()  # event-id keys of this document: a repeat gets #2, #3 …

    def run(self, fh: Any) -> Iterator[ParseResult]:
        events = etree.iterparse(
            fh,
            events=("start", "end"),
            tag=_WATCHED,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            # no huge_tree: libxml2's limits stay on (a text node of at most 10 MB, 256
            # levels), so one giant Ustrd cannot take gigabytes; a statement of any size
            # still streams, entry by entry
            remove_comments=True,
            remove_pis=True,
        )
        stmt: _Statement | None = None
        n_stmt = n_entry = 0
        try:
            for event, el in events:
                local = _local(el)
                if event == "start":
                    if local == "Ntry":
                        n_entry += 1
                        self.entry_line = el.sourceline
                    elif local == self.stmt_el:
                        n_stmt += 1
                        n_entry = 0
                        stmt = _Statement(n_stmt)
                    elif local == "Document" or local in _MESSAGE_NAMES:
                        problem = self._check_head(el, local)
                        if problem is not None:
                            yield problem
                            return
                    continue
                if local == "Ntry":
                    if stmt is not None:
                        if not stmt.header_read:
                            self._header(el.getparent(), stmt)
                        yield from self._entry(el, stmt, n_entry)
                    self.entry_line = None
                    _release(el)
                elif local == self.stmt_el:
                    stmt = None
                    _release(el)
                elif local in _FREED:
                    parent = el.getparent()
                    owner = _local(parent) if parent is not None else ""
                    if owner == self.stmt_el and stmt is not None:
                        if not stmt.header_read:  # before its Id and Acct are freed
                            self._header(parent, stmt)
                        _release(el)
                    elif owner == self.msg_el:
                        _release(el)
                    # the same names inside an entry go with the entry
        except etree.XMLSyntaxError as exc:
            yield self._broken(exc)
            return
        if not self.seen_root:
            yield Rejected(
                f"{self.display}:1",
                "(document)",
                "no ISO 20022 Document element",
                document_head(self.path),
                ErrorClass.invalid_shape,
            )

    # -- document head -------------------------------------------------------------------

    def _check_head(self, el: Any, local: str) -> Rejected | None:
        tag: str = el.tag
        ns = tag[1 : tag.index("}")] if tag.startswith("{") else ""
        where = f"{self.display}:{el.sourceline}"
        if local == "Document":
            self.seen_root = True
            match = _NS_RE.match(ns)
            if match is None:
                return Rejected(
                    where,
                    "/Document/@xmlns",
                    f"not an ISO 20022 camt.052/053/054 document (namespace {ns or 'none'!r})",
                    document_head(self.path),
                    ErrorClass.unsupported_version,
                )
            number, version = match.group(1), int(match.group(2))
            wanted = self.p.message
            if wanted is not None and number != wanted:
                return Rejected(
                    where,
                    "/Document/@xmlns",
                    f"format {self.p.name} expects camt.{wanted}, this is camt.{number}",
                    document_head(self.path),
                    ErrorClass.unsupported_version,
                )
            if not MIN_VERSION <= version <= MAX_VERSION:
                return Rejected(
                    where,
                    "/Document/@xmlns",
                    f"camt.{number}.001.{version:02d} is not supported "
                    f"(.001.{MIN_VERSION:02d} to .001.{MAX_VERSION:02d} are)",
                    document_head(self.path),
                    ErrorClass.unsupported_version,
                )
            self.msg_el, self.stmt_el = _MESSAGES[number]
            if version == 1:
                self.msg_el += "V01"
            self.fields = _fields_for(ns)
            return None
        if local != self.msg_el:
            return Rejected(
                where,
                f"/Document/{local}",
                f"expected {self.msg_el or 'a camt Document root'} here",
                document_head(self.path),
                ErrorClass.invalid_shape,
            )
        return None

    # -- statement header ----------------------------------------------------------------

    def _header(self, statement: Any, stmt: _Statement) -> None:
        """Read Id and Acct of the statement element, before its children are released."""
        stmt.header_read = True
        for child in statement:
            if not isinstance(child.tag, str):
                continue
            local = _local(child)
            if local == "Id":
                stmt.id = (child.text or "").strip() or None
            elif local == "CreDtTm":
                stmt.created = (child.text or "").strip() or None
            elif local == "Acct":
                acct = _flatten(child, _ACCOUNT_PATHS)
                stmt.account = (
                    acct.get("Id/IBAN")
                    or acct.get("Id/Othr/Id")
                    or acct.get("Id/BBAN")
                    or acct.get("Id/UPIC")
                    or acct.get("Id/PrtryAcct/Id")
                )
                if "Id/Othr/Id" in acct and "Id/IBAN" not in acct:
                    stmt.account_scheme = acct.get("Id/Othr/SchmeNm/Cd") or acct.get(
                        "Id/Othr/SchmeNm/Prtry"
                    )
                elif "Id/BBAN" in acct or "Id/UPIC" in acct:
                    stmt.account_scheme = "BBAN" if "Id/BBAN" in acct else "UPIC"
                for owner in _children(child, "Ownr"):
                    for org in owner.iter("{*}OrgId"):
                        for tax in _children(org, "TaxIdNb"):  # .001.01
                            if tax.text and tax.text.strip():
                                stmt.owner_ids.append(("TXID", tax.text.strip()))
                        for othr in _children(org, "Othr"):
                            other = _flatten(othr, _OTHER_ID_PATHS)
                            scheme = other.get("SchmeNm/Cd") or other.get("SchmeNm/Prtry") or ""
                            if other.get("Id"):
                                stmt.owner_ids.append((scheme.upper(), other["Id"]))
            elif local == "Ntry":
                break  # the header comes before the entries
        if stmt.created is None:  # optional in some versions: the message's creation time
            message = statement.getparent()
            for header in _children(message, "GrpHdr") if message is not None else ():
                for created in _children(header, "CreDtTm"):
                    stmt.created = (created.text or "").strip() or None

    def _resolve(self, stmt: _Statement) -> None:
        """Find the enterprise of the statement account, once, at its first entry."""
        stmt.resolved = True
        acct = f"{self.stmt_el}/Acct"
        if stmt.account is None:
            stmt.error = RejectedEntry(f"{acct}/Id", "statement has no account identification")
            return
        try:
            stmt.account_ref, mapped = lookup_account(
                self.ctx.accounts, stmt.account, f"{acct}/Id", stmt.account_scheme
            )
        except RejectedEntry as rej:
            stmt.error = rej
            return
        if mapped is not None:
            stmt.uscc = mapped
            return
        for scheme, value in stmt.owner_ids:
            if scheme in _USCC_SCHEMES:
                try:
                    stmt.uscc = normalize_uscc(value)
                except SchemaError as exc:
                    stmt.error = RejectedEntry(
                        f"{acct}/Ownr/Id/OrgId/Othr/Id",
                        f"{exc.errors[0].reason} (got {value[:24]})",
                    )
                return
        stmt.error = RejectedEntry(
            f"{acct}/Id",
            f"account {stmt.account_ref} is not in the account map and the account owner "
            "carries no USCC (Ownr/Id/OrgId/Othr with scheme USCC or TXID)",
            ErrorClass.unknown_account,
        )

    # -- entries -------------------------------------------------------------------------

    def _entry(self, el: Any, stmt: _Statement, ordinal: int) -> Iterator[ParseResult]:
        self.p.stats.entries += 1
        xpath = f"/Document/{self.msg_el}/{self.stmt_el}[{stmt.index}]/Ntry[{ordinal}]"
        location = f"{self.display}:{el.sourceline}#{xpath}"
        assert self.fields is not None  # set by the Document check
        entry = self.fields.read_entry(el)
        status = entry.get("Sts/Cd") or entry.get("Sts/Prtry") or entry.get("Sts")
        if not status and self.stmt_el == "Stmt":
            # Sts is mandatory, yet some exports leave it out; a camt.053 statement reports
            # booked entries only, so such an entry is booked, not silently dropped.
            status = "BOOK"
        if not status:
            # camt.052/054 also report pending entries: guessing either way could lose or
            # invent money, so the entry is rejected where it is, not counted as not booked.
            yield RejectedEntry(
                "Sts", "entry has no status (Sts): cannot tell booked from pending"
            ).at(location, etree.tostring(el))
            return
        if status != "BOOK":
            # Pending and information entries are not booked money (DESIGN.md).
            self.p.skip(f"status {status}")
            return
        try:
            results = self._booked(el, entry, stmt, ordinal, location)
        except RejectedEntry as rej:
            yield rej.at(location, etree.tostring(el))
            return
        yield from results

    def _booked(
        self, el: Any, entry: dict[str, str], stmt: _Statement, ordinal: int, location: str
    ) -> list[ParseResult]:
        if entry.get("RvslInd", "").lower() in ("true", "1"):
            raise RejectedEntry(
                "RvslInd",
                "reversal of an earlier booked entry: not booked money; the original "
                "entry's event stands and must be reconciled",
                ErrorClass.reversal,
            )
        cdi = entry.get("CdtDbtInd")
        direction = _DIRECTIONS.get(cdi or "")
        if direction is None:
            raise RejectedEntry("CdtDbtInd", f"expected CRDT or DBIT (got {cdi})")
        amount = amount_or_reject(entry.get("Amt"), "Amt")
        currency = entry.get("Amt/@Ccy", "")
        # BookgDt is optional in ISO 20022: fall back to the value date, then to the day
        # the statement was created (an entry is booked by the time it is reported).
        booked = self._when(entry, "BookgDt")
        valued = self._when(entry, "ValDt")
        if booked is None:
            booked = valued or self._created(stmt)
        if booked is None:
            raise RejectedEntry(
                "BookgDt", "booked entry without BookgDt, ValDt or statement CreDtTm"
            )
        booking_date, occurred_at = booked
        value_date = valued[0] if valued else booking_date
        if stmt.id is None:
            raise RejectedEntry(f"{self.stmt_el}/Id", "statement has no Id")
        if not stmt.resolved:
            self._resolve(stmt)
        if stmt.error is not None:
            raise stmt.error
        servicer = servicer_ref(entry.get("AcctSvcrRef"))
        # Only without the servicer's reference does the id need a statement-local one.
        entry_ref = "" if servicer else entry.get("NtryRef") or f"#{ordinal}"
        assert self.fields is not None
        txs = [self.fields.read_tx(tx) for tx in self.fields.txs(el)]
        amounts = _batch_amounts(txs, amount, currency, direction)
        id_parts = entry_id_parts(
            self.ctx.institution,
            seen=self.seen,
            account_ref=stmt.account_ref,
            servicer=servicer,
            statement_id=stmt.id,
            entry_ref=entry_ref,
            direction=direction,
            amount=amount,
            currency=currency,
        )
        base = {
            "source": self.ctx.institution,
            "institution_type": self.ctx.institution_type,
            "occurred_at": occurred_at,
            "enterprise_uscc": stmt.uscc,
            "direction": direction,
            "currency": currency,
            "booking_date": booking_date,
            "value_date": value_date,
            "account_ref": stmt.account_ref,
        }
        results: list[ParseResult] = []
        entry_bytes: bytes | None = None
        for k, tx_amount in enumerate(amounts):
            event_id = make_event_id(*id_parts, *((str(k),) if len(amounts) > 1 else ()))
            # A batch reported as one amount has no per-transaction details to pick from.
            details = _details(entry, txs[k] if len(txs) == len(amounts) else {}, direction)
            data = base | details | {"event_id": event_id, "amount": _trimmed(tx_amount, currency)}
            try:
                results.append(build_model(TransactionEvent, data, _FIELDS))
            except RejectedEntry as rej:
                if len(amounts) == 1:
                    raise
                # One bad transaction of a batch: reject it alone, keep its siblings.
                entry_bytes = entry_bytes or etree.tostring(el)
                results.append(rej.at(f"{location}/NtryDtls/TxDtls[{k + 1}]", entry_bytes))
        return results

    def _created(self, stmt: _Statement) -> tuple[date, datetime] | None:
        """(date as written, 00:00 UTC that day) of the statement's creation time."""
        if stmt.created is None:
            return None
        match = _XS_DATE.match(stmt.created[:10])
        try:
            day = date.fromisoformat(stmt.created[:10]) if match else None
        except ValueError:
            day = None
        if day is None:
            raise RejectedEntry(
                f"{self.stmt_el}/CreDtTm", f"not a date-time (got {stmt.created[:40]})"
            )
        return day, utc_midnight(day)

    def _when(self, entry: dict[str, str], name: str) -> tuple[date, datetime] | None:
        """(date as written, event time in UTC) of a `Dt` or `DtTm` choice element."""
        day_text = entry.get(f"{name}/Dt")
        if day_text is not None:
            match = _XS_DATE.match(day_text)
            if match is None:
                raise RejectedEntry(f"{name}/Dt", f"not a date (got {day_text[:30]})")
            try:
                day = date.fromisoformat(match.group(1))
            except ValueError as exc:
                raise RejectedEntry(f"{name}/Dt", str(exc)) from None
            return day, utc_midnight(day)
        stamp_text = entry.get(f"{name}/DtTm")
        if stamp_text is None:
            return None
        try:
            stamp = datetime.fromisoformat(stamp_text)
        except ValueError:
            raise RejectedEntry(
                f"{name}/DtTm", f"not a date-time (got {stamp_text[:40]})"
            ) from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=local_zone(self.ctx.timezone))
        return stamp.date(), stamp.astimezone(UTC)

    # -- broken documents ----------------------------------------------------------------

    def _broken(self, exc: etree.XMLSyntaxError) -> Rejected:
        """The rest of a document that stopped being well-formed (truncated, bad bytes)."""
        line = exc.position[0] if exc.position else (exc.lineno or 1)
        start = self.entry_line or line
        message = (exc.msg or str(exc)).strip()
        lowered = message.lower()
        error_class = (
            ErrorClass.undecodable
            if "encoding" in lowered or "utf-8" in lowered
            else ErrorClass.invalid_shape
        )
        if "document is empty" in lowered:
            return empty_file(self.display)
        return Rejected(
            f"{self.display}:{line}",
            "(document)",
            f"XML is not well-formed: {message}; nothing from line {start} on was ingested",
            _tail(self.path, start),
            error_class,
        )


_XS_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:Z|[+-]\d{2}:\d{2})?$")


def _batch_amounts(
    txs: list[dict[str, str]], amount: Decimal, currency: str, direction: Direction
) -> list[Decimal]:
    """One amount per event: the entry's, or each batched transaction's.

    A batch whose transactions carry no amount in the entry currency (camt.054 batch
    bookings often list only references) is one event for the entry amount; a batch
    where only some carry one cannot be split and is rejected.
    """
    if len(txs) <= 1 or not any(_tx_amount_path(tx, currency) for tx in txs):
        return [amount]
    amounts: list[Decimal] = []
    for k, tx in enumerate(txs, start=1):
        where = f"NtryDtls/TxDtls[{k}]"
        tx_cdi = tx.get("CdtDbtInd")
        if tx_cdi is not None and _DIRECTIONS.get(tx_cdi) != direction:
            raise RejectedEntry(f"{where}/CdtDbtInd", "batch mixes credits and debits")
        path = _tx_amount_path(tx, currency)
        if path is None:
            raise RejectedEntry(
                f"{where}/Amt",
                f"batched transaction has no amount in {currency or '?'} while others have",
            )
        amounts.append(amount_or_reject(tx[path], f"{where}/{path}"))
    total = sum(amounts, Decimal(0))
    if total != amount:
        raise RejectedEntry(
            "NtryDtls/TxDtls/Amt",
            f"batched amounts sum to {total} {currency}, entry amount is {amount} {currency}",
        )
    return amounts


def _tx_amount_path(tx: dict[str, str], currency: str) -> str | None:
    for path in ("Amt", "AmtDtls/TxAmt/Amt"):
        if tx.get(f"{path}/@Ccy") == currency and path in tx:
            return path
    return None


def _details(entry: dict[str, str], tx: dict[str, str], direction: Direction) -> dict[str, Any]:
    """Code, counterparty country, channel, customs mode and text of one transaction."""
    code = _bank_tx_code(tx) or _bank_tx_code(entry)
    ustrd = tx.get("RmtInf/Ustrd")
    addtl_tx = tx.get("AddtlTxInf")
    addtl_entry = entry.get("AddtlNtryInf")
    return {
        "bank_tx_code": code,
        "counterparty_country": _counterparty_country(tx, direction),
        "channel": statement_channel(code),
        "customs_mode": customs_mode_in(ustrd, addtl_tx, addtl_entry, tx.get("Purp/Prtry")),
        "description": clip(ustrd or addtl_tx or addtl_entry),
    }


def _bank_tx_code(scope: dict[str, str]) -> str | None:
    domain = scope.get("BkTxCd/Domn/Cd")
    family = scope.get("BkTxCd/Domn/Fmly/Cd")
    sub = scope.get("BkTxCd/Domn/Fmly/SubFmlyCd")
    if domain and family and sub:
        return f"{domain}-{family}-{sub}"
    proprietary = scope.get("BkTxCd/Prtry/Cd")
    return proprietary[:35] if proprietary else None


def _counterparty_country(tx: dict[str, str], direction: Direction) -> str | None:
    # Money in: the debtor is the counterparty; money out: the creditor.
    if direction is Direction.credit:
        party, account, agent = "Dbtr", "DbtrAcct", "DbtrAgt"
    else:
        party, account, agent = "Cdtr", "CdtrAcct", "CdtrAgt"
    for path in ("PstlAdr/Ctry", "Pty/PstlAdr/Ctry", "CtryOfRes", "Pty/CtryOfRes"):
        country = tx.get(f"RltdPties/{party}/{path}")
        if country:
            return country
    return country_from_iban(tx.get(f"RltdPties/{account}/Id/IBAN")) or country_from_bic(
        tx.get(f"RltdAgts/{agent}/FinInstnId/BICFI") or tx.get(f"RltdAgts/{agent}/FinInstnId/BIC")
    )


def _release(el: Any) -> None:
    """Free an element that has been read, and its already-read siblings."""
    el.clear(keep_tail=False)
    parent = el.getparent()
    if parent is not None:
        while el.getprevious() is not None:
            del parent[0]


def _tail(path: Path, start_line: int) -> bytes:
    """Bytes of `path` from `start_line` on (capped): the unread part of a broken document."""
    with path.open("rb") as fh:
        for _ in range(start_line - 1):
            if not fh.readline():
                return b""
        return fh.read(_TAIL_CAP)


def _trimmed(amount: Decimal, currency: str) -> Decimal:
    """`8.850` EUR → `8.85`, `5442.09000` RON → `5442.09`: zeros beyond the currency's
    minor units (some banks write five decimals) dropped; never rounds a real digit."""
    exponent = CURRENCY_EXPONENT.get(currency)
    if exponent is None or -int(amount.as_tuple().exponent) <= exponent:
        return amount
    quantum = Decimal(1).scaleb(-exponent)
    trimmed = amount.quantize(quantum)
    return trimmed if trimmed == amount else amount
