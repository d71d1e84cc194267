"""EventProducer routing, keys, partitions and delivery accounting (with a fake client)."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from kafka.errors import KafkaTimeoutError

from adapters import producer as producer_module
from adapters.base import Rejected
from adapters.ingest import dead_letter
from adapters.producer import DeliveryError, EventProducer, KafkaUnavailable
from dfip.kafka_config import KafkaSettings
from schemas import (
    DigitalizationScore,
    FxRate,
    LoanWithdrawn,
    TransactionEvent,
    decode,
    partition_for,
)

USCC = "91330106MA2H3K4P70"
NOW = datetime(2024, 3, 5, 1, 2, 3, tzinfo=UTC)


class FakeFuture:
    def __init__(self, fail: Exception | None) -> None:
        self.fail = fail

    def add_callback(self, fn: Any, *args: Any) -> FakeFuture:
        if self.fail is None:
            fn(*args, "metadata")
        return self

    def add_errback(self, fn: Any, *args: Any) -> FakeFuture:
        if self.fail is not None:
            fn(*args, self.fail)
        return self


class FakeKafkaProducer:
    instances: ClassVar[list[FakeKafkaProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[dict[str, Any]] = []
        self.fail_topics: set[str] = set()
        self.closed = False
        FakeKafkaProducer.instances.append(self)

    def send(self, topic: str, **kwargs: Any) -> FakeFuture:
        self.sent.append({"topic": topic, **kwargs})
        fail = KafkaTimeoutError("no ack") if topic in self.fail_topics else None
        return FakeFuture(fail)

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeKafkaProducer]:
    FakeKafkaProducer.instances = []
    monkeypatch.setattr(producer_module, "KafkaProducer", FakeKafkaProducer)
    return FakeKafkaProducer


def transaction() -> TransactionEvent:
    return TransactionEvent(
        event_id="e1",
        source="B",
        institution_type="bank",
        occurred_at=NOW,
        enterprise_uscc=USCC,
        direction="credit",
        amount=Decimal("1.00"),
        currency="CNY",
        booking_date=date(2024, 3, 5),
        value_date=date(2024, 3, 5),
    )


def test_routing_keys_and_partitions(fake) -> None:
    settings = KafkaSettings(topic_prefix="p-")
    with EventProducer(settings) as producer:
        producer.send(transaction())
        producer.send(
            LoanWithdrawn(
                event_id="l1",
                source="B",
                institution_type="bank",
                occurred_at=NOW,
                enterprise_uscc=USCC,
                loan_id="L",
                application_id="A",
                lender_id="B",
                channel="online",
            )
        )
        producer.send(
            DigitalizationScore(
                event_id="s1",
                source="B",
                institution_type="bank",
                occurred_at=NOW,
                enterprise_uscc=USCC,
                framework="miit_sme_2022",
                overall_score=Decimal(55),
                level="L2",
                assessed_at=NOW,
                industry_section="C",
            )
        )
        producer.send(
            FxRate(
                event_id="f1",
                source="PBOC",
                currency="USD",
                rate_date=date(2024, 3, 5),
                rate_to_cny=Decimal("7.1"),
                published_at=NOW,
            )
        )
        producer.send_raw("dfip.transactions", b"not json", key=b"k", partition=3)
        report = producer.flush()
    client = fake.instances[0]
    assert client.config["acks"] == "all"
    assert client.config["enable_idempotence"] is True
    assert client.config["linger_ms"] == 5
    assert client.closed
    sent = client.sent
    assert [s["topic"] for s in sent] == [
        "p-dfip.transactions",
        "p-dfip.loans",
        "p-dfip.scores",
        "p-dfip.fx",
        "p-dfip.transactions",
    ]
    part = partition_for(USCC)
    assert [s["partition"] for s in sent] == [part, part, part, None, 3]
    assert sent[0]["key"] == USCC.encode()
    assert sent[2]["key"] == f"{USCC}@2024-03-05T01:02:03Z".encode()
    assert sent[3]["key"] == b"USD:2024-03-05"
    assert decode(sent[0]["value"]) == transaction()
    assert report.sent == 5
    assert report.failed == 0
    assert report.by_topic == {
        "dfip.transactions": 2,
        "dfip.loans": 1,
        "dfip.scores": 1,
        "dfip.fx": 1,
    }


def test_failures_are_counted_and_raised_at_flush(fake) -> None:
    producer = EventProducer(KafkaSettings())
    fake.instances[0].fail_topics = {"dfip.transactions"}
    producer.send(transaction())
    producer.send_raw("dfip.loans", b"{}")
    with pytest.raises(DeliveryError) as caught:
        producer.flush()
    assert caught.value.report.sent == 1
    assert caught.value.report.failed == 1
    assert "no ack" in str(caught.value)
    assert producer.flush().sent == 0  # the next flush starts a new count
    assert producer.totals == (1, 1)


def test_dead_letters(fake) -> None:
    rejected = Rejected("/data/in/stmt.xml:12#/Document/X", "Amt", "bad amount", b"<Ntry/>")
    letter = dead_letter(rejected, "BANK", Path("/data/in/stmt.xml"), NOW)
    again = dead_letter(rejected, "BANK", Path("/elsewhere/stmt.xml"), NOW)
    assert (
        letter.event_id
        == dead_letter(
            Rejected("/elsewhere/stmt.xml:12#/Document/X", "Amt", "bad amount", b"<Ntry/>"),
            "BANK",
            Path("/elsewhere/stmt.xml"),
            NOW,
        ).event_id
    )  # the id depends on the file name, not where the file was
    assert again.source_location == rejected.location
    assert base64.b64decode(letter.original_b64) == b"<Ntry/>"
    assert letter.reason == "Amt: bad amount"
    with EventProducer(KafkaSettings()) as producer:
        producer.send_dead_letter(letter)
        producer.flush()
    [sent] = fake.instances[0].sent
    assert sent["topic"] == "dfip.deadletter"
    assert sent["key"] is None
    assert sent["partition"] is None


def test_unreachable_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**_: Any) -> None:
        raise KafkaTimeoutError("Unable to bootstrap")

    monkeypatch.setattr(producer_module, "KafkaProducer", refuse)
    with pytest.raises(KafkaUnavailable, match=r"unreachable at 10\.0\.0\.1:9092"):
        EventProducer(KafkaSettings(bootstrap_servers="10.0.0.1:9092"))


def test_send_errors_are_failed_deliveries(fake, monkeypatch: pytest.MonkeyPatch) -> None:
    producer = EventProducer(KafkaSettings())

    def unknown_partition(topic: str, **kwargs: Any) -> FakeFuture:
        raise ValueError(f"Unrecognized partition {kwargs['partition']} for topic {topic}")

    monkeypatch.setattr(fake.instances[0], "send", unknown_partition)
    producer.send_raw("dfip.fx", b"x", partition=7)
    with pytest.raises(DeliveryError, match="Unrecognized partition 7"):
        producer.flush()
