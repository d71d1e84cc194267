"""The Kafka side of a worker: restores partition state, feeds batches to the processor and
commits state + outputs in one Kafka transaction, then publishes the committed figures.

Only committed state is exported to Prometheus, so a partition that moves to another worker
continues from exactly the value the old owner last exported (see docs/metrics.md).

The engine composes three parts, each with its own Kafka client: the :class:`Restorer`
(partition state from dfip.state), the :class:`ReferenceSync` (scores, FX and acks caught
up before each batch) and the :class:`Committer` (one transaction per batch). It holds the
lock that orders batches, rebalances, recoveries and queries, and the broken flag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka.errors import ConsumerStoppedError
from aiokafka.structs import TopicPartition

from core.kafka_config import KafkaSettings
from schemas.alerts import load_ruleset
from streams.engine.clients import catalog_name
from streams.engine.committer import Commit, Committer
from streams.engine.heap import HeapFreezer
from streams.engine.hooks import EngineHooks
from streams.engine.reference_sync import ReferenceSync
from streams.engine.restorer import Restorer
from streams.engine.stats import EngineStats
from streams.export.view import CommittedView
from streams.processor import INPUT_TOPICS, Processor, Record
from streams.reference.fx import FxTable
from streams.reference.scores import ScoreTable
from streams.rules import RuleEngine
from streams.settings import WorkerSettings
from streams.state.local import open_store
from streams.state.partition import PartitionState

__all__ = ["YIELD_EVERY", "Engine", "NeedsRecovery", "Positions"]

log = logging.getLogger(__name__)

# per owned partition, per input topic (catalog name): the next offset to read
Positions = dict[int, dict[str, int]]
# records applied between two returns to the event loop while a batch is applied. The
# previous batch's transaction runs in those gaps: each of its steps (sends, the offset
# commit, EndTxn, aiokafka's sender waking up) waits for the next gap. At 128 (~5 ms of
# apply on a quiet machine, 10-20 ms on a busy one) a transaction took 1.5-2 x as long as
# the apply beside it and the next batch waited for it (commit_wait); at 32 it finishes
# within the apply, and a worker that fell behind catches up instead of sliding further
# behind on larger batches (bench/RESULTS.md, issue 18). A yield costs ~20-50 µs.
YIELD_EVERY = 32


class NeedsRecovery(RuntimeError):
    """The in-memory state is ahead of what was committed; recover before the next batch."""


class Engine:
    def __init__(
        self, kafka: KafkaSettings, settings: WorkerSettings, hooks: EngineHooks | None = None
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.hooks = hooks or EngineHooks()
        self.processor = Processor(
            grace_us=settings.grace_seconds * 1_000_000,
            dedup_retention_days=settings.dedup_retention_days,
            max_future_us=settings.max_future_seconds * 1_000_000,
            restate_horizon_us=settings.restate_horizon_days * 86_400 * 1_000_000,
            fx=FxTable(settings.fx_max_age_days),
            rules=RuleEngine(load_ruleset(settings.rules_file)) if settings.rules else None,
        )
        self.view = CommittedView()
        self.store = open_store(settings.store, settings.data_dir)
        self.lock = asyncio.Lock()
        self.ready = asyncio.Event()
        self._prefix = kafka.topic_prefix
        self.exactly_once = settings.processing_guarantee == "exactly_once"
        self.stats = EngineStats()
        # the collector scans only what the current batch made (streams/engine/heap.py)
        self.heap = HeapFreezer(
            enabled=settings.gc_freeze, full_every_seconds=settings.gc_full_every_seconds
        )
        # the consumer group whose offsets commit with each batch; also the Faust app id
        self.group_id = f"{kafka.topic_prefix}{settings.app_id}"
        self.references = ReferenceSync(kafka, self.processor, acks=settings.rules)
        self.restorer = Restorer(
            kafka,
            settings,
            self.store,
            self.processor,
            self.references,
            read_committed=self.exactly_once,
        )
        self.committer = Committer(
            kafka,
            settings,
            self.store,
            group_id=self.group_id,
            exactly_once=self.exactly_once,
            on_stage=self.hooks.on_stage,
            commit_offsets=self.hooks.commit_offsets,
            on_committed=self._published,
        )
        # why the in-memory state can no longer be trusted (a batch failed half-way)
        self.broken: str | None = None
        # the partitions the group gave this worker. Kept apart from the restored states: a
        # recovery drops those first, and one that failed half-way (the broker still away)
        # must restore the same partitions on its next attempt, not the none it left
        self.owned: set[int] = set()
        # time.monotonic() when the last batch started (the idle tick stays out meanwhile)
        self.last_batch = 0.0

    # ---- what the worker reads -----------------------------------------------------------

    @property
    def partitions(self) -> list[int]:
        """The partitions owned (restored, or being restored), in order."""
        return self.processor.partitions

    @property
    def busy(self) -> bool:
        """A batch, rebalance, recovery or query holds the engine."""
        return self.lock.locked()

    @property
    def is_ready(self) -> bool:
        """Assigned partitions are restored and batches may be applied."""
        return self.ready.is_set()

    def owns(self, partition: int) -> bool:
        """The partition's state is held here (restored, or being restored)."""
        return self.processor.owns(partition)

    @property
    def serving(self) -> bool:
        """Ready and not broken: the held state is what was committed (or is committing)."""
        return self.ready.is_set() and not self.broken

    async def settle(self) -> None:
        """Wait (holding the lock) until the batch applied last has committed, so what is
        read next is committed state; a failed commit marks the state broken and raises."""
        await self._settle_or_break()

    def partition_view(self, partition: int) -> tuple[PartitionState, ScoreTable]:
        """One owned partition's state and score table, to be read under the lock."""
        return self.processor.states[partition], self.processor.scores[partition]

    def describe(self) -> dict[str, Any]:
        """Operational summary of the owned partitions (no identifiers, only sizes)."""
        proc = self.processor
        return {
            "partitions": {
                str(p): {
                    "offsets": state.offsets,
                    "watermarks_us": state.watermarks,
                    "active_loans": len(state.loans),
                    "dedup_ids": {t: len(m) for t, m in sorted(state.dedup.items())},
                    "windows": len(state.windows),
                    "scored_enterprises": len(proc.scores[p]) if p in proc.scores else 0,
                }
                for p, state in sorted(proc.states.items())
            },
            "fx_rates": len(proc.fx),
            "stats": self.stats.as_dict(),
        }

    def offsets(self) -> dict[int, Mapping[str, int]]:
        """Per owned partition, the next input offset per topic its state records (a live
        view: what a batch applies later shows in it)."""
        return {p: state.offsets for p, state in self.processor.states.items()}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """End offsets of any partitions now (the worker's lag)."""
        return await self.references.end_offsets(tps)

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.committer.start()
        await self.restorer.start()
        await self.references.start()

    async def stop(self) -> None:
        try:
            await self.committer.settle()
        except Exception as exc:  # aborted: the next owner redoes it from the checkpoint
            log.warning("last batch did not commit: %s", type(exc).__name__)
        await self.references.stop()
        await self.restorer.stop()
        await self.committer.stop()
        self.store.close()

    def name(self, topic: str) -> str:
        """Catalog name of a concrete topic (strip the namespace prefix)."""
        return catalog_name(self._prefix, topic)

    # ---- rebalance ---------------------------------------------------------------------

    async def assign(self, partitions: Iterable[int]) -> None:
        """Own exactly ``partitions``: restore new ones from the changelog, drop the rest."""
        wanted = set(partitions)
        async with self.lock:
            self.ready.clear()
            await self._settle_quietly()
            self.stats.rebalances += 1
            self.owned = wanted
            if self.broken:
                return  # the recovery (batch loop or idle timer) restores all of `owned`
            for p in self.processor.partitions:
                if p not in wanted:
                    self._drop(p)
            # stop reading the scores of partitions that left; a returning one is re-read
            self.references.follow(self.processor.partitions)
            new = sorted(wanted - set(self.processor.partitions))
            t0 = time.perf_counter()
            try:
                for p in new:
                    await self._restore(p)
            except ConsumerStoppedError:
                raise  # the worker is stopping: the next owner restores these
            except Exception as exc:  # e.g. the broker went away mid-restore
                # not ready, and broken: the recovery restores every owned partition
                self._mark_broken(f"restore failed: {type(exc).__name__}")
                log.warning("restore failed (%s); recovering", type(exc).__name__)
                return
            if new:
                self.stats.restores += len(new)
                self.stats.last_restore_seconds = time.perf_counter() - t0
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
            parts = sorted(self.owned)
            for p in self.processor.partitions:
                self._drop(p)
            self.processor.discard_batch()
            await self.committer.renew()
            for p in parts:
                await self._restore(p)
            self.broken = None
            self.stats.recoveries += 1
            # what the failed batches left (frozen batch by batch) is unreferenced now; the
            # state holds no cycles, but a full collection here bounds anything that did
            # (a broker that flaps would otherwise pile it up until the periodic one)
            self.heap.reset()
            self.ready.set()
            log.warning("recovered %d partitions from the committed state", len(parts))
            return self.positions()

    def _drop(self, p: int) -> None:
        self.processor.drop_partition(p)
        self.view.forget(p)

    async def _restore(self, p: int) -> None:
        state = await self.restorer.restore(p)
        self.view.publish(
            {p: state.counters.snapshot()}, {p: dict(self.processor.scores[p].scored)}
        )

    async def count_records(
        self, ranges: dict[TopicPartition, tuple[int, int]], *, timeout: float = 5.0
    ) -> dict[TopicPartition, int] | None:
        """Records in [start, end) per partition, as the worker reads them: transaction
        markers (and, reading committed, aborted records) are not records. None if a batch or
        a rebalance holds the engine (the caller keeps its estimate) or the read timed out."""
        if not self.restorer.started or self.lock.locked() or not ranges:
            return None
        async with self.lock:  # the restore consumer is otherwise used by restores only
            return await self.restorer.count_records(ranges, timeout=timeout)

    # ---- processing --------------------------------------------------------------------

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
                    self.hooks.on_stage("lock_wait", time.perf_counter() - handed)
                    await self._process_locked(records)
                    return

    async def _settle_or_break(self) -> None:
        """Wait for the commit in flight; a failure marks the state broken and is raised."""
        try:
            await self.committer.settle()
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
            self.stats.failures += 1

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
        on_stage = self.hooks.on_stage
        t0 = time.perf_counter()
        self.last_batch = time.monotonic()
        # every owned partition (as the idle tick does): the tick then has nothing to do
        # while batches flow, and never holds a batch up with a reference read of its own
        await self.references.catch_up(sorted(owned))
        t1 = time.perf_counter()
        # records of partitions not ours any more (a rebalance raced the batch) are skipped
        process_batch = self.processor.process_batch
        for start in range(0, len(records), YIELD_EVERY):
            process_batch(records[start : start + YIELD_EVERY])
            if start + YIELD_EVERY <= len(records):  # a full chunk
                # let the previous batch's transaction (and /metrics) progress meanwhile
                await asyncio.sleep(0)
        commit = self.committer.prepare(self.processor, records, t0)
        t2 = time.perf_counter()
        await self.committer.settle()  # the previous transaction must end before this one
        t3 = time.perf_counter()
        self.committer.submit(commit)
        self.heap.after_batch()
        # cumulative seconds per stage: where a batch's time goes (shown on /state);
        # "commit" is only the wait for the previous transaction, the rest overlaps
        timing = self.stats.stage_seconds()
        timing.reference += t1 - t0
        timing.apply += t2 - t1
        timing.commit += t3 - t2
        on_stage("reference", t1 - t0)
        on_stage("apply", t2 - t1)
        on_stage("commit_wait", t3 - t2)

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
                await self.references.catch_up(self.processor.partitions)
                if self.processor.has_changes():
                    prepared = self.committer.prepare(self.processor, (), time.perf_counter())
                    await self.committer.write(prepared)
            except BaseException as exc:
                self._mark_broken(f"idle commit failed: {type(exc).__name__}")
                raise

    def _published(self, c: Commit) -> None:
        """A commit is durable: show its figures and tell the worker."""
        self.view.publish(c.figures, c.scored)
        self.stats.batches += 1
        self.hooks.on_commit(c.records, c.started)
