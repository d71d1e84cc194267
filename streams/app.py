"""The Faust application: one batching agent over the event topics, a timer for idle work,
rebalance hooks, and the HTTP endpoints (/metrics, /health, /ready).

Faust gives group membership, co-partitioned assignment, flow control, offsets and the web
server; the per-record work is done in plain Python over raw bytes (streams/processor.py),
in batches, because Faust's per-event machinery is the bottleneck (DESIGN.md, performance).
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as FaustAIOKafkaConsumer
from prometheus_client import CollectorRegistry, generate_latest

from dfip.kafka_config import KafkaSettings
from schemas.catalog import USCC_PARTITIONS
from streams.engine import Engine
from streams.export.collector import FiguresCollector, WorkerMetrics
from streams.processor import INPUT_TOPICS, Record
from streams.settings import WorkerSettings

__all__ = ["Worker", "create_app"]

log = logging.getLogger(__name__)
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


class Worker:
    """A configured Faust app plus the engine behind it (kept together for tests)."""

    def __init__(self, kafka: KafkaSettings, settings: WorkerSettings) -> None:
        self.kafka = kafka
        self.settings = settings
        self.engine = Engine(kafka, settings)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(FiguresCollector(self.engine.view))
        self.metrics = WorkerMetrics(self.registry)
        self.app = self._build()
        self._started = False

    def _build(self) -> faust.App:
        kafka, settings, engine = self.kafka, self.settings, self.engine
        app = faust.App(
            f"{kafka.topic_prefix}{settings.app_id}",
            broker=[f"kafka://{h.strip()}" for h in kafka.bootstrap_servers.split(",")],
            broker_credentials=_credentials(kafka),
            store=settings.store,
            datadir=str(settings.data_dir),
            # DFIP commits its own transactions (streams/engine.py); Faust's exactly-once mode
            # (one transactional producer per partition) crashes with ProducerFenced when
            # partitions come back after a rebalance, so Faust itself runs at_least_once.
            processing_guarantee="at_least_once",
            topic_partitions=USCC_PARTITIONS,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=1.0,
            web_enabled=True,
            web_bind=settings.web_host,
            web_port=settings.web_port,
            web_in_thread=False,
            # Faust's own introspection pages (router, tables, graph, stats) would expose
            # internals without authentication; DFIP serves its own endpoints only.
            web_router_enabled=False,
            web_tables_enabled=False,
            web_graph_enabled=False,
            web_stats_enabled=False,
            web_metrics_enabled=False,
            producer_acks=-1,
        )
        if settings.processing_guarantee == "exactly_once":
            # read only committed records, so outputs of aborted batches (forwards) are unseen
            app.transport.Consumer = _ReadCommittedConsumer  # type: ignore[misc]
        topic = app.topic(
            *(kafka.topic(t) for t in INPUT_TOPICS),
            key_serializer="raw",
            value_serializer="raw",
        )
        worker = self

        @app.agent(topic, name="dfip-ingress")
        async def ingress(stream: Any) -> None:
            # noack_take: events are acknowledged (and so their offsets committed by Faust)
            # only after our transaction has committed them; take_events would ack them in a
            # `finally`, i.e. also when the batch was cancelled half-way by a shutdown.
            async for events in stream.noack_take(
                settings.batch_size, within=settings.batch_within_ms / 1000
            ):
                await worker._ensure_started()
                records = [_to_record(engine, e.message) for e in events]
                t0 = time.perf_counter()
                applied = await engine.process_batch(records)
                for event in events:
                    if event.message.partition in applied:
                        await stream.ack(event)
                worker._observe(records, t0)

        @app.timer(interval=settings.idle_commit_ms / 1000)  # type: ignore[untyped-decorator]
        async def idle() -> None:
            await worker._ensure_started()
            await engine.tick()
            await worker._update_lag()

        @app.on_partitions_assigned.connect
        async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            assigned = args[0] if args else kwargs["assigned"]
            await worker._ensure_started()
            mine = {tp.partition for tp in assigned if engine.name(tp.topic) in INPUT_TOPICS}
            self.metrics.rebalances.inc()
            self.metrics.ready.set(0)
            self.metrics.lag.clear()  # partitions that moved away must not keep a lag
            await engine.assign(mine)
            self.metrics.assigned.set(len(mine))
            self.metrics.ready.set(1)
            if "last_restore_seconds" in engine.stats:
                self.metrics.restore_seconds.set(engine.stats["last_restore_seconds"])

        @app.on_before_shutdown.connect
        async def on_shutdown(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            if worker._started:
                await engine.stop()

        @app.page("/metrics")
        async def metrics(web: Any, request: Any) -> Any:
            return web.bytes(generate_latest(worker.registry), content_type=_EXPOSITION)

        @app.page("/health")
        async def health(web: Any, request: Any) -> Any:
            return web.json({"status": "alive", "worker": settings.worker_id})

        @app.page("/ready")
        async def ready(web: Any, request: Any) -> Any:
            ok = worker._started and engine.ready.is_set()
            body = {
                "ready": ok,
                "partitions": sorted(engine.processor.states),
            }
            return web.json(body, status=200 if ok else 503)

        @app.page("/state")
        async def state(web: Any, request: Any) -> Any:
            # beyond /metrics, /health and /ready every endpoint needs the bearer token
            if not worker._authorised(request.headers.get("Authorization", "")):
                return web.json({"error": "bearer token required"}, status=401)
            return web.json(worker.describe())

        return app

    def _authorised(self, header: str) -> bool:
        token = self.settings.api_token
        if token is None:
            return False  # no token configured: protected endpoints stay closed
        expected = f"Bearer {token.get_secret_value()}"
        return hmac.compare_digest(header.encode(), expected.encode())

    def describe(self) -> dict[str, Any]:
        """Operational summary of the owned partitions (no identifiers, only sizes)."""
        proc = self.engine.processor
        return {
            "worker": self.settings.worker_id,
            "partitions": {
                str(p): {
                    "offsets": state.offsets,
                    "watermarks_us": state.watermarks,
                    "active_loans": len(state.loans),
                    "dedup_ids": len(state.dedup.ids),
                    "windows": len(state.windows),
                    "scored_enterprises": len(proc.scores[p]) if p in proc.scores else 0,
                }
                for p, state in sorted(proc.states.items())
            },
            "fx_rates": len(proc.fx),
            "stats": self.engine.stats,
        }

    async def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            await self.engine.start()

    def _observe(self, records: list[Record], t0: float) -> None:
        now = time.time()
        self.metrics.batches.inc()
        self.metrics.records.inc(len(records))
        self.metrics.batch_seconds.observe(time.perf_counter() - t0)
        for r in records[:: max(1, len(records) // 50)]:  # a sample keeps this cheap
            if r.timestamp_ms is not None:
                self.metrics.latency.observe(max(0.0, now - r.timestamp_ms / 1000))

    async def _update_lag(self) -> None:
        from aiokafka.structs import TopicPartition

        states = dict(self.engine.processor.states)
        if not states:
            return
        tps = [TopicPartition(self.kafka.topic(t), p) for p in states for t in INPUT_TOPICS]
        try:
            ends = await self.engine.reader.consumer.end_offsets(tps)
        except Exception as exc:  # lag is informative only; never fail the worker for it
            log.debug("lag query failed: %s", exc)
            return
        for tp, end in ends.items():
            name = self.engine.name(tp.topic)
            pos = states[tp.partition].offsets.get(name, 0) if tp.partition in states else end
            self.metrics.lag.labels(name, str(tp.partition)).set(max(0, end - pos))


class _ReadCommittedThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust chooses read_committed only in its own exactly-once mode; the consumer reads
        # this attribute when it starts, so setting it here is enough.
        consumer._isolation_level = "read_committed"
        return consumer


class _ReadCommittedConsumer(FaustAIOKafkaConsumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)


def _to_record(engine: Engine, message: Any) -> Record:
    headers = message.headers or ()
    if isinstance(headers, dict):
        headers = tuple(headers.items())
    ts = message.timestamp
    return Record(
        topic=engine.name(message.topic),
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple(headers),
        timestamp_ms=int(ts * 1000) if ts else None,
    )


def create_app(
    kafka: KafkaSettings | None = None, settings: WorkerSettings | None = None
) -> Worker:
    return Worker(kafka or KafkaSettings(), settings or WorkerSettings())
