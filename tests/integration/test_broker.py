"""The foundation: the real broker answers kafka-python, aiokafka and a Faust agent."""

from __future__ import annotations

import asyncio
import uuid

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from core.kafka_config import KafkaSettings


def _new_topic(settings: KafkaSettings, partitions: int = 3) -> str:
    name = settings.topic(f"probe-{uuid.uuid4().hex[:8]}")
    admin = KafkaAdminClient(**settings.kafka_python_config())
    admin.create_topics([NewTopic(name, partitions, 1)])
    admin.close()
    return name


def test_kafka_python_round_trip(kafka_settings: KafkaSettings) -> None:
    topic = _new_topic(kafka_settings)
    producer = KafkaProducer(
        acks="all", enable_idempotence=True, **kafka_settings.kafka_python_config()
    )
    for i in range(50):
        producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        topic,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        **kafka_settings.kafka_python_config(),
    )
    values = sorted(int(m.value[1:]) for m in consumer)
    consumer.close()
    assert values == list(range(50))


def test_aiokafka_transactional_round_trip(kafka_settings: KafkaSettings) -> None:
    topic = _new_topic(kafka_settings)

    async def scenario() -> list[bytes]:
        producer = AIOKafkaProducer(
            transactional_id=f"probe-{uuid.uuid4().hex}", **kafka_settings.aiokafka_config()
        )
        await producer.start()
        async with producer.transaction():
            await producer.send(topic, b"committed")
        await producer.begin_transaction()
        await producer.send(topic, b"aborted")
        await producer.abort_transaction()
        await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            **kafka_settings.aiokafka_config(),
        )
        await consumer.start()
        got: list[bytes] = []
        try:
            for _ in range(20):
                batch = await consumer.getmany(timeout_ms=250)
                got += [r.value for rs in batch.values() for r in rs]
                if got:
                    await asyncio.sleep(0.3)
                    batch = await consumer.getmany(timeout_ms=250)
                    got += [r.value for rs in batch.values() for r in rs]
                    break
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(scenario()) == [b"committed"]


def test_minimal_faust_agent_processes_records(kafka_settings: KafkaSettings, tmp_path) -> None:
    topic = _new_topic(kafka_settings, partitions=2)
    producer = KafkaProducer(**kafka_settings.kafka_python_config())
    for i in range(20):
        producer.send(topic, key=b"k%d" % (i % 4), value=b"%d" % i)
    producer.flush()
    producer.close()

    app = faust.App(
        f"{kafka_settings.topic_prefix}probe-app",
        broker=f"kafka://{kafka_settings.bootstrap_servers}",
        store="memory://",
        web_enabled=False,
        datadir=str(tmp_path),
        consumer_auto_offset_reset="earliest",
    )
    src = app.topic(topic, key_serializer="raw", value_serializer="raw")
    seen: list[int] = []
    done = asyncio.Event()

    @app.agent(src)
    async def collect(stream):  # type: ignore[no-untyped-def]
        async for value in stream:
            seen.append(int(value))
            if len(seen) == 20:
                done.set()

    async def scenario() -> None:
        await app.start()
        try:
            await asyncio.wait_for(done.wait(), timeout=120)
        finally:
            await app.stop()

    asyncio.run(scenario())
    assert sorted(seen) == list(range(20))
