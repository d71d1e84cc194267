"""Rules on the real broker (issue 15): every planted pattern fires exactly once on
dfip.alerts, no near miss fires, the hits equal the oracle's list, with two workers, one of
them killed (-9) while the feed is being processed (its successor restores the rule state
from the changelog after a rebalance), and after the whole feed is sent again. Then the
overdue reports: acknowledgements on dfip.alerts.ack take exactly their hits out of
dfip_alerts_overdue."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.simulator.aml import Plant, _us, plant_feed
from adapters.simulator.model import TRANSACTIONS, Record, TxFact
from adapters.simulator.oracle import Oracle
from core.kafka_admin import create_topics
from core.kafka_config import KafkaSettings
from schemas.alerts import Alert
from schemas.catalog import partition_for
from schemas.events import TransactionEvent
from tests.integration.test_faults import FAST_FAILOVER
from tests.integration.test_order_dedup import _Sender
from tests.integration.test_stream_exact import assert_exact
from tests.support.workers import (
    WorkerProcess,
    oracle_figures,
    read_topic,
    scrape,
    wait_converged,
    wait_for,
    wait_ready,
)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _record(ev: TransactionEvent) -> Record:
    p = partition_for(ev.enterprise_uscc)
    fact = TxFact(ev.event_id, ev.enterprise_uscc, ev.occurred_at, "bank", ev.direction.value,
                  ev.amount, ev.currency, None, ev.bank_tx_code)  # fmt: skip
    return Record(TRANSACTIONS, p, p, fact, ev)


def _now_ms() -> int:
    return int(datetime.now(tz=UTC).timestamp() * 1000)


def test_planted_patterns_fire_exactly_once_with_two_workers_a_kill_and_a_replay(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    ns = KafkaSettings(
        bootstrap_servers=kafka_settings.bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}-",
    )
    create_topics(ns)
    events, plants, tick = plant_feed()
    records = [_record(ev) for ev in events]
    cut = next(i for i, ev in enumerate(events) if ev.occurred_at >= tick)
    oracle = Oracle()
    sender = _Sender(ns, oracle)
    workers = [WorkerProcess(ns, w, tmp_path, **FAST_FAILOVER).start() for w in ("a", "b")]
    try:
        for w in workers:
            wait_ready(w)
        # everything but the clock ticks (some windows close, most stay open), and worker a
        # killed (-9) as soon as it is sent, while the two workers are at it
        sender.send(records[:cut], _now_ms())
        workers[0].kill()
        # the same worker id: its transactional id fences anything the first left open
        workers[0] = WorkerProcess(ns, "a", tmp_path, **FAST_FAILOVER).start()
        wait_ready(workers[0])
        wait_converged(workers, oracle_figures(oracle.result({})))
        sender.send(records[cut:], _now_ms())  # closes every planted window
        expected = oracle_figures(oracle.result({}))
        assert_exact(wait_converged(workers, expected), expected)
        # a replay: a bank re-sends the whole feed; duplicates decide nothing again
        sender.send(records, _now_ms())
        expected = oracle_figures(oracle.result({}))
        assert_exact(wait_converged(workers, expected), expected)

        alerts = [Alert.model_validate_json(r.value) for r in read_topic(ns, "dfip.alerts")]
        ids = [a.event_id for a in alerts]
        assert len(ids) == len(set(ids)), "a hit was written twice"
        got = sorted(
            (_us(a.window_start), _us(a.window_end), a.rule.value, a.enterprise_uscc,
             tuple(a.event_ids), a.report_due, a.event_id) for a in alerts
        )  # fmt: skip
        want = sorted(
            (h.window_start, h.window_end, h.rule, h.uscc, h.event_ids, h.report_due, h.alert_id)
            for h in oracle.alerts()
        )
        assert got == want
        _check_plants(alerts, plants)
        _check_cli(ns, alerts)
        # every planted hit is long overdue; acknowledging half of them (one twice) leaves
        # the other half, exactly
        assert sum(expected["dfip_alerts_overdue"].values()) == len(alerts)
        _acknowledge(ns, oracle, alerts[::2] + alerts[:1])
        expected = oracle_figures(oracle.result({}))
        want_overdue = expected.get("dfip_alerts_overdue", {})
        assert sum(want_overdue.values()) == len(alerts) - len(alerts[::2])
        wait_for(
            lambda: scrape(workers).get("dfip_alerts_overdue", {}) == want_overdue,
            timeout=60,
            what="the overdue gauge to drop the acknowledged hits",
        )
        assert_exact(scrape(workers), expected)
    finally:
        sender.close()
        for w in workers:
            w.stop()


def _acknowledge(ns: KafkaSettings, oracle: Oracle, alerts: list[Alert]) -> None:
    from kafka import KafkaProducer

    from dfip.alerts_cli import make_ack

    producer = KafkaProducer(acks="all", **ns.kafka_python_config())
    try:
        for alert in alerts:
            partition, key, value = make_ack(alert.event_id, alert.enterprise_uscc, "reported")
            producer.send(ns.topic("dfip.alerts.ack"), key=key, value=value, partition=partition)
            oracle.acknowledge(alert.event_id)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)


def _check_cli(ns: KafkaSettings, alerts: list[Alert]) -> None:
    """`dfip alerts tail` with a filter prints exactly the matching hits."""
    from typer.testing import CliRunner

    from dfip.cli import app

    env = {
        "DFIP_KAFKA_BOOTSTRAP_SERVERS": ns.bootstrap_servers,
        "DFIP_KAFKA_TOPIC_PREFIX": ns.topic_prefix,
    }
    result = CliRunner().invoke(app, ["alerts", "tail", "--rule", "structuring"], env=env)
    assert result.exit_code == 0, result.output
    (structuring,) = [a for a in alerts if a.rule.value == "structuring"]
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert structuring.event_id in lines[0]
    assert structuring.enterprise_uscc in lines[0]


def _check_plants(alerts: list[Alert], plants: list[Plant]) -> None:
    fired: dict[str, list[str]] = {}
    for a in alerts:
        fired.setdefault(a.enterprise_uscc, []).append(a.rule.value)
    assert len(alerts) == sum(len(p.hits) for p in plants)
    for plant in plants:
        assert sorted(fired.get(plant.uscc, [])) == [r.value for r in plant.hits], plant
        assert not plant.hits if plant.near_miss else plant.rule in plant.hits, plant
