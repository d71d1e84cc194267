"""Every use of Faust's and aiokafka's private API, in one place.

The record path (a fetch handed to the engine as one batch, read-committed fetching with our
own wait, offsets committed through the consumer's thread) needs a few internals that the
public API does not offer. They are all here, so that an upgrade has one module to read, and
`check_versions` refuses to start on versions this was not written for (a minor release of
either could change them, and the only path records travel would break without saying why).
docs/architecture.md says why Faust stays the shell and this is the seam.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aiokafka.consumer.fetcher import Fetcher, FetchResult, PartitionRecords
from aiokafka.errors import ConsumerStoppedError
from aiokafka.producer.message_accumulator import BatchBuilder
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustAIOKafkaConsumer

from core.errors import DfipError
from core.kafka_config import KafkaSettings
from streams.processor import INPUT_TOPICS, Record
from streams.settings import WorkerSettings

__all__ = [
    "WRITTEN_FOR",
    "BatchConsumer",
    "BatchSink",
    "assignment_distribution",
    "attach_sink",
    "batch_cap",
    "check_versions",
    "commit_offsets",
    "is_behind",
    "topic_partition",
    "tune_consumer",
]

#: Distribution → the release series (major.minor) whose internals this module uses.
WRITTEN_FOR: dict[str, str] = {"faust-streaming": "0.15", "aiokafka": "0.14"}
#: Set to 1 to start on other releases anyway (after checking this module against them).
ALLOW_ENV = "DFIP_WORKER_ALLOW_UNTESTED_CLIENTS"

# the private members used below; checked at start-up with the versions
_NEEDED: tuple[tuple[type, str], ...] = (
    (FaustAIOKafkaConsumer, "_drain_messages"),
    (FaustAIOKafkaConsumer, "_wait_next_records"),
    (FaustAIOKafkaConsumer, "_new_consumer_thread"),
    (FaustAIOKafkaConsumer, "_new_topicpartition"),
    (AIOKafkaConsumerThread, "_create_worker_consumer"),
    (AIOKafkaConsumerThread, "commit"),
    (AIOKafkaConsumerThread, "_consumer"),
    (AIOKafkaConsumerThread, "_fetch_records"),
    (PartitionRecords, "_consumer_record"),
    (Fetcher, "_create_fetch_waiter"),
    (Fetcher, "fetched_records"),
    (FetchResult, "getall"),
    # streams/engine/committer.py RecordBatch: fills the C builder itself, builds zstd level 1
    (BatchBuilder, "_build"),
)
# instance attributes used (set in __init__, so not checkable on the class): a Fetcher's
# ``_records`` (tp → FetchResult | FetchError), ``_subscriptions`` and ``_closed``, a
# FetchResult's ``_partition_records`` and ``_assignment``;
# a BatchBuilder's ``_builder``, ``_relative_offset`` and ``_buffer`` (committer.RecordBatch,
# covered by tests/unit/streams/test_changelog_zstd_batch.py)


def check_versions(installed: dict[str, str] | None = None) -> None:
    """Refuse, in one line, to run on Faust/aiokafka releases this module was not written for
    (unless DFIP_WORKER_ALLOW_UNTESTED_CLIENTS=1), or whose private members are gone."""
    if installed is None:
        installed = {name: importlib.metadata.version(name) for name in WRITTEN_FOR}
    allowed = os.environ.get(ALLOW_ENV) == "1"
    for name, series in WRITTEN_FOR.items():
        found = installed[name]
        if not (found == series or found.startswith(series + ".")) and not allowed:
            raise DfipError(
                f"{name} {found} is installed; the worker's record path "
                f"(streams/faust_compat.py) was written for {name} {series}.x",
                hint=f"install the versions in constraints.txt, or set {ALLOW_ENV}=1 "
                "after checking streams/faust_compat.py against it",
                exit_code=2,
            )
    missing = [f"{kind.__name__}.{attr}" for kind, attr in _NEEDED if not hasattr(kind, attr)]
    if missing:
        raise DfipError(
            f"the installed Faust/aiokafka lack {', '.join(missing)} "
            "(used by streams/faust_compat.py)",
            hint="install the versions in constraints.txt",
            exit_code=2,
        )


def topic_partition(consumer: Any, topic: str, partition: int) -> Any:
    """The TopicPartition object Faust's consumer seeks with."""
    return consumer._new_topicpartition(topic, partition)


async def commit_offsets(consumer: Any, offsets: dict[Any, int]) -> None:
    """Commit group offsets through the consumer's own thread (aiokafka is not thread-safe)."""
    await consumer._thread.commit(offsets)


