"""The commit of a batch: its outputs, the changed partitions' changelog (dfip.state) and,
exactly-once, the group's input offsets, in one Kafka transaction; then the local store's
copy of the changelog and the publication of the committed figures.

A batch's transaction commits while the next batch is applied (:meth:`Committer.submit`, then
:meth:`Committer.settle` before the next one begins): the two never overlap on the wire.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import zstandard
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from core.kafka_config import KafkaSettings
from schemas.catalog import STATE_TOPIC
from streams.engine.hooks import CommitOffsets, Offsets, OnStage
from streams.export.view import Snapshot
from streams.processor import INPUT_TOPICS, Output, Processor, Record
from streams.settings import WorkerSettings
from streams.state.changelog import dirty_records
from streams.state.local import LocalStore

__all__ = ["MAX_REQUEST_BYTES", "RETRY_BACKOFF_MS", "Commit", "Committer"]

log = logging.getLogger(__name__)

# the largest record the worker writes: a dead letter carries a record of up to the broker's
# default limit (1 MiB) in base64; the dead-letter topic allows that size (schemas/catalog.py)
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# changelog record batches: size before compression (a first record always fits), zstd level
_CHANGELOG_BATCH_BYTES = 256 * 1024
_ZSTD_LEVEL = 1
# output record batches: aiokafka's default max_batch_size, what `send` built them as
_OUTPUT_BATCH_BYTES = 16 * 1024
# retry backoff of the worker's producer: a transaction step the broker asks to retry (the
# offset commit was, in ~2 % of batches at 5,000/s) waited aiokafka's default 100 ms and
# held the batch's commit that long (issue 18); aiokafka already retries adding partitions
# to a transaction after 20 ms while the previous transaction's markers are being written.
RETRY_BACKOFF_MS = 20


@dataclass
class Commit:
    """Everything one transaction writes, taken from the state when the batch was applied."""

    outputs: list[Output]
    changelog: dict[int, list[tuple[bytes, bytes | None]]]
    offsets: Offsets
    figures: dict[int, Snapshot]
    scored: dict[int, dict[tuple[str, str], int]]
    records: Sequence[Record]
    started: float


Row = tuple[int | None, bytes | None, bytes | None, Sequence[Any]]


class RecordBatch(BatchBuilder):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's record batch builder, filled by one loop over its C builder (:meth:`fill`)
    and, for the changelog, compressed with zstd at level ``zstd_level`` when built.

    ``BatchBuilder.append`` is a Python call per record around the C ``append`` (plus its
    serializer hooks, and ``time.time()`` when the timestamp is None); the changelog is
    ~2 records per event, so that wrapper was ~0.25 µs of worker CPU per event. aiokafka
    compresses zstd at level 3 only; level 1 compresses the bench feed's changelog 2.66×
    instead of 2.73× in 70 % of the time (bench/commit_batches.py). The batch is built
    uncompressed and then its records section is compressed and the header fixed (Kafka's
    record batch v2 layout: length, attributes' codec bits, CRC-32C), which is what the C
    builder does itself for the codec it is given.
    """

    _relative_offset: int  # BatchBuilder's: records appended
    _buffer: bytearray | None  # BatchBuilder's: the built batch

    def __init__(self, size: int, *, transactional: bool, zstd_level: int | None) -> None:
        super().__init__(size, DefaultRecordBatch.CODEC_NONE, is_transactional=transactional)
        self._zstd_level = zstd_level

    def fill(self, rows: Iterator[Row]) -> Row | None:
        """Append rows until the batch is full; returns the row that did not fit (it starts
        the next batch: a first record always fits), or None when ``rows`` ran out. Either
        way the batch is closed: nothing is appended to it afterwards."""
        append = self._builder.append
        n = self._relative_offset
        try:
            for row in rows:
                ts, key, value, headers = row
                if append(n, ts, key, value, headers) is None:
                    self.close()
                    return row
                n += 1
        finally:
            self._relative_offset = n
        # complete: closed, so the producer sends it at once instead of letting it linger
        # (linger_ms) for records that will never come (a transaction's sends are all made
        # before the producer runs, so they still go in one request)
        self.close()
        return None

    def _build(self) -> bytearray:
        if self._buffer is None:
            raw: bytearray = super()._build()
            self._buffer = raw if self._zstd_level is None else _zstd_batch(raw, self._zstd_level)
        return self._buffer


