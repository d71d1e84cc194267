"""Running each engine on a namespace holding the comparison input, and timing it.

Every engine's time is the span between its first and its last committed result. Kafka
Streams, Faust and Quix Streams: from the first output record's LogAppendTime (stamped by
the broker when the transaction's batch arrives) to the moment a read_committed consumer,
reading the output as it grows, first sees the complete result (a record is appended before
its transaction commits). DFIP: the ``dfip.state`` changelog records of the run (each
batch's changelog goes out in the batch's transaction, just before its commit, as
bench/pipeline.py times it). Events/s = input events / that span.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.compare.job import TRANSACTIONS, CompareInput, Result, dfip_result, parse_output
from bench.feed import produce
from bench.pipeline import FLOW, count_events, start_workers
from bench.scrape import Scraper
from core.kafka_admin import admin_client
from core.kafka_config import KafkaSettings
from schemas.catalog import STATE_TOPIC
from schemas.figures import FIGURES_BY_NAME
from tests.support.workers import parse_figures, read_topic

__all__ = [
    "EngineRun",
    "drop_internal_topics",
    "produce_input",
    "run_dfip",
    "run_output_engine",
]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@dataclass
class EngineRun:
    engine: str
    events: int
    seconds: float
    result: Result = field(default_factory=dict)
    complete: bool = True
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def produce_input(settings: KafkaSettings, ci: CompareInput) -> None:
    """Scores first (flushed), then the transactions, in order."""
    asyncio.run(produce(settings, ci.records))


def create_output_topic(settings: KafkaSettings, name: str) -> str:
    from kafka.admin import NewTopic

    topic = settings.topic(name)
    admin = admin_client(settings)
    try:
        admin.create_topics(
            [NewTopic(topic, 1, 1, topic_configs={"message.timestamp.type": "LogAppendTime"})]
        )
    finally:
        admin.close()
    return topic


def drop_internal_topics(settings: KafkaSettings) -> None:
    """Delete the engines' own topics named after their app id (which holds the namespace's
    prefix) without starting with it: Quix Streams' ``repartition__<group>…``."""
    import contextlib

    admin = admin_client(settings)
    try:
        names = [t for t in admin.list_topics() if settings.topic_prefix in t]
        if names:
            with contextlib.suppress(Exception):
                admin.delete_topics(names, timeout_ms=30_000)
    finally:
        admin.close()


