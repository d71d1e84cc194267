"""Worker runtime tuning for latency (issue 18): the group consumer's fetch wait and the
GC freeze after a rebalance. Behaviour only; the latency itself is measured in bench/."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer

from streams.app import freeze_heap
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
