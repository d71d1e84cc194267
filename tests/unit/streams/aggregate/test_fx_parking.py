"""streams/aggregate/fx_book.py directly: which events wait for a rate, their release in
arrival order or dead letter once the restatement floor passes them, the restatement of a
counted transaction when the rate in force changes, and the book's changelog round trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import events as ev
from schemas import figure_names as fn
from schemas.errors import ErrorClass
from streams.aggregate import fx_book
from streams.aggregate.windows import to_us
from streams.reference import fx_state
from streams.reference.fx import FxTable
from streams.reference.fx_state import Counted, Parked
from streams.state.partition import PartitionState
from tests.unit.streams.aggregate.builders import (
    AT,
    BORROWER,
    LOANS,
    loan_event,
    partition,
    patient,
)

TX = "dfip.transactions"
DAY = timedelta(days=1)
HORIZON_US = 7 * 24 * 3_600 * 1_000_000


@dataclass
class Rec:
    topic: str
    offset: int
    key: bytes | None = b"k"
    value: bytes | None = b"v"
    timestamp_ms: int | None = 0


@dataclass
class Parker:
    """The processor's side of the book, recording what it was asked to do."""

    fx: FxTable = field(default_factory=FxTable)
    grace_us: int = 600_000_000
    restate_horizon_us: int = HORIZON_US
    touched: set[int] = field(default_factory=set)
    done: list[tuple[str, int, str]] = field(default_factory=list)

    def apply_parked(self, state: PartitionState, entry: Parked) -> None:
        self.done.append(("applied", entry.offset, ""))

    def dead_letter_parked(self, state: PartitionState, entry: Parked, reason: str) -> None:
        self.done.append(("dead_letter", entry.offset, reason))


def tx(currency: str = "USD", at: datetime = AT, amount: str = "10.00") -> ev.TransactionEvent:
    return ev.TransactionEvent(
        event_id="t", source="bank-a", institution_type="bank", occurred_at=at,
        enterprise_uscc=BORROWER, direction="credit", amount=Decimal(amount),
        currency=currency, booking_date=at.date(), value_date=at.date(),
    )  # fmt: skip


def park(state: PartitionState, fx: FxTable, event: Any, offset: int) -> bool:
    topic = TX if isinstance(event, ev.TransactionEvent) else LOANS
    return fx_book.park_if_needed(
        state, fx, Rec(topic, offset), event, 1000 + offset, to_us(event.occurred_at),
        late=False, forwarded=False,
    )  # fmt: skip


def put(fx: FxTable, currency: str, day: date, rate: str) -> None:
    fx.put(currency, day, Decimal(rate), datetime(day.year, day.month, day.day, tzinfo=UTC))


def pending(state: PartitionState, topic: str) -> int:
    return state.counters.get(fn.FX_PENDING_EVENTS, (topic,))


def test_the_dead_letter_class_is_the_error_class_enum_value() -> None:
    assert ErrorClass.fx_rate_missing.value == fx_book.FX_RATE_MISSING
    assert type(fx_book.FX_RATE_MISSING) is str


def test_only_a_foreign_amount_without_a_rate_in_force_waits() -> None:
    state, fx = partition(), FxTable()
    assert not park(state, fx, tx("CNY"), 0)
    put(fx, "EUR", AT.date(), "7.8")
    assert not park(state, fx, tx("EUR"), 1)
    assert park(state, fx, tx("USD"), 2)
    [entry] = state.fx_book.parked.values()
    assert (entry.currency, entry.loan_id, entry.offset) == ("USD", None, 2)
    assert (TX, 1002) in state.fx_book.parked_hashes
    assert pending(state, TX) == 1


def test_a_loans_later_events_wait_behind_its_parked_disbursement() -> None:
    state, fx = partition(), FxTable()
    assert park(state, fx, loan_event(ev.LoanDisbursed, "L", currency="USD"), 0)
    assert park(state, fx, loan_event(ev.LoanRepayment, "L", currency="USD"), 1)
    assert park(state, fx, loan_event(ev.LoanClosed, "L"), 2)
    # applications and decisions touch no loan state: never parked
    assert not park(state, fx, loan_event(ev.LoanApproved, "L"), 3)
    assert not park(state, fx, loan_event(ev.LoanRepayment, "other"), 4)
    assert [(p.offset, p.currency) for p in state.fx_book.parked.values()] == [
        (0, "USD"), (1, None), (2, None)
    ]  # fmt: skip
    assert pending(state, LOANS) == 3


def test_a_full_book_parks_no_new_wait_but_keeps_a_loans_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state, fx = partition(), FxTable()
    assert park(state, fx, loan_event(ev.LoanDisbursed, "L", currency="USD"), 0)
    monkeypatch.setattr(fx_state, "MAX_PARKED", 1)
    assert not park(state, fx, tx("USD"), 1)  # dead-lettered by apply at once
    assert not park(state, fx, loan_event(ev.LoanDisbursed, "M", currency="USD"), 2)
    assert park(state, fx, loan_event(ev.LoanRepayment, "L", currency="USD"), 3)


