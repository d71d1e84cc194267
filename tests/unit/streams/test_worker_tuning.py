"""Worker runtime tuning for latency (issue 18): the group consumer's fetch wait and the
GC freeze after a rebalance. Behaviour only; the latency itself is measured in bench/."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from streams.engine.heap import HeapFreezer, freeze_heap, trim_heap
from streams.faust_compat import tune_consumer
from streams.settings import WorkerSettings


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session keeps a normal collector


def test_defaults_bound_the_fetch_wait_and_freeze() -> None:
    settings = WorkerSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.fetch_max_wait_ms == 100
    assert settings.gc_freeze is True
    assert settings.gc_full_every_seconds == 600


def test_the_env_sets_both() -> None:
    settings = WorkerSettings(fetch_max_wait_ms=250, gc_freeze=False)
    assert (settings.fetch_max_wait_ms, settings.gc_freeze) == (250, False)


def test_the_group_consumer_reads_committed_and_waits_at_most_the_setting() -> None:
    # Faust builds the consumer with fetch_max_wait_ms=1500 and read_uncommitted; both are
    # read when the consumer starts, which is after this hook runs
    async def build() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", fetch_max_wait_ms=1500)

    consumer = asyncio.run(build())
    tune_consumer(consumer, WorkerSettings(fetch_max_wait_ms=80))
    assert consumer._fetch_max_wait_ms == 80
    assert consumer._isolation_level == "read_committed"


def test_freeze_moves_live_objects_out_of_the_collector(unfrozen: None) -> None:
    kept = [{"state": i} for i in range(100)]
    frozen = freeze_heap()
    assert frozen >= len(kept)
    tracked = {id(o) for o in gc.get_objects()}
    assert id(kept) not in tracked
    assert id(kept[0]) not in tracked
    after = [1, 2]  # made later: still scanned by the collector
    assert any(o is after for o in gc.get_objects())


def test_cycles_dropped_since_the_last_freeze_are_collected_by_the_next(unfrozen: None) -> None:
    cycle = _Cycle()
    ref = weakref.ref(cycle)
    freeze_heap()  # the cycle is now frozen: only reference counting could free it
    del cycle
    assert ref() is not None  # a cycle: its count never reaches 0
    freeze_heap()  # the next rebalance gives it back to the collector first
    assert ref() is None


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_after_a_batch_what_it_left_alive_is_frozen(unfrozen: None) -> None:
    clock = _Clock()
    heap = HeapFreezer(enabled=True, full_every_seconds=600, clock=clock)
    heap.reset()
    made_by_the_batch = [{"state": i} for i in range(50)]
    assert any(o is made_by_the_batch for o in gc.get_objects())
    clock.now = 599.0
    heap.after_batch()
    assert not any(o is made_by_the_batch for o in gc.get_objects())
    assert heap.full_collections == 0


def test_a_cycle_frozen_by_a_batch_is_collected_by_the_periodic_full_collection(
    unfrozen: None,
) -> None:
    clock = _Clock()
    heap = HeapFreezer(enabled=True, full_every_seconds=600, clock=clock)
    heap.reset()
    cycle = _Cycle()
    ref = weakref.ref(cycle)
    heap.after_batch()  # frozen while alive
    del cycle
    clock.now = 300.0
    heap.after_batch()
    gc.collect()
    assert ref() is not None  # frozen: neither the batch freeze nor a collection frees it
    clock.now = 600.0
    heap.after_batch()  # due: unfreeze, collect, freeze
    assert ref() is None
    assert heap.full_collections == 1
    clock.now = 1199.0
    heap.after_batch()  # the next one is due 600 s after that one
    assert heap.full_collections == 1


def test_disabled_leaves_the_collector_alone(unfrozen: None) -> None:
    gc.unfreeze()
    heap = HeapFreezer(enabled=False, full_every_seconds=1, clock=_Clock())
    assert heap.reset() == 0
    alive = [{"x": 1}]
    heap.after_batch()
    assert gc.get_freeze_count() == 0
    assert any(o is alive for o in gc.get_objects())


@pytest.mark.parametrize(
    "name", ["commit_timeout_seconds", "query_timeout_seconds", "gc_full_every_seconds"]
)
@pytest.mark.parametrize("value", ["inf", "nan"])
def test_durations_are_finite(name: str, value: str) -> None:
    # inf would wait (or never collect) forever; nan compares false with everything
    given: dict[str, Any] = {name: value}
    with pytest.raises(ValueError, match="finite"):
        WorkerSettings(**given)


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_trim_gives_freed_heap_pages_back() -> None:
    """What a restore or a partition that moved away freed: glibc keeps it mapped (a live
    block above it stops the heap from shrinking) until ``malloc_trim``."""
    blocks = [bytes(2048 + i % 7) for i in range(20_000)]  # ~40 MB of C-heap blocks
    kept = blocks[::50] + blocks[-1:]
    del blocks
    before = _rss_kb()
    if not trim_heap():
        pytest.skip("no malloc_trim in this C library")
    assert before - _rss_kb() > 20_000  # most of the 40 MB went back
    assert len(kept) == 401
