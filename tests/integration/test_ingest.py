"""Ingest the adapter fixtures into the real broker and read back exactly what is expected.

Expected output per fixture is the reviewed golden file of the unit tests
(tests/fixtures/adapters/expected/*.jsonl): every event must arrive once, byte-for-byte
equal after decoding, on the partition of its enterprise and with the catalog key; every
rejection must be on the dead-letter topic with its original bytes; re-ingesting the same
files must produce the very same event ids.
"""

from __future__ import annotations

import base64
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from kafka import KafkaConsumer, TopicPartition
from typer.testing import CliRunner

from adapters import AccountDirectory, ParseContext, Rejected, get_parser
from adapters.cli import ingest_command
from adapters.ingest import KafkaSink, ingest_files
from adapters.producer import EventProducer
from core.kafka_config import KafkaSettings
from schemas import DeadLetter, decode, decode_as, message_key, partition_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "adapters"
EXPECTED = FIXTURES / "expected"
CASES = tomllib.loads((EXPECTED / "cases.toml").read_text(encoding="utf-8"))["case"]
KEY = "test-key-dfip-adapters-0123456789"  # the key the golden files were made with
INSTITUTION = "TEST-BANK"
EVENT_TOPICS = ("dfip.transactions", "dfip.loans", "dfip.scores")


@pytest.fixture(autouse=True)
def _hash_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFIP_ACCOUNT_HASH_KEY", KEY)
    monkeypatch.delenv("DFIP_ACCOUNT_HASH_KEY_FILE", raising=False)


def parser_for(case: dict[str, Any]):
    accounts = AccountDirectory.load(FIXTURES / "accounts.toml", KEY.encode())
    mapping = Path(case["mapping"]) if "mapping" in case else None
    return get_parser(case["format"])(ParseContext(INSTITUTION, accounts, mapping=mapping))