def assignment_distribution(app: Any) -> Any:
    """The group's assignment as Faust's assignor spread it to every member (topic →
    partition → owner URL), for forwarding queries to a partition's owner."""
    return app.assignor.external_topics_metadata()


def tune_consumer(consumer: Any, settings: WorkerSettings) -> None:
    """Settings of the group consumer that Faust does not expose (read when it starts).

    - read_committed: Faust chooses it only in its own exactly-once mode.
    - fetch_max_wait_ms: Faust fixes 1,500 ms. Reading committed records, a fetch parked at
      the broker was seen waiting out that whole time while records arrived: the worker sat
      idle for 1.0-1.5 s and then took 2,000-record batches seconds old (issue 18).
    """
    consumer._isolation_level = "read_committed"
    consumer._fetch_max_wait_ms = settings.fetch_max_wait_ms


def batch_cap(oldest_ms: int | None, now_ms: float, settings: WorkerSettings) -> int:
    """Records the next fetch may return, from the age of the oldest record just fetched.

    Caught up (that record younger than ``batch_behind_ms``): ``batch_size``, so each
    transaction stays small and its figures show soon. Behind: ``batch_size_behind``, so each
    transaction's fixed cost (broker round trips, the reference read before the batch)
    spreads over more records and the backlog drains sooner. Records without a timestamp
    leave the cap as caught up.
    """
    small = settings.batch_size
    if not is_behind(oldest_ms, now_ms, settings):
        return small
    return max(small, settings.batch_size_behind)


def is_behind(oldest_ms: int | None, now_ms: float, settings: WorkerSettings) -> bool:
    """Whether the oldest record just fetched is older than ``batch_behind_ms`` (records
    without a timestamp count as caught up)."""
    return oldest_ms is not None and now_ms - oldest_ms > settings.batch_behind_ms


class BatchSink(Protocol):
    """What the batch consumer needs of the worker (streams.app.Worker)."""

    kafka: KafkaSettings
    settings: WorkerSettings

    def observe_stage(self, stage: str, seconds: float) -> None: ...

    async def handle_batch(self, records: list[Record]) -> None: ...


def attach_sink(app: Any, sink: BatchSink) -> None:
    """Tell the Faust app where its batches go: Faust builds the consumer and its thread
    itself, so they find the worker through the app."""
    app.dfip_sink = sink


def _sink(app: Any) -> BatchSink:
    sink: BatchSink = app.dfip_sink
    return sink


RecordMaker = Callable[[Any, Any], Any]


def record_maker(topic: str, partition: int) -> RecordMaker:
    """What a fetch result of (the input topic ``topic`` by catalog name, ``partition``) builds
    per record in place of aiokafka's ``ConsumerRecord``: our :class:`Record`, straight from
    aiokafka's parsed record (``PartitionRecords._consumer_record``'s arguments)."""

    def make(tp: Any, r: Any) -> Record:
        h = r.headers
        return Record(
            topic, partition, r.offset, r.key, r.value, tuple(h) if h else (), r.timestamp
        )

    return make


class _Ahead:
    """Records of one partition read ahead, and the consumer position right after them."""

    __slots__ = ("end", "records")

    def __init__(self, records: list[Record], end: int) -> None:
        self.records = records
        self.end = end


