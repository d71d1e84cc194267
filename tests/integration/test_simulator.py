"""The simulator against the real broker: every record arrives, in produce order, per partition.

The oracle replays the feed in produce order per topic-partition; this test proves the broker
holds exactly that order (offset order) and that its `received` figures are what is on the
topics.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from kafka import KafkaConsumer, TopicPartition

from adapters.simulator.feed import Feed
from adapters.simulator.model import INPUT_TOPICS
from adapters.simulator.runner import SimulationConfig, run_simulation
from core.kafka_config import KafkaSettings
from schemas import encode, message_key

CONFIG = SimulationConfig(
    seed=21,
    events=8000,
    start=datetime(2025, 3, 3, 20, 0, tzinfo=UTC),
    step_seconds=Decimal(15),
    enterprises=300,
    bad_rate=0.03,
)


def _consume_all(settings: KafkaSettings) -> dict[tuple[str, int], list[tuple[bytes, bytes]]]:
    consumer = KafkaConsumer(
        enable_auto_commit=False, group_id=None, **settings.kafka_python_config()
    )
    try:
        partitions = [
            TopicPartition(settings.topic(t), p)
            for t in INPUT_TOPICS
            for p in sorted(consumer.partitions_for_topic(settings.topic(t)) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        out: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            for tp, messages in consumer.poll(timeout_ms=2000).items():
                name = tp.topic.removeprefix(settings.topic_prefix)
                for m in messages:
                    out[(name, tp.partition)].append((m.key, m.value))
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return out
    finally:
        consumer.close()


def test_every_record_lands_where_and_in_the_order_the_oracle_assumes(kafka_settings):
    result = run_simulation(kafka_settings, CONFIG)
    assert result.records == result.delivered == CONFIG.events

    on_broker = _consume_all(kafka_settings)
    per_topic = Counter()
    for (topic, _), records in on_broker.items():
        per_topic[topic] += len(records)
    received = {
        s["labels"]["topic"]: s["value"]
        for s in result.oracle["figures"]["dfip_events_received_total"]
    }
    assert dict(per_topic) == received == result.by_topic

    # The same feed again (it is deterministic), grouped the way the oracle replays it.
    expected: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = defaultdict(list)
    for record in itertools.islice(Feed(CONFIG.feed_config()), CONFIG.events):
        if record.raw is not None:
            key, value = record.key, record.raw
        else:
            assert record.event is not None
            text = message_key(record.event)
            key, value = (text.encode() if text else None), encode(record.event)
        expected[(record.topic, record.partition)].append((key, value))
    assert on_broker.keys() == expected.keys()
    for where, records in expected.items():
        assert on_broker[where] == records, where


def test_rate_limit_holds_against_the_broker(kafka_settings):
    config = SimulationConfig(seed=3, events=600, rate=400, enterprises=100)
    result = run_simulation(kafka_settings, config)
    assert result.delivered == 600
    # 600 records at 400/s with a 20-record burst: at least ~1.45 s.
    assert result.elapsed_seconds >= 1.4
    assert result.rate <= 420
