"""Simulator records captured once, then produced fast (bulk) or at a fixed offered rate.

The feed and its exact oracle come from `adapters.simulator.runner.run_simulation` (rate 0)
with a capturing sink instead of the kafka-python producer: on this machine that producer
managed about 1,000–2,000 records/s (per-record Python work, and CRC32C in pure Python until
crc32c was added; see bench/RESULTS.md), too slow to pre-produce a large topic or to offer
10,000 events/s. The captured records are produced
with aiokafka's batch builder (C extension) instead, with the same topics, keys,
partitions and values, and with the simulator's flush barriers kept (scores and FX are
acknowledged before anything after them is sent).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from adapters.producer import TOPIC_BY_KIND
from adapters.simulator.runner import SimulationConfig, run_simulation
from core.kafka_config import KafkaSettings
from schemas import Event, encode, message_key, partition_for
from schemas.catalog import topic_by_name

__all__ = [
    "EVENT_TOPICS",
    "CaptureSink",
    "CapturedFeed",
    "ProduceStats",
    "Produced",
    "capture",
    "produce",
    "produce_stream",
]

EVENT_TOPICS = ("dfip.transactions", "dfip.loans")
_USCC_KINDS = frozenset({"transaction", "loan", "digitalization_score"})


@dataclass(frozen=True, slots=True)
class Produced:
    """One record to produce: catalog topic, partition, key, value; flush after a barrier."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes
    barrier: bool = False


def _partition(topic: str, partition: int | None) -> int:
    if partition is not None:
        return partition
    if topic_by_name(topic).partitions == 1:
        return 0
    raise ValueError(f"no partition given for {topic}")


@dataclass(frozen=True, slots=True)
class _Report:
    sent: int = 0
    failed: int = 0


class CaptureSink:
    """A `runner.Sink` that keeps the records (as `EventProducer` would have sent them)."""

    def __init__(self) -> None:
        self.records: list[Produced] = []

    def send(self, event: Event) -> None:
        kind: str = event.kind
        topic = TOPIC_BY_KIND[kind]
        key = message_key(event)
        part = partition_for(event.enterprise_uscc) if kind in _USCC_KINDS else None  # type: ignore[union-attr]
        self.records.append(
            Produced(topic, _partition(topic, part), key.encode() if key else None, encode(event))
        )

    def send_raw(
        self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None
    ) -> None:
        self.records.append(Produced(topic, _partition(topic, partition), key, value))

    def flush(self, timeout: float | None = None) -> _Report:
        if self.records and not self.records[-1].barrier:
            last = self.records[-1]
            self.records[-1] = Produced(last.topic, last.partition, last.key, last.value, True)
        return _Report()

    def close(self) -> None:
        pass


@dataclass
class CapturedFeed:
    """The records of one simulator run, in produce order, and the oracle for all of them."""

    records: list[Produced]
    oracle: dict[str, Any] = field(repr=False)
    seconds: float  # generation time (feed + oracle + encoding)

    @property
    def events(self) -> int:
        """Records on the event topics (the ones the worker's agent consumes)."""
        return sum(1 for r in self.records if r.topic in EVENT_TOPICS)

    def expected_received(self) -> int:
        """Oracle: events counted as received on the event topics (forwarded copies not)."""
        rows = self.oracle["figures"].get("dfip_events_received_total", [])
        return sum(int(r["value"]) for r in rows if r["labels"].get("topic") in EVENT_TOPICS)


def capture(events: int, *, seed: int = 7) -> CapturedFeed:
    """Generate `events` simulator records (rate 0) into memory, with their oracle."""
    sink = CaptureSink()
    began = time.perf_counter()
    result = run_simulation(None, SimulationConfig(seed=seed, events=events, rate=0), sink=sink)
    return CapturedFeed(sink.records, result.oracle, time.perf_counter() - began)


@dataclass
class ProduceStats:
    records: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


SentCallback = Callable[[Sequence[Produced], float], None]