class InputRecords(OrderedDict[Any, Any]):
    """A fetcher's per-partition results whose input-topic records come out as our
    :class:`Record` objects, read ahead of the batch loop.

    aiokafka turns each parsed record into a ``ConsumerRecord`` (an 11-field dataclass, with
    key and value sizes and a headers tuple) and the batch loop then built a :class:`Record`
    from it: two objects per record, ~5-7 % of the worker's CPU in py-spy's GIL samples on
    the bench feed (issue 18). Installed as the worker consumer's ``Fetcher._records``, this
    dict hands each new ``FetchResult`` of an input topic a record maker (an instance
    attribute shadowing ``PartitionRecords._consumer_record``, which its record iterator
    looks up per record), so only one object is built. Offsets, aborted transactions,
    control batches and positions stay aiokafka's own. Results of other topics are left
    alone (their records stay ``ConsumerRecord``).

    Read-ahead (``read_ahead`` > 0): aiokafka fetches a partition again only once its last
    result has been drained, and (one broker, one fetch in flight per broker) sends no fetch
    at all while any result younger than its prefetch backoff waits. So the records that
    arrived while a batch ran stayed at the broker until the next drain, and what that drain
    fetched waited in the buffer for the whole of the next batch: a record was ~1.7 cycles
    old when its batch started (bench/RESULTS.md, issue 18). Here an input-topic result is
    drained the moment it arrives (in the consumer's thread, as aiokafka would drain it:
    the position moves past it), so the fetcher asks for more at once, and its records wait
    in :attr:`ahead` for the next batch. Up to ``read_ahead`` records are held; beyond that a
    result is stored as aiokafka stores it, and fetching that partition waits as before.
    A seek (recovery, rebalance) moves the position away from where held records end, which
    marks them stale: they are dropped, never handed out after a rewind.
    """

    def __init__(
        self,
        inputs: Mapping[str, str],
        items: Mapping[Any, Any] | None = None,
        *,
        read_ahead: int = 0,
    ) -> None:
        super().__init__()
        self._inputs = inputs  # concrete topic → catalog name
        self.read_ahead = read_ahead
        self.ahead: dict[Any, _Ahead] = {}
        self.ahead_count = 0
        for tp, result in (items or {}).items():
            self[tp] = result

    def __setitem__(self, tp: Any, result: Any) -> None:
        if type(result) is FetchResult:
            topic = self._inputs.get(tp.topic)
            records = result._partition_records
            if topic is not None and records is not None:
                records._consumer_record = record_maker(topic, tp.partition)
                if self.ahead_count < self.read_ahead and result._assignment is not None:
                    self._read_ahead(tp, result, records.next_fetch_offset)
                    return
        super().__setitem__(tp, result)

    def _read_ahead(self, tp: Any, result: Any, start: int) -> None:
        got: list[Record] = result.getall()  # moves the position past them (or, if the
        # partition was paused or moved meanwhile, returns nothing and leaves it)
        end: int = result._assignment.state_value(tp).position
        held = self.ahead.get(tp)
        if held is not None and held.end != start:
            self._drop(tp)  # a seek moved the partition since they were read: stale
            held = None
        if not got:
            return
        if held is None:
            self.ahead[tp] = _Ahead(got, end)
        else:
            held.records += got
            held.end = end
        self.ahead_count += len(got)

    def _drop(self, tp: Any) -> None:
        held = self.ahead.pop(tp, None)
        if held is not None:
            self.ahead_count -= len(held.records)

    def clear(self) -> None:
        # aiokafka clears its results when the assignment changes
        self.ahead.clear()
        self.ahead_count = 0
        super().clear()

    def take(
        self, partitions: Any, max_records: int | None, assignment: Any
    ) -> dict[Any, list[Record]]:
        """Held records of ``partitions`` (all when empty), at most ``max_records``, oldest
        first per partition. Those of a partition no longer assigned, or whose position is
        not where they end (a seek since), are dropped; a paused partition's wait."""
        out: dict[Any, list[Record]] = {}
        room = max_records
        for tp in list(self.ahead):
            if room is not None and room <= 0:
                break
            if partitions and tp not in partitions:
                continue
            state = assignment.state_value(tp) if assignment is not None else None
            held = self.ahead[tp]
            if state is None or not state.has_valid_position or state.position != held.end:
                self._drop(tp)
                continue
            if state.paused:
                continue
            records = held.records
            if room is not None and len(records) > room:
                out[tp], held.records = records[:room], records[room:]
                self.ahead_count -= room
                break
            out[tp] = records
            del self.ahead[tp]
            self.ahead_count -= len(records)
            if room is not None:
                room -= len(records)
        return out


def adopt_fetcher(fetcher: Fetcher, inputs: Mapping[str, str], read_ahead: int = 0) -> None:
    """Install :class:`InputRecords` as the fetcher's results (once; keeps what it holds)."""
    if type(fetcher._records) is not InputRecords:
        fetcher._records = InputRecords(inputs, fetcher._records, read_ahead=read_ahead)


