"""FX as the central bank publishes it: the rate in force at the event (issue 20, point 3).

2026-02-13 is a Friday; the Spring Festival closure of 2026 runs 15-23 February.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from schemas.catalog import partition_for
from schemas.codec import encode
from streams.processor import DEADLETTER, FX, TRANSACTIONS
from streams.reference.fx import FxTable
from tests.unit.streams.helpers import HANGZHOU, feed, fx, processor, record, tx, value

AMOUNT = "dfip_transaction_amount_yuan_total"


def _at(day: int, hh: int, mm: int = 0, month: int = 2) -> datetime:
    return datetime(2026, month, day, hh, mm, tzinfo=UTC)


def _publish(proc, day: date, rate: str) -> None:  # type: ignore[no-untyped-def]
    # helpers.fx publishes at 01:15 UTC = 09:15 Beijing, as CFETS does
    proc.process_fx(record(FX, encode(fx(day, "USD", rate)), partition=0))


def test_a_weekend_takes_fridays_rate() -> None:
    proc = processor()
    _publish(proc, date(2026, 2, 13), "7.0000")
    feed(proc, TRANSACTIONS, tx(_at(14, 12), "1.00", currency="USD"))  # Saturday
    feed(proc, TRANSACTIONS, tx(_at(15, 3), "1.00", currency="USD"))  # Sunday
    assert value(proc, AMOUNT) == 1400


def test_the_date_is_beijings_and_a_rate_applies_from_its_publication() -> None:
    proc = processor()
    _publish(proc, date(2026, 2, 12), "7.0000")
    _publish(proc, date(2026, 2, 13), "8.0000")
    # 12 Feb 17:00 UTC is 13 Feb 01:00 in Beijing, before 13 Feb's rate was published
    feed(proc, TRANSACTIONS, tx(_at(12, 17), "1.00", currency="USD"))
    # 13 Feb 00:30 UTC = 08:30 Beijing: still before the 09:15 publication
    feed(proc, TRANSACTIONS, tx(_at(13, 0, 30), "1.00", currency="USD"))
    # 13 Feb 01:15 UTC: published at that instant, in force
    feed(proc, TRANSACTIONS, tx(_at(13, 1, 15), "1.00", currency="USD"))
    assert value(proc, AMOUNT) == 700 + 700 + 800


def test_a_holiday_week_takes_the_last_rate_before_it_within_the_bound() -> None:
    proc = processor(partitions=(0, partition_for(HANGZHOU)))
    proc.restate_horizon_us = 2 * 86_400 * 1_000_000
    _publish(proc, date(2026, 2, 13), "7.0000")
    feed(proc, TRANSACTIONS, tx(_at(23, 12), "1.00", currency="USD"))  # 10 days later: in
    feed(proc, TRANSACTIONS, tx(_at(24, 0), "1.00", currency="USD"))  # 24 Feb Beijing: 11 days
    assert value(proc, AMOUNT) == 700
    # no rate in force: the event waits (parked), it is not lost
    assert value(proc, "dfip_fx_pending_events") == 1
    assert not [o for o in proc.take_outputs() if o.topic == DEADLETTER]
    # ... until the restatement floor (watermark - horizon) passes it: then a dead letter
    feed(proc, TRANSACTIONS, tx(_at(26, 12), "1.00"))
    proc.finish_batch()
    assert value(proc, "dfip_fx_pending_events") == 0
    letters = [o for o in proc.take_outputs() if o.topic == DEADLETTER]
    assert len(letters) == 1
    assert b"fx_rate_missing" in letters[0].value


@given(st.permutations(range(4)), st.integers(min_value=0, max_value=23 * 60))
def test_a_rate_read_after_the_event_changes_nothing_it_was_not_in_force_for(
    order: list[int], minute: int
) -> None:
    """Rates published after the event never apply to it, so reading them first or last
    gives the same rate (the stream reads every rate written before the event anyway)."""
    event_at = _at(16, 0) + (minute * 60) * _SECOND
    rates = [
        (date(2026, 2, 13), Decimal("7.0"), _at(13, 1, 15)),
        (date(2026, 2, 16), Decimal("7.1"), _at(16, 1, 15)),
        (date(2026, 2, 17), Decimal("7.2"), _at(17, 1, 15)),
        (date(2026, 2, 10), Decimal("6.9"), _at(10, 1, 15)),
    ]
    table = FxTable()
    for i in order:
        day, rate, published = rates[i]
        table.put("USD", day, rate, published)
    got = table.rate_at("USD", event_at)
    beijing = (event_at + 8 * 3600 * _SECOND).date()
    in_force = [(d, r) for d, r, p in rates if p <= event_at and d <= beijing]
    assert got == max(in_force)[1]


_SECOND = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC) - datetime(2026, 1, 1, tzinfo=UTC)
