"""Berlin Group NextGenPSD2 "read transaction list" responses (AIS, JSON).

`transactions.booked` become events; `pending` and `information` entries are not booked
money and are only counted. The sign of `transactionAmount.amount` gives the direction.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
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
    parse_iso_date,
    parse_iso_datetime,
    servicer_ref,
    statement_channel,
    transaction_event_id,
    utc_midnight,
)
from adapters.parsers._json import (
    JsonStream,
    document_head,
    json_amount,
    json_entry,
    json_str,
    mapping_at,
)
from schemas import Direction, TransactionEvent
from schemas.errors import ErrorClass

__all__ = ["Psd2Parser"]

_ACCOUNT_KEYS = ("iban", "bban", "pan", "maskedPan", "msisdn")
_ACCOUNT_LINK = "transactions._links.account.href"
_FIELDS = {
    "amount": "transactionAmount.amount",
    "currency": "transactionAmount.currency",
    "booking_date": "bookingDate",
    "value_date": "valueDate",
    "occurred_at": "bookingDate",
    "counterparty_country": "creditorAccount/debtorAccount",
    "bank_tx_code": "bankTransactionCode",
    "description": "remittanceInformationUnstructured",
    "enterprise_uscc": "account",
    "source": "(institution)",
}


_BOOKED = "transactions.booked.item"
_NOT_BOOKED = {
    "transactions.pending.item": "pending",
    "transactions.information.item": "information",
}


@register
class Psd2Parser(Parser):
    name: ClassVar[str] = "psd2"
    description: ClassVar[str] = "Berlin Group NextGenPSD2 transaction list (JSON)"

    def parse(self, path: Path) -> Iterator[ParseResult]:
        display = str(path)
        # Pass 1: the account (it may come after the transactions) and the page's shape.
        head = JsonStream(
            self,
            path,
            build=frozenset({"account", _ACCOUNT_LINK}),
            shapes=frozenset({"transactions"}),
        )
        account: dict[str, Any] = {}
        link: str | None = None
        for item in head:
            if isinstance(item, Rejected):
                if (account or link) and "transactions" in head.kinds:
                    break  # the entries before the fault still count: pass 2 reports it
                yield item
                return
            if item[0] == _ACCOUNT_LINK and isinstance(item[1], str):
                link = item[1]
            elif isinstance(item[1], dict) and not account:
                account = item[1]
        if head.kinds.get("transactions") != "start_map":
            reason = "not a NextGenPSD2 transaction list (no transactions object)"
            yield Rejected(
                f"{display}#/transactions",
                "transactions",
                reason,
                document_head(path),
                ErrorClass.invalid_shape,
            )
            return
        account_error: RejectedEntry | None = None
        account_ref = uscc = ""
        try:
            account_ref, uscc = self._account(account, link)
        except RejectedEntry as rej:
            account_error = rej
        refs = EntryRefs()

        def event(entry: Any, index: int) -> TransactionEvent:
            if account_error is not None:
                raise account_error
            return self._event(entry, index, account_ref, uscc, refs)

        # Pass 2: the booked entries one at a time; pending/information only counted.
        pointer = f"{display}#/transactions/booked"
        body = JsonStream(
            self,
            path,
            build=frozenset({_BOOKED}),
            count=frozenset(_NOT_BOOKED),
            shapes=frozenset({"transactions.booked"}),
        )
        for index, item in enumerate(body):
            if isinstance(item, Rejected):
                yield item
                break
            result = json_entry(self, item[1], index, pointer, event)
            if result is not None:
                yield result
        for prefix, kind in _NOT_BOOKED.items():
            for _ in range(body.counts[prefix]):
                self.stats.entries += 1
                self.skip(kind)
        shape = body.kinds.get("transactions.booked", "start_array")
        if shape != "start_array":
            yield Rejected(
                pointer,
                "booked",
                "expected an array",
                document_head(path),
                ErrorClass.invalid_shape,
            )

    def _account(self, account: dict[str, Any], link: str | None) -> tuple[str, str]:
        """The page's account: `account.iban` (…), else the account resource id of
        `transactions._links.account.href` (`/v1/accounts/3dc3…`), mapped like an Open
        Banking AccountId; ASPSPs may leave `account` out of the response."""
        raw = next((str(account[k]) for k in _ACCOUNT_KEYS if account.get(k)), None)
        if raw is not None:
            return mapped_account(self.context.accounts, raw, "account")
        resource = link.rstrip("/").rsplit("/", 1)[-1] if link else ""
        if resource:
            return mapped_account(self.context.accounts, resource, "_links.account.href")
        raise RejectedEntry(
            "account",
            "response names no account (account.iban/bban/pan/maskedPan/msisdn, nor "
            "transactions._links.account.href)",
            ErrorClass.invalid_shape,
        )

    def _event(
        self, entry: Any, index: int, account_ref: str, uscc: str, refs: EntryRefs
    ) -> TransactionEvent:
        if not isinstance(entry, dict):
            raise RejectedEntry(
                "(entry)", "expected a transaction object", ErrorClass.invalid_shape
            )
        money = mapping_at(entry, "transactionAmount")
        signed = json_amount(money.get("amount"), "transactionAmount.amount")
        direction = Direction.debit if signed < 0 else Direction.credit
        booking = entry.get("bookingDate")
        if not isinstance(booking, str):
            raise RejectedEntry("bookingDate", "booked transaction without a booking date")
        booking_date = _date(booking, "bookingDate")
        value = entry.get("valueDate")
        value_date = _date(value, "valueDate") if isinstance(value, str) else booking_date
        code = json_str(entry.get("bankTransactionCode")) or json_str(
            entry.get("proprietaryBankTransactionCode")
        )
        remittance = _remittance(entry)
        transaction_id = json_str(entry.get("transactionId"))
        data = {
            "event_id": transaction_event_id(
                self.context.institution,
                account_ref=account_ref,
                seen=refs,
                servicer=servicer_ref(json_str(entry.get("entryReference"))),
                statement_id=account_ref,
                entry_ref=transaction_id or f"#{index}",
                direction=direction,
                amount=abs(signed),
                currency=json_str(money.get("currency")),
            ),
            "source": self.context.institution,
            "institution_type": self.context.institution_type,
            "occurred_at": utc_midnight(booking_date),
            "enterprise_uscc": uscc,
            "direction": direction,
            "amount": abs(signed),
            "currency": money.get("currency"),
            "booking_date": booking_date,
            "value_date": value_date,
            "bank_tx_code": code[:35] if code else None,
            "counterparty_country": _counterparty_country(entry, direction),
            "channel": statement_channel(code),
            "customs_mode": customs_mode_in(
                remittance,
                json_str(entry.get("additionalInformation")),
                json_str(entry.get("purposeCode")),
            ),
            "account_ref": account_ref,
            "description": clip(remittance or json_str(entry.get("additionalInformation"))),
        }
        return build_model(TransactionEvent, data, _FIELDS)


def _remittance(entry: dict[str, Any]) -> str | None:
    text = json_str(entry.get("remittanceInformationUnstructured"))
    if text:
        return text
    array = entry.get("remittanceInformationUnstructuredArray")
    if isinstance(array, list):
        joined = " ".join(s for s in array if isinstance(s, str))
        return joined or None
    return json_str(entry.get("remittanceInformationStructured"))


def _counterparty_country(entry: dict[str, Any], direction: Direction) -> str | None:
    # Money out: the creditor is the counterparty; money in: the debtor.
    prefix = "creditor" if direction is Direction.debit else "debtor"
    account = mapping_at(entry, f"{prefix}Account")
    return country_from_iban(json_str(account.get("iban"))) or country_from_bic(
        json_str(entry.get(f"{prefix}Agent"))
    )


def _date(text: str, field: str) -> date:
    """An ISODate; some ASPSPs write a date-time there (`2024-03-05T10:00:00`): its date
    as written is the booking date, as for Open Banking's BookingDateTime."""
    value = text.strip()
    if len(value) > 10 and value[10] in "Tt ":
        parse_iso_datetime(value, field, "UTC")  # still a valid date-time, or rejected
        value = value[:10]
    return parse_iso_date(value, field)
