"""`dfip topics list`, `dfip topics tail` and `dfip deadletters` against the real broker."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from core.kafka_config import KafkaSettings
from dfip.peek import dead_letters, decode_bytes, tail, topic_rows
from schemas.codec import encode
from schemas.enums import DeadLetterStage
from schemas.errors import SchemaError
from schemas.events import DeadLetter

DFIP = str(Path(sys.executable).parent / "dfip")


@pytest.fixture
def producer(kafka_settings: KafkaSettings) -> Iterator[KafkaProducer]:
    p = KafkaProducer(**kafka_settings.kafka_python_config())
    yield p
    p.close()


def _env(kafka: KafkaSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DFIP_")}
    env.update(
        DFIP_KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
        DFIP_KAFKA_TOPIC_PREFIX=kafka.topic_prefix,
        COLUMNS="200",
    )
    return env


def test_tail_reads_committed_records_only(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    topic = kafka_settings.topic("dfip.late")
    plain = KafkaProducer(**kafka_settings.kafka_python_config())
    for i in range(5):
        plain.send(topic, key=b"k", value=f'{{"n": {i}}}'.encode(), partition=0)
    plain.flush()
    plain.close()
    txn = KafkaProducer(
        transactional_id=f"peek-{kafka_settings.topic_prefix}",
        **kafka_settings.kafka_python_config(),
    )
    txn.init_transactions()
    txn.begin_transaction()
    txn.send(topic, key=b"k", value=b'{"n": "aborted"}', partition=0)
    txn.flush()
    txn.abort_transaction()
    txn.close()

    got: list[str] = []
    tail(kafka_settings, topic, count=3, follow=False, emit=lambda r: got.append(r.value))
    assert got == [b'{"n": 2}', b'{"n": 3}', b'{"n": 4}']

    out = subprocess.run(
        [DFIP, "topics", "tail", "dfip.late", "-n", "2"],
        cwd=tmp_path,
        env=_env(kafka_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("p0@3 ")
    assert lines[1].endswith('key=k {"n":4}')
    assert "aborted" not in out.stdout


def test_tail_follow_prints_new_records_until_interrupted(
    kafka_settings: KafkaSettings, producer: KafkaProducer, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [DFIP, "topics", "tail", "dfip.fx", "--follow", "-n", "0"],
        cwd=tmp_path,
        env=_env(kafka_settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
        reader.start()
        deadline = time.monotonic() + 90
        while not lines and time.monotonic() < deadline:
            # sent until seen: the tail may still be connecting when the first one arrives
            producer.send(kafka_settings.topic("dfip.fx"), key=b"USD:x", value=b"hello")
            producer.flush()
            time.sleep(1)
        assert lines, "no record printed"
        assert lines[0].rstrip().endswith("key=USD:x hello")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        reader.join(timeout=10)


def test_deadletters_counts_reasons_and_decodes_the_original(
    kafka_settings: KafkaSettings, producer: KafkaProducer, tmp_path: Path
) -> None:
    topic = kafka_settings.topic("dfip.deadletter")
    now = datetime.now(UTC)
    originals = ["交易,金额\n1,abc".encode("gb18030"), b'{"kind": "transaction"}', b"\xff\x00\x01"]
    for i, original in enumerate(originals):
        letter = DeadLetter.from_failure(
            original,
            SchemaError("invalid_field") if i else ValueError("boom"),
            stage=DeadLetterStage.ingress,
            first_seen=now,
            source_location=f"bank.csv:{i + 2}",
        )
        producer.send(topic, value=encode(letter))
    producer.flush()

    summary = dead_letters(kafka_settings, last=2)
    assert summary.total == 3
    assert summary.by_reason == {
        ("ingress", "invalid_field"): 2,
        ("ingress", "processing_error"): 1,
    }
    # the newest two (records sent within one millisecond may land in either order)
    assert len(summary.last) == 2
    assert {e["original"] for e in summary.last} <= {
        '{"kind":"transaction"}',
        "hex:ff0001",
        "交易,金额\n1,abc",
    }
    assert decode_bytes(originals[0]) == "交易,金额\n1,abc"  # GB18030 shown as text

    out = subprocess.run(
        [DFIP, "deadletters", "-n", "3"],
        cwd=tmp_path,
        env=_env(kafka_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "3 dead letters" in out.stdout
    assert "invalid_field" in out.stdout
    assert "bank.csv:4" in out.stdout
    assert "original: hex:ff0001" in out.stdout
    assert base64.b64encode(originals[2]).decode() not in out.stdout


def test_list_shows_end_offsets_and_the_group_lag(
    kafka_settings: KafkaSettings, producer: KafkaProducer
) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    topic = kafka_settings.topic("dfip.transactions")
    for _ in range(4):
        producer.send(topic, key=b"x", value=b"{}", partition=3)
    producer.flush()
    group = f"{kafka_settings.topic_prefix}dfip"
    consumer = KafkaConsumer(group_id=group, **kafka_settings.kafka_python_config())
    consumer.commit({TopicPartition(topic, 3): OffsetAndMetadata(1, "", -1)})
    consumer.close()

    rows = {r.name: r for r in topic_rows(kafka_settings, group)}
    assert rows[topic].end_offset == 4
    assert rows[topic].partitions == 12
    assert rows[topic].lag == 3
    assert rows[kafka_settings.topic("dfip.fx")].lag is None  # the group never read it