def expected_results(case: dict[str, Any]) -> list[dict[str, Any]]:
    lines = (EXPECTED / f"{case['file']}.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines]


def read_topic(settings: KafkaSettings, name: str) -> list[Any]:
    """Every record of a topic, partition by partition, up to its end offset now."""
    topic = settings.topic(name)
    consumer = KafkaConsumer(enable_auto_commit=False, **settings.kafka_python_config())
    try:
        deadline = time.monotonic() + 30
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            assert time.monotonic() < deadline, f"no metadata for {topic}"
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        end = consumer.end_offsets(assigned)
        records: list[Any] = []
        while any(consumer.position(tp) < end[tp] for tp in assigned):
            assert time.monotonic() < deadline, f"timed out reading {topic}"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def ingest_all(settings: KafkaSettings) -> int:
    with EventProducer(settings, client_id="dfip-adapter-test") as producer:
        for case in CASES:
            ingest_files(
                parser_for(case), [FIXTURES / case["file"]], KafkaSink(producer, INSTITUTION)
            )
        report = producer.flush(timeout=60)
    assert report.failed == 0
    return report.sent


def check_events(settings: KafkaSettings, copies: int) -> list[str]:
    """Every expected event arrived `copies` times, keyed and partitioned by the catalog."""
    expected: list[dict[str, Any]] = [
        line["event"] for case in CASES for line in expected_results(case) if "event" in line
    ]
    records = [r for name in EVENT_TOPICS for r in read_topic(settings, name)]
    seen = Counter(
        orjson.dumps(orjson.loads(r.value), option=orjson.OPT_SORT_KEYS) for r in records
    )
    wanted = Counter(
        orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in expected for _ in range(copies)
    )
    assert seen == wanted
    for record in records:
        event = decode(record.value)
        assert record.partition == partition_for(event.enterprise_uscc)  # type: ignore[union-attr]
        assert record.key == message_key(event).encode()  # type: ignore[union-attr]
    # Within a partition the records are in ingest order (file by file, entry by entry),
    # even though fresh topics make the idempotent producer retry.
    for name in EVENT_TOPICS:
        kind = {"dfip.transactions": "transaction", "dfip.loans": "loan"}.get(
            name, "digitalization_score"
        )
        wanted_order: dict[int, list[str]] = {}
        for event in expected:
            if event["kind"] == kind:
                part = partition_for(event["enterprise_uscc"])
                wanted_order.setdefault(part, []).append(event["event_id"])
        got: dict[int, list[str]] = {}
        for record in read_topic(settings, name):
            got.setdefault(record.partition, []).append(orjson.loads(record.value)["event_id"])
        assert got == {part: ids * copies for part, ids in wanted_order.items()}
    return sorted(orjson.loads(r.value)["event_id"] for r in records)


def check_dead_letters(settings: KafkaSettings, copies: int) -> list[str]:
    """Every rejection is a dead letter with location, field, class and original bytes."""
    wanted: Counter[tuple[str, str, str, bytes]] = Counter()
    for case in CASES:
        path = FIXTURES / case["file"]
        rejections = [r for r in parser_for(case).parse(path) if isinstance(r, Rejected)]
        golden = [line["rejected"] for line in expected_results(case) if "rejected" in line]
        assert [(g["field"], g["error_class"]) for g in golden] == [
            (r.field, r.error_class) for r in rejections
        ]
        for r in rejections:
            wanted[(r.location, f"{r.field}: {r.reason}", r.error_class, r.original)] += copies
    letters = [decode_as(r.value, DeadLetter) for r in read_topic(settings, "dfip.deadletter")]
    seen = Counter(
        (
            letter.source_location or "",
            letter.reason,
            letter.error_class,
            base64.b64decode(letter.original_b64),
        )
        for letter in letters
    )
    assert seen == wanted
    assert all(letter.stage == "adapter" for letter in letters)
    return sorted(letter.event_id for letter in letters)


def test_ingest_reads_back_exactly_and_reingest_keeps_ids(kafka_settings: KafkaSettings) -> None:
    sent = ingest_all(kafka_settings)
    events = check_events(kafka_settings, copies=1)
    letters = check_dead_letters(kafka_settings, copies=1)
    assert sent == len(events) + len(letters)
    assert len(set(letters)) == len(letters)

    ingest_all(kafka_settings)  # the same files again: a bank re-delivering its statements
    again = check_events(kafka_settings, copies=2)
    assert again == sorted(events + events)  # identical ids, so the stream can deduplicate
    assert check_dead_letters(kafka_settings, copies=2) == sorted(letters + letters)


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command("ingest")(ingest_command)
    app.command("noop")(lambda: None)
    return app


def test_cli_ingest_against_the_broker(kafka_settings: KafkaSettings, monkeypatch) -> None:
    monkeypatch.setenv("DFIP_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("DFIP_KAFKA_TOPIC_PREFIX", kafka_settings.topic_prefix)
    app = cli_app()
    args = [
        "ingest", "mt940", str(FIXTURES / "mt940_boc_envelope.sta"),
        "-i", INSTITUTION, "--accounts", str(FIXTURES / "accounts.toml"),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.output  # one reversal, one bad amount
    assert (
        "delivered 8 record(s): dfip.deadletter 2, dfip.ingested 1, dfip.transactions 5"
        in result.stderr
    )
    expected = [
        line["event"]
        for line in expected_results({"file": "mt940_boc_envelope.sta"})
        if "event" in line
    ]
    values = [orjson.loads(r.value) for r in read_topic(kafka_settings, "dfip.transactions")]
    assert values == expected  # one enterprise, one partition: file order
    assert len(read_topic(kafka_settings, "dfip.deadletter")) == 2


def test_cli_refuses_missing_topics(kafka_settings: KafkaSettings, monkeypatch) -> None:
    monkeypatch.setenv("DFIP_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("DFIP_KAFKA_TOPIC_PREFIX", "never-created-")
    args = ["ingest", "scores", str(FIXTURES / "scores.csv"), "-i", INSTITUTION]
    result = CliRunner().invoke(cli_app(), args)
    assert result.exit_code == 1
    assert "dfip.scores, dfip.deadletter, dfip.ingested do not exist" in result.stderr
    assert "Traceback" not in result.output
