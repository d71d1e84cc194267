"""The topic catalog and Kafka-compatible partitioning."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import DefaultPartitioner
from schema_strategies import usccs

from schemas import (
    TOPICS,
    USCC_PARTITIONS,
    DeadLetter,
    DigitalizationScore,
    FxRate,
    LoanEvent,
    TopicSpec,
    TransactionEvent,
    encode,
    message_key,
    partition_for,
    score_key,
    topic_by_name,
    utc_iso,
)
from schemas.alerts import Alert, AlertAck
from schemas.catalog import DAY_MS
from schemas.examples import EXAMPLE_USCC, example_events


def test_catalog_matches_the_contract():
    expected = {
        "dfip.transactions": ("uscc", TransactionEvent, 12, "delete", 7 * DAY_MS),
        "dfip.loans": ("uscc", LoanEvent, 12, "delete", 30 * DAY_MS),
        "dfip.scores": ("{uscc}@{assessed_at}", DigitalizationScore, 12, "delete", -1),
        "dfip.fx": ("{currency}:{rate_date}", FxRate, 1, "delete", -1),
        "dfip.deadletter": ("original key or none", DeadLetter, 3, "delete", 30 * DAY_MS),
        "dfip.late": ("uscc", None, 12, "delete", 30 * DAY_MS),
        "dfip.metrics": ("window id", None, 3, "compact", None),
        "dfip.ingested": ("{institution}|{document sha256}", None, 1, "compact", None),
        "dfip.alerts": ("uscc", Alert, 12, "delete", 400 * DAY_MS),
        "dfip.alerts.ack": ("uscc", AlertAck, 12, "delete", 400 * DAY_MS),
    }
    assert [t.name for t in TOPICS] == list(expected)
    for spec in TOPICS:
        key, model, partitions, cleanup, retention = expected[spec.name]
        assert (spec.key, spec.partitions, spec.cleanup_policy, spec.retention_ms) == (
            key,
            partitions,
            cleanup,
            retention,
        )
        assert spec.value_model is model
        assert spec.description


def test_all_uscc_keyed_topics_share_one_partition_count():
    uscc_topics = [t for t in TOPICS if t.uscc_partitioned]
    assert {t.name for t in uscc_topics} == {
        "dfip.transactions",
        "dfip.loans",
        "dfip.scores",
        "dfip.late",
        "dfip.alerts",
        "dfip.alerts.ack",
    }
    assert {t.partitions for t in uscc_topics} == {USCC_PARTITIONS}
    assert USCC_PARTITIONS == 12


def test_a_uscc_topic_with_another_partition_count_is_refused():
    with pytest.raises(ValueError, match="partitions"):
        TopicSpec("x", "uscc", None, 6, "delete", None, uscc_partitioned=True)
    with pytest.raises(ValueError):
        TopicSpec("x", "k", None, 0, "delete", None)


def test_topic_names_are_unique_and_valid_kafka_names():
    names = [t.name for t in TOPICS]
    assert len(set(names)) == len(names)
    for name in names:
        assert len(name) <= 249
        assert all(c.isalnum() or c in "._-" for c in name)


def test_topic_by_name():
    assert topic_by_name("dfip.fx").partitions == 1
    with pytest.raises(KeyError):
        topic_by_name("dfip.nope")


def test_topic_config_for_creation():
    assert topic_by_name("dfip.transactions").topic_config() == {
        "cleanup.policy": "delete",
        "retention.ms": str(7 * DAY_MS),
    }
    assert topic_by_name("dfip.metrics").topic_config() == {"cleanup.policy": "compact"}
    assert topic_by_name("dfip.scores").topic_config() == {
        "cleanup.policy": "delete",
        "retention.ms": "-1",
        "retention.bytes": "-1",
    }
    spec = TopicSpec("t", "k", None, 1, "compact", None, config={"min.compaction.lag.ms": "0"})
    assert spec.topic_config()["min.compaction.lag.ms"] == "0"
    assert hash(spec) == hash(TopicSpec("t", "k", None, 1, "compact", None))


class _Cluster:
    def __init__(self, partitions: int):
        self._partitions = set(range(partitions))

    def topics(self):
        return {"t"}

    def partitions_for_topic(self, topic):
        return self._partitions

    def available_partitions_for_topic(self, topic):
        return self._partitions


def _kafka_python_partition(key: str, partitions: int) -> int:
    encoded = key.encode("utf-8")
    return DefaultPartitioner().partition("t", key, encoded, None, None, _Cluster(partitions))


@given(usccs, st.integers(min_value=1, max_value=64))
def test_partition_for_matches_kafka_pythons_default_partitioner(uscc, partitions):
    assert partition_for(uscc, partitions) == _kafka_python_partition(uscc, partitions)


@given(st.text(max_size=40))
def test_partition_for_matches_for_any_utf8_key(key):
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return
    assert partition_for(key) == _kafka_python_partition(key, USCC_PARTITIONS)


@pytest.mark.parametrize(
    ("key", "java_murmur2"),
    [  # kafka-clients UtilsTest.testMurmur2 (signed 32-bit results of Utils.murmur2)
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_hash_matches_the_java_client(key, java_murmur2):
    assert partition_for(key.decode(), 2**31 - 1) == (java_murmur2 & 0x7FFFFFFF) % (2**31 - 1)


@pytest.mark.parametrize(
    ("key", "partition"),
    [("", 681), ("a", 524), ("ab", 434), ("abc", 107), ("123456789", 566), ("\x00 ", 742)],
)
def test_partition_vectors_over_1000_partitions(key, partition):
    # Values the Java producer's default partitioner gives (kafka-python's compat test).
    assert partition_for(key, 1000) == partition


def test_message_keys():
    events = {type(e).__name__: e for e in example_events()}
    tx = events["TransactionEvent"]
    assert message_key(tx) == tx.enterprise_uscc
    assert message_key(events["LoanDisbursed"]) == EXAMPLE_USCC
    score = events["DigitalizationScore"]
    assert isinstance(score, DigitalizationScore)
    assert message_key(score) == f"{EXAMPLE_USCC}@2024-03-31T16:00:00Z" == score_key(score)
    assert message_key(events["FxRate"]) == "USD:2024-05-06"
    assert message_key(events["DeadLetter"]) is None
    with pytest.raises(TypeError):
        message_key(object())


@given(st.datetimes(timezones=st.just(UTC)))
def test_utc_iso_matches_the_codec(moment):
    from pydantic import TypeAdapter

    from schemas.fields import UtcDatetime

    encoded = TypeAdapter(UtcDatetime).dump_json(moment).decode().strip('"')
    assert utc_iso(moment) == encoded


def test_utc_iso_rejects_other_offsets():
    from datetime import timedelta, timezone

    with pytest.raises(ValueError):
        utc_iso(datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=8))))


def test_score_key_is_unique_per_assessment_version():
    score = next(e for e in example_events() if isinstance(e, DigitalizationScore))
    later = score.model_copy(
        update={
            "occurred_at": datetime(2024, 9, 30, tzinfo=UTC),
            "assessed_at": datetime(2024, 9, 30, tzinfo=UTC),
        }
    )
    assert score_key(score) != score_key(later)
    assert partition_for(score.enterprise_uscc) == partition_for(later.enterprise_uscc)
    assert encode(score) != encode(later)