# record batch v2 header (KIP-98): base offset, length, leader epoch, magic, CRC, attributes…;
# the length counts the bytes after itself, the CRC covers the attributes to the end
_LENGTH_AT, _CRC_AT, _ATTRIBUTES_AT, _RECORDS_AT = 8, 17, 21, 61
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I16 = struct.Struct(">h")


# one compression context per level, reused: a new context per call (cramjam's compress)
# allocated and zeroed its tables every time, ~10 µs per record batch whatever its size; a
# live batch writes one record batch per touched partition, mostly of 1-5 kB, so that was
# most of zstd's cost there (issue 18). Same frames, byte for byte. The committer runs on
# the event loop's thread only.
_COMPRESSORS: dict[int, zstandard.ZstdCompressor] = {}


def _zstd_batch(raw: bytearray, level: int) -> bytearray:
    """An uncompressed record batch with its records section zstd-compressed."""
    compressor = _COMPRESSORS.get(level)
    if compressor is None:
        compressor = _COMPRESSORS[level] = zstandard.ZstdCompressor(level=level)
    body = compressor.compress(memoryview(raw)[_RECORDS_AT:])
    out = raw[:_RECORDS_AT] + body
    _I32.pack_into(out, _LENGTH_AT, len(out) - _LENGTH_AT - 4)
    (attributes,) = _I16.unpack_from(out, _ATTRIBUTES_AT)
    _I16.pack_into(out, _ATTRIBUTES_AT, attributes | DefaultRecordBatch.CODEC_ZSTD)
    _U32.pack_into(out, _CRC_AT, calc_crc32c(memoryview(out)[_ATTRIBUTES_AT:]))
    return out


def _changelog_batch(transactional: bool) -> RecordBatch:
    """An empty record batch for changelog rows, zstd-compressed at level 1 when built.

    The changelog is rewritten per batch (~300 bytes per event on the bench feed, the
    bulk of what a worker writes): compression cuts what crosses the socket and the broker's
    disk several times over (issue 18: socket writes were ~15 % of the worker's time). zstd,
    not lz4: aiokafka compresses lz4 at level 9 (LZ4 HC), which cost ~7 µs of worker CPU per
    event (15 % of it); zstd compresses the bench feed's changelog ~2.7× in a fraction of
    that. Only these batches are compressed: the outputs (dead letters, forwards, late
    copies, windows) keep their plain size, against which their topics' limits are set.
    """
    return RecordBatch(_CHANGELOG_BATCH_BYTES, transactional=transactional, zstd_level=_ZSTD_LEVEL)


async def _send_batches(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    records: Iterable[Row],
    sent: list[asyncio.Future[Any]],
    new_batch: Callable[[], RecordBatch],
) -> tuple[asyncio.Future[Any], int]:
    """Send one topic-partition's records (timestamp ms, key, value, headers) as whole record
    batches (:class:`RecordBatch`) instead of one ``send`` each: the per-record send path
    (partitioner, metadata lookups, a future per record) was a visible share of the worker's
    CPU. Returns the last batch's future and how many records it holds."""
    rows = iter(records)
    while True:
        batch = new_batch()
        left = batch.fill(rows)
        fut = await producer.send_batch(batch, topic, partition=partition)
        sent.append(fut)
        if left is None:
            return fut, batch.record_count()
        rows = itertools.chain((left,), rows)


