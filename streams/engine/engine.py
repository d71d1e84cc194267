"""The Kafka side of a worker: restores partition state, feeds batches to the processor and
commits state + outputs in one Kafka transaction, then publishes the committed figures.

Only committed state is exported to Prometheus, so a partition that moves to another worker
continues from exactly the value the old owner last exported (see docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.codec import has_lz4
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from core.kafka_config import KafkaSettings
from schemas.alerts import load_ruleset
from schemas.catalog import ALERTS_ACK, STATE_TOPIC
from streams.processor import FX, FX_ACCOUNTING_PARTITION, INPUT_TOPICS, SCORES, Processor, Record
from streams.reference.fx import FxTable
from streams.reference.reader import ReferenceReader, read_to_end
from streams.reference.scores import ScoreTable
from streams.rules import RuleEngine
from streams.settings import WorkerSettings
from streams.state.changelog import apply_record, dirty_records, finish_restore
from streams.state.local import open_store
from streams.state.partition import PartitionState

__all__ = ["CommittedView", "Engine", "NeedsRecovery", "Positions"]

log = logging.getLogger(__name__)

Snapshot = dict[str, dict[tuple[str, ...], int]]
# per owned partition, per input topic (catalog name): the next offset to read
Positions = dict[int, dict[str, int]]
# the largest record the worker writes: a dead letter carries a record of up to the broker's
# default limit (1 MiB) in base64; the dead-letter topic allows that size (schemas/catalog.py)
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# changelog record batches: size before compression (a first record always fits), codec
_CHANGELOG_BATCH_BYTES = 256 * 1024
_CHANGELOG_CODEC = DefaultRecordBatch.CODEC_LZ4 if has_lz4() else DefaultRecordBatch.CODEC_NONE
# records applied between two returns to the event loop while a batch is applied
YIELD_EVERY = 128
# retry backoff of the worker's producer: a transaction step the broker asks to retry (the
# offset commit was, in ~2 % of batches at 5,000/s) waited aiokafka's default 100 ms and
# held the batch's commit that long (issue 18); aiokafka already retries adding partitions
# to a transaction after 20 ms while the previous transaction's markers are being written.
RETRY_BACKOFF_MS = 20


@dataclass
class CommittedView:
    """What the exporter may show: per owned partition, the figures as last committed."""

    figures: dict[int, Snapshot] = field(default_factory=dict)
    scored: dict[int, dict[tuple[str, str], int]] = field(default_factory=dict)


class NeedsRecovery(RuntimeError):
    """The in-memory state is ahead of what was committed; recover before the next batch."""


@dataclass
class _Commit:
    """Everything one transaction writes, taken from the state when the batch was applied."""

    outputs: list[Any]
    changelog: dict[int, list[tuple[bytes, bytes | None]]]
    offsets: dict[TopicPartition, Any]
    figures: dict[int, Snapshot]
    scored: dict[int, dict[tuple[str, str], int]]
    records: Sequence[Record]
    started: float


def _no_stage(stage: str, seconds: float) -> None:
    pass


def _hold(consumer: AIOKafkaConsumer) -> None:
    """Stop a manually assigned consumer's background fetching until it is read again.

    The reference reader and the restore consumer wait at most 5 ms per fetch (they read to
    a known end); left assigned and unpaused, each sent ~200 empty fetches a second, costing
    the worker's event loop (and the GIL, and the broker) while batches waited (issue 18).
    """
    parts = consumer.assignment()
    if parts:
        consumer.pause(*parts)


def _release(consumer: AIOKafkaConsumer) -> None:
    parts = consumer.assignment()
    if parts:
        consumer.resume(*parts)


def _changelog_batch(transactional: bool) -> BatchBuilder:
    """An empty lz4-compressed record batch for changelog rows.

    The changelog is JSON rewritten per batch (~800 bytes per event on the bench feed, the
    bulk of what a worker writes): lz4 cuts what crosses the socket and the broker's disk
    several times over for little CPU (issue 18: socket writes were ~15 % of the worker's
    time). Only these batches are compressed: the outputs (dead letters, forwards, late
    copies, windows) keep their plain size, against which their topics' limits are set.
    """
    return BatchBuilder(_CHANGELOG_BATCH_BYTES, _CHANGELOG_CODEC, is_transactional=transactional)


async def _send_rows(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    rows: Sequence[tuple[bytes, bytes | None]],
    sent: list[asyncio.Future[Any]],
    *,
    transactional: bool,
) -> tuple[asyncio.Future[Any], int]:
    """Send one partition's changelog rows as whole record batches (built in aiokafka's C
    batch builder) instead of one ``send`` each: the per-record send path (partitioner,
    metadata lookups, a future per record) was a visible share of the worker's CPU.
    Returns the last batch's future and how many records it holds."""
    batch = _changelog_batch(transactional)
    n = 0
    for key, value in rows:
        if batch.append(timestamp=None, key=key, value=value) is None:  # full: send it
            sent.append(await producer.send_batch(batch, topic, partition=partition))
            batch = _changelog_batch(transactional)
            n = 0
            batch.append(timestamp=None, key=key, value=value)  # a first record always fits
        n += 1
    fut = await producer.send_batch(batch, topic, partition=partition)
    sent.append(fut)
    return fut, n


