"""A rate read after the events it restates is held to the bounds a first conversion is held
to (schemas/money.py): a hostile or mistyped correction cannot take a counted transaction to
10^15 fen or a loan's principal to 10^14 fen, where the worker's 64-bit state would fail
every commit (a worker stuck on one reference record)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from schemas.codec import encode
from streams.processor import FX, LOANS, TRANSACTIONS
from streams.state.changelog import dirty_records
from tests.unit.streams.helpers import disbursed, feed, fx, processor, record, tx, value

AMOUNT = "dfip_transaction_amount_yuan_total"
PRINCIPAL = "dfip_loan_disbursed_principal_yuan_total"
RESTATED = "dfip_restated_events_total"
AT = datetime(2026, 2, 14, 12, tzinfo=UTC)  # a Saturday: Friday 13 February's rate


def _publish(proc, rate: str) -> None:  # type: ignore[no-untyped-def]
    proc.process_fx(record(FX, encode(fx(date(2026, 2, 13), "USD", rate)), partition=0))


def _commit(proc) -> None:  # type: ignore[no-untyped-def]
    proc.finish_batch()
    for p in proc.take_touched():
        dirty_records(proc.states[p])  # the changelog encodes (raised on 64-bit overflow)


def test_a_correction_past_the_bound_leaves_the_transaction_at_its_value() -> None:
    proc = processor()
    _publish(proc, "7.0000")
    feed(proc, TRANSACTIONS, tx(AT, "1000000000000.00", currency="USD"))  # 7 * 10^14 fen
    feed(proc, TRANSACTIONS, tx(AT, "1.00", currency="USD"))
    _commit(proc)
    _publish(proc, "99999999999.0")  # would be ~10^25 fen
    _commit(proc)
    # the small one is restated, the large one keeps 7 * 10^14 fen at 7.0
    assert value(proc, AMOUNT) == 7 * 10**14 + 9999999999900
    assert value(proc, RESTATED, ("dfip.transactions",)) == 1
    _publish(proc, "7.5000")  # a sane correction applies to both again
    _commit(proc)
    assert value(proc, AMOUNT) == 75 * 10**13 + 750


def test_a_correction_past_the_bound_leaves_the_loan_booked_as_it_was() -> None:
    proc = processor()
    _publish(proc, "7.0000")
    feed(proc, LOANS, disbursed(AT, "L-BIG", "10000000000.00", currency="USD"))  # 7 * 10^12 fen
    _commit(proc)
    _publish(proc, "999999.0")  # would be ~10^18 fen, and rate-weighted far past 64 bits
    _commit(proc)
    assert value(proc, PRINCIPAL) == 7 * 10**12
    _publish(proc, "8.0000")
    _commit(proc)
    assert value(proc, PRINCIPAL) == 8 * 10**12