class _ReadCommittedThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        tune_consumer(consumer, _sink(self.app).settings)
        return consumer

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        # the fetcher exists once the consumer started; this runs in the consumer's thread,
        # as does the fetch routine that fills `_records`
        fetcher = consumer._fetcher
        if fetcher is not None and type(fetcher._records) is not InputRecords:
            worker = _sink(self.app)
            adopt_fetcher(
                fetcher,
                {worker.kafka.topic(t): t for t in INPUT_TOPICS},
                worker.settings.read_ahead_records,
            )
        held = fetcher._records if fetcher is not None else None
        if type(held) is not InputRecords or not held.read_ahead:
            return await super()._fetch_records(
                consumer, active_partitions, timeout=timeout, max_records=max_records
            )
        return await self._fetch_ahead(consumer, held, active_partitions, timeout, max_records)

    async def _fetch_ahead(
        self,
        consumer: Any,
        held: InputRecords,
        active_partitions: Any,
        timeout: float | None,
        max_records: int | None,
    ) -> dict[Any, list[Any]]:
        """Faust's `_fetch_records` with the records read ahead first: what they leave of
        ``max_records`` is filled from aiokafka's results; with neither, wait (at most
        ``timeout``) for the fetch routine to bring some."""
        fetcher = consumer._fetcher
        subscriptions = fetcher._subscriptions
        deadline = time.monotonic() + (timeout or 0)
        with subscriptions.fetch_context():
            while True:
                if not self.consumer.flow_active:
                    return {}
                if consumer._closed or fetcher._closed:
                    raise ConsumerStoppedError()
                if subscriptions.reassignment_in_progress:
                    # aiokafka waits for the new assignment (and clears what it held)
                    await subscriptions.wait_for_assignment()
                    continue
                out = held.take(
                    active_partitions, max_records, subscriptions.subscription.assignment
                )
                taken = sum(map(len, out.values()))
                if max_records is None or taken < max_records:
                    more = await fetcher.fetched_records(
                        active_partitions,
                        timeout=0,
                        max_records=None if max_records is None else max_records - taken,
                    )
                    for tp, records in more.items():
                        out[tp] = out[tp] + records if tp in out else records
                if out:
                    return out
                left = deadline - time.monotonic()
                if left <= 0:
                    return {}
                waiter = fetcher._create_fetch_waiter()
                done, _ = await asyncio.wait([waiter], timeout=left)
                if not done:
                    waiter.cancel()
                elif waiter.done():
                    waiter.result()  # authorization errors are raised through it


def batch_records(fetched: Mapping[Any, list[Any]], inputs: Mapping[str, str]) -> list[Record]:
    """One fetch's input records as one list, in partition order: the fetcher built our
    :class:`Record` objects already (:class:`InputRecords`); a result fetched before it was
    installed holds aiokafka's ``ConsumerRecord`` objects, converted here."""
    records: list[Record] = []
    for tp, batch in fetched.items():
        if not batch:
            continue
        if type(batch[0]) is Record:
            records += batch
            continue
        topic = inputs.get(tp.topic)
        if topic is None:
            continue
        p = tp.partition
        records += [
            Record(topic, p, r.offset, r.key, r.value, r.headers or (), r.timestamp) for r in batch
        ]
    return records


def oldest_stamp(fetched: Mapping[Any, list[Any]]) -> int | None:
    """The oldest record timestamp (ms) of a fetch: each partition's first record is its
    oldest; records without one (None or ≤ 0) are left out."""
    stamps: list[int] = []
    for batch in fetched.values():
        if batch:
            first = batch[0]
            ts = first.timestamp_ms if type(first) is Record else first.timestamp
            if ts is not None and ts > 0:
                stamps.append(ts)
    return min(stamps) if stamps else None


class BatchConsumer(FaustAIOKafkaConsumer):
    """Faust's consumer, delivering each fetched batch to the engine in one call.

    Faust's own loop (`Consumer._drain_messages`) wraps every record in a message object and
    awaits a task per record on its way to a stream; this loop keeps Faust's fetching, flow
    control (nothing is fetched while a rebalance suspends the flow) and shutdown, and hands
    over plain :class:`Record` lists. Offsets are committed by the engine (in the batch's
    transaction), never by Faust, which sees no acknowledged messages.
    """

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in worker
        worker = _sink(self.app)
        settings = worker.settings
        inputs = {worker.kafka.topic(t): t for t in INPUT_TOPICS}
        timeout = settings.batch_within_ms / 1000
        stopped = self._stopped.is_set  # type: ignore[attr-defined]
        fetcher_stopped = fetcher._stopped.is_set
        interval = settings.batch_interval_ms / 1000
        paced_until = 0.0  # caught up: no batch starts before this (perf_counter)
        try:
            while not (stopped() or fetcher_stopped()):
                pause = paced_until - time.perf_counter()
                if pause > 0:
                    # the previous transaction runs meanwhile and records gather: one
                    # commit's fixed cost spreads over more of them
                    await asyncio.sleep(pause)
                began = time.perf_counter()
                fetched, _active = await self._wait_next_records(timeout)
                if not fetched or self.should_stop:
                    continue
                worker.observe_stage("fetch_wait", time.perf_counter() - began)
                records = batch_records(fetched, inputs)
                oldest, now_ms = oldest_stamp(fetched), time.time() * 1000
                behind = is_behind(oldest, now_ms, settings)
                cap = batch_cap(oldest, now_ms, settings)
                # Faust passes the aiokafka consumer's max_poll_records to every fetch:
                # setting it sizes the next batch (adaptive batching, issue 18)
                client = self._thread._consumer  # type: ignore[attr-defined]
                if client is not None:
                    client._max_poll_records = cap
                if records:
                    handed = time.perf_counter()
                    await worker.handle_batch(records)
                    # behind, batches are full and come back to back
                    paced_until = 0.0 if behind else handed + interval
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
