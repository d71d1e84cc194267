"""Catch-up of the reference topics (scores, FX, the alerts' acknowledgements) into the
processor: before every batch, and, for a restored partition, the rebuild of its score table.

Faust gives no order across topics, so before a batch of events is joined the reference
partitions are read to their end offsets as of that moment (streams/reference/reader.py):
any score or rate written before an event is in the tables when the event is joined.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka.structs import TopicPartition

from core.kafka_config import KafkaSettings
from schemas.catalog import ALERTS_ACK
from streams.engine.clients import hold, to_record
from streams.processor import FX, FX_ACCOUNTING_PARTITION, SCORES, Processor
from streams.reference.reader import ReferenceReader
from streams.state.partition import PartitionState

__all__ = ["ReferenceSync"]


class ReferenceSync:
    """The reference reader of one worker, feeding what it reads to the processor."""

    def __init__(self, kafka: KafkaSettings, processor: Processor, *, acks: bool) -> None:
        self._prefix = kafka.topic_prefix
        self._processor = processor
        self.reader = ReferenceReader(
            kafka,
            scores_topic=kafka.topic(SCORES),
            fx_topic=kafka.topic(FX),
            ack_topic=kafka.topic(ALERTS_ACK.name) if acks else None,  # issue 15
        )

    async def start(self) -> None:
        await self.reader.start()

    async def stop(self) -> None:
        await self.reader.stop()

    def follow(self, partitions: Iterable[int]) -> None:
        """Read the scores (and acks) of exactly these partitions from now on: those that
        left are no longer read, one that returns is read again from its start."""
        self.reader.set_partitions(sorted(partitions), start_at={})
        hold(self.reader.consumer)

    async def catch_up(self, partitions: Iterable[int]) -> None:
        """Read FX and the partitions' scores (and acks) to their end offsets now; the scores
        count in the flow figures. The reader resumes only the partitions it finds behind
        (the rest stay held since ``follow``/``rebuild``)."""
        async for tp, records in self.reader.catch_up(partitions):
            self.dispatch(tp, records, counted=True)

    async def rebuild(self, state: PartitionState, others: Iterable[int]) -> None:
        """A restored partition's score table, silently up to its checkpoint (later scores
        are counted by the next catch-up); ``others`` are the partitions already owned.
        Restoring the FX accounting partition re-reads FX from its checkpoint too."""
        p = state.partition
        checkpoint = state.offsets.get(SCORES, 0)
        self.reader.set_partitions([*others, p], start_at={p: 0})
        if p == FX_ACCOUNTING_PARTITION:
            self.reader.rewind_fx(state.offsets.get(FX, 0))
        async for tp, records in self.reader.catch_up([p], stop_at={p: checkpoint}):
            self.dispatch(tp, records, counted=False)
        hold(self.reader.consumer)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """End offsets of any partitions, through the reader's consumer (for the lag)."""
        ends: dict[TopicPartition, int] = await self.reader.consumer.end_offsets(tps)
        return ends

    def dispatch(self, tp: TopicPartition, records: list[Any], *, counted: bool) -> None:
        """Records of one reference partition to the processor: FX, acknowledgements, or
        scores (`counted`: in the flow figures; False while a restore rebuilds the table)."""
        proc = self._processor
        for r in records:
            rec = to_record(self._prefix, r)
            if tp == self.reader.fx_tp:
                proc.process_fx(rec)
            elif tp.topic == self.reader.ack_topic:
                proc.process_ack(rec)
            else:
                proc.process_score(rec, counted=counted)