async def _send_chunk(
    producer: AIOKafkaProducer, settings: KafkaSettings, chunk: Sequence[Produced]
) -> list[asyncio.Future[Any]]:
    """Send records in order as one batch per (topic, partition) run; returns the futures."""
    futures: list[asyncio.Future[Any]] = []
    builders: dict[tuple[str, int], Any] = {}
    order: list[tuple[str, int]] = []
    for rec in chunk:
        tp = (rec.topic, rec.partition)
        builder = builders.get(tp)
        if builder is None:
            builder = builders[tp] = producer.create_batch()
            order.append(tp)
        if builder.append(key=rec.key, value=rec.value, timestamp=None) is None:
            # full: send it and continue in a new batch (per-partition order is kept)
            futures.append(
                await producer.send_batch(builder, settings.topic(tp[0]), partition=tp[1])
            )
            builder = builders[tp] = producer.create_batch()
            builder.append(key=rec.key, value=rec.value, timestamp=None)
    for tp in order:
        futures.append(
            await producer.send_batch(builders[tp], settings.topic(tp[0]), partition=tp[1])
        )
    return futures


def _split_at_barriers(records: Sequence[Produced]) -> list[Sequence[Produced]]:
    parts: list[Sequence[Produced]] = []
    start = 0
    for i, r in enumerate(records):
        if r.barrier:
            parts.append(records[start : i + 1])
            start = i + 1
    if start < len(records):
        parts.append(records[start:])
    return parts


def _bulk_producer(settings: KafkaSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        # one batch per partition may wait in aiokafka's accumulator: big batches keep the
        # bulk rate from being bound by round trips (the broker accepts up to 1 MiB)
        max_batch_size=512 * 1024,
        client_id="dfip-bench-feed",
        **settings.aiokafka_config(),
    )


async def produce_stream(
    settings: KafkaSettings, records: Iterable[Produced], *, chunk: int = 20_000
) -> ProduceStats:
    """Produce a stream of records unpaced, `chunk` at a time (never all in memory).

    Barriers are not honoured (use `produce` for simulator feeds); the time includes
    making the records.
    """
    producer = _bulk_producer(settings)
    await producer.start()
    began = time.perf_counter()
    n = 0
    try:
        it = iter(records)
        while part := list(itertools.islice(it, chunk)):
            futures = await _send_chunk(producer, settings, part)
            n += len(part)
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return ProduceStats(n, time.perf_counter() - began)


async def produce(
    settings: KafkaSettings,
    records: Sequence[Produced],
    *,
    rate: float | None = None,
    on_sent: SentCallback | None = None,
    tick: float = 0.005,
) -> ProduceStats:
    """Produce `records` in order (acks=all, idempotent), unpaced or at `rate` records/s.

    Paced: every `tick` seconds the records due by then are sent. After a barrier record
    everything sent so far is awaited before the next record goes out. `on_sent` gets
    each chunk and the wall-clock time (time.time()) it was handed to the producer, which
    is also the records' CreateTime.
    """
    producer = _bulk_producer(settings)
    await producer.start()
    pending: list[asyncio.Future[Any]] = []
    began = time.perf_counter()
    sent = 0
    try:
        while sent < len(records):
            if rate is None:
                due = min(len(records), sent + 5000)
            else:
                due = min(len(records), int(rate * (time.perf_counter() - began)) + 1)
                if due <= sent:
                    await asyncio.sleep(tick)
                    continue
            for part in _split_at_barriers(records[sent:due]):
                now = time.time()
                pending.extend(await _send_chunk(producer, settings, part))
                if on_sent is not None:
                    on_sent(part, now)
                if part[-1].barrier:
                    await asyncio.gather(*pending)
                    pending.clear()
            sent = due
            if len(pending) > 1000:
                done = [f for f in pending if f.done()]
                for f in done:
                    f.result()  # raises a delivery error
                pending = [f for f in pending if not f.done()]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return ProduceStats(len(records), time.perf_counter() - began)
