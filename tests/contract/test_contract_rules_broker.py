"""The threshold feed of test_contract_rules.py through real `dfip worker` processes on the
real broker (two workers, one killed with -9 halfway and started again): the exported rule-hit
figures, the overdue gauge and the committed dfip.alerts records equal the docs-only oracle's
(tests/contract/doc_rules_oracle.py), exactly, and no hit id is written twice."""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from core.kafka_config import KafkaSettings
from schemas.figures import FIGURES_BY_NAME
from tests.contract.contract_inputs import DIAGNOSTICS, Written
from tests.contract.doc_oracle import FX, In, Oracle
from tests.contract.doc_rules_oracle import RulesOracle, bj_date, day_start
from tests.contract.test_contract_rules import record_of, threshold_feed
from tests.integration.test_faults import FAST_FAILOVER
from tests.support.workers import (
    Figures,
    WorkerProcess,
    read_topic,
    scrape,
    wait_converged,
    wait_ready,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def expected_figures(oracle: Oracle, today: datetime) -> Figures:
    """The oracle's exported series summed over partitions (as tests.support.workers reads
    /metrics), with the overdue gauge: every open hit due before today's Beijing date."""
    out: Figures = {}
    for name, rows in oracle.series().items():
        if name in DIAGNOSTICS or name not in FIGURES_BY_NAME:
            continue
        summed: dict[tuple[str, ...], int] = defaultdict(int)
        for labels, v in rows.items():
            summed[labels[:-1]] += v
        out[name] = {k: v for k, v in summed.items() if v}
    overdue: dict[tuple[str, ...], int] = defaultdict(int)
    for h in oracle.rule_hits():
        if h.report_due < (today + timedelta(hours=8)).date():
            overdue[(h.rule, h.region, h.institution_type, h.band)] += 1
    out["dfip_alerts_overdue"] = dict(overdue)
    return {n: rows for n, rows in out.items() if rows}


@pytest.mark.integration
def test_real_workers_write_the_doc_oracles_hits(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    ns = kafka_settings  # a namespace of its own
    now = datetime.now(tz=UTC)
    now_ms = (now - EPOCH) // timedelta(milliseconds=1)
    # a Beijing midnight 400 days ago: the feed (362 days long) is all in the past, stamped now
    base_us = day_start((now - timedelta(days=400) - EPOCH) // timedelta(microseconds=1))
    base = EPOCH + timedelta(microseconds=base_us)
    assert bj_date(base_us) == (base + timedelta(hours=8)).date()
    feed = [dataclasses.replace(r, timestamp_ms=now_ms) for r in threshold_feed(base)]
    feed = [r for r in feed if r.topic == FX] + [r for r in feed if r.topic != FX]
    oracle = Oracle(rules=RulesOracle())
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    for r in feed:  # one read order: the hits of this feed do not depend on it
        off = offsets[(r.topic, r.partition)]
        offsets[(r.topic, r.partition)] += 1
        oracle.read(In(r.topic, r.partition, off, r.value, r.timestamp_ms))
    oracle.end_batch()
    hits = oracle.rule_hits()
    assert len({h.rule for h in hits}) == 8, "every rule fires"

    producer = KafkaProducer(acks="all", **ns.kafka_python_config())
    workers = [WorkerProcess(ns, w, tmp_path, **FAST_FAILOVER).start() for w in ("a", "b")]

    def send(records: list[Written]) -> None:
        for r in records:
            producer.send(
                ns.topic(r.topic), value=r.value, partition=r.partition, timestamp_ms=now_ms
            )
        producer.flush(timeout=60)

    try:
        for w in workers:
            wait_ready(w)
        half = len(feed) // 2
        send(feed[:half])
        workers[0].kill()  # while the two are at it; the same id fences what it left open
        workers[0] = WorkerProcess(ns, "a", tmp_path, **FAST_FAILOVER).start()
        wait_ready(workers[0])
        send(feed[half:])
        expected = expected_figures(oracle, datetime.now(tz=UTC))
        got = wait_converged(workers, expected)
        got = {n: rows for n, rows in got.items() if n in expected or rows}
        for name in ("dfip_alerts_total", "dfip_alert_amount_yuan_total", "dfip_alerts_overdue"):
            assert got.get(name) == expected.get(name), name
        assert got == expected
        assert scrape(workers) == got
        alerts = [orjson.loads(r.value) for r in read_topic(ns, "dfip.alerts")]
        ids = [a["event_id"] for a in alerts]
        assert len(ids) == len(set(ids)), "a hit was written twice"
        assert Counter(record_of(a) for a in alerts) == Counter(record_of(h.record()) for h in hits)
    finally:
        producer.close(timeout=10)
        for w in workers:
            w.stop()
