"""The worker consumer's fetch results build our Record objects directly (InputRecords),
equal to what converting aiokafka's ConsumerRecord objects gives."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from aiokafka.consumer.fetcher import FetchError, FetchResult, PartitionRecords
from aiokafka.errors import KafkaError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from streams.faust_compat import InputRecords, adopt_fetcher, batch_records, oldest_stamp
from streams.processor import Record

PREFIX = "t1."
INPUTS = {PREFIX + "dfip.transactions": "dfip.transactions", PREFIX + "dfip.loans": "dfip.loans"}
ROWS: list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
    (1_700_000_000_000, b"k1", b'{"a":1}', []),
    (1_700_000_000_001, None, b"v", [("dfip-forwarded", b"1"), ("x", b"")]),
    (1_700_000_000_002, b"k3", None, []),
]


def _batch(base: int, rows: list[Any]) -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 20)
    for i, (ts, key, value, headers) in enumerate(rows):
        builder.append(i, timestamp=ts, key=key, value=value, headers=headers)
    raw = bytearray(builder.build())
    raw[0:8] = base.to_bytes(8, "big")  # the base offset, as the broker assigns it
    return bytes(raw)


def _partition_records(tp: TopicPartition, fetch_offset: int = 40) -> PartitionRecords:
    data = _batch(40, ROWS) + _batch(43, ROWS[:1])
    return PartitionRecords(tp, MemoryRecords(data), [], fetch_offset, None, None, True, 0)


def _result(tp: TopicPartition, records: PartitionRecords) -> FetchResult:
    return FetchResult(tp, assignment=None, partition_records=records, backoff=0)


def test_adopted_results_build_the_records_the_conversion_builds() -> None:
    tp = TopicPartition(PREFIX + "dfip.transactions", 3)
    converted = batch_records({tp: list(_partition_records(tp))}, INPUTS)
    held = InputRecords(INPUTS)
    held[tp] = _result(tp, pr := _partition_records(tp))
    direct = list(pr)
    assert all(type(r) is Record for r in direct)
    assert direct == converted
    assert [r.offset for r in direct] == [40, 41, 42, 43]
    assert direct[1].headers == (("dfip-forwarded", b"1"), ("x", b""))
    assert direct[0].headers == ()
    assert (direct[0].topic, direct[0].partition) == ("dfip.transactions", 3)
    assert batch_records({tp: direct}, INPUTS) == direct
    assert oldest_stamp({tp: direct}) == oldest_stamp({tp: list(_partition_records(tp))})


def test_a_fetch_offset_inside_a_batch_skips_the_records_before_it() -> None:
    tp = TopicPartition(PREFIX + "dfip.loans", 0)
    held = InputRecords(INPUTS)
    held[tp] = _result(tp, pr := _partition_records(tp, fetch_offset=42))
    assert [(r.topic, r.offset) for r in pr] == [("dfip.loans", 42), ("dfip.loans", 43)]
    assert pr.next_fetch_offset == 44


def test_other_topics_and_errors_are_left_alone() -> None:
    other = TopicPartition(PREFIX + "dfip.scores", 1)
    held = InputRecords(INPUTS)
    held[other] = _result(other, pr := _partition_records(other))
    assert all(type(r) is not Record for r in pr)
    assert batch_records({other: list(_partition_records(other))}, INPUTS) == []
    err = FetchError(error=KafkaError(), backoff=0)
    held[TopicPartition(PREFIX + "dfip.loans", 2)] = err
    assert held[TopicPartition(PREFIX + "dfip.loans", 2)] is err


class _Fetcher:
    def __init__(self, records: Any) -> None:
        self._records = records


def test_adoption_keeps_what_the_fetcher_holds_and_happens_once() -> None:
    tp = TopicPartition(PREFIX + "dfip.transactions", 0)
    fetcher = _Fetcher({tp: _result(tp, pr := _partition_records(tp))})
    adopt_fetcher(fetcher, INPUTS)  # type: ignore[arg-type]
    held = fetcher._records
    assert type(held) is InputRecords
    assert list(held) == [tp]
    adopt_fetcher(fetcher, INPUTS)  # type: ignore[arg-type]
    assert fetcher._records is held
    assert all(type(r) is Record for r in pr)


# ---- read-ahead: results drained as they arrive, handed out in order, dropped after a seek


def _in_loop(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """The async test run in an event loop of its own (aiokafka's assignment makes futures,
    which need a running loop)."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


