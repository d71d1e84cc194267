"""Duplicate memory per topic-partition, by arrival time (Kafka record timestamps)."""

from __future__ import annotations

from datetime import timedelta

import orjson

from schemas.catalog import partition_for
from schemas.codec import encode
from streams.processor import LOANS, TRANSACTIONS
from streams.state.changelog import apply_record, dirty_records, finish_restore
from streams.state.dedup import DAY_MS, DedupMemory, id_hash
from streams.state.partition import PartitionState
from tests.unit.streams.helpers import HANGZHOU, disbursed, processor, record, t, tx, value

P = partition_for(HANGZHOU)
T0 = 1_767_600_000_000  # 2026-01-05 08:00 UTC, in ms


def _send(proc, topic, ev, at_ms):  # type: ignore[no-untyped-def]
    proc.process(record(topic, encode(ev), timestamp_ms=at_ms))


def test_another_topic_days_ahead_never_prunes_transaction_ids() -> None:
    proc = processor()
    first = tx(t("10:00"), event_id="stmt-1")
    _send(proc, TRANSACTIONS, first, T0)
    # the loans topic catches up far ahead, in event time and in arrival time
    for day in range(1, 60, 3):
        at = t("10:00") + timedelta(days=day)
        _send(proc, LOANS, disbursed(at, f"L{day}", "10.00"), T0 + day * DAY_MS)
        proc.finish_batch()
    _send(proc, TRANSACTIONS, first, T0 + 3_600_000)  # the re-send, an hour after the first
    proc.finish_batch()
    assert value(proc, "dfip_transactions_total") == 1
    assert value(proc, "dfip_events_duplicate_total") == 1


def test_a_resend_a_week_later_by_record_timestamp_counts_once() -> None:
    proc = processor()
    statement = [
        tx(t(f"{h:02d}:00", day=d), event_id=f"e-{d}-{h}") for d in (1, 2) for h in (9, 15)
    ]
    for ev in statement:
        _send(proc, TRANSACTIONS, ev, T0)
    proc.finish_batch()
    for ev in statement:  # re-sent a week later: event times are long behind the watermark
        _send(proc, TRANSACTIONS, ev, T0 + 7 * DAY_MS)
    proc.finish_batch()
    assert value(proc, "dfip_transactions_total") == 4
    assert value(proc, "dfip_events_duplicate_total") == 4


def test_ids_are_forgotten_only_after_the_retention_in_arrival_days() -> None:
    proc = processor()
    proc.dedup_retention_days = 45
    ev = tx(t("10:00"), event_id="old")
    _send(proc, TRANSACTIONS, ev, T0)
    proc.finish_batch()
    day0 = T0 // DAY_MS
    # the clock at the last moment of day0 + 45: still remembered
    _send(proc, TRANSACTIONS, tx(t("11:00")), (day0 + 46) * DAY_MS - 1)
    proc.finish_batch()
    _send(proc, TRANSACTIONS, ev, (day0 + 46) * DAY_MS - 1)
    proc.finish_batch()
    assert value(proc, "dfip_events_duplicate_total") == 1
    # the clock reaches day0 + 46: the id is forgotten, a re-send counts again
    _send(proc, TRANSACTIONS, tx(t("12:00")), (day0 + 46) * DAY_MS)
    proc.finish_batch()
    _send(proc, TRANSACTIONS, ev, (day0 + 46) * DAY_MS)
    assert value(proc, "dfip_events_duplicate_total") == 1
    assert value(proc, "dfip_transactions_total") == 4


def test_memory_survives_the_changelog_with_expired_days_tombstoned() -> None:
    proc = processor()
    proc.dedup_retention_days = 2
    log: list[tuple[bytes, bytes | None]] = []  # every commit's changelog records, in order
    for d in range(5):
        _send(proc, TRANSACTIONS, tx(t("10:00"), event_id=f"d{d}"), T0 + d * DAY_MS)
        proc.finish_batch()
        log.extend(dirty_records(proc.states[P]))
    restored = PartitionState(P)
    for key, val in log:
        apply_record(restored, key, val)
    finish_restore(restored)
    mem, orig = restored.memory(TRANSACTIONS), proc.states[P].memory(TRANSACTIONS)
    assert mem.ids == orig.ids == {id_hash(f"d{d}") for d in (2, 3, 4)}
    assert mem.clock_ms == orig.clock_ms == T0 + 4 * DAY_MS
    assert sorted(mem.days) == sorted(orig.days)
    assert any(v is None and k.startswith(b"dd:") for k, v in log)  # expired days tombstoned


def test_a_legacy_changelog_is_migrated_and_its_records_tombstoned() -> None:
    legacy = PartitionState(P)
    records = [
        (b"ck", orjson.dumps({"offsets": {TRANSACTIONS: 3}, "watermarks": {LOANS: T0 * 1000}})),
        (b"dedup:0", orjson.dumps({"ts": T0 * 1000, "ids": ["a", "b"]})),
        (b"dedup:1", orjson.dumps({"ts": T0 * 1000, "ids": ["c"]})),
        (b"dedup:1", None),
    ]
    for key, val in records:
        apply_record(legacy, key, val)
    finish_restore(legacy)
    for topic in (TRANSACTIONS, LOANS):
        mem = legacy.memory(topic)
        assert mem.seen(id_hash("a"))
        assert mem.seen(id_hash("b"))
        assert not mem.seen(id_hash("c"))
        assert set(mem.days) == {T0 // DAY_MS}
    out = dict(dirty_records(legacy))
    assert out[b"dedup:0"] is None
    migrated = _restore_from(out)
    assert migrated.memory(TRANSACTIONS).seen(id_hash("a"))


def _restore_from(records: dict[bytes, bytes | None]) -> PartitionState:
    state = PartitionState(P)
    for key, val in records.items():
        apply_record(state, key, val)
    finish_restore(state)
    return state


def test_over_the_cap_the_oldest_days_go_first_but_never_today() -> None:
    mem = DedupMemory()
    for d in range(3):
        mem.observe(T0 + d * DAY_MS)
        for i in range(10):
            mem.add(id_hash(f"{d}-{i}"))
    mem.seal()
    dropped = mem.expire(retention_days=45, max_entries=15)
    assert {day for day, _ in dropped} == {T0 // DAY_MS, T0 // DAY_MS + 1}
    assert len(mem) == 10
