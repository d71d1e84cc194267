"""The raw baseline: a plain aiokafka consumer decoding every value with orjson into a dict.

It reads the event topics of a pre-produced namespace from the beginning (read_committed,
as the exactly-once worker does) to their end offsets, and again from the beginning until
at least `min_seconds` were measured. The rate is records divided by the time from the
first fetched batch to the last of each pass; startup and connection time are excluded,
as they are for the pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from core.kafka_config import KafkaSettings
from schemas.catalog import topic_by_name

__all__ = ["RawRun", "raw_baseline"]


@dataclass(frozen=True)
class RawRun:
    records: int
    decoded: int  # values that were JSON objects
    undecodable: int
    seconds: float
    passes: int = 1

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


async def _read_pass(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], deadline: float
) -> RawRun:
    """Read every partition from its position to `ends`, decoding each value."""
    remaining = {tp for tp, end in ends.items() if end > 0}
    records = decoded = undecodable = 0
    first: float | None = None
    last = time.perf_counter()
    while remaining and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=1000)
        if not batches:
            continue
        if first is None:
            first = time.perf_counter()
        for tp, batch in batches.items():
            for msg in batch:
                records += 1
                try:
                    doc = orjson.loads(msg.value) if msg.value is not None else None
                except orjson.JSONDecodeError:
                    undecodable += 1
                    continue
                if isinstance(doc, dict):
                    decoded += 1
                else:
                    undecodable += 1
            if batch and batch[-1].offset + 1 >= ends[tp]:
                remaining.discard(tp)
        last = time.perf_counter()
    if remaining:
        raise TimeoutError(f"raw consumer did not reach the end of {sorted(remaining)}")
    return RawRun(records, decoded, undecodable, last - (first or last))


async def raw_baseline(
    settings: KafkaSettings,
    topics: Sequence[str],
    *,
    min_seconds: float = 2.0,
    timeout: float = 300,
) -> RawRun:
    consumer = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        client_id="dfip-bench-raw",
        **settings.aiokafka_config(),
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(settings.topic(t), p)
            for t in topics
            for p in range(topic_by_name(t).partitions)
        ]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        total = RawRun(0, 0, 0, 0.0, passes=0)
        deadline = time.monotonic() + timeout
        # one pass over a small topic takes a tenth of a second: repeat it until the time
        # measured is long enough not to be decided by one scheduler hiccup
        while total.seconds < min_seconds or total.records == 0:
            await consumer.seek_to_beginning(*tps)
            one = await _read_pass(consumer, ends, deadline)
            total = RawRun(
                total.records + one.records,
                total.decoded + one.decoded,
                total.undecodable + one.undecodable,
                total.seconds + one.seconds,
                total.passes + 1,
            )
            if one.records == 0:
                break
        return total
    finally:
        await consumer.stop()
