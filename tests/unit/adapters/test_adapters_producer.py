"""EventProducer routing, keys, partitions and delivery accounting (with a fake client)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import FIXTURES, KEY
from kafka.errors import KafkaTimeoutError

from adapters import AccountDirectory, ParseContext, get_parser
from adapters import producer as producer_module
from adapters.base import Rejected
from adapters.ingest import MAX_ORIGINAL_KEPT, IngestAborted, KafkaSink, dead_letter, ingest_files
from adapters.ledger import LEDGER_TOPIC, Document, LedgerEntry
from adapters.producer import DeliveryError, DeliveryReport, EventProducer, KafkaUnavailable
from core.errors import DfipError
from core.kafka_config import KafkaSettings
from schemas import (
    DeadLetter,
    DigitalizationScore,
    FxRate,
    LoanWithdrawn,
    TransactionEvent,
    decode,
    encode,
    partition_for,
    topic_by_name,
)
from schemas.catalog import DEADLETTER_MAX_BYTES

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
    monkeypatch.setattr(producer_module, "accepts_tcp", lambda servers: False)
    with pytest.raises(KafkaUnavailable, match=r"unreachable at 10\.0\.0\.1:9092") as info:
        EventProducer(KafkaSettings(bootstrap_servers="10.0.0.1:9092"))
    assert not info.value.reachable


def test_a_listener_that_does_not_speak_the_protocol_is_not_called_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SSL or SASL settings against a plaintext listener (or the reverse): the port answers,
    the handshake never completes. "Unreachable" would send the user looking for a broker
    that is running."""

    def refuse(**_: Any) -> None:
        raise KafkaTimeoutError("Unable to bootstrap")

    monkeypatch.setattr(producer_module, "KafkaProducer", refuse)
    monkeypatch.setattr(producer_module, "accepts_tcp", lambda servers: True)
    settings = KafkaSettings(
        bootstrap_servers="127.0.0.1:9092",
        security_protocol="SASL_SSL",
        sasl_username="u",
        sasl_password="p",
    )
    with pytest.raises(KafkaUnavailable) as info:
        EventProducer(settings)
    assert info.value.reachable
    assert "Kafka at 127.0.0.1:9092 accepts connections but did not complete the SASL_SSL" in str(
        info.value
    )
    assert "DFIP_KAFKA_SECURITY_PROTOCOL" in str(info.value)


def test_send_errors_are_failed_deliveries(fake, monkeypatch: pytest.MonkeyPatch) -> None:
    producer = EventProducer(KafkaSettings())

    def unknown_partition(topic: str, **kwargs: Any) -> FakeFuture:
        raise ValueError(f"Unrecognized partition {kwargs['partition']} for topic {topic}")

    monkeypatch.setattr(fake.instances[0], "send", unknown_partition)
    producer.send_raw("dfip.fx", b"x", partition=7)
    with pytest.raises(DeliveryError, match="Unrecognized partition 7"):
        producer.flush()


# ---- limits and bounded waits ---------------------------------------------------------------


def test_request_size_matches_the_dead_letter_topic_and_waits_come_from_settings(fake) -> None:
    settings = KafkaSettings(delivery_timeout_ms=7_000, request_timeout_ms=9_000)
    EventProducer(settings)
    config = fake.instances[0].config
    limit = int(topic_by_name("dfip.deadletter").config["max.message.bytes"])
    assert config["max_request_size"] == limit == DEADLETTER_MAX_BYTES
    assert config["delivery_timeout_ms"] == config["max_block_ms"] == 7_000
    assert config["request_timeout_ms"] <= 7_000 - config["linger_ms"]  # the client's rule
    assert config["bootstrap_timeout_ms"] == settings.connect_timeout_ms


def test_a_huge_original_is_cut_so_its_dead_letter_always_fits() -> None:
    original = b"x" * (MAX_ORIGINAL_KEPT + 12_345)
    rejected = Rejected("/in/huge.csv:3", "(row)", "field larger than field limit", original)
    letter = dead_letter(rejected, "BANK", Path("/in/huge.csv"), NOW)
    assert base64.b64decode(letter.original_b64) == original[:MAX_ORIGINAL_KEPT]
    assert f"of {len(original)} bytes kept" in letter.reason
    assert hashlib.sha256(original).hexdigest() in letter.reason
    assert letter.reason.startswith("(row): field larger than field limit")
    assert len(encode(letter)) < DEADLETTER_MAX_BYTES - 60_000
    long_reason = Rejected("/in/a.csv:1", "f", "r" * 5_000, original)
    assert len(dead_letter(long_reason, "B", Path("/in/a.csv"), NOW).reason) <= 4_000
    small = dead_letter(Rejected("/in/a.csv:1", "f", "r", b"abc"), "B", Path("/in/a.csv"), NOW)
    assert small.reason == "f: r"