class Engine:
    def __init__(self, kafka: KafkaSettings, settings: WorkerSettings) -> None:
        self.kafka = kafka
        self.settings = settings
        self.processor = Processor(
            grace_us=settings.grace_seconds * 1_000_000,
            dedup_retention_days=settings.dedup_retention_days,
            max_future_us=settings.max_future_seconds * 1_000_000,
            restate_horizon_us=settings.restate_horizon_days * 86_400 * 1_000_000,
            fx=FxTable(settings.fx_max_age_days),
            rules=RuleEngine(load_ruleset(settings.rules_file)) if settings.rules else None,
        )
        self.reader = ReferenceReader(
            kafka,
            scores_topic=kafka.topic(SCORES),
            fx_topic=kafka.topic(FX),
            ack_topic=kafka.topic(ALERTS_ACK.name) if settings.rules else None,  # issue 15
        )
        self.view = CommittedView()
        self.store = open_store(settings.store, settings.data_dir)
        self.lock = asyncio.Lock()
        self.ready = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._restore_consumer: AIOKafkaConsumer | None = None
        self._prefix = kafka.topic_prefix
        self.exactly_once = settings.processing_guarantee == "exactly_once"
        self.stats: dict[str, Any] = {
            "batches": 0,
            "rebalances": 0,
            "restores": 0,
            "failures": 0,
            "recoveries": 0,
        }
        # called after each commit with (records, perf_counter at the batch's start)
        self.on_commit: list[Any] = []
        # the consumer group whose offsets commit with each batch; also the Faust app id
        self.group_id = f"{kafka.topic_prefix}{settings.app_id}"
        # at_least_once only: commits group offsets after a batch is written (set by the app)
        self.commit_offsets: Any = None
        # why the in-memory state can no longer be trusted (a batch failed half-way)
        self.broken: str | None = None
        # the previous batch's transaction, still committing while the next batch is applied
        self._inflight: asyncio.Task[None] | None = None
        # (stage, seconds) of each batch: the latency budget (dfip_worker_stage_seconds)
        self.on_stage: Callable[[str, float], None] = _no_stage
        # time.monotonic() when the last batch started (the idle tick stays out meanwhile)
        self.last_batch = 0.0

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._producer = await self._new_producer()
        self._restore_consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed" if self.exactly_once else "read_uncommitted",
            client_id="dfip-state-restore",
            fetch_max_wait_ms=5,  # a restore reads to a known end; do not wait for new data
            **self.kafka.aiokafka_config(),
        )
        await self._restore_consumer.start()
        await self.reader.start()

    async def _new_producer(self) -> AIOKafkaProducer:
        txn: dict[str, Any] = {}
        if self.exactly_once:
            txn = {
                # names this worker's transactions; a restarted worker with the same id
                # fences its predecessor and aborts what it left open
                "transactional_id": f"{self.group_id}-{self.settings.worker_id}",
                "transaction_timeout_ms": 15_000,  # a crashed worker's open batch ends soon
            }
        producer = AIOKafkaProducer(
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            retry_backoff_ms=RETRY_BACKOFF_MS,
            max_request_size=MAX_REQUEST_BYTES,
            client_id=f"dfip-worker-{self.settings.worker_id}",
            **txn,
            **self.kafka.aiokafka_config(),
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def stop(self) -> None:
        try:
            await self._settle()
        except Exception as exc:  # aborted: the next owner redoes it from the checkpoint
            log.warning("last batch did not commit: %s", type(exc).__name__)
        for closer in (self.reader.stop(),):
            await closer
        if self._restore_consumer is not None:
            await self._restore_consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        self.store.close()

    def name(self, topic: str) -> str:
        """Catalog name of a concrete topic (strip the namespace prefix)."""
        return topic[len(self._prefix) :] if topic.startswith(self._prefix) else topic

    # ---- rebalance ---------------------------------------------------------------------

    async def assign(self, partitions: Iterable[int]) -> None:
        """Own exactly ``partitions``: restore new ones from the changelog, drop the rest."""
        wanted = set(partitions)
        async with self.lock:
            self.ready.clear()
            await self._settle_quietly()
            self.stats["rebalances"] += 1
            for p in list(self.processor.states):
                if p not in wanted:
                    self._drop(p)
            # stop reading the scores of partitions that left; a returning one is re-read
            self.reader.set_partitions(sorted(self.processor.states), start_at={})
            _hold(self.reader.consumer)
            new = sorted(wanted - set(self.processor.states))
            t0 = time.perf_counter()
            for p in new:
                await self._restore(p)
            if new:
                self.stats["restores"] += len(new)
                self.stats["last_restore_seconds"] = time.perf_counter() - t0
                log.info("restored %d partitions in %.2fs", len(new), time.perf_counter() - t0)
            self.ready.set()

    async def revoke(self) -> None:
        """A rebalance started: wait for the batch in flight to commit, then hold batches
        until :meth:`assign` (so a partition is never written by two workers at once)."""
        async with self.lock:
            self.ready.clear()
            await self._settle_quietly()

    def positions(self) -> Positions:
        """Where the consumer must read next for each owned partition (committed state)."""
        return {
            p: {t: state.offsets.get(t, 0) for t in INPUT_TOPICS}
            for p, state in self.processor.states.items()
        }

    async def recover(self) -> Positions:
        """Throw away in-memory state after a failed batch and restore every owned partition
        from what was committed; returns the positions the consumer must seek back to."""
        async with self.lock:
            self.ready.clear()
            await self._settle_quietly()
            parts = sorted(self.processor.states)
            for p in parts:
                self._drop(p)
            self.processor.outputs.clear()
            self.processor.touched.clear()
            old, self._producer = self._producer, None
            if old is not None:
                try:  # an open transaction is aborted by the new producer's init anyway
                    await asyncio.wait_for(old.stop(), timeout=10)
                except Exception as exc:
                    log.info("closing the failed producer: %s", type(exc).__name__)
            self._producer = await self._new_producer()
            for p in parts:
                await self._restore(p)
            self.broken = None
            self.stats["recoveries"] += 1
            self.ready.set()
            log.warning("recovered %d partitions from the committed state", len(parts))
            return self.positions()

    def _drop(self, p: int) -> None:
        self.processor.states.pop(p, None)
        self.processor.scores.pop(p, None)
        self.view.figures.pop(p, None)
        self.view.scored.pop(p, None)

    async def _restore(self, p: int) -> None:
        consumer = self._restore_consumer
        assert consumer is not None
        state = PartitionState(p, dedup_max_entries=self.settings.dedup_max_entries)
        # the local copy (if any) covers the changelog up to `start`; the topic the rest
        local, start = self.store.load(p)
        for key, value in local:
            apply_record(state, key, value)
        tp = TopicPartition(self.kafka.topic(STATE_TOPIC.name), p)
        consumer.assign([tp])
        consumer.seek(tp, start)
        async for _, records in read_to_end(consumer, [tp]):
            rows = [(r.key, r.value) for r in records]
            for key, value in rows:
                apply_record(state, key, value)
            # the local copy grows chunk by chunk; each save records how far it reaches
            self.store.save(p, rows, records[-1].offset + 1)
        _hold(consumer)
        finish_restore(state)
        self.processor.states[p] = state
        self.processor.scores[p] = ScoreTable(self.settings.score_history)
        # rebuild the score table silently up to the checkpoint; later records are counted
        ck = state.offsets.get(SCORES, 0)
        owned = [q for q in self.processor.states if q != p]
        self.reader.set_partitions([*owned, p], start_at={p: 0})
        if p == FX_ACCOUNTING_PARTITION:
            self.reader.rewind_fx(state.offsets.get(FX, 0))
        async for stp, records in self.reader.catch_up([p], stop_at={p: ck}):
            self._reference_records(stp, records, counted=False)
        # FX rates read since the checkpoint: restate/apply now that the scores are rebuilt
        self.processor.restored(p)
        _hold(self.reader.consumer)
        self.view.figures[p] = state.counters.snapshot()
        self.view.scored[p] = dict(self.processor.scores[p].scored)

    async def count_records(
        self, ranges: dict[TopicPartition, tuple[int, int]], *, timeout: float = 5.0
    ) -> dict[TopicPartition, int] | None:
        """Records in [start, end) per partition, as the worker reads them: transaction
        markers (and, reading committed, aborted records) are not records. None if a batch or
        a rebalance holds the engine (the caller keeps its estimate) or the read timed out."""
        consumer = self._restore_consumer
        if consumer is None or self.lock.locked() or not ranges:
            return None
        async with self.lock:  # the restore consumer is otherwise used by restores only
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
                _hold(consumer)
            return counts

    # ---- processing --------------------------------------------------------------------

    def _record(self, r: Any) -> Record:
        return Record(
            topic=self.name(r.topic),
            partition=r.partition,
            offset=r.offset,
            key=r.key,
            value=r.value,
            headers=tuple(r.headers or ()),
            timestamp_ms=r.timestamp,
        )

    async def _read_reference(self, partitions: Iterable[int]) -> None:
        _release(self.reader.consumer)
        try:
            async for tp, records in self.reader.catch_up(partitions):
                self._reference_records(tp, records, counted=True)
        finally:
            _hold(self.reader.consumer)

    def _reference_records(self, tp: TopicPartition, records: list[Any], *, counted: bool) -> None:
        """Records of one reference partition to the processor: FX, acknowledgements, or
        scores (`counted`: in the flow figures; False while a restore rebuilds the table)."""
        for r in records:
            rec = self._record(r)
            if tp == self.reader.fx_tp:
                self.processor.process_fx(rec)
            elif tp.topic == self.reader.ack_topic:
                self.processor.process_ack(rec)
            else:
                self.processor.process_score(rec, counted=counted)

    async def process_batch(self, records: Sequence[Record]) -> None:
        """Apply a batch of event records and start its commit.

        The batch's transaction commits while the next batch is applied (the two never
        overlap on the wire: a transaction starts only after the previous one committed).
        If a commit fails, the state is marked broken and the failure is raised by the next
        call (or by the idle :meth:`tick`); the caller then recovers. Records of partitions
        this worker does not own (a rebalance raced the batch) are skipped.
        """
        handed = time.perf_counter()
        while True:
            # wait outside the lock: assign() needs the lock to become ready
            await self.ready.wait()
            async with self.lock:
                if self.ready.is_set():
                    self.on_stage("lock_wait", time.perf_counter() - handed)
                    await self._process_locked(records)
                    return

    async def _settle(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def _settle_or_break(self) -> None:
        try:
            await self._settle()
        except BaseException as exc:
            self._mark_broken(f"commit failed: {type(exc).__name__}")
            raise

    async def _settle_quietly(self) -> None:
        """Settle inside a rebalance or recovery: a failed commit only marks the state
        broken (the batch loop or the idle timer recovers it), it must not raise there."""
        try:
            await self._settle_or_break()
        except Exception as exc:
            log.warning("the last batch did not commit: %s", type(exc).__name__)

    def _mark_broken(self, why: str) -> None:
        # state, outputs and offsets in memory are now ahead of what was committed
        if not self.broken:
            self.broken = why
            self.stats["failures"] += 1

    async def _process_locked(self, records: Sequence[Record]) -> None:
        if self.broken:
            raise NeedsRecovery(self.broken)
        try:
            await self._apply_and_commit(records)
        except BaseException as exc:
            self._mark_broken(f"batch failed: {type(exc).__name__}")
            raise

    async def _apply_and_commit(self, records: Sequence[Record]) -> None:
        owned = self.processor.states
        t0 = time.perf_counter()
        self.last_batch = time.monotonic()
        # every owned partition (as the idle tick does): the tick then has nothing to do
        # while batches flow, and never holds a batch up with a reference read of its own
        await self._read_reference(sorted(owned))
        t1 = time.perf_counter()
        process = self.processor.process
        for i, rec in enumerate(records):
            if rec.partition in owned:
                process(rec)
            else:
                # not ours any more (a rebalance raced the batch): another worker has it
                log.debug("skipping record of unowned partition %s", rec.partition)
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                # let the previous batch's transaction (and /metrics) progress meanwhile
                await asyncio.sleep(0)
        commit = self._prepare(records, t0)
        t2 = time.perf_counter()
        await self._settle()  # the previous transaction must end before this one begins
        t3 = time.perf_counter()
        self._inflight = asyncio.ensure_future(self._write(commit))
        # cumulative seconds per stage: where a batch's time goes (shown on /state);
        # "commit" is only the wait for the previous transaction, the rest overlaps
        timing = self.stats.setdefault("seconds", {"reference": 0.0, "apply": 0.0, "commit": 0.0})
        timing["reference"] += t1 - t0
        timing["apply"] += t2 - t1
        timing["commit"] += t3 - t2
        self.on_stage("reference", t1 - t0)
        self.on_stage("apply", t2 - t1)
        self.on_stage("commit_wait", t3 - t2)

    async def tick(self) -> None:
        """Idle work: settle the last commit, read the reference topics for all owned
        partitions and commit if anything changed."""
        if self.lock.locked():
            return  # a batch is running: it reads the reference topics itself
        if time.monotonic() - self.last_batch < self.settings.idle_commit_ms / 1000:
            return  # batches are flowing and read the reference topics themselves
        async with self.lock:
            if self.broken or not self.ready.is_set():
                return
            await self._settle_or_break()
            if not self.processor.states:
                return
            try:
                await self._read_reference(sorted(self.processor.states))
                if self.processor.touched:
                    await self._write(self._prepare((), time.perf_counter()))
            except BaseException as exc:
                self._mark_broken(f"idle commit failed: {type(exc).__name__}")
                raise

    def _group_offsets(self, partitions: Iterable[int]) -> dict[TopicPartition, Any]:
        states = self.processor.states
        return {
            TopicPartition(self.kafka.topic(t), p): OffsetAndMetadata(states[p].offsets[t], "")
            for p in partitions
            for t in INPUT_TOPICS
            if t in states[p].offsets
        }

    def _prepare(self, records: Sequence[Record], started: float) -> _Commit:
        """Take what the batch changed out of the state (synchronously, before the next
        batch can change it again)."""
        proc = self.processor
        proc.finish_batch()
        touched = sorted(proc.touched)
        proc.touched.clear()
        return _Commit(
            outputs=proc.take_outputs(),
            changelog={p: dirty_records(proc.states[p]) for p in touched},
            offsets=self._group_offsets(touched),
            figures={p: proc.states[p].counters.snapshot() for p in touched},
            scored={p: dict(proc.scores[p].scored) for p in touched},
            records=records,
            started=started,
        )

    async def _write(self, c: _Commit) -> None:
        """Write one prepared batch in one transaction; then publish its figures.

        Bounded by ``commit_timeout_seconds``: a producer whose sender died (aiokafka ends it
        on e.g. OutOfOrderSequenceNumber after a refused record) would wait forever.
        """
        last_offsets: dict[int, Any] = {}
        if c.outputs or c.changelog:
            began = time.perf_counter()
            last_offsets = await asyncio.wait_for(
                self._transaction(c), timeout=self.settings.commit_timeout_seconds
            )
            if c.records:
                self.on_stage("transaction", time.perf_counter() - began)
            # committed: the local copy may now include these records
            for p, offset in last_offsets.items():
                self.store.save(p, c.changelog[p], offset + 1)
        self.view.figures.update(c.figures)
        self.view.scored.update(c.scored)
        self.stats["batches"] += 1
        for cb in self.on_commit:
            cb(c.records, c.started)

    async def _transaction(self, c: _Commit) -> dict[int, int]:
        """Send everything and commit; returns the last changelog offset per partition.

        On any failure nothing is aborted here: the caller recovers with a new producer,
        whose initialisation (same transactional id) aborts what this one left open.
        """
        producer = self._producer
        assert producer is not None
        state_topic = self.kafka.topic(STATE_TOPIC.name)
        if self.exactly_once:
            await producer.begin_transaction()
        sent: list[asyncio.Future[Any]] = []
        last: dict[int, asyncio.Future[Any]] = {}
        for out in c.outputs:
            sent.append(
                await producer.send(
                    self.kafka.topic(out.topic),
                    out.value,
                    key=out.key,
                    partition=out.partition,
                    timestamp_ms=out.timestamp_ms,
                    headers=list(out.headers) or None,
                )
            )
        counts: dict[int, int] = {}
        for p, rows in c.changelog.items():
            if rows:
                last[p], counts[p] = await _send_rows(
                    producer, state_topic, p, rows, sent, transactional=self.exactly_once
                )
        if c.offsets and self.exactly_once:
            # the group's offsets commit atomically with the state they lead to
            await producer.send_offsets_to_transaction(c.offsets, self.group_id)
        # a refused record fails its own future; raise it now rather than commit around it
        results = await asyncio.gather(*sent, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if self.exactly_once:
            await producer.commit_transaction()
        if c.offsets and not self.exactly_once and self.commit_offsets is not None:
            await self.commit_offsets(c.offsets)
        # a batch's future carries its first offset; its records follow one by one
        return {p: fut.result().offset + counts[p] - 1 for p, fut in last.items()}