def _assigned(  # in a running loop: aiokafka's assignment makes futures
    *tps: TopicPartition, at: int = 40
) -> Any:
    from aiokafka.consumer.subscription_state import SubscriptionState

    subs = SubscriptionState()
    subs.assign_from_user(set(tps))
    assignment = subs.subscription.assignment
    for tp in tps:
        assignment.state_value(tp).seek(at)
    return assignment


def _arrived(tp: TopicPartition, assignment: Any, fetch_offset: int) -> FetchResult:
    data = _batch(fetch_offset, ROWS) + _batch(fetch_offset + 3, ROWS[:1])
    records = PartitionRecords(tp, MemoryRecords(data), [], fetch_offset, None, None, True, 0)
    return FetchResult(tp, assignment=assignment, partition_records=records, backoff=0)


@_in_loop
async def test_read_ahead_drains_on_arrival_and_hands_out_in_order() -> None:
    tp = TopicPartition(PREFIX + "dfip.transactions", 3)
    assignment = _assigned(tp)
    held = InputRecords(INPUTS, read_ahead=100)
    held[tp] = _arrived(tp, assignment, 40)
    # not stored as aiokafka's result: the fetcher may fetch the partition again at once
    assert tp not in held
    assert assignment.state_value(tp).position == 44
    held[tp] = _arrived(tp, assignment, 44)
    assert held.ahead_count == 8
    out = held.take(set(), 5, assignment)
    assert [r.offset for r in out[tp]] == [40, 41, 42, 43, 44]
    assert all(type(r) is Record for r in out[tp])
    assert held.ahead_count == 3
    assert [r.offset for r in held.take({tp}, None, assignment)[tp]] == [45, 46, 47]
    assert held.ahead_count == 0
    assert not held.ahead


@_in_loop
async def test_read_ahead_stops_at_its_limit_and_leaves_results_to_aiokafka() -> None:
    tp, other = (TopicPartition(PREFIX + "dfip.transactions", p) for p in (3, 4))
    assignment = _assigned(tp, other)
    held = InputRecords(INPUTS, read_ahead=4)
    held[tp] = _arrived(tp, assignment, 40)
    result = _arrived(other, assignment, 40)
    held[other] = result
    assert held[other] is result  # held as aiokafka holds it: fetched again once drained
    assert assignment.state_value(other).position == 40
    assert held.ahead_count == 4


@_in_loop
async def test_a_seek_makes_records_read_ahead_stale() -> None:
    tp = TopicPartition(PREFIX + "dfip.loans", 0)
    assignment = _assigned(tp)
    held = InputRecords(INPUTS, read_ahead=100)
    held[tp] = _arrived(tp, assignment, 40)
    assignment.state_value(tp).seek(40)  # a recovery rewinds to the committed offset
    assert held.take(set(), None, assignment) == {}
    assert held.ahead_count == 0
    # read again from the rewound position, then a seek before the next arrival
    held[tp] = _arrived(tp, assignment, 40)
    assignment.state_value(tp).seek(42)
    held[tp] = _arrived(tp, assignment, 42)  # starts where no held record ends: old dropped
    assert [r.offset for r in held.take(set(), None, assignment)[tp]] == [42, 43, 44, 45]


@_in_loop
async def test_read_ahead_keeps_other_partitions_and_paused_ones_waiting() -> None:
    tp, other = (TopicPartition(PREFIX + "dfip.transactions", p) for p in (1, 2))
    assignment = _assigned(tp, other)
    held = InputRecords(INPUTS, read_ahead=100)
    held[tp] = _arrived(tp, assignment, 40)
    held[other] = _arrived(other, assignment, 40)
    assert list(held.take({other}, None, assignment)) == [other]
    assignment.state_value(tp).pause()
    assert held.take(set(), None, assignment) == {}
    assert held.ahead_count == 4
    assignment.state_value(tp).resume()
    assert [r.offset for r in held.take(set(), None, assignment)[tp]] == [40, 41, 42, 43]
    held[tp] = _arrived(tp, assignment, 44)
    held.clear()  # the assignment changed
    assert held.ahead_count == 0
    assert held.take(set(), None, assignment) == {}
