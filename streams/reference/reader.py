"""Reads the reference topics (scores, FX) with a consumer of its own, outside the group.

Faust gives no order across topics, so before a batch of events is joined the reader catches
the relevant reference partitions up to their end offsets *as of that moment* (as Kafka
Streams does for global tables at start-up, here before every batch). Any score or rate that
was written before the event was written is therefore in the table when the event is joined.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from core.kafka_config import KafkaSettings

__all__ = ["ReferenceReader", "behind", "read_ranges", "read_to_end"]


async def read_to_end(
    consumer: AIOKafkaConsumer,
    tps: Iterable[TopicPartition],
    *,
    stop_at: dict[TopicPartition, int] | None = None,
) -> AsyncIterator[tuple[TopicPartition, list[Any]]]:
    """Read every partition in ``tps`` from its current position up to its end offset now
    (or ``stop_at``, whichever is lower), yielding the records fetch by fetch (in offset
    order within a partition), so a large topic is applied chunk by chunk, never held whole.
    """
    ends = await behind(consumer, tps, stop_at=stop_at)
    async for chunk in read_ranges(consumer, ends):
        yield chunk


async def behind(
    consumer: AIOKafkaConsumer,
    tps: Iterable[TopicPartition],
    *,
    stop_at: dict[TopicPartition, int] | None = None,
    known: dict[TopicPartition, int] | None = None,
) -> dict[TopicPartition, int]:
    """The partitions of ``tps`` whose position is below their end offset now (or
    ``stop_at``, whichever is lower), with that end: one ListOffsets round trip. ``known``:
    positions the caller tracks itself (no call into the consumer for those)."""
    tps = list(tps)
    if not tps:
        return {}
    ends = await consumer.end_offsets(tps)
    if stop_at:
        ends = {tp: min(end, stop_at.get(tp, end)) for tp, end in ends.items()}
    out: dict[TopicPartition, int] = {}
    for tp in tps:
        pos = known.get(tp) if known is not None else None
        if pos is None:
            pos = await consumer.position(tp)
        if pos < ends[tp]:
            out[tp] = ends[tp]
    return out


async def read_ranges(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]
) -> AsyncIterator[tuple[TopicPartition, list[Any]]]:
    """Read each partition of ``ends`` from its current position up to its end there."""
    pending = set(ends)
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=500, max_records=10_000)
        for tp, records in batch.items():
            end = ends[tp]
            if records and records[-1].offset >= end - 1:
                # position may sit past `end` later; seek back so the rest is read next time
                consumer.seek(tp, end)
            wanted = [r for r in records if r.offset < end]
            if wanted:
                yield tp, wanted
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)


class ReferenceReader:
    """One manually assigned consumer over the scores partitions this worker owns and FX,
    and, with the rules on, the owned partitions of the alerts' acknowledgements."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        scores_topic: str,
        fx_topic: str,
        ack_topic: str | None = None,
    ) -> None:
        self._settings = settings
        self.scores_topic = scores_topic
        self.ack_topic = ack_topic
        self.fx_tp = TopicPartition(fx_topic, 0)
        self._consumer: AIOKafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {self.fx_tp: 0}

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            client_id="dfip-reference-reader",
            # catch-ups read to a known end: never let the broker hold a fetch for new data
            fetch_max_wait_ms=5,
            **self._settings.aiokafka_config(),
        )
        await self._consumer.start()
        self._reassign()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "reader not started"
        return self._consumer

    def scores_tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self.scores_topic, partition)

    def _owned_tps(self, partition: int) -> list[TopicPartition]:
        tps = [self.scores_tp(partition)]
        if self.ack_topic is not None:
            tps.append(TopicPartition(self.ack_topic, partition))
        return tps

    def _reassign(self) -> None:
        c = self.consumer
        c.assign(list(self._positions))
        for tp, pos in self._positions.items():
            c.seek(tp, pos)

    def set_partitions(self, partitions: Iterable[int], *, start_at: dict[int, int]) -> None:
        """Read exactly these scores (and ack) partitions; those in ``start_at`` (re)start
        there (an ack partition restarts at 0: the processor skips what its checkpoint
        already covers)."""
        wanted = {tp for p in partitions for tp in self._owned_tps(p)}
        for tp in [tp for tp in self._positions if tp != self.fx_tp and tp not in wanted]:
            del self._positions[tp]
        for tp in wanted:
            if tp.partition in start_at:
                self._positions[tp] = start_at[tp.partition] if tp.topic != self.ack_topic else 0
            else:
                self._positions.setdefault(tp, 0)
        self._reassign()

    def rewind_fx(self, offset: int) -> None:
        """Read FX again from ``offset`` (to account records for a newly owned partition 0)."""
        if offset < self._positions[self.fx_tp]:
            self._positions[self.fx_tp] = offset
            self.consumer.seek(self.fx_tp, offset)

    async def catch_up(
        self, partitions: Iterable[int], *, stop_at: dict[int, int] | None = None
    ) -> AsyncIterator[tuple[TopicPartition, list[Any]]]:
        """Records of FX and the given scores partitions up to their end offsets now, fetch
        by fetch; the positions are kept once the caller has read to the end.

        The consumer's partitions stay paused between catch-ups (the engine holds them: an
        unpaused one is fetched every few ms). Only the partitions found behind are resumed,
        and paused again after: a catch-up that finds nothing new (most of them, one before
        every batch) is one ListOffsets round trip, not a fetch of every partition as well
        (issue 18: a fetch request and response for ~25 partitions per batch)."""
        tps = [self.fx_tp, *(tp for p in partitions for tp in self._owned_tps(p))]
        stops = {self.scores_tp(p): o for p, o in (stop_at or {}).items()}
        consumer = self.consumer
        ends = await behind(consumer, tps, stop_at=stops, known=self._positions)
        if not ends:
            return
        consumer.resume(*ends)
        try:
            async for chunk in read_ranges(consumer, ends):
                yield chunk
        finally:
            consumer.pause(*ends)
        for tp in ends:
            self._positions[tp] = await consumer.position(tp)
