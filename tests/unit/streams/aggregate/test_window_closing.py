"""streams/aggregate/windows.py: window bounds, closing by the watermark, re-emission of an
amended window, dropping after the retention, and order independence within the grace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streams.aggregate import windows
from streams.aggregate.windows import (
    HOUR_US,
    RETAIN_CLOSED_US,
    TX_AMOUNT_FEN,
    TX_COUNT,
    WINDOW_FIGURES,
    amend_windows,
    bounds,
    close_due,
    to_us,
    window_add,
    window_record,
)
from streams.state.partition import PartitionState, Window
from tests.unit.streams.aggregate.builders import partition, patient

TOPIC = "dfip.transactions"
GRACE = 10 * 60 * 1_000_000
DAY0 = to_us(datetime(2026, 3, 2, tzinfo=UTC))


def row(fen: int, band: str = "l1") -> tuple[tuple[str, tuple[str, ...], int], ...]:
    return ((TX_COUNT, ("bank", band), 1), (TX_AMOUNT_FEN, ("bank", band), fen))


def closing(state: PartitionState, ts: int) -> list[tuple[tuple[str, str, int], Window]]:
    """Move the watermark to ``ts`` (never back) and close: the windows to emit."""
    wm = state.watermarks.get(TOPIC)
    state.watermarks[TOPIC] = ts if wm is None else max(wm, ts)
    return close_due(state, TOPIC, GRACE)


def advance(state: PartitionState, ts: int) -> list[tuple[str, str, int]]:
    return [key for key, _ in closing(state, ts)]


def test_the_window_figure_names_are_those_of_the_window_record_contract() -> None:
    assert {"tx_count", "tx_amount_fen", "disbursed_fen"} == WINDOW_FIGURES


@patient
@given(st.integers(min_value=DAY0 - 400 * 24 * HOUR_US, max_value=DAY0 + 400 * 24 * HOUR_US))
def test_an_instant_lies_in_its_hour_and_its_beijing_day(ts: int) -> None:
    h0, h1 = bounds("1h", ts)
    d0, d1 = bounds("1d", ts)
    assert h0 <= ts < h1
    assert h1 - h0 == HOUR_US
    assert d0 <= ts < d1
    assert d1 - d0 == 24 * HOUR_US
    assert d0 % (24 * HOUR_US) == 16 * HOUR_US  # Beijing midnight is 16:00 UTC
    assert d0 <= h0
    assert h1 <= d1


@patient
@given(st.datetimes(timezones=st.just(UTC)))
def test_to_us_is_exact(at: datetime) -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert to_us(at) == (at - epoch) // timedelta(microseconds=1)


def test_a_window_closes_once_the_watermark_passes_its_end_plus_grace() -> None:
    state = partition()
    window_add(state, TOPIC, DAY0 + 5 * 60 * 1_000_000, row(100))
    hour = (TOPIC, "1h", DAY0)
    assert advance(state, DAY0 + HOUR_US + GRACE - 1) == []
    assert advance(state, DAY0 + HOUR_US + GRACE) == [hour]
    assert state.windows[hour].closed
    assert advance(state, DAY0 + HOUR_US + GRACE + 1) == []  # emitted once


def test_an_amended_closed_window_is_emitted_again_and_dropped_after_the_retention() -> None:
    state = partition()
    at = DAY0 + 5 * 60 * 1_000_000
    window_add(state, TOPIC, at, row(100))
    hour = (TOPIC, "1h", DAY0)
    advance(state, DAY0 + HOUR_US + GRACE)
    window_add(state, TOPIC, at, row(50))  # a forwarded event
    assert state.windows[hour].amended
    assert advance(state, DAY0 + HOUR_US + GRACE + 1) == [hour]
    assert state.windows[hour].counters.values[TX_AMOUNT_FEN] == {("bank", "l1"): 150}
    state.dirty_windows.clear()
    advance(state, DAY0 + HOUR_US + GRACE + RETAIN_CLOSED_US)
    assert hour not in state.windows
    assert hour in state.dirty_windows  # the changelog tombstones it


def test_an_amended_window_dropped_by_the_same_batch_end_is_emitted_again_first() -> None:
    """An emitted window amended (a restatement) while held, then passed by its retention
    before the next batch end: the amendment still reaches the metrics topic."""
    state = partition()
    at = DAY0 + 5 * 60 * 1_000_000
    window_add(state, TOPIC, at, row(100))
    hour = (TOPIC, "1h", DAY0)
    assert advance(state, DAY0 + HOUR_US + GRACE) == [hour]
    amend_windows(state, TOPIC, GRACE, at, row(-30))
    due = dict(closing(state, DAY0 + 60 * 24 * HOUR_US))
    assert hour in due
    assert hour not in state.windows
    assert due[hour].counters.values[TX_AMOUNT_FEN] == {("bank", "l1"): 70}
    assert window_record(0, hour, due[hour])[1]["figures"][TX_AMOUNT_FEN] == [
        {"labels": ["bank", "l1"], "value": 70}
    ]


def test_a_window_first_closed_after_its_retention_is_emitted_once_and_dropped() -> None:
    state = partition()
    window_add(state, TOPIC, DAY0 + 5 * 60 * 1_000_000, row(100))
    hour = (TOPIC, "1h", DAY0)
    assert hour in advance(state, DAY0 + 60 * 24 * HOUR_US)
    assert hour not in state.windows
    assert advance(state, DAY0 + 61 * 24 * HOUR_US) == []


def test_amending_never_recreates_a_dropped_window() -> None:
    state = partition()
    at = DAY0 + 5 * 60 * 1_000_000
    amend_windows(state, TOPIC, GRACE, at, row(10))
    assert not state.windows  # no window to amend
    window_add(state, TOPIC, at, row(100))
    amend_windows(state, TOPIC, GRACE, at, row(-40))
    assert state.windows[(TOPIC, "1h", DAY0)].counters.values[TX_AMOUNT_FEN] == {("bank", "l1"): 60}
    # the watermark is past the hour's retention but a batch end has not dropped it yet
    state.watermarks[TOPIC] = DAY0 + HOUR_US + GRACE + RETAIN_CLOSED_US
    amend_windows(state, TOPIC, GRACE, at, row(-60))
    assert state.windows[(TOPIC, "1h", DAY0)].counters.values[TX_AMOUNT_FEN] == {("bank", "l1"): 60}


def test_the_window_record_names_its_size_start_topic_partition_and_zone() -> None:
    state = PartitionState(7)
    window_add(state, TOPIC, DAY0, row(100))
    key = (TOPIC, "1d", DAY0 - 8 * HOUR_US)
    rkey, doc = window_record(7, key, state.windows[key])
    assert rkey == b"1d:2026-03-01T16:00:00+00:00:dfip.transactions:7"
    assert doc["local_date"] == "2026-03-02"
    assert doc["zone"] == windows.DEFAULT_ZONE
    assert doc["window_end"] == "2026-03-02T16:00:00+00:00"
    assert doc["figures"][TX_COUNT] == [{"labels": ["bank", "l1"], "value": 1}]


def run(events: list[tuple[int, int, str]]) -> dict[Any, list[dict[str, Any]]]:
    """Process (ts, fen, band) in this order as the processor does (late events stay out
    of the windows; the watermark moves after each, closing what it passes); then move
    the watermark on by a day. Returns every record emitted, by window."""
    state = partition()
    emitted: dict[Any, list[dict[str, Any]]] = {}

    def emit(due: list[tuple[tuple[str, str, int], Window]]) -> None:
        for key, win in due:
            emitted.setdefault(key, []).append(window_record(0, key, win)[1])

    for ts, fen, band in events:
        wm = state.watermarks.get(TOPIC)
        if wm is None or ts >= wm - GRACE:
            window_add(state, TOPIC, ts, row(fen, band))
        emit(closing(state, ts))
    emit(closing(state, max(ts for ts, _, _ in events) + 24 * HOUR_US + GRACE))
    return emitted


@patient
@given(
    # the events' spread (up to the grace) mostly straddles an hour's end
    st.builds(
        lambda hour, back: hour * HOUR_US - back,
        st.integers(min_value=1, max_value=48),
        st.integers(min_value=0, max_value=GRACE),
    ),
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=GRACE),
            st.integers(min_value=0, max_value=10**9),
            st.sampled_from(["l0", "l1", "unscored"]),
        ),
        min_size=1,
        max_size=30,
    ),
    st.randoms(use_true_random=False),
)
def test_the_order_of_events_within_the_grace_does_not_change_a_closed_window(
    start: int, events: list[tuple[int, int, str]], rnd: Any
) -> None:
    timed = [(DAY0 + start + dt, fen, band) for dt, fen, band in events]
    shuffled = list(timed)
    rnd.shuffle(shuffled)
    in_order = run(sorted(timed))
    assert run(shuffled) == in_order
    assert all(len(records) == 1 for records in in_order.values())  # each emitted once
    total = sum(fen for _, fen, _ in timed)
    daily = [r[0] for key, r in in_order.items() if key[1] == "1d"]
    assert sum(s["value"] for d in daily for s in d["figures"].get(TX_AMOUNT_FEN, [])) == total
