"""UK Open Banking Read/Write API `OBReadTransaction6` responses (JSON).

`Data.Transaction[]` entries with Status `Booked` become events; `Pending` (and `Rejected`)
entries are not booked money and are only counted. `AccountId` is the bank's resource id of
the account; the account map resolves it (or a raw account number) to the enterprise.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import Parser, ParseResult, Rejected, RejectedEntry, build_model, register
from adapters.parsers._common import (
    EntryRefs,
    clip,
    country_from_bic,
    country_from_iban,
    customs_mode_in,
    mapped_account,
    parse_iso_datetime,
    servicer_ref,
    statement_channel,
    transaction_event_id,
)
from adapters.parsers._json import (
    JsonStream,
    document_head,
    json_amount,
    json_entry,
    json_str,
    mapping_at,
)
from schemas import Direction, TransactionEvent, TxChannel
from schemas.errors import ErrorClass

__all__ = ["ObieParser"]

_BOOKED = frozenset({"Booked", "BOOK"})
_NOT_BOOKED = {"Pending": "pending", "PDNG": "pending", "Rejected": "rejected", "RJCT": "rejected"}
_DIRECTIONS = {
    "Credit": Direction.credit,
    "CRDT": Direction.credit,
    "Debit": Direction.debit,
    "DBIT": Direction.debit,
}
_FIELDS = {
    "amount": "Amount.Amount",
    "currency": "Amount.Currency",
    "booking_date": "BookingDateTime",
    "value_date": "ValueDateTime",
    "occurred_at": "BookingDateTime",
    "counterparty_country": "CreditorAgent/DebtorAgent",
    "bank_tx_code": "BankTransactionCode",
    "description": "TransactionInformation",
    "enterprise_uscc": "AccountId",
    "source": "(institution)",
}


@register
class ObieParser(Parser):
    name: ClassVar[str] = "obie"
    description: ClassVar[str] = "UK Open Banking OBReadTransaction6 (JSON)"

    def parse(self, path: Path) -> Iterator[ParseResult]:
        display = str(path)
        pointer = f"{display}#/Data/Transaction"
        stream = JsonStream(
            self,
            path,
            build=frozenset({"Data.Transaction.item"}),
            shapes=frozenset({"Data.Transaction"}),
        )
        refs = EntryRefs()
        build = partial(self._event, refs=refs)
        for index, item in enumerate(stream):
            if isinstance(item, Rejected):
                yield item
                return
            result = json_entry(self, item[1], index, pointer, build)
            if result is not None:
                yield result
        if stream.kinds.get("Data.Transaction") != "start_array":
            reason = "not an OBReadTransaction6 document (no Data.Transaction array)"
            yield Rejected(
                pointer, "Data.Transaction", reason, document_head(path), ErrorClass.invalid_shape
            )

    def _event(self, entry: Any, index: int, refs: EntryRefs) -> TransactionEvent | None:
        if not isinstance(entry, dict):
            raise RejectedEntry(
                "(entry)", "expected a transaction object", ErrorClass.invalid_shape
            )
        status = entry.get("Status")
        if status in _NOT_BOOKED:
            self.skip(_NOT_BOOKED[status])
            return None
        if status not in _BOOKED:
            raise RejectedEntry("Status", f"expected Booked or Pending (got {status})")
        direction = _DIRECTIONS.get(entry.get("CreditDebitIndicator", ""))
        if direction is None:
            raise RejectedEntry(
                "CreditDebitIndicator",
                f"expected Credit or Debit (got {entry.get('CreditDebitIndicator')})",
            )
        money = mapping_at(entry, "Amount")
        amount = json_amount(money.get("Amount"), "Amount.Amount")
        booked_text = entry.get("BookingDateTime")
        if not isinstance(booked_text, str):
            raise RejectedEntry("BookingDateTime", "booked transaction without a booking time")
        zone = self.context.timezone
        occurred_at = parse_iso_datetime(booked_text, "BookingDateTime", zone)
        booking_date = _local_date(booked_text)
        value_text = entry.get("ValueDateTime")
        value_date = _local_date(value_text) if isinstance(value_text, str) else booking_date
        if isinstance(value_text, str):
            parse_iso_datetime(value_text, "ValueDateTime", zone)  # validates it
        account_ref, uscc = self._account(entry.get("AccountId"))
        code = _bank_code(entry)
        info = json_str(entry.get("TransactionInformation"))
        merchant = mapping_at(entry, "MerchantDetails")
        card = "CardInstrument" in entry or bool(merchant.get("MerchantCategoryCode"))
        data = {
            "event_id": transaction_event_id(
                self.context.institution,
                account_ref=account_ref,
                seen=refs,
                servicer=servicer_ref(json_str(entry.get("TransactionId"))),
                statement_id=account_ref,
                entry_ref=json_str(entry.get("TransactionReference")) or f"#{index}",
                direction=direction,
                amount=amount,
                currency=json_str(money.get("Currency")),
            ),
            "source": self.context.institution,
            "institution_type": self.context.institution_type,
            "occurred_at": occurred_at,
            "enterprise_uscc": uscc,
            "direction": direction,
            "amount": amount,
            "currency": money.get("Currency"),
            "booking_date": booking_date,
            "value_date": value_date,
            "bank_tx_code": code,
            "counterparty_country": _counterparty_country(entry, direction),
            "channel": TxChannel.pos if card else statement_channel(code),
            "customs_mode": customs_mode_in(info),
            "account_ref": account_ref,
            "description": clip(info or json_str(merchant.get("MerchantName"))),
        }
        return build_model(TransactionEvent, data, _FIELDS)

    def _account(self, account_id: Any) -> tuple[str, str]:
        if not isinstance(account_id, str) or not account_id.strip():
            raise RejectedEntry("AccountId", "missing", ErrorClass.invalid_shape)
        return mapped_account(self.context.accounts, account_id, "AccountId")


def _local_date(text: str) -> Any:
    """The calendar date as the bank wrote it (before conversion to UTC)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.strip()).date()
    except ValueError:
        return None


def _bank_code(entry: dict[str, Any]) -> str | None:
    proprietary = json_str(mapping_at(entry, "ProprietaryBankTransactionCode").get("Code"))
    iso = mapping_at(entry, "BankTransactionCode")
    code, sub = json_str(iso.get("Code")), json_str(iso.get("SubCode"))
    if code and sub:
        combined = f"{code}-{sub}"
        return combined if len(combined) <= 35 else sub[:35]
    return (proprietary or code or "")[:35] or None


def _counterparty_country(entry: dict[str, Any], direction: Direction) -> str | None:
    prefix = "Creditor" if direction is Direction.debit else "Debtor"
    agent = mapping_at(entry, f"{prefix}Agent")
    account = mapping_at(entry, f"{prefix}Account")
    scheme = str(account.get("SchemeName", ""))
    if scheme.endswith("SortCodeAccountNumber"):
        return "GB"  # sort codes exist only in the UK
    if scheme.endswith("IBAN"):
        found = country_from_iban(json_str(account.get("Identification")))
        if found:
            return found
    if str(agent.get("SchemeName", "")).endswith("BICFI"):
        return country_from_bic(json_str(agent.get("Identification")))
    return None
