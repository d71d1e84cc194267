"""The rules inside the processor: hits leave as dfip.alerts outputs with their figures,
and the rule state survives a restore from the changelog halfway."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.simulator.aml import _us, expected_hits, plant_feed, rule_input
from schemas.alerts import Alert, load_ruleset
from schemas.catalog import partition_for
from schemas.codec import encode
from streams.processor import ALERTS, TRANSACTIONS, Processor, Record
from streams.reference.scores import ScoreTable
from streams.rules import RuleEngine
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


def test_hits_are_outputs_and_survive_a_restore() -> None:
    events, _, _ = plant_feed(datetime(2025, 9, 1, tzinfo=UTC))
    proc = _processor()
    offsets: dict[int, int] = {}
    log: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in range(12)}
    alerts: list[Alert] = []
    restore_at = len(events) // 2
    for i, ev in enumerate(events):
        p = partition_for(ev.enterprise_uscc)
        offsets[p] = offsets.get(p, -1) + 1
        key = ev.enterprise_uscc.encode()
        proc.process(Record(TRANSACTIONS, p, offsets[p], key, encode(ev)))
        if i % 5 == 4 or i == len(events) - 1:
            proc.finish_batch()
            for out in proc.take_outputs():
                if out.topic == ALERTS:
                    assert out.key is not None
                    assert out.partition == partition_for(out.key.decode())
                    alerts.append(Alert.model_validate_json(out.value or b""))
            for q in sorted(proc.touched):
                log[q] += dirty_records(proc.states[q])
            proc.touched.clear()
        if i == restore_at:  # a restart: every partition from its changelog
            proc.finish_batch()
            for q in sorted(proc.touched):
                log[q] += dirty_records(proc.states[q])
            proc.touched.clear()
            for q in range(12):
                restored = PartitionState(q)
                for k, v in log[q]:
                    apply_record(restored, k, v)
                finish_restore(restored)
                proc.states[q] = restored
    got = sorted(
        (_us(a.window_start), a.rule.value, a.enterprise_uscc, tuple(a.event_ids)) for a in alerts
    )
    final = min(s.watermarks[TRANSACTIONS] for s in proc.states.values()) - GRACE_US
    expected = expected_hits([rule_input(e) for e in events], CONFIG, final)
    assert got == sorted((h.window_start, h.rule, h.uscc, h.event_ids) for h in expected)
    assert len(got) == 12
    counted = sum(
        n
        for s in proc.states.values()
        for n in s.counters.values.get("dfip_alerts_total", {}).values()
    )
    assert counted == 12
