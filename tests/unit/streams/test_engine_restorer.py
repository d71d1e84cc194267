"""The restorer and the reference sync: a partition restored from its changelog (local copy
first, then the topic's tail) holds exactly the committed state, with its score table rebuilt
silently up to the checkpoint; the reference catch-up counts what came after."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import date
from typing import Any, TypeVar

from aiokafka.structs import TopicPartition

from core.kafka_config import KafkaSettings
from schemas import figure_names as fn
from schemas.catalog import FX, SCORES, STATE_TOPIC, TRANSACTIONS, partition_for
from schemas.codec import encode
from streams.engine.committer import Committer
from streams.engine.reference_sync import ReferenceSync
from streams.engine.restorer import Restorer
from streams.processor import Processor, Record
from streams.settings import WorkerSettings
from tests.unit.streams.engine_fakes import FakeConsumer, FakeProducer, RecordingStore
from tests.unit.streams.helpers import HANGZHOU, fx, processor, score, t, tx, value

P = partition_for(HANGZHOU)
KAFKA = KafkaSettings(topic_prefix="u2.")
STATE_TP = TopicPartition(f"u2.{STATE_TOPIC.name}", P)
SCORES_TP = TopicPartition(f"u2.{SCORES.name}", P)
FX_TP = TopicPartition(f"u2.{FX.name}", 0)
T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    # a fake that never reaches its end would loop: fail instead of hanging the suite
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def _committed() -> tuple[Processor, list[tuple[bytes, bytes | None]], list[bytes]]:
    """A partition that took one score and two transactions, and its committed changelog."""
    proc = processor(partitions=(P,))
    scores = [encode(score(t("09:00"), "61.5"))]
    proc.process_score(Record(SCORES.name, P, 0, HANGZHOU.encode(), scores[0]), counted=True)
    for i, at in enumerate((t("10:00"), t("11:00"))):
        proc.process(Record(TRANSACTIONS.name, P, i, HANGZHOU.encode(), encode(tx(at))))
    committer = Committer(
        KAFKA,
        WorkerSettings(),
        RecordingStore(),
        group_id="g",
        exactly_once=True,
        on_stage=lambda s, x: None,
    )
    committer._producer = FakeProducer()  # type: ignore[assignment]
    c = committer.prepare(proc, (), 0.0)
    return proc, c.changelog[P], scores


def _parts(
    store: RecordingStore,
) -> tuple[Processor, ReferenceSync, Restorer, FakeConsumer, FakeConsumer]:
    proc = Processor(grace_us=600 * 1_000_000)
    sync = ReferenceSync(KAFKA, proc, acks=False)
    refs = FakeConsumer()
    sync.reader._consumer = refs  # type: ignore[assignment]  # broker-free stand-in
    sync.reader._reassign()
    restorer = Restorer(KAFKA, WorkerSettings(), store, proc, sync, read_committed=True)
    changelog = FakeConsumer()
    restorer._consumer = changelog  # type: ignore[assignment]
    return proc, sync, restorer, refs, changelog


def test_a_restored_partition_holds_exactly_the_committed_state() -> None:
    source, rows, scores = _committed()
    store = RecordingStore()
    proc, _sync, restorer, refs, changelog = _parts(store)
    for key, val in rows:
        changelog.append(STATE_TP, key, val)
    refs.append(SCORES_TP, HANGZHOU.encode(), scores[0])
    state = _run(restorer.restore(P))
    assert proc.partitions == [P]
    assert proc.states[P] is state
    assert state.counters.snapshot() == source.states[P].counters.snapshot()
    assert state.offsets == source.states[P].offsets
    # the score table is rebuilt, silently: the score is not counted a second time
    assert len(proc.scores[P]) == len(source.scores[P]) == 1
    assert value(proc, fn.EVENTS_RECEIVED_TOTAL) == value(source, fn.EVENTS_RECEIVED_TOTAL)
    # the local copy now covers the whole changelog, saved chunk by chunk as it was read
    assert store.rows[P] == rows
    assert store.next[P] == len(rows)
    # both consumers are paused between reads (no empty fetches while batches run)
    assert changelog.paused == {STATE_TP}
    assert refs.paused == refs.assignment()
    assert not proc.has_changes()


def test_the_local_copy_is_read_first_and_only_the_tail_from_the_topic() -> None:
    source, rows, scores = _committed()
    store = RecordingStore()
    store.save(P, rows, len(rows))
    _proc, _, restorer, refs, changelog = _parts(store)
    for key, val in rows:
        changelog.append(STATE_TP, key, val)
    refs.append(SCORES_TP, HANGZHOU.encode(), scores[0])
    state = _run(restorer.restore(P))
    assert state.counters.snapshot() == source.states[P].counters.snapshot()
    assert store.rows[P] == rows  # nothing read from the topic: nothing saved again


def test_scores_after_the_checkpoint_are_counted_by_the_next_catch_up() -> None:
    source, rows, scores = _committed()
    proc, sync, restorer, refs, changelog = _parts(RecordingStore())
    for key, val in rows:
        changelog.append(STATE_TP, key, val)
    refs.append(SCORES_TP, HANGZHOU.encode(), scores[0])
    refs.append(SCORES_TP, HANGZHOU.encode(), encode(score(t("12:00"), "70")))
    _run(restorer.restore(P))
    before = value(proc, fn.EVENTS_RECEIVED_TOTAL)
    assert before == value(source, fn.EVENTS_RECEIVED_TOTAL)  # the new one not yet
    _run(sync.catch_up(proc.partitions))
    assert value(proc, fn.EVENTS_RECEIVED_TOTAL) == before + 1
    assert proc.states[P].offsets[SCORES.name] == 2
    assert proc.has_changes()  # the idle tick commits it
    assert refs.paused == refs.assignment()


def test_fx_rates_reach_the_processor_and_a_dropped_partition_is_not_read() -> None:
    proc, sync, _restorer, refs, _ = _parts(RecordingStore())
    refs.append(FX_TP, b"USD", encode(fx(date(2026, 1, 5), "USD", "7.1")))
    sync.follow([])
    _run(sync.catch_up([]))
    assert len(proc.fx) == 1
    assert refs.assignment() == {FX_TP}  # no scores partition followed


def test_records_are_counted_between_offsets() -> None:
    _, _, restorer, _, changelog = _parts(RecordingStore())
    for i in range(6):
        changelog.append(STATE_TP, b"k%d" % i, b"v")
    counts = _run(restorer.count_records({STATE_TP: (1, 4)}, timeout=10))
    assert counts == {STATE_TP: 3}
    assert changelog.paused == {STATE_TP}
