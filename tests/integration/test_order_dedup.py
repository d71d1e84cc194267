"""Re-sends are counted once whatever the order and speed of the topics (issues 19 and 20).

Records are produced with explicit Kafka timestamps, as a bank re-sending a statement a week
later would: duplicate memory goes by arrival time per topic-partition, so neither the loans
topic running days ahead of transactions nor an event time long behind the watermark lets a
re-send through, and ids are forgotten exactly when docs/metrics.md says. Figures and closed
windows equal the oracle fed the same records with the same timestamps.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from adapters.simulator.feed import Feed, FeedConfig
from adapters.simulator.model import FX, LOANS, SCORES, TRANSACTIONS, Record, TxFact
from adapters.simulator.oracle import Oracle
from core.kafka_config import KafkaSettings
from schemas import encode, message_key
from tests.integration.test_stream_exact import assert_exact, assert_flow_identity
from tests.support.workers import (
    Figures,
    WorkerProcess,
    closed_windows,
    oracle_figures,
    oracle_windows,
    wait_converged,
    wait_for,
    wait_ready,
)

DAY_MS = 86_400_000
START = datetime(2025, 3, 3, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _feed(seed: int, start: datetime, n: int) -> list[Record]:
    return list(itertools.islice(Feed(FeedConfig(seed=seed, start=start, enterprises=300)), n))


class _Sender:
    """Produces records in order with explicit timestamps and feeds the oracle the same."""

    def __init__(self, settings: KafkaSettings, oracle: Oracle) -> None:
        self.settings, self.oracle = settings, oracle
        self.producer = KafkaProducer(
            acks="all", max_in_flight_requests_per_connection=1, **settings.kafka_python_config()
        )

    def send(self, records: list[Record], timestamp_ms: int) -> None:
        for r in records:
            if r.raw is not None:
                value, key = r.raw, r.key
            else:
                assert r.event is not None
                value = encode(r.event)
                k = message_key(r.event)
                key = k.encode() if k else None
            self.producer.send(
                self.settings.topic(r.topic),
                value=value,
                key=key,
                partition=r.partition,
                timestamp_ms=timestamp_ms,
            )
            self.oracle.observe(dataclasses.replace(r, timestamp_ms=timestamp_ms))
        self.producer.flush(timeout=60)

    def close(self) -> None:
        self.producer.close(timeout=10)


def _lag(worker: WorkerProcess) -> float | None:
    text = worker.metrics_text()
    if text is None:
        return None
    samples = [
        s.value
        for family in text_string_to_metric_families(text)
        if family.name == "dfip_consumer_lag"
        for s in family.samples
    ]
    return sum(samples) if samples else None


def _keep_forever(settings: KafkaSettings) -> None:
    """Records stamped days ago must not fall to the 7-day retention of dfip.transactions
    before the worker reads them (a time-based segment roll makes them deletable)."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka_python_config())
    try:
        admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, settings.topic(t), configs={"retention.ms": "-1"}
                )
                for t in (TRANSACTIONS, LOANS)
            ]
        )
    finally:
        admin.close()


def _valid_tx(records: list[Record]) -> list[Record]:
    return [r for r in records if isinstance(r.fact, TxFact) and r.anomaly is None]


def _run(
    settings: KafkaSettings, tmp_path: Path, retention_days: int, plan: list[tuple[str, int]]
) -> Figures:
    """``plan``: (what, days before now) steps, sent in this order; returns the figures."""
    now = int(time.time() * 1000)
    main = _feed(21, START, 1500)
    # a second feed ten days later in event time: its loans run far ahead of main's topics
    ahead = _feed(22, START + timedelta(days=10), 600)
    # a few valid events sent to the wrong partition: the worker forwards them home in its
    # transactions, which leaves transaction markers there
    misplaced = [
        dataclasses.replace(
            r,
            partition=(r.partition + 1) % 12,
            raw=encode(r.event),
            key=r.event.enterprise_uscc.encode(),
            anomaly="wrong_partition",
        )
        for r in _valid_tx(ahead)[:5]
        if r.event is not None and hasattr(r.event, "enterprise_uscc")
    ]
    parts = {
        "reference": [r for r in (*main, *ahead) if r.topic in (FX, SCORES)],
        "loans ahead": [r for r in ahead if r.topic == LOANS],
        "events": [r for r in main if r.topic in (TRANSACTIONS, LOANS)],
        "misplaced": misplaced,
        "tx resend 1": _valid_tx(main)[0::3],
        "tx resend 2": _valid_tx(main)[1::3],
        "loans resend": [r for r in main if r.topic == LOANS and r.fact is not None][::4],
    }
    oracle = Oracle(dedup_retention_days=retention_days)
    _keep_forever(settings)
    sender = _Sender(settings, oracle)
    try:
        for what, days_ago in plan:
            sender.send(parts[what], now - days_ago * DAY_MS)
    finally:
        sender.close()
    expected = oracle_figures(oracle.result({}))
    worker = WorkerProcess(
        settings, "resend", tmp_path, DFIP_WORKER_DEDUP_RETENTION_DAYS=str(retention_days)
    ).start()
    try:
        wait_ready(worker)
        got = wait_converged([worker], expected)
        assert_exact(got, expected)
        assert_flow_identity(got)
        assert closed_windows(settings) == oracle_windows(oracle.result({}))
        # the worker's forwarded copies leave transaction markers on the home partitions;
        # drained, every partition's lag still reads 0 (markers are not records)
        wait_for(lambda: _lag(worker) == 0, timeout=60, what="dfip_consumer_lag to read 0")
    finally:
        worker.stop()
    return got


def test_resends_a_week_later_with_loans_days_ahead_count_once(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    plan = [
        ("reference", 10),
        ("loans ahead", 10),
        ("events", 10),
        ("tx resend 1", 3),  # a week after the first arrival, event times long behind
        ("loans resend", 3),
        ("tx resend 2", 0),  # ten days after
        ("misplaced", 0),  # last: their forwarded copies end the home partitions
    ]
    got = _run(kafka_settings, tmp_path, 45, plan)
    valid = _valid_tx(_feed(21, START, 1500))
    tx_dups = got["dfip_events_duplicate_total"][(TRANSACTIONS,)]
    assert tx_dups >= len(valid[0::3]) + len(valid[1::3]), "every re-send is a duplicate"


def test_ids_are_forgotten_after_the_retention_in_arrival_days(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    plan = [
        ("reference", 10),
        ("events", 10),
        ("tx resend 1", 6),  # 4 days later: remembered (retention 5 days)
        ("tx resend 2", 0),  # 10 days later: forgotten, counted again (and late)
        ("misplaced", 0),
    ]
    got = _run(kafka_settings, tmp_path, 5, plan)
    valid = _valid_tx(_feed(21, START, 1500))
    tx_dups = got["dfip_events_duplicate_total"][(TRANSACTIONS,)]
    # resend 1 are all duplicates; resend 2 are not (plus the feed's own re-sends)
    assert len(valid[0::3]) <= tx_dups < len(valid[0::3]) + len(valid[1::3])
