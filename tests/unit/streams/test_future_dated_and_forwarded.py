"""Future-dated events are dead-lettered against their record's Kafka timestamp; forwarded
copies carry their origin so that a replay's second copy of a record is ignored."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas.catalog import partition_for
from schemas.codec import encode
from streams.processor import (
    DEADLETTER,
    FUTURE_DATED,
    FX,
    H_FORWARDED,
    H_LATE,
    H_ORIGIN,
    LOANS,
    SCORES,
    TRANSACTIONS,
    Output,
    Processor,
    Record,
)
from streams.reference.scores import ScoreTable
from streams.state.changelog import apply_record, dirty_records, finish_restore
from streams.state.partition import PartitionState
from tests.unit.streams.helpers import (
    HANGZHOU,
    NINGBO,
    disbursed,
    fx,
    processor,
    score,
    t,
    tx,
    value,
)

HOME = partition_for(NINGBO)
WRONG = (HOME + 1) % 12
DAY_MS = 86_400_000


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def rec(
    topic: str,
    raw: bytes | None,
    partition: int,
    offset: int,
    *,
    uscc: str = NINGBO,
    ts: int | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
) -> Record:
    return Record(topic, partition, offset, uscc.encode(), raw, tuple(headers), ts)


def as_record(out: Output, offset: int, ts: int | None = None) -> Record:
    """A forwarded output as the home partition reads it back."""
    assert out.partition is not None
    return Record(out.topic, out.partition, offset, out.key, out.value, tuple(out.headers), ts)


def forwards(proc: Processor) -> list[Output]:
    return [o for o in proc.take_outputs() if o.partition is not None and o.topic != DEADLETTER]


def letters(outs: list[Output]) -> list[dict[str, object]]:
    return [orjson.loads(o.value or b"") for o in outs if o.topic == DEADLETTER]


def flow(proc: Processor, topic: str) -> tuple[int, int, int, int]:
    return (
        value(proc, "dfip_events_received_total", (topic,)),
        value(proc, "dfip_events_processed_total", (topic,)),
        value(proc, "dfip_events_duplicate_total", (topic,)),
        sum(
            v
            for s in proc.states.values()
            for k, v in s.counters.values.get("dfip_events_deadlettered_total", {}).items()
            if k[0] == topic
        ),
    )


def assert_identity(proc: Processor, topic: str) -> None:
    received, processed, dup, dead = flow(proc, topic)
    assert received == processed + dup + dead, (received, processed, dup, dead)


# ---- future-dated events ---------------------------------------------------------------


def test_a_transaction_dated_beyond_the_bound_is_dead_lettered_at_ingress() -> None:
    proc = processor()
    now = t("10:00")
    p = partition_for(HANGZHOU)
    proc.process(rec(TRANSACTIONS, encode(tx(now)), p, 0, uscc=HANGZHOU, ts=ms(now)))
    far = encode(tx(datetime(2999, 1, 1, tzinfo=UTC)))
    proc.process(rec(TRANSACTIONS, far, p, 1, uscc=HANGZHOU, ts=ms(now)))
    (doc,) = letters(proc.take_outputs())
    assert doc["error_class"] == FUTURE_DATED
    assert doc["stage"] == "ingress"
    assert "occurred_at" in str(doc["reason"])
    assert "2999-01-01" in str(doc["reason"])
    # neither the watermark nor any figure moved
    assert proc.states[p].watermarks[TRANSACTIONS] == ms(now) * 1000
    assert value(proc, "dfip_transactions_total") == 1
    assert value(proc, "dfip_events_deadlettered_total", (TRANSACTIONS, FUTURE_DATED)) == 1
    assert_identity(proc, TRANSACTIONS)


def test_the_bound_is_inclusive_and_configurable() -> None:
    stamp = t("10:00")
    proc = processor()
    p = partition_for(HANGZHOU)
    edge = encode(tx(stamp + timedelta(days=1)))
    beyond = encode(tx(stamp + timedelta(days=1, microseconds=1)))
    proc.process(rec(TRANSACTIONS, edge, p, 0, uscc=HANGZHOU, ts=ms(stamp)))
    proc.process(rec(TRANSACTIONS, beyond, p, 1, uscc=HANGZHOU, ts=ms(stamp)))
    assert value(proc, "dfip_events_processed_total") == 1
    assert value(proc, "dfip_events_deadlettered_total", (TRANSACTIONS, FUTURE_DATED)) == 1

    strict = processor()
    strict.max_future_us = 0
    strict.process(rec(TRANSACTIONS, encode(tx(stamp)), p, 0, uscc=HANGZHOU, ts=ms(stamp)))
    later = encode(tx(stamp + timedelta(seconds=1)))
    strict.process(rec(TRANSACTIONS, later, p, 1, uscc=HANGZHOU, ts=ms(stamp)))
    assert value(strict, "dfip_events_processed_total") == 1
    assert value(strict, "dfip_events_deadlettered_total") == 1


def test_records_without_a_timestamp_are_not_checked() -> None:
    proc = processor()
    p = partition_for(HANGZHOU)
    far = tx(datetime(2999, 1, 1, tzinfo=UTC))
    proc.process(rec(TRANSACTIONS, encode(far), p, 0, uscc=HANGZHOU, ts=None))
    proc.process(rec(TRANSACTIONS, encode(tx(t("10:00"))), p, 1, uscc=HANGZHOU, ts=-1))
    assert value(proc, "dfip_events_processed_total") == 2
    assert value(proc, "dfip_events_deadlettered_total") == 0


def test_a_future_dated_loan_event_is_dead_lettered() -> None:
    proc = processor()
    p = partition_for(HANGZHOU)
    stamp = t("10:00")
    ev = disbursed(stamp + timedelta(days=3), "L1", "1000.00")
    proc.process(rec(LOANS, encode(ev), p, 0, uscc=HANGZHOU, ts=ms(stamp)))
    (doc,) = letters(proc.take_outputs())
    assert (doc["error_class"], doc["stage"], doc["topic"]) == (FUTURE_DATED, "ingress", LOANS)
    assert proc.states[p].loans == {}
    assert LOANS not in proc.states[p].watermarks
    assert_identity(proc, LOANS)


def test_a_future_dated_score_is_rejected_in_both_passes() -> None:
    stamp = t("10:00")
    p = partition_for(HANGZHOU)
    raw = encode(score(stamp + timedelta(days=2), "85"))
    proc = processor()
    proc.process_score(rec(SCORES, raw, p, 0, uscc=HANGZHOU, ts=ms(stamp)), counted=True)
    (doc,) = letters(proc.take_outputs())
    assert doc["error_class"] == FUTURE_DATED
    assert "assessed_at" in str(doc["reason"])
    assert proc.scores[p].scored == {}
    assert_identity(proc, SCORES)
    # the silent restore pass decides the same way, without a dead letter
    silent = processor()
    silent.process_score(rec(SCORES, raw, p, 0, uscc=HANGZHOU, ts=ms(stamp)), counted=False)
    assert silent.scores[p].scored == {}
    assert silent.take_outputs() == []


def test_a_future_dated_record_on_the_wrong_partition_is_dead_lettered_where_it_landed() -> None:
    proc = processor()
    stamp = t("10:00")
    proc.process(rec(TRANSACTIONS, encode(tx(stamp, uscc=NINGBO)), WRONG, 0, ts=ms(stamp)))
    (copy,) = forwards(proc)
    proc.process(as_record(copy, 0))
    far = encode(tx(stamp + timedelta(days=30), uscc=NINGBO))
    proc.process(rec(TRANSACTIONS, far, WRONG, 1, ts=ms(stamp)))
    outs = proc.take_outputs()
    assert [o.topic for o in outs] == [DEADLETTER]
    assert proc.states[WRONG].watermarks[TRANSACTIONS] == ms(stamp) * 1000
    assert_identity(proc, TRANSACTIONS)


def test_forwarded_copies_are_not_judged_again() -> None:
    proc = processor()
    stamp = t("10:00")
    ev = tx(stamp + timedelta(hours=23), uscc=NINGBO)
    proc.process(rec(TRANSACTIONS, encode(ev), WRONG, 0, ts=ms(stamp)))
    (copy,) = forwards(proc)
    # the copy's own timestamp (say, a forwarding host's clock behind) does not matter
    proc.process(as_record(copy, 0, ts=ms(stamp - timedelta(days=5))))
    assert flow(proc, TRANSACTIONS) == (1, 1, 0, 0)


# ---- forwarded copies and their origin -------------------------------------------------


def test_a_forwarded_copy_carries_its_origin() -> None:
    proc = processor()
    proc.process(rec(TRANSACTIONS, encode(tx(t("10:00"), uscc=NINGBO)), WRONG, 7))
    (copy,) = forwards(proc)
    headers = dict(copy.headers)
    assert headers[H_FORWARDED] == b"1"
    assert headers[H_LATE] == b"0"
    assert headers[H_ORIGIN] == f"{TRANSACTIONS}:{WRONG}:7".encode()
    assert copy.partition == HOME


def first_run(proc: Processor, raws: list[bytes]) -> list[Output]:
    """Each raw record on the wrong partition (offsets 0..), and the copies it forwards."""
    for i, raw in enumerate(raws):
        proc.process(rec(TRANSACTIONS, raw, WRONG, i))
    return forwards(proc)


def test_a_replay_ignores_the_copies_the_first_run_wrote() -> None:
    raws = [encode(tx(t(f"10:0{i}"), uscc=NINGBO)) for i in range(3)]
    first = processor()
    copies1 = first_run(first, raws)
    for n, c in enumerate(copies1):
        first.process(as_record(c, n))
    assert flow(first, TRANSACTIONS) == (3, 3, 0, 0)

    # replay: empty state, the input read from the start; the home partition's log holds the
    # first run's copies, then the replay's
    replay = processor()
    copies2 = first_run(replay, raws)
    for n, c in enumerate([*copies1, *copies2]):
        replay.process(as_record(c, n))
    assert flow(replay, TRANSACTIONS) == (3, 3, 0, 0)
    assert value(replay, "dfip_transaction_amount_yuan_total") == 300 * 100
    # and a second replay, with the copies of both runs before its own
    again = processor()
    copies3 = first_run(again, raws)
    for n, c in enumerate([*copies1, *copies2, *copies3]):
        again.process(as_record(c, n))
    assert flow(again, TRANSACTIONS) == (3, 3, 0, 0)


def test_a_misplaced_resend_is_a_duplicate_exactly_once_also_on_replay() -> None:
    ev = tx(t("10:00"), uscc=NINGBO, event_id="resent")

    def run(proc: Processor, old_copies: list[Output]) -> list[Output]:
        proc.process(rec(TRANSACTIONS, encode(ev), HOME, 0))  # sent home first
        copies = first_run(proc, [encode(ev)])  # then re-sent onto the wrong partition
        for n, c in enumerate([*old_copies, *copies], start=1):
            proc.process(as_record(c, n))
        return copies

    first = processor()
    copies = run(first, [])
    assert flow(first, TRANSACTIONS) == (2, 1, 1, 0)
    replay = processor()
    run(replay, copies)
    assert flow(replay, TRANSACTIONS) == (2, 1, 1, 0)
    assert value(replay, "dfip_transactions_total") == 1


def test_copies_without_an_origin_header_keep_working() -> None:
    proc = processor()
    raw = encode(tx(t("10:00"), uscc=NINGBO))
    old = [(H_FORWARDED, b"1"), (H_LATE, b"0")]
    proc.process(rec(TRANSACTIONS, raw, WRONG, 0))
    forwards(proc)
    proc.process(rec(TRANSACTIONS, raw, HOME, 0, headers=old))
    assert flow(proc, TRANSACTIONS) == (1, 1, 0, 0)
    # as before: a second such copy is taken for a duplicate
    proc.process(rec(TRANSACTIONS, raw, HOME, 1, headers=old))
    assert value(proc, "dfip_events_duplicate_total") == 1
    # a malformed origin is treated like no origin
    bad = [*old, (H_ORIGIN, b"not an origin")]
    proc.process(rec(TRANSACTIONS, raw, HOME, 2, headers=bad))
    assert value(proc, "dfip_events_duplicate_total") == 2


def test_the_origin_memory_survives_a_restore() -> None:
    raw = encode(tx(t("10:00"), uscc=NINGBO))
    proc = processor()
    (copy,) = first_run(proc, [raw])
    proc.process(as_record(copy, 0))
    proc.finish_batch()
    restored = PartitionState(HOME)
    for key, val in dirty_records(proc.states[HOME]):
        apply_record(restored, key, val)
    finish_restore(restored)
    proc.states[HOME] = restored
    proc.process(as_record(copy, 1))  # a second copy, read after the restore
    assert flow(proc, TRANSACTIONS) == (1, 1, 0, 0)


def test_a_dead_lettered_forward_is_counted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # no USD rate and no room to park it (streams/aggregate/fx_book.py): rejected
    monkeypatch.setattr("streams.reference.fx_state.MAX_PARKED", 0)
    raw = encode(tx(t("10:00"), "5.00", uscc=NINGBO, currency="USD"))
    first = processor()
    (copy1,) = first_run(first, [raw])
    first.process(as_record(copy1, 0))
    replay = processor()
    (copy2,) = first_run(replay, [raw])
    replay.process(as_record(copy1, 0))
    replay.process(as_record(copy2, 1))
    assert flow(replay, TRANSACTIONS) == (1, 0, 0, 1)
    assert value(replay, "dfip_events_deadlettered_total", (TRANSACTIONS, "fx_rate_missing")) == 1


def test_forwarded_scores_are_taken_once_on_replay() -> None:
    raw = encode(score(t("09:00"), "85", uscc=NINGBO))

    def run(proc: Processor, old: list[Output]) -> list[Output]:
        proc.process_score(rec(SCORES, raw, WRONG, 0), counted=True)
        copies = forwards(proc)
        for n, c in enumerate([*old, *copies]):
            proc.process_score(as_record(c, n), counted=True)
        return copies

    first = processor()
    copies = run(first, [])
    assert flow(first, SCORES) == (1, 1, 0, 0)
    replay = processor()
    run(replay, copies)
    assert flow(replay, SCORES) == (1, 1, 0, 0)
    assert replay.scores[HOME].scored == {("l4", "C"): 1}


def test_a_silent_restore_pass_ignores_origins() -> None:
    raw = encode(score(t("09:00"), "85", uscc=NINGBO))
    proc = processor()
    proc.process_score(rec(SCORES, raw, WRONG, 0), counted=True)
    (copy,) = forwards(proc)
    proc.process_score(as_record(copy, 0), counted=True)
    # a restore rebuilds the table from the start of the partition, silently
    proc.scores[HOME] = ScoreTable()
    proc.process_score(as_record(copy, 0), counted=False)
    assert proc.scores[HOME].scored == {("l4", "C"): 1}
    assert flow(proc, SCORES) == (1, 1, 0, 0)


def test_fx_is_untouched() -> None:
    proc = processor()
    proc.process_fx(rec(FX, encode(fx(t("00:00").date(), "USD", "7.1")), 0, 0, ts=0))
    assert value(proc, "dfip_events_processed_total", (FX,)) == 1
