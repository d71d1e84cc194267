"""Loan lifecycle events as JSON lines (one event per line) from loan systems and platforms.

A line carries the fields of the `LoanEvent` it describes (see docs/adapters.md), with
`borrower_uscc` for the enterprise. JSON numbers are read as exact decimals, never floats.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, cast

from adapters.base import Parser, ParseResult, RejectedEntry, build_model, register
from adapters.parsers._common import (
    EntryRefs,
    decoded_record,
    empty_file,
    parse_iso_datetime,
)
from adapters.parsers._lines import DecodedLines
from schemas import LOAN_EVENT_CLASSES, LoanEvent, LoanEventType, make_event_id, utc_iso
from schemas.catalog import LOANS
from schemas.errors import ErrorClass

__all__ = ["LoansJsonlParser"]

_ALIASES = {"borrower_uscc": "enterprise_uscc"}
_FIELDS = {"enterprise_uscc": "borrower_uscc", "source": "(institution)"}
_ONE = Decimal(1)


@register
class LoansJsonlParser(Parser):
    name: ClassVar[str] = "loans"
    description: ClassVar[str] = "Loan lifecycle events, JSON lines"
    topics: ClassVar[tuple[str, ...]] = (LOANS.name,)

    def parse(self, path: Path) -> Iterator[ParseResult]:
        display = str(path)
        seen = False
        self._seen = EntryRefs()
        with self.open(path) as fh:
            lines = DecodedLines(fh, self.context.encoding or "utf-8")
            undecodable = f"line is not valid {lines.encoding}"
            while True:
                lines.start_record()
                try:
                    text = next(lines)
                except StopIteration:
                    break
                if not text.strip():
                    continue
                seen = True
                self.stats.entries += 1
                build = partial(self._event, text)
                yield decoded_record(lines, f"{display}:{lines.lineno}", undecodable, build)
        if not seen:
            yield empty_file(display)

    def _event(self, text: str) -> LoanEvent:
        try:
            record = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise RejectedEntry(
                "(line)", f"invalid JSON: {exc.msg} (column {exc.colno})", ErrorClass.invalid_json
            ) from None
        except RecursionError:  # hundreds of nested arrays: no loan record looks like that
            raise RejectedEntry(
                "(line)", "invalid JSON: nested too deeply", ErrorClass.invalid_json
            ) from None
        if not isinstance(record, dict):
            raise RejectedEntry("(line)", "expected a JSON object", ErrorClass.invalid_shape)
        kind = record.get("event_type")
        try:
            model = LOAN_EVENT_CLASSES[LoanEventType(str(kind))]
        except ValueError:
            known = ", ".join(t.value for t in LoanEventType)
            raise RejectedEntry("event_type", f"unknown loan event type {kind} ({known})") from None
        occurred = record.get("occurred_at")
        if not isinstance(occurred, str):
            raise RejectedEntry("occurred_at", "missing (ISO 8601 date-time)")
        occurred_at = parse_iso_datetime(occurred, "occurred_at", self.context.timezone)
        rate = record.get("annual_rate")
        if isinstance(rate, Decimal | int) and rate > _ONE:
            raise RejectedEntry("annual_rate", f"is a fraction (0.0435 = 4.35 %), got {rate}")
        data: dict[str, Any] = {_ALIASES.get(str(k), str(k)): v for k, v in record.items()}
        # Loan systems add their own fields (names, officers): keep only what the event has.
        data = {k: v for k, v in data.items() if k in model.model_fields}
        data.setdefault("loan_id", record.get("application_id"))
        data.setdefault("application_id", data.get("loan_id"))
        data.setdefault("lender_id", self.context.institution)
        data.setdefault("institution_type", self.context.institution_type)
        data["occurred_at"] = occurred_at
        data["source"] = self.context.institution
        loan_id = data.get("loan_id")
        if not isinstance(loan_id, str) or not loan_id:
            raise RejectedEntry("loan_id", "missing (and no application_id to use instead)")
        ref = record.get("event_ref")
        if isinstance(ref, str | int) and ref != "":
            entry_ref = str(ref)  # the loan system's own id: a repeat is the same event
        else:
            # Two events of one loan, type and second in one file are two events (e.g. two
            # repayments): the second gets #2, the same in a re-sent file.
            entry_ref = self._seen.unique(f"{loan_id}\x1f{kind}@{utc_iso(occurred_at)}")
            entry_ref = entry_ref.split("\x1f", 1)[1]
        data["event_id"] = make_event_id(self.context.institution, loan_id, entry_ref)
        event = build_model(model, data, _FIELDS)
        return cast("LoanEvent", event)  # the class was picked by event_type
