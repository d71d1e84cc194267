"""The Faust application: group membership, rebalance hooks, a timer for idle work and the
HTTP endpoints (/metrics, /health, /ready, /state).

Faust gives group membership, co-partitioned assignment, flow control during rebalances,
fetching and the web server. The records themselves do not travel through Faust's per-event
stream machinery (one task and several futures per event, the bottleneck measured in
bench/RESULTS.md): the consumer hands each fetched batch of raw records straight to the
engine (:class:`BatchConsumer` in streams/faust_compat.py, with every other use of Faust's
and aiokafka's internals), which applies it in plain Python (streams/processor.py) and
commits state, outputs and the group's offsets in one Kafka transaction.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust
from aiokafka.errors import ConsumerStoppedError
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr

from core.kafka_config import KafkaSettings
from schemas import figure_names as fn
from schemas.catalog import USCC_PARTITIONS
from streams.aggregate.windows import configure_zone
from streams.engine import Engine, EngineHooks, NeedsRecovery, Positions
from streams.engine.hooks import Offsets
from streams.export.collector import FiguresCollector, WorkerMetrics
from streams.export.view import CommittedView
from streams.faust_compat import BatchConsumer, attach_sink, commit_offsets, topic_partition
from streams.processor import INPUT_TOPICS, Record
from streams.query.http import advertised_url
from streams.query.http import register as register_query_api
from streams.rules.overdue import OPEN, OVERDUE
from streams.settings import WorkerSettings
from streams.supervisor.gate import ReleaseGate

__all__ = ["Worker", "auth_status", "create_app"]

log = logging.getLogger(__name__)
# dfip_consumer_lag counts the records themselves when at most this many offsets behind
_LAG_EXACT_UP_TO = 1_000
# how long a process given more than its share at start waits for the rebalance its
# siblings' joining brings before it restores what it was given (streams/supervisor/gate.py)
_DEFER_SECONDS = 10.0
# aiohttp refuses a charset inside content_type; the exposition format is UTF-8 by definition
_EXPOSITION = "text/plain; version=0.0.4"


def _credentials(kafka: KafkaSettings) -> Any:
    if kafka.uses_sasl:
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
            mechanism=kafka.sasl_mechanism or "SCRAM-SHA-512",
            ssl_context=kafka.ssl_context(),
        )
    if kafka.uses_ssl:
        return faust.SSLCredentials(kafka.ssl_context())
    return None


def auth_status(header: str, token: SecretStr | None) -> int:
    """200 if ``header`` carries the bearer token; 400 if it is not a well-formed header
    (bytes that are not UTF-8 — aiohttp hands them over as surrogate escapes — or control
    characters); 401 otherwise (also when no token is configured: the endpoints stay closed).
    Never raises: any client can send any bytes."""
    try:
        raw = header.encode("utf-8")
    except UnicodeEncodeError:
        return 400
    if any(b < 0x20 or b == 0x7F for b in raw):
        return 400
    if token is None:
        return 401
    expected = f"Bearer {token.get_secret_value()}".encode()
    return 200 if hmac.compare_digest(raw, expected) else 401


class Worker:
    """A configured Faust app plus the engine behind it (kept together for tests)."""

    def __init__(self, kafka: KafkaSettings, settings: WorkerSettings) -> None:
        self.kafka = kafka
        self.settings = settings
        self.engine = Engine(
            kafka,
            settings,
            EngineHooks(
                on_commit=self._observe,
                on_stage=self.observe_stage,
                commit_offsets=self._commit_offsets,
            ),
        )
        # /metrics = the committed figures (rendered by the collector itself, cached per
        # committed snapshot) + the worker's own health metrics (prometheus_client)
        self.figures = FiguresCollector(self.engine.view)
        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics = WorkerMetrics(self.registry)
        configure_zone(settings.window_zone)  # the calendar of the event-time windows
        self.app = self._build()
        register_query_api(self)  # /v1/enterprises/{uscc} (streams/query/)
        self._started = False
        self._stopping = False  # set when shutdown begins: a restore cut short is expected
        self._recovering = asyncio.Lock()
        # one process of several (streams/supervisor/): hold records until the siblings joined
        self.gate = ReleaseGate()
        self._deferred: asyncio.Task[None] | None = None  # an assignment waiting, see gate
        self._deferred_taking = False
        self._recovery: asyncio.Future[None] | None = None  # one started by a deferred failure
        # dfip_consumer_lag: (position, end) per input partition at the last tick, and the
        # records counted exactly in such a gap
        self._lag_gaps: dict[Any, tuple[int, int]] = {}
        self._lag_counts: dict[Any, tuple[tuple[int, int], int]] = {}

    def _build(self) -> faust.App:
        kafka, settings, engine = self.kafka, self.settings, self.engine
        app = faust.App(
            engine.group_id,  # Faust's app id is the consumer group id
            broker=[f"kafka://{h.strip()}" for h in kafka.bootstrap_servers.split(",")],
            broker_credentials=_credentials(kafka),
            store=settings.store,
            datadir=str(settings.data_dir),
            # DFIP commits its own transactions (streams/engine/); Faust's exactly-once mode
            # (one transactional producer per partition) crashes with ProducerFenced when
            # partitions come back after a rebalance, so Faust itself runs at_least_once.
            processing_guarantee="at_least_once",
            topic_partitions=USCC_PARTITIONS,
            consumer_auto_offset_reset="earliest",
            broker_heartbeat_interval=settings.heartbeat_interval_seconds,
            broker_commit_interval=1.0,
            web_enabled=True,
            web_bind=settings.web_host,
            web_port=settings.web_port,
            canonical_url=advertised_url(settings),  # where other workers forward queries
            web_in_thread=False,
            # Faust's own introspection pages (router, tables, graph, stats) would expose
            # internals without authentication; DFIP serves its own endpoints only.
            web_router_enabled=False,
            web_tables_enabled=False,
            web_graph_enabled=False,
            web_stats_enabled=False,
            web_metrics_enabled=False,
            producer_acks=-1,
            # one fetch is one batch (see BatchConsumer)
            broker_max_poll_records=settings.batch_size,
        )
        # every mode reads committed records only: outputs of aborted batches stay unseen
        app.transport.Consumer = BatchConsumer  # type: ignore[misc]
        attach_sink(app, self)  # BatchConsumer hands each fetched batch to handle_batch
        topic = app.topic(
            *(kafka.topic(t) for t in INPUT_TOPICS),
            key_serializer="raw",
            value_serializer="raw",
        )
        worker = self

        @app.agent(topic, name="dfip-ingress")
        async def ingress(stream: Any) -> None:
            # Subscribes the input topics (so Faust assigns their partitions to this worker);
            # their records go to the engine in batches and never reach this stream.
            async for event in stream:  # pragma: no cover - nothing is delivered here
                log.error("unexpected record on the ingress stream: %s", event.message.tp)

        @app.timer(interval=settings.idle_commit_ms / 1000)  # type: ignore[untyped-decorator]
        async def idle() -> None:
            await worker._ensure_started()
            if not worker.gate.released:
                return  # held (streams/supervisor/gate.py): no work, not even reference reads
            try:
                await engine.tick()
            except Exception as exc:
                log.warning("idle commit failed: %s", _describe(exc))
                worker.metrics.failures.inc()
            if engine.broken and not engine.busy:
                # no batch may come to do it: records of the failed commit must be re-read
                await worker.recover()
            await worker._update_lag()

        @app.on_partitions_revoked.connect
        async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            await worker._drop_deferred()
            if worker._started:
                await engine.revoke()

        @app.on_partitions_assigned.connect
        async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            assigned = args[0] if args else kwargs["assigned"]
            await worker._ensure_started()
            mine = {tp.partition for tp in assigned if engine.name(tp.topic) in INPUT_TOPICS}
            self.metrics.rebalances.inc()
            self.metrics.ready.set(0)
            self.metrics.lag.clear()  # partitions that moved away must not keep a lag
            self.metrics.assigned.set(len(mine))
            await worker._drop_deferred()  # this assignment replaces one still waiting
            share = worker.gate.share
            if share is not None and len(mine) > share:
                # held at start and given more than a share: the siblings' joining brings a
                # rebalance within a heartbeat or two; restoring now would restore partitions
                # in series that are about to move (streams/supervisor/gate.py)
                log.info(
                    "given %d partitions while the other processes join: restoring them in "
                    "%.0f s unless a rebalance comes first",
                    len(mine),
                    _DEFER_SECONDS,
                )
                worker._deferred = asyncio.create_task(worker._take_later(mine))
                worker._deferred.add_done_callback(worker._deferred_done)
                return
            await worker._take(mine)

        @app.on_before_shutdown.connect
        async def on_shutdown(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            worker._stopping = True
            if worker._deferred is not None and not worker._deferred_taking:
                worker._deferred.cancel()
            if worker._started:
                await engine.stop()

        @app.page("/metrics")
        async def metrics(web: Any, request: Any) -> Any:
            names = frozenset(request.query.getall("name[]", ()))
            if names:
                # a few families (Prometheus' name[] filter): cheap enough to render here,
                # and not an "export" of the whole exposition (bench/latency.py polls this)
                return web.bytes(worker.exposition(names), content_type=_EXPOSITION)
            # rendering every series takes ~150 ms while busy: in a thread, so batches and
            # their commits are not held up for it (the collectors read committed copies)
            loop = asyncio.get_running_loop()
            began = time.perf_counter()
            body = await loop.run_in_executor(None, worker.exposition)
            worker.observe_stage("export", time.perf_counter() - began)
            return web.bytes(body, content_type=_EXPOSITION)

        @app.page("/health")
        async def health(web: Any, request: Any) -> Any:
            return web.json({"status": "alive", "worker": settings.worker_id})

        @app.page("/ready")
        async def ready(web: Any, request: Any) -> Any:
            ok = worker._started and engine.is_ready
            body = {"ready": ok, "partitions": engine.partitions}
            return web.json(body, status=200 if ok else 503)

        @app.page("/state")
        async def state(web: Any, request: Any) -> Any:
            # beyond /metrics, /health and /ready every endpoint needs the bearer token
            status = auth_status(request.headers.get("Authorization", ""), settings.api_token)
            if status == 400:
                return web.json({"error": "malformed Authorization header"}, status=400)
            if status == 401:
                return web.json({"error": "bearer token required"}, status=401)
            return web.json(worker.describe())

        return app

    def exposition(self, names: frozenset[str] | None = None) -> bytes:
        """The /metrics body: committed figures, then the worker's health metrics; with
        ``names`` only the families of those sample names (a figure by its name, a health
        metric by any of its sample names, as prometheus_client's ``name[]`` filter)."""
        if not names:
            return self.figures.render().encode() + generate_latest(self.registry)
        return _only(names, self.engine.view).encode() + generate_latest(
            self.registry.restricted_registry(names)
        )

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.metrics.stages[stage].observe(seconds)

    def _observe_queue(self, records: Sequence[Record]) -> None:
        """Record age when its batch reaches the engine (a sample keeps this cheap)."""
        now = time.time()
        observe = self.metrics.stages["queue"].observe
        for r in records[:: max(1, len(records) // 50)]:
            if r.timestamp_ms is not None:
                observe(max(0.0, now - r.timestamp_ms / 1000))

    async def handle_batch(self, records: list[Record]) -> None:
        """One fetched batch: apply and commit it; on failure, recover the committed state
        and rewind the consumer, so nothing is lost or counted twice."""
        self._observe_queue(records)
        await self._ensure_started()
        if self.engine.broken:
            await self.recover()
            return  # these records were fetched before the rewind: they come again
        if not self.gate.released:
            await self._hold()
            return
        try:
            await self.engine.process_batch(records)
        except NeedsRecovery:  # the idle commit failed meanwhile (already counted)
            await self.recover()
        except Exception as exc:
            log.warning("batch of %d records failed: %s", len(records), _describe(exc))
            self.metrics.failures.inc()
            await self.recover()

    async def _take(self, mine: set[int]) -> None:
        """Own ``mine``: restore what is new, point the consumer at the committed state."""
        engine = self.engine
        try:
            await engine.assign(mine)
            if engine.broken:  # a restore failed: the recovery restores, seeks, readies
                return
            await self.seek(engine.positions())
        except ConsumerStoppedError:
            if not self._stopping:
                raise
            # SIGTERM while restoring: the reference consumer is closed already; the next
            # owner restores these partitions from the committed checkpoint.
            log.info("assignment left unfinished: the worker is stopping")
            return
        engine.heap.reset()
        self.metrics.ready.set(1)
        if engine.stats.last_restore_seconds is not None:
            self.metrics.restore_seconds.set(engine.stats.last_restore_seconds)

    async def _take_later(self, mine: set[int]) -> None:
        await asyncio.sleep(_DEFER_SECONDS)
        log.info("no rebalance came: restoring the %d partitions given", len(mine))
        self._deferred_taking = True  # from here on it runs to its end, as a restore does
        await self._take(mine)

    def _deferred_done(self, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is None or self._deferred is not task:
            return  # done, or replaced by a newer assignment (whose own restore covers it)
        # as a failed restore: the recovery restores every owned partition, seeks, readies
        log.warning("deferred assignment failed: %s", _describe(exc))
        self.metrics.failures.inc()
        self._recovery = asyncio.ensure_future(self.recover())

    async def _drop_deferred(self) -> None:
        """Forget an assignment still waiting (a rebalance came, as expected); one already
        restoring is finished first, as a restore in the rebalance callback would be."""
        task, self._deferred = self._deferred, None
        taking, self._deferred_taking = self._deferred_taking, False
        if task is None or task.done():
            return
        if not taking:
            task.cancel()
        await asyncio.wait([task])  # not `await task`: a cancel of this caller must propagate

    async def _hold(self) -> None:
        """Siblings are still joining the group (streams/supervisor/gate.py): rewind to the
        committed position, as a recovery does; the records come again once released."""
        self.gate.watch()
        # as process_batch: positions are known once the assignment is restored; records of
        # partitions no longer owned are left to their new owner
        await self.engine.ready.wait()
        await self.seek(self.engine.positions())
        await asyncio.sleep(0.1)  # a held process must not spin fetching and rewinding

    async def recover(self) -> None:
        if self._recovering.locked():  # the batch loop and the idle timer may both ask
            async with self._recovering:
                return
        async with self._recovering:
            await self._recover()

    async def _recover(self) -> None:
        delay = 0.5
        self.metrics.ready.set(0)
        while True:
            try:
                positions = await self.engine.recover()
                await self.seek(positions)
                self.metrics.ready.set(1)
                return
            except Exception as exc:  # e.g. the broker is still away: try again later
                log.warning("recovery failed (%s); retrying in %.0fs", _describe(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def seek(self, positions: Positions) -> None:
        """Point the group consumer at the committed state's offsets.

        Through the consumer's own thread (`seek_wait`): aiokafka's fetcher is not
        thread-safe, and a seek from this thread raced a fetch (KeyError in the fetcher).
        """
        consumer = self.app.consumer
        wanted = {
            topic_partition(consumer, self.kafka.topic(t), p): offset
            for p, offsets in positions.items()
            for t, offset in offsets.items()
        }
        if wanted:
            await consumer.seek_wait(wanted)

    async def _commit_offsets(self, offsets: Offsets) -> None:
        """at_least_once: group offsets commit after the batch's records are written."""
        await commit_offsets(self.app.consumer, {tp: meta.offset for tp, meta in offsets.items()})

    def describe(self) -> dict[str, Any]:
        """Operational summary of the owned partitions (no identifiers, only sizes)."""
        return {"worker": self.settings.worker_id, **self.engine.describe()}

    async def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            self.gate.watch()
            await self.engine.start()

    def _observe(self, records: Sequence[Record], t0: float) -> None:
        if not records:
            return  # an idle commit (reference topics only)
        now = time.time()
        self.metrics.batches.inc()
        self.metrics.records.inc(len(records))
        self.metrics.batch_seconds.observe(time.perf_counter() - t0)
        for r in records[:: max(1, len(records) // 50)]:  # a sample keeps this cheap
            if r.timestamp_ms is not None:
                self.metrics.latency.observe(max(0.0, now - r.timestamp_ms / 1000))

    async def _update_lag(self) -> None:
        from aiokafka.structs import TopicPartition

        # live: read after the end offsets arrive, as a batch applied meanwhile left them
        positions = self.engine.offsets()
        if not positions:
            return
        tps = [TopicPartition(self.kafka.topic(t), p) for p in positions for t in INPUT_TOPICS]
        try:
            ends = await self.engine.end_offsets(tps)
        except Exception as exc:  # lag is informative only; never fail the worker for it
            log.debug("lag query failed: %s", exc)
            return
        gaps: dict[Any, tuple[int, int]] = {}
        for tp, end in ends.items():
            name = self.engine.name(tp.topic)
            pos = positions[tp.partition].get(name, 0) if tp.partition in positions else end
            gaps[tp] = (pos, max(pos, end))
        # the offset difference counts transaction markers (one after every transactional
        # write, e.g. the worker's own forwarded copies): count the records themselves where
        # the gap is small enough to read and the partition stands still (drained or stuck:
        # where "0 when drained" matters). A partition in progress shows the offset
        # difference: re-reading up to 1,000 records of every partition each tick, under
        # the engine's lock, held batches up (issue 18).
        previous, self._lag_gaps = self._lag_gaps, gaps
        known = self._lag_counts
        small = {
            tp: r
            for tp, r in gaps.items()
            if 0 < r[1] - r[0] <= _LAG_EXACT_UP_TO
            and previous.get(tp, (-1,))[0] == r[0]
            and known.get(tp, (None,))[0] != r
        }
        exact = await self.engine.count_records(small) if small else None
        for tp, n in (exact or {}).items():
            known[tp] = (gaps[tp], n)
        for tp, (pos, end) in gaps.items():
            seen = known.get(tp)
            lag = seen[1] if seen is not None and seen[0] == (pos, end) else end - pos
            self.metrics.lag.labels(self.engine.name(tp.topic), str(tp.partition)).set(lag)


def _only(names: frozenset[str], view: CommittedView) -> str:
    """The committed figures' exposition reduced to the families in ``names``: rendered from
    a view holding only those series (a few lines instead of every series of every family,
    so a fine-grained poll costs the worker little), then cut to those families' lines."""
    keep = names | {OPEN} if OVERDUE in names else names  # overdue is derived from open hits
    part = CommittedView(
        figures={
            p: {name: rows for name, rows in snap.items() if name in keep}
            for p, snap in list(view.figures.items())
        },
        scored=dict(view.scored) if fn.ENTERPRISES_SCORED in names else {},
    )
    prefixes = tuple(names)
    wanted = []
    for line in FiguresCollector(part).render().splitlines(keepends=True):
        if line.startswith("#"):
            if line.split(" ", 3)[2] in names:
                wanted.append(line)
        elif line.startswith(prefixes) and line.split("{", 1)[0].split(" ", 1)[0] in names:
            wanted.append(line)
    return "".join(wanted)


def _describe(exc: BaseException) -> str:
    """One line, no payloads: the class and the first line of the message."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def create_app(
    kafka: KafkaSettings | None = None, settings: WorkerSettings | None = None
) -> Worker:
    return Worker(kafka or KafkaSettings(), settings or WorkerSettings())