async def _send_rows(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    rows: Sequence[tuple[bytes, bytes | None]],
    sent: list[asyncio.Future[Any]],
    *,
    transactional: bool,
) -> tuple[asyncio.Future[Any], int]:
    """Send one partition's changelog rows as zstd record batches (``_send_batches``), all
    with the time they were sent (one clock read, not one per row)."""
    ts = int(time.time() * 1000)
    return await _send_batches(
        producer,
        topic,
        partition,
        [(ts, key, value, _NO_HEADERS) for key, value in rows],
        sent,
        lambda: _changelog_batch(transactional),
    )


# no headers on changelog rows; never mutated
_NO_HEADERS: list[tuple[str, bytes]] = []


async def _send_outputs(
    producer: AIOKafkaProducer,
    kafka: KafkaSettings,
    outputs: Sequence[Output],
    sent: list[asyncio.Future[Any]],
    *,
    transactional: bool,
) -> None:
    """Send the batch's outputs: those with a partition (alerts, forwarded and late copies,
    most of them) as whole uncompressed record batches per topic-partition, in order; the
    others (dead letters, window figures) through ``send`` and its partitioner.

    ``send`` costs a metadata wait, a partition lookup and a future per record; the batches
    are what it would have built (aiokafka's default 16 KiB batches, no compression, so
    each topic's size limit applies as before), minus that per-record work (issue 18)."""
    by_partition: dict[tuple[str, int], list[Output]] = {}
    for out in outputs:
        if out.partition is None:
            sent.append(
                await producer.send(
                    kafka.topic(out.topic),
                    out.value,
                    key=out.key,
                    partition=None,
                    timestamp_ms=out.timestamp_ms,
                    headers=list(out.headers) or None,
                )
            )
        else:
            by_partition.setdefault((out.topic, out.partition), []).append(out)
    for (name, partition), outs in by_partition.items():
        await _send_batches(
            producer,
            kafka.topic(name),
            partition,
            ((o.timestamp_ms, o.key, o.value, list(o.headers)) for o in outs),
            sent,
            lambda: _output_batch(transactional),
        )


def _output_batch(transactional: bool) -> RecordBatch:
    return RecordBatch(_OUTPUT_BATCH_BYTES, transactional=transactional, zstd_level=None)


def _no_commit(c: Commit) -> None:
    pass


