"""The engine composing its parts, with in-memory clients: a rebalance restores and drops
partitions, a batch commits in the background and is published, a failed commit breaks the
state until a recovery restores what was committed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from core.kafka_config import KafkaSettings
from schemas import figure_names as fn
from schemas.catalog import DEADLETTER, LOANS, TRANSACTIONS, partition_for
from schemas.codec import encode
from streams.engine import Engine, EngineHooks, NeedsRecovery
from streams.processor import Record
from streams.settings import WorkerSettings
from tests.unit.streams.engine_fakes import FakeConsumer, FakeProducer
from tests.unit.streams.helpers import HANGZHOU, t, tx

P = partition_for(HANGZHOU)
OTHER = (P + 1) % 12


def _engine(producer: FakeProducer) -> tuple[Engine, list[int]]:
    committed: list[int] = []

    def on_commit(records: Sequence[Record], started: float) -> None:
        committed.append(len(records))

    engine = Engine(
        KafkaSettings(topic_prefix="u4."), WorkerSettings(), EngineHooks(on_commit=on_commit)
    )
    # broker-free stand-ins for the three clients (start() would connect them)
    engine.references.reader._consumer = FakeConsumer()  # type: ignore[assignment]
    engine.references.reader._reassign()
    engine.restorer._consumer = FakeConsumer()  # type: ignore[assignment]
    engine.committer._producer = producer  # type: ignore[assignment]
    return engine, committed


def _tx(offset: int, value: bytes | None = None) -> Record:
    body = encode(tx(t("10:00"))) if value is None else value
    return Record(TRANSACTIONS.name, P, offset, HANGZHOU.encode(), body)


def _processed(engine: Engine) -> int:
    series = engine.view.figures[P].get(fn.EVENTS_PROCESSED_TOTAL, {})
    return sum(series.values())


def test_a_rebalance_restores_new_partitions_and_drops_the_rest() -> None:
    async def go() -> None:
        engine, _ = _engine(FakeProducer())
        await engine.assign([P, OTHER])
        assert engine.partitions == sorted([P, OTHER])
        assert engine.is_ready
        assert set(engine.view.figures) == {P, OTHER}
        await engine.assign([P])
        assert engine.partitions == [P]
        assert set(engine.view.figures) == {P}  # a partition that left is not exported
        assert engine.stats.rebalances == 2
        assert engine.stats.restores == 2
        assert engine.stats.last_restore_seconds is not None
        engine.store.close()

    asyncio.run(asyncio.wait_for(go(), timeout=30))


def test_a_batch_is_committed_in_the_background_then_published() -> None:
    async def go() -> None:
        producer = FakeProducer()
        engine, committed = _engine(producer)
        await engine.assign([P])
        await engine.process_batch([_tx(0), _tx(1)])
        await engine._settle_or_break()
        assert producer.calls[0] == "begin"
        assert producer.calls[-1] == "commit"
        assert committed == [2]
        assert engine.stats.batches == 1
        assert engine.stats.seconds is not None
        assert _processed(engine) == 2
        assert engine.positions() == {P: {TRANSACTIONS.name: 2, LOANS.name: 0}}
        engine.store.close()

    asyncio.run(asyncio.wait_for(go(), timeout=30))


def test_a_failed_commit_breaks_the_state_until_it_is_recovered() -> None:
    async def go() -> None:
        engine, committed = _engine(FakeProducer(refuse=f"u4.{DEADLETTER.name}"))
        renewed: list[FakeProducer] = []

        async def new_producer() -> FakeProducer:
            renewed.append(FakeProducer())
            return renewed[-1]

        engine.committer._new_producer = new_producer  # type: ignore[method-assign,assignment]
        await engine.assign([P])
        await engine.process_batch([_tx(0), _tx(1, b"not an event")])  # a dead letter
        with pytest.raises(RuntimeError, match="refused"):
            await engine.process_batch([_tx(2)])  # raises the previous batch's failure
        assert engine.broken
        assert engine.stats.failures == 1
        with pytest.raises(NeedsRecovery):
            await engine.process_batch([_tx(2)])
        positions = await engine.recover()
        # nothing was committed: the partition is back at its start, the batch comes again
        assert positions == {P: {TRANSACTIONS.name: 0, LOANS.name: 0}}
        assert engine.broken is None
        assert engine.stats.recoveries == 1
        assert len(renewed) == 1
        assert committed == []
        assert not engine.processor.has_changes()
        assert engine.processor.take_outputs() == []
        engine.store.close()

    asyncio.run(asyncio.wait_for(go(), timeout=30))