def test_a_rate_read_later_releases_the_parked_events_in_arrival_order() -> None:
    state, proc = partition(), Parker()
    park(state, proc.fx, loan_event(ev.LoanDisbursed, "L", currency="USD"), 0)
    park(state, proc.fx, tx("USD"), 1)
    park(state, proc.fx, loan_event(ev.LoanRepayment, "L", currency="USD"), 2)
    fx_book.reconcile(proc, state)
    assert proc.done == []  # no rate yet, no floor
    put(proc.fx, "USD", AT.date(), "7.1")
    fx_book.reconcile(proc, state)
    assert proc.done == [("applied", 0, ""), ("applied", 1, ""), ("applied", 2, "")]
    assert not state.fx_book.parked
    assert not state.fx_book.parked_loans
    assert pending(state, TX) == pending(state, LOANS) == 0
    assert 0 in proc.touched


def test_the_floor_passing_a_waiting_event_dead_letters_it_and_releases_its_loan() -> None:
    state, proc = partition(), Parker()
    park(state, proc.fx, loan_event(ev.LoanDisbursed, "L", currency="USD"), 0)
    park(state, proc.fx, loan_event(ev.LoanClosed, "L"), 1)
    state.watermarks[LOANS] = to_us(AT) + HORIZON_US  # floor = AT: not passed yet
    fx_book.reconcile(proc, state)
    assert proc.done == []
    state.watermarks[LOANS] += 1
    fx_book.reconcile(proc, state)
    assert proc.done == [
        ("dead_letter", 0, "fx_rate_missing: no USD/CNY rate in force at "
         "2026-03-02T09:30:00+00:00 was read before the restatement floor passed it"),
        ("applied", 1, ""),
    ]  # fmt: skip


def test_a_partition_being_restored_is_not_reconciled() -> None:
    state, proc = partition(), Parker()
    park(state, proc.fx, tx("USD"), 0)
    put(proc.fx, "USD", AT.date(), "7.1")
    state.fx_book.ready = False
    fx_book.reconcile(proc, state)
    assert proc.done == []


def counted(state: PartitionState, fx: FxTable, amount: str, at: datetime = AT) -> None:
    rate = fx.rate_at("USD", at)
    assert rate is not None
    labels = ("bank", "credit", False, "l1", "C")
    fx_book.record_counted(
        state, BORROWER, to_us(at), "USD", Decimal(amount), rate, labels, None, None
    )


def test_only_foreign_transactions_not_older_than_the_floor_are_kept() -> None:
    state = partition()
    labels = ("bank", "credit", False, "l1", "C")
    one = Decimal(1)
    fx_book.record_counted(state, BORROWER, 5, "CNY", one, one, labels, None, None)
    fx_book.record_counted(state, BORROWER, 5, "USD", one, one, labels, None, 6)
    assert not state.fx_book.counted
    fx_book.record_counted(state, BORROWER, 6, "USD", one, one, labels, None, 6)
    assert len(state.fx_book.counted) == 1


def test_a_newer_rate_in_force_restates_a_counted_transaction_by_the_fen_difference() -> None:
    state, proc = partition(), Parker()
    put(proc.fx, "USD", AT.date() - DAY, "7.0000")
    fx_book.reconcile(proc, state)  # in line with the table
    counted(state, proc.fx, "10.005")  # 7,003.5 fen → 7,004 (half even)
    # a rate dated the event's day, published before it: now the rate in force
    put(proc.fx, "USD", AT.date(), "7.1")  # 10.005 x 7.1 x 100 = 7,103.55 → 7,104
    fx_book.reconcile(proc, state)
    labels = ("bank", "l1", "hangzhou", "credit")
    assert state.counters.get(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, labels) == 100
    assert state.counters.get(fn.RESTATED_EVENTS_TOTAL, (TX,)) == 1
    [entry] = state.fx_book.counted.values()
    assert entry.rate == "7.1"
    fx_book.reconcile(proc, state)  # idempotent: nothing moves again
    assert state.counters.get(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, labels) == 100


texts = st.text(alphabet="abcdef0123", min_size=1, max_size=6)
counted_entries = st.builds(
    Counted, texts, st.integers(0, 2**52), st.sampled_from(["USD", "EUR"]), texts, texts,
    texts, st.sampled_from(["credit", "debit"]), st.booleans(), st.none() | texts, texts, texts,
)  # fmt: skip
parked_entries = st.builds(
    Parked, st.sampled_from([TX, LOANS]), st.integers(0, 2**40), st.none() | st.binary(),
    st.binary(), st.none() | st.integers(0, 2**41), st.booleans(), st.booleans(),
    st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**52), st.none() | texts, st.none() | texts,
)  # fmt: skip


@patient
@given(st.lists(counted_entries, max_size=5), st.lists(parked_entries, max_size=5))
def test_the_book_survives_its_changelog(kept: list[Counted], waiting: list[Parked]) -> None:
    state = partition()
    for c in kept:
        state.fx_book.add_counted(c)
    for p in waiting:
        state.fx_book.park(p)
    restored = partition()
    for key, value in fx_book.dirty_records(state):
        seq = int(key.decode().removeprefix("fx:"))
        fx_book.from_json(restored, seq, None if value is None else orjson.loads(value))
    fx_book.finish_restore(restored)
    assert restored.fx_book.counted == state.fx_book.counted
    assert list(restored.fx_book.parked.items()) == list(state.fx_book.parked.items())
    assert restored.fx_book.by_day == state.fx_book.by_day
    assert restored.fx_book.parked_loans == state.fx_book.parked_loans