class Committer:
    """Owns the worker's producer; prepares, writes and publishes one batch at a time."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: WorkerSettings,
        store: LocalStore,
        *,
        group_id: str,
        exactly_once: bool,
        on_stage: OnStage,
        commit_offsets: CommitOffsets | None = None,
        on_committed: Callable[[Commit], None] = _no_commit,
    ) -> None:
        self._kafka = kafka
        self._settings = settings
        self._store = store
        self._group_id = group_id
        self._exactly_once = exactly_once
        self._on_stage = on_stage
        self._commit_offsets = commit_offsets
        self._on_committed = on_committed
        self._producer: AIOKafkaProducer | None = None
        # the previous batch's transaction, still committing while the next batch is applied
        self._inflight: asyncio.Task[None] | None = None

    # ---- the producer ------------------------------------------------------------------

    async def start(self) -> None:
        self._producer = await self._new_producer()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def renew(self) -> None:
        """A new producer after a failed commit; its initialisation (same transactional id)
        aborts whatever the old one left open."""
        old, self._producer = self._producer, None
        if old is not None:
            try:  # an open transaction is aborted by the new producer's init anyway
                await asyncio.wait_for(old.stop(), timeout=10)
            except Exception as exc:
                log.info("closing the failed producer: %s", type(exc).__name__)
        self._producer = await self._new_producer()

    async def _new_producer(self) -> AIOKafkaProducer:
        txn: dict[str, Any] = {}
        if self._exactly_once:
            txn = {
                # names this worker's transactions; a restarted worker with the same id
                # fences its predecessor and aborts what it left open
                "transactional_id": f"{self._group_id}-{self._settings.worker_id}",
                "transaction_timeout_ms": 15_000,  # a crashed worker's open batch ends soon
            }
        producer = AIOKafkaProducer(
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            retry_backoff_ms=RETRY_BACKOFF_MS,
            max_request_size=MAX_REQUEST_BYTES,
            client_id=f"dfip-worker-{self._settings.worker_id}",
            **txn,
            **self._kafka.aiokafka_config(),
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    # ---- one batch ---------------------------------------------------------------------

    def prepare(self, processor: Processor, records: Sequence[Record], started: float) -> Commit:
        """Take what the batch changed out of the processor (synchronously, before the next
        batch can change it again)."""
        processor.finish_batch()
        touched = processor.take_touched()
        states, scores = processor.states, processor.scores
        return Commit(
            outputs=processor.take_outputs(),
            changelog={p: dirty_records(states[p]) for p in touched},
            offsets=self.group_offsets(processor, touched),
            figures={p: states[p].counters.snapshot() for p in touched},
            scored={p: dict(scores[p].scored) for p in touched},
            records=records,
            started=started,
        )

    def group_offsets(self, processor: Processor, partitions: Sequence[int]) -> Offsets:
        """The group's next input offsets of ``partitions``, as their states record them."""
        states = processor.states
        return {
            TopicPartition(self._kafka.topic(t), p): OffsetAndMetadata(states[p].offsets[t], "")
            for p in partitions
            for t in INPUT_TOPICS
            if t in states[p].offsets
        }

    def submit(self, c: Commit) -> None:
        """Write ``c`` in the background; :meth:`settle` first (one transaction at a time)."""
        self._inflight = asyncio.ensure_future(self.write(c))

    async def settle(self) -> None:
        """Wait for the commit in flight, if any; raises its failure."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def write(self, c: Commit) -> None:
        """Write one prepared batch in one transaction; then publish its figures.

        Bounded by ``commit_timeout_seconds``: a producer whose sender died (aiokafka ends it
        on e.g. OutOfOrderSequenceNumber after a refused record) would wait forever.
        """
        last_offsets: dict[int, int] = {}
        if c.outputs or c.changelog:
            began = time.perf_counter()
            last_offsets = await asyncio.wait_for(
                self._transaction(c), timeout=self._settings.commit_timeout_seconds
            )
            if c.records:
                self._on_stage("transaction", time.perf_counter() - began)
            # committed: the local copy may now include these records
            for p, offset in last_offsets.items():
                self._store.save(p, c.changelog[p], offset + 1)
        self._on_committed(c)

    async def _transaction(self, c: Commit) -> dict[int, int]:
        """Send everything and commit; returns the last changelog offset per partition.

        On any failure nothing is aborted here: the caller recovers with a new producer
        (:meth:`renew`), whose initialisation aborts what this one left open.
        """
        producer = self._producer
        assert producer is not None
        exactly_once = self._exactly_once
        state_topic = self._kafka.topic(STATE_TOPIC.name)
        if exactly_once:
            await producer.begin_transaction()
        sent: list[asyncio.Future[Any]] = []
        last: dict[int, asyncio.Future[Any]] = {}
        await _send_outputs(producer, self._kafka, c.outputs, sent, transactional=exactly_once)
        counts: dict[int, int] = {}
        for p, rows in c.changelog.items():
            if rows:
                last[p], counts[p] = await _send_rows(
                    producer, state_topic, p, rows, sent, transactional=exactly_once
                )
        if c.offsets and exactly_once:
            # the group's offsets commit atomically with the state they lead to
            await producer.send_offsets_to_transaction(c.offsets, self._group_id)
        # a refused record fails its own future; raise it now rather than commit around it
        results = await asyncio.gather(*sent, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if exactly_once:
            await producer.commit_transaction()
        if c.offsets and not exactly_once and self._commit_offsets is not None:
            await self._commit_offsets(c.offsets)
        # a batch's future carries its first offset; its records follow one by one
        return {p: fut.result().offset + counts[p] - 1 for p, fut in last.items()}
