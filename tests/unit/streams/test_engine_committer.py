"""The committer: what a batch's commit takes out of the processor, and the one transaction
that writes it (outputs, changelog, group offsets) before its figures are published."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from core.kafka_config import KafkaSettings
from schemas.catalog import DEADLETTER, STATE_TOPIC, TRANSACTIONS, partition_for
from schemas.codec import encode
from streams.engine.committer import Commit, Committer
from streams.settings import WorkerSettings
from streams.state.changelog import apply_record, finish_restore
from streams.state.partition import PartitionState
from tests.unit.streams.engine_fakes import FakeProducer, RecordingStore
from tests.unit.streams.helpers import HANGZHOU, processor, record, t, tx

P = partition_for(HANGZHOU)
KAFKA = KafkaSettings(topic_prefix="u1.")


def _committer(
    producer: FakeProducer, store: RecordingStore, *, exactly_once: bool = True, **kw: Any
) -> tuple[Committer, list[Commit], list[str]]:
    published: list[Commit] = []
    stages: list[str] = []
    c = Committer(
        KAFKA,
        WorkerSettings(),
        store,
        group_id="u1.dfip",
        exactly_once=exactly_once,
        on_stage=lambda stage, s: stages.append(stage),
        on_committed=published.append,
        **kw,
    )
    c._producer = producer  # type: ignore[assignment]  # the broker-free stand-in
    return c, published, stages


def _batch() -> tuple[Any, list[Any]]:
    proc = processor(partitions=(P,))
    records = [
        record(TRANSACTIONS.name, encode(tx(t("10:00")))),
        record(TRANSACTIONS.name, b"not an event"),  # a dead letter: one output
    ]
    for r in records:
        proc.process(r)
    return proc, records


def test_prepare_takes_the_batch_out_of_the_processor() -> None:
    proc, records = _batch()
    committer, _, _ = _committer(FakeProducer(), RecordingStore())
    c = committer.prepare(proc, records, 1.5)
    state = proc.states[P]
    assert [o.topic for o in c.outputs] == [DEADLETTER.name]
    assert list(c.changelog) == [P]
    assert c.changelog[P]
    # the next offset to read, under the prefixed topic name, for the group's commit
    tp = TopicPartition(f"u1.{TRANSACTIONS.name}", P)
    assert c.offsets == {tp: OffsetAndMetadata(records[-1].offset + 1, "")}
    assert c.figures == {P: state.counters.snapshot()}
    assert c.records is records
    assert c.started == 1.5
    # taken: the processor has nothing left to commit
    assert not proc.has_changes()
    assert proc.take_outputs() == []
    again = committer.prepare(proc, (), 2.0)
    assert again.outputs == []
    assert again.changelog == {}
    assert again.offsets == {}


def test_the_changelog_restores_the_committed_state() -> None:
    proc, records = _batch()
    committer, _, _ = _committer(FakeProducer(), RecordingStore())
    c = committer.prepare(proc, records, 0.0)
    restored = PartitionState(P)
    for key, value in c.changelog[P]:
        apply_record(restored, key, value)
    finish_restore(restored)
    assert restored.counters.snapshot() == proc.states[P].counters.snapshot()
    assert restored.offsets == proc.states[P].offsets


def test_one_transaction_then_the_local_copy_then_publication() -> None:
    proc, records = _batch()
    producer, store = FakeProducer(), RecordingStore()
    committer, published, stages = _committer(producer, store)
    c = committer.prepare(proc, records, 0.0)
    asyncio.run(committer.write(c))
    state_topic = f"u1.{STATE_TOPIC.name}"
    assert producer.calls == [
        "begin",
        f"send u1.{DEADLETTER.name}",
        f"batch {state_topic}[{P}]",
        "offsets u1.dfip",
        "commit",
    ]
    # the local copy reaches to just after the last changelog record written
    assert store.next[P] == producer.offsets[(state_topic, P)]
    assert store.rows[P] == c.changelog[P]
    assert published == [c]
    assert stages == ["transaction"]


def test_a_refused_record_fails_the_commit_before_it_commits() -> None:
    proc, records = _batch()
    producer, store = FakeProducer(refuse=f"u1.{DEADLETTER.name}"), RecordingStore()
    committer, published, _ = _committer(producer, store)
    c = committer.prepare(proc, records, 0.0)

    async def submit_and_settle() -> None:
        committer.submit(c)  # in the background, as the next batch is applied
        await committer.settle()  # raises the failure to whoever waits next

    with pytest.raises(RuntimeError, match="refused"):
        asyncio.run(submit_and_settle())
    assert "commit" not in producer.calls
    assert published == []
    assert store.rows == {}


def test_at_least_once_commits_the_group_offsets_after_the_records() -> None:
    proc, records = _batch()
    producer = FakeProducer()
    committed: list[dict[TopicPartition, OffsetAndMetadata]] = []

    async def commit_offsets(offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        committed.append(offsets)

    committer, published, _ = _committer(
        producer, RecordingStore(), exactly_once=False, commit_offsets=commit_offsets
    )
    c = committer.prepare(proc, records, 0.0)
    asyncio.run(committer.write(c))
    assert "begin" not in producer.calls
    assert "commit" not in producer.calls
    assert not any(call.startswith("offsets") for call in producer.calls)
    assert committed == [c.offsets]
    assert published == [c]


def test_an_empty_commit_writes_nothing_and_is_still_published() -> None:
    producer = FakeProducer()
    committer, published, stages = _committer(producer, RecordingStore())
    c = committer.prepare(processor(partitions=(P,)), (), 0.0)
    asyncio.run(committer.write(c))
    assert producer.calls == []
    assert published == [c]
    assert stages == []
