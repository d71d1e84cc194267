"""Overdue reports (issue 15): hits open until acknowledged on dfip.alerts.ack, each
acknowledgement applied once (its offset is in the checkpoint), the open hits restored from
the changelog, and the exported gauge derived from them and the Beijing date."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest

from adapters.simulator.aml import plant_feed
from dfip.alerts_cli import make_ack
from schemas.alerts import Alert, load_ruleset
from schemas.catalog import partition_for
from schemas.codec import encode
from streams.engine import CommittedView
from streams.export.collector import FiguresCollector
from streams.processor import ALERTS, ALERTS_ACK, DEADLETTER, TRANSACTIONS, Processor, Record
from streams.reference.scores import ScoreTable
from streams.rules import RuleEngine
from streams.rules.overdue import OPEN, beijing_today, overdue
from streams.state.changelog import apply_record, dirty_records, finish_restore
from streams.state.partition import PartitionState

CONFIG = load_ruleset()
GRACE_US = 600 * 1_000_000


def _processor() -> Processor:
    proc = Processor(grace_us=GRACE_US, rules=RuleEngine(CONFIG))
    for p in range(12):
        proc.states[p] = PartitionState(p)
        proc.scores[p] = ScoreTable()
    return proc


def _feed(proc: Processor) -> list[Alert]:
    events, _, _ = plant_feed(datetime(2025, 9, 1, tzinfo=UTC))
    offsets: dict[int, int] = {}
    for ev in events:
        p = partition_for(ev.enterprise_uscc)
        offsets[p] = offsets.get(p, -1) + 1
        proc.process(Record(TRANSACTIONS, p, offsets[p], ev.enterprise_uscc.encode(), encode(ev)))
    proc.finish_batch()
    return [
        Alert.model_validate_json(o.value or b"") for o in proc.take_outputs() if o.topic == ALERTS
    ]


def _open(proc: Processor) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    for state in proc.states.values():
        for key, n in state.counters.values.get(OPEN, {}).items():
            out[key] = out.get(key, 0) + n
    return out


def _ack_record(alert: Alert, offset: int, outcome: str = "reported") -> Record:
    p, key, value = make_ack(alert.event_id, alert.enterprise_uscc, outcome)
    assert p == partition_for(alert.enterprise_uscc)
    return Record(ALERTS_ACK, p, offset, key, value)


def test_hits_open_until_acknowledged_once() -> None:
    proc = _processor()
    alerts = _feed(proc)
    assert len(alerts) == 12
    assert sum(_open(proc).values()) == 12
    first, second = alerts[0], alerts[1]
    proc.process_ack(_ack_record(first, 0))
    assert sum(_open(proc).values()) == 11
    # the same offset again (a re-read after a restore): skipped by the checkpoint
    proc.process_ack(_ack_record(second, 0))
    assert sum(_open(proc).values()) == 11
    # a second acknowledgement of the same hit (dismissed after reported) changes nothing
    proc.process_ack(_ack_record(first, 1, "dismissed"))
    assert sum(_open(proc).values()) == 11
    assert proc.states[partition_for(first.enterprise_uscc)].offsets[ALERTS_ACK] == 2


def test_a_bad_acknowledgement_is_dead_lettered_and_skipped() -> None:
    proc = _processor()
    _feed(proc)
    proc.process_ack(Record(ALERTS_ACK, 3, 0, b"k", b'{"kind": "alert_ack"}'))
    (out,) = proc.take_outputs()
    assert out.topic == DEADLETTER
    assert proc.states[3].offsets[ALERTS_ACK] == 1
    assert sum(_open(proc).values()) == 12


def test_open_hits_survive_a_restore_from_the_changelog() -> None:
    proc = _processor()
    alerts = _feed(proc)
    proc.process_ack(_ack_record(alerts[0], 0))
    before = _open(proc)
    for p in range(12):
        log = dirty_records(proc.states[p])
        restored = PartitionState(p)
        for k, v in log:
            apply_record(restored, k, v)
        finish_restore(restored)
        assert restored.rules.open == proc.states[p].rules.open
        assert restored.offsets.get(ALERTS_ACK) == proc.states[p].offsets.get(ALERTS_ACK)
        proc.states[p] = restored
    assert _open(proc) == before
    # the restored state still closes the remaining hits (by id, on their partition)
    for i, alert in enumerate(alerts[1:]):
        p = partition_for(alert.enterprise_uscc)
        proc.process_ack(_ack_record(alert, proc.states[p].offsets.get(ALERTS_ACK, 0) + i))
    assert _open(proc) == {}
    assert all(not s.rules.open for s in proc.states.values())


def test_overdue_is_strictly_after_the_due_date() -> None:
    series = {
        ("cash", "hangzhou", "bank", "l1", "2026-01-05"): 2,
        ("cash", "hangzhou", "bank", "l1", "2026-01-06"): 1,
        ("cash", "ningbo", "bank", "l1", "2026-01-04"): 1,
    }
    assert overdue(series, date(2026, 1, 5)) == {("cash", "ningbo", "bank", "l1"): 1}
    assert overdue(series, date(2026, 1, 6)) == {
        ("cash", "hangzhou", "bank", "l1"): 2,
        ("cash", "ningbo", "bank", "l1"): 1,
    }
    # Beijing is UTC+8: 16:00 UTC is already the next day
    assert beijing_today(datetime(2026, 1, 5, 16, 0, tzinfo=UTC)) == date(2026, 1, 6)
    assert beijing_today(datetime(2026, 1, 5, 15, 59, tzinfo=UTC)) == date(2026, 1, 5)


def test_the_gauge_is_rendered_from_the_open_hits_and_today() -> None:
    view = CommittedView()
    view.figures[4] = {OPEN: {("cash", "hangzhou", "bank", "l1", "2026-01-05"): 3}}
    collector = FiguresCollector(view)
    collector.today = lambda: date(2026, 1, 5)
    line = 'dfip_alerts_overdue{digitalization_band="l1",institution_type="bank",'
    line += 'partition="4",region="hangzhou",rule="cash"} 3.0'
    assert line not in collector.render()
    collector.today = lambda: date(2026, 1, 5) + timedelta(days=1)
    text = collector.render()
    assert line in text
    assert OPEN not in text  # the hidden series with due dates is not exported
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    assert generate_latest(registry).decode() == text