class StuckSender:
    def __init__(self) -> None:
        self.alive = True
        self.forced = False

    def is_alive(self) -> bool:
        return self.alive

    def force_close(self) -> None:
        self.forced = True
        self.alive = False

    def join(self, timeout: float | None = None) -> None:
        assert timeout is not None


def test_close_is_bounded_even_with_records_stuck(fake) -> None:
    producer = EventProducer(KafkaSettings())
    client = fake.instances[0]
    client._sender = StuckSender()
    calls: list[float | None] = []

    def close(timeout: float | None = None) -> None:
        calls.append(timeout)
        if len(calls) == 1:  # kafka-python: the flush inside close() timed out
            raise KafkaTimeoutError("Timeout waiting for future")

    client.close = close
    producer.close(timeout=0.5)
    assert calls == [0.5, 0]
    assert client._sender.forced  # the non-daemon I/O thread is stopped, not left looping


def test_missing_password_file_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DFIP_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "nope"))
    with pytest.raises(DfipError) as caught:
        KafkaSettings()
    assert "DFIP_KAFKA_SASL_PASSWORD_FILE: cannot read" in str(caught.value)
    assert "\n" not in str(caught.value)


# ---- transactional ingest with a ledger -----------------------------------------------------


class FakeTxProducer:
    """What KafkaSink uses of EventProducer, recording transactions."""

    transactional = True

    def __init__(self, fail_commit: int | None = None, *, recovers: bool = False) -> None:
        self.recovers = recovers
        self.renewed = 0
        self.open: list[tuple[str, bytes]] = []
        self.committed: list[list[tuple[str, bytes]]] = []
        self.aborted = 0
        self.fail_commit = fail_commit
        self.in_txn = False

    def begin(self) -> None:
        assert not self.in_txn
        self.in_txn = True

    def send(self, event: Any) -> None:
        assert self.in_txn
        self.open.append(("event", event.event_id.encode()))

    def send_dead_letter(self, letter: DeadLetter) -> None:
        assert self.in_txn
        self.open.append(("dead", letter.event_id.encode()))

    def send_raw(self, topic: str, value: bytes, **_: Any) -> None:
        assert self.in_txn
        self.open.append((topic, value))

    def commit(self) -> DeliveryReport:
        assert self.in_txn
        if self.fail_commit is not None and len(self.committed) == self.fail_commit:
            raise DeliveryError(DeliveryReport(0, len(self.open)), ["KafkaTimeoutError: expired"])
        self.committed.append(self.open)
        n = len(self.open)
        self.open, self.in_txn = [], False
        return DeliveryReport(n, 0, {"dfip.transactions": n})

    def abort(self, timeout: float | None = None) -> bool:
        self.aborted += 1
        self.open, self.in_txn = [], False
        return True

    def renew(self) -> None:
        self.renewed += 1
        if not self.recovers:
            raise KafkaUnavailable("Kafka is unreachable at 127.0.0.1:9")
        self.fail_commit = None


def csv_parser() -> Any:
    accounts = AccountDirectory.load(FIXTURES / "accounts.toml", KEY)
    return get_parser("csv")(ParseContext("HK", accounts, mapping=Path("hk_utf8_signed")))


STATEMENT = FIXTURES / "hk_utf8_statement.csv"


def ledger_entries(producer: FakeTxProducer) -> list[LedgerEntry]:
    return [
        LedgerEntry.decode(value)
        for txn in producer.committed
        for topic, value in txn
        if topic == LEDGER_TOPIC
    ]


