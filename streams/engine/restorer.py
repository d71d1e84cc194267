"""Restore of a partition's state from its dfip.state changelog (the local store's copy of
the changelog prefix first, then the topic's tail), and the rebuild of its score table.

Only committed changelog records are read when the worker runs exactly-once, so a restored
partition continues from exactly what the last commit wrote, never from a half-done batch.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from core.kafka_config import KafkaSettings
from schemas.catalog import STATE_TOPIC
from streams.engine.clients import hold
from streams.engine.reference_sync import ReferenceSync
from streams.processor import Processor
from streams.reference.reader import read_to_end
from streams.reference.scores import ScoreTable
from streams.settings import WorkerSettings
from streams.state.changelog import apply_record, finish_restore
from streams.state.local import LocalStore
from streams.state.partition import PartitionState

__all__ = ["Restorer"]


class Restorer:
    """Rebuilds partitions into the processor; owns the consumer that reads the changelog."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: WorkerSettings,
        store: LocalStore,
        processor: Processor,
        references: ReferenceSync,
        *,
        read_committed: bool,
    ) -> None:
        self._kafka = kafka
        self._settings = settings
        self._store = store
        self._processor = processor
        self._references = references
        self._read_committed = read_committed
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed" if self._read_committed else "read_uncommitted",
            client_id="dfip-state-restore",
            fetch_max_wait_ms=5,  # a restore reads to a known end; do not wait for new data
            **self._kafka.aiokafka_config(),
        )
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @property
    def started(self) -> bool:
        return self._consumer is not None

    async def restore(self, p: int) -> PartitionState:
        """Load partition ``p`` into the processor from what was committed: its state, then
        its score table up to the state's checkpoint; returns the state."""
        consumer = self._consumer
        assert consumer is not None
        state = PartitionState(p, dedup_max_entries=self._settings.dedup_max_entries)
        # the local copy (if any) covers the changelog up to `start`; the topic the rest
        local, start = self._store.load(p)
        for key, value in local:
            apply_record(state, key, value)
        tp = TopicPartition(self._kafka.topic(STATE_TOPIC.name), p)
        consumer.assign([tp])
        consumer.seek(tp, start)
        async for _, records in read_to_end(consumer, [tp]):
            rows = [(r.key, r.value) for r in records]
            for key, value in rows:
                apply_record(state, key, value)
            # the local copy grows chunk by chunk; each save records how far it reaches
            self._store.save(p, rows, records[-1].offset + 1)
        hold(consumer)
        finish_restore(state)
        proc = self._processor
        proc.adopt_partition(state, ScoreTable(self._settings.score_history))
        # rebuild the score table silently up to the checkpoint; later records are counted
        await self._references.rebuild(state, [q for q in proc.partitions if q != p])
        # FX rates read since the checkpoint: restate/apply now that the scores are rebuilt
        proc.restored(p)
        return state

    async def count_records(
        self, ranges: dict[TopicPartition, tuple[int, int]], *, timeout: float
    ) -> dict[TopicPartition, int] | None:
        """Records in [start, end) per partition, as the worker reads them: transaction
        markers (and, reading committed, aborted records) are not records. None if the read
        timed out. The caller holds the engine's lock (restores use the same consumer)."""
        consumer = self._consumer
        if consumer is None or not ranges:
            return None
        consumer.assign(list(ranges))
        for tp, (start, _) in ranges.items():
            consumer.seek(tp, start)
        counts = dict.fromkeys(ranges, 0)
        stops = {tp: end for tp, (_, end) in ranges.items()}

        async def read() -> None:
            async for tp, records in read_to_end(consumer, list(ranges), stop_at=stops):
                counts[tp] += len(records)

        try:
            await asyncio.wait_for(read(), timeout=timeout)
        except TimeoutError:
            return None
        finally:
            hold(consumer)
        return counts