class OutputWatcher:
    """Reads an output topic (read_committed) as it grows: latest value per key, times."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(
            isolation_level="read_committed", **settings.kafka_python_config()
        )
        tp = TopicPartition(topic, 0)
        self.consumer.assign([tp])
        self.consumer.seek_to_beginning(tp)
        self.latest: dict[bytes | None, bytes | None] = {}
        self.first_ms: int | None = None
        self.last_ms: int | None = None

    def poll(self) -> Result:
        for records in self.consumer.poll(timeout_ms=500, max_records=100_000).values():
            for r in records:
                self.latest[r.key] = r.value
                self.first_ms = r.timestamp if self.first_ms is None else self.first_ms
                self.last_ms = r.timestamp
        return parse_output(self.latest.items())

    def close(self) -> None:
        self.consumer.close()


def _stop(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def run_output_engine(
    engine: str,
    settings: KafkaSettings,
    ci: CompareInput,
    command: Callable[[str, str], Sequence[str]],
    log_dir: Path,
    *,
    timeout: float = 900,
    env: dict[str, str] | None = None,
) -> EngineRun:
    """Start `command(output_topic, app_id)` and wait until its committed output counts
    every input event."""
    out = create_output_topic(settings, f"compare.out.{engine}.{uuid.uuid4().hex[:6]}")
    app_id = f"{settings.topic_prefix}{engine}-{uuid.uuid4().hex[:6]}"
    log = log_dir / f"{engine}.log"
    watcher = OutputWatcher(settings, out)
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            list(command(out, app_id)),
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
    result: Result = {}
    complete = False
    seen_ms = 0.0
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = watcher.poll()
            if sum(count for count, _ in result.values()) >= ci.events:
                complete = True
                seen_ms = time.time() * 1000
                break
            if proc.poll() is not None:
                raise RuntimeError(f"{engine} exited ({proc.returncode}):\n{_tail(log)}")
    finally:
        _stop(proc)
        watcher.close()
    # the last record is appended before its transaction commits (Quix Streams commits every
    # 5 s by default): the end is when the committed result was first seen complete
    end_ms = max(watcher.last_ms or 0, seen_ms)
    seconds = (end_ms - (watcher.first_ms or 0)) / 1000
    return EngineRun(engine, ci.events, seconds, result, complete)


def _band_totals(texts: Sequence[str]) -> dict[str, tuple[int, int]]:
    figures = parse_figures(texts)
    out: dict[str, list[int]] = {}
    for index, name in (
        (0, "dfip_transactions_total"),
        (1, "dfip_transaction_amount_yuan_total"),
    ):
        at = FIGURES_BY_NAME[name].labels.index("digitalization_band")
        for labels, value in figures.get(name, {}).items():
            out.setdefault(labels[at], [0, 0])[index] += value
    return {b: (v[0], v[1]) for b, v in out.items()}


def run_dfip(
    settings: KafkaSettings, ci: CompareInput, log_dir: Path, *, timeout: float = 900
) -> EngineRun:
    """One `dfip worker` (its normal full pipeline) on the namespace, until it has committed
    every transaction; the job's figures from its /metrics and closed windows."""
    import orjson

    app_id = f"compare-{uuid.uuid4().hex[:6]}"
    (worker,) = start_workers(settings, 1, log_dir, app_id=app_id)
    scraper = Scraper(worker.port)
    complete = False
    done_at = 0.0
    texts: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # only the flow counters while it works (name[]: a few lines to render); a full
            # /metrics takes ~150 ms of a busy worker's CPU, so it is read once, at the end
            time.sleep(1.0)
            if not worker.alive:
                raise RuntimeError(f"dfip worker exited:\n{worker.tail()}")
            scrape = scraper.metrics(names=FLOW)
            if scrape is None:
                continue
            counts = count_events([scrape.text], (TRANSACTIONS,))
            if (
                counts["dfip_events_received_total"] >= ci.events
                and counts["dfip_events_processed_total"]
                + counts["dfip_events_duplicate_total"]
                + counts["dfip_events_deadlettered_total"]
                >= ci.events
            ):
                complete = True
                done_at = time.time()
                full = scraper.metrics()
                texts = [full.text] if full is not None else []
                break
        latest = {r.key: orjson.loads(r.value) for r in read_topic(settings, "dfip.metrics")}
        stamps = [
            r.timestamp / 1000
            for r in read_topic(settings, STATE_TOPIC.name)
            if r.timestamp and (not complete or r.timestamp / 1000 <= done_at)
        ]
    finally:
        worker.stop(timeout=60)
    result = dfip_result(latest.values(), _band_totals(texts), ci.open_day) if texts else {}
    seconds = max(stamps) - min(stamps) if len(stamps) >= 2 else 0.0
    return EngineRun("dfip", ci.events, seconds, result, complete)


def kstreams_command(
    settings: KafkaSettings, jar: Path, state_dir: Path
) -> Callable[[str, str], Sequence[str]]:
    def command(out: str, app_id: str) -> Sequence[str]:
        return [
            "java",
            "-jar",
            str(jar),
            settings.bootstrap_servers,
            settings.topic("dfip.scores"),
            settings.topic(TRANSACTIONS),
            out,
            app_id,
            str(state_dir / app_id),
        ]

    return command


def python_command(
    module: str, settings: KafkaSettings, python: str = sys.executable
) -> Callable[[str, str], Sequence[str]]:
    def command(out: str, app_id: str) -> Sequence[str]:
        return [
            python,
            "-m",
            module,
            settings.bootstrap_servers,
            settings.topic("dfip.scores"),
            settings.topic(TRANSACTIONS),
            out,
            app_id,
        ]

    return command