def test_documents_commit_in_checkpointed_transactions_with_their_ledger_entry() -> None:
    producer = FakeTxProducer()
    ledger: dict[str, LedgerEntry] = {}
    sink = KafkaSink(producer, "HK", ledger=ledger, format="csv")  # type: ignore[arg-type]
    summary = ingest_files(csv_parser(), [STATEMENT], sink, checkpoint_every=2)
    results = summary.events + summary.rejected
    assert results == 6
    entries = ledger_entries(producer)
    assert [(e.results, e.complete) for e in entries] == [(2, False), (4, False), (6, True)]
    assert all(txn[-1][0] == LEDGER_TOPIC for txn in producer.committed)  # last in each
    assert (entries[-1].events, entries[-1].rejected) == (summary.events, summary.rejected)
    assert summary.files[0].complete
    doc = Document.of(STATEMENT, "HK")
    assert ledger[doc.key] == entries[-1]

    # the same file again: skipped, nothing sent
    again = FakeTxProducer()
    sink = KafkaSink(again, "HK", ledger=ledger, format="csv")  # type: ignore[arg-type]
    summary = ingest_files(csv_parser(), [STATEMENT], sink, checkpoint_every=2)
    assert again.committed == []
    assert summary.files[0].status.startswith("already ingested")
    assert summary.events == 0

    # --force: everything again
    forced = FakeTxProducer()
    sink = KafkaSink(forced, "HK", ledger=ledger, format="csv", force=True)  # type: ignore[arg-type]
    summary = ingest_files(csv_parser(), [STATEMENT], sink, checkpoint_every=4)
    assert summary.files[0].status == "forced"
    assert [len(t) for t in forced.committed] == [5, 3]


def test_a_failed_commit_aborts_and_the_rerun_resumes_after_the_last_checkpoint() -> None:
    ledger: dict[str, LedgerEntry] = {}
    failing = FakeTxProducer(fail_commit=1)  # the second checkpoint fails
    sink = KafkaSink(failing, "HK", ledger=ledger, format="csv")  # type: ignore[arg-type]
    with pytest.raises(IngestAborted) as caught:
        ingest_files(csv_parser(), [STATEMENT], sink, checkpoint_every=2)
    assert isinstance(caught.value.cause, DeliveryError)  # the cause, not the failed renew
    assert failing.renewed == 1
    assert failing.aborted == 1
    [file] = caught.value.summary.files
    assert (file.committed, file.complete) == (2, False)
    [entry] = ledger.values()
    assert (entry.results, entry.complete) == (2, False)
    first_ids = [v for txn in failing.committed for kind, v in txn if kind != LEDGER_TOPIC]

    rerun = FakeTxProducer()
    sink = KafkaSink(rerun, "HK", ledger=ledger, format="csv")  # type: ignore[arg-type]
    summary = ingest_files(csv_parser(), [STATEMENT], sink, checkpoint_every=2)
    assert summary.files[0].status == "resumed after 2"
    rest = [v for txn in rerun.committed for kind, v in txn if kind != LEDGER_TOPIC]
    assert len(first_ids) + len(rest) == 6
    assert not set(first_ids) & set(rest)  # nothing committed twice
    [entry] = ledger.values()
    assert (entry.results, entry.complete) == (6, True)
    everything = FakeTxProducer()
    ingest_files(
        csv_parser(),
        [STATEMENT],
        KafkaSink(everything, "HK", ledger={}, format="csv"),  # type: ignore[arg-type]
    )
    all_ids = [v for txn in everything.committed for kind, v in txn if kind != LEDGER_TOPIC]
    assert sorted(first_ids + rest) == sorted(all_ids)
    assert (entry.events, entry.rejected) == (
        sum(1 for txn in everything.committed for k, _ in txn if k == "event"),
        sum(1 for txn in everything.committed for k, _ in txn if k == "dead"),
    )


def test_ctrl_c_aborts_the_open_transaction() -> None:
    producer = FakeTxProducer()
    sink = KafkaSink(producer, "HK", ledger={}, format="csv")  # type: ignore[arg-type]

    def interrupted(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    sink.event = interrupted  # type: ignore[method-assign]
    with pytest.raises(IngestAborted) as caught:
        ingest_files(csv_parser(), [STATEMENT], sink)
    assert caught.value.interrupted
    assert producer.aborted == 1


def test_a_failed_commit_is_retried_once_with_a_fresh_producer() -> None:
    ledger: dict[str, LedgerEntry] = {}
    producer = FakeTxProducer(fail_commit=1, recovers=True)
    sink = KafkaSink(producer, "HK", ledger=ledger, format="csv")  # type: ignore[arg-type]
    summary = ingest_files(csv_parser(), [STATEMENT], sink, checkpoint_every=2)
    assert (producer.renewed, producer.aborted) == (1, 1)
    sent = [v for txn in producer.committed for kind, v in txn if kind != LEDGER_TOPIC]
    assert len(sent) == len(set(sent)) == 6  # the aborted chunk once, after the retry
    [file] = summary.files
    assert file.status == "new (retried with a fresh producer)"
    assert (file.events + file.rejected, file.entries) == (6, 6)
    assert sum(summary.reasons.values()) == file.rejected == len(summary.rejections)
    [entry] = ledger.values()
    assert (entry.results, entry.events, entry.rejected, entry.complete) == (
        6,
        file.events,
        file.rejected,
        True,
    )
