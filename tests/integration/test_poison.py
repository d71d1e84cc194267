"""Poison input through the whole path, on the real broker.

Raw bytes are produced with kafka-python straight onto the namespaced input topics (no adapter
in between): random bytes, truncated JSON, 100,000 nested arrays, wrong types, NaN/Infinity,
unknown fields, a record just under the broker's message size limit; the same valid event
1,000 times; and future dates. The worker must keep running (process alive, /health 200),
put every bad record on dfip.deadletter with its original bytes (base64) and a reason, count
duplicates once, and keep received = processed + duplicate + dead-lettered. Expectations are
computed here from what was sent: the simulator's oracle for the valid feed plus, per poison
record, the error class the wire contract (schemas/codec.py, docs/events.md) gives it.

On the producer side, a record over the broker's limit must be reported as failed by the
adapters' EventProducer, not dropped silently.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from adapters.producer import DeliveryError, EventProducer
from adapters.simulator.feed import Feed
from adapters.simulator.model import Record
from adapters.simulator.runner import SimulationConfig, SimulationResult
from core.kafka_config import KafkaSettings
from schemas.catalog import partition_for
from schemas.codec import encode
from schemas.events import TransactionEvent
from tests.integration.test_stream_exact import (
    TOPICS,
    assert_exact,
    assert_flow_identity,
    simulate,
)
from tests.support.workers import (
    Figures,
    WorkerProcess,
    oracle_figures,
    read_topic,
    scrape,
    total,
    wait_converged,
    wait_for,
    wait_ready,
)

TX, LOANS, SCORES, FX = TOPICS
FEED_EVENTS = 1500
DUPLICATES = 1000
# Kafka's default message.max.bytes (the local broker and the catalog's topics keep it):
# 1 MiB + 12 bytes of record-batch overhead; kafka-python's max_request_size is 1 MiB.
MAX_REQUEST = 1_048_576
JUST_UNDER = MAX_REQUEST - 512  # value bytes; with key and batch overhead still under the limit
IBAN = "DE89370400440532013000"  # an account number in bad input must never be echoed


@dataclass(frozen=True)
class Poison:
    what: str
    topic: str  # catalog name
    value: bytes | None
    error_class: str  # what the worker must report (dfip_events_deadlettered_total label)
    partition: int = 0


@dataclass(frozen=True)
class Sent:
    poison: Poison
    partition: int
    offset: int


def first_valid(topic: str, *, events: int = FEED_EVENTS) -> Record:
    """The first valid, first-seen event the simulator sends to `topic` (the feed is a pure
    function of its config, so this is exactly a record `simulate` produced)."""
    config = SimulationConfig(seed=11, events=events, enterprises=400).feed_config()
    for n, record in enumerate(Feed(config)):
        if n >= events:
            break
        if record.topic != topic or record.anomaly is not None or record.event is None:
            continue
        # an event in CNY needs no FX rate (FX records themselves are never in CNY)
        if topic == FX or getattr(record.event, "currency", "CNY") == "CNY":
            return record
    raise AssertionError(f"no valid {topic} record in the first {events} of the feed")


def _with(valid: bytes, **fields: Any) -> bytes:
    doc = orjson.loads(valid)
    doc.update(fields)
    return orjson.dumps(doc)


def poison_records(tx: bytes, loan: bytes, score: bytes, fx: bytes) -> list[Poison]:
    """Every kind of bad input, with the error class it must be dead-lettered with."""
    rng = random.Random(8)
    noise = rng.randbytes(200)
    deep = b"[" * 100_000 + b"]" * 100_000
    out = [
        # bytes that are not text at all (0xFF never starts a UTF-8 sequence)
        Poison("random bytes", TX, b"\xff" + noise, "undecodable", 1),
        Poison("random bytes", LOANS, b"\xfe" + noise[:50], "undecodable", 2),
        Poison("random bytes", SCORES, b"\xff\x00" + noise[:80], "undecodable", 3),
        Poison("random bytes", FX, b"\xc3\x28" + noise[:20], "undecodable", 0),
        Poison("empty value", TX, b"", "invalid_json", 4),
        Poison("null value (a tombstone)", LOANS, None, "undecodable", 5),
        # JSON cut short
        Poison("truncated JSON", TX, tx[: len(tx) // 2], "invalid_json", 5),
        Poison("truncated JSON", LOANS, loan[: len(loan) - 1], "invalid_json", 6),
        Poison("truncated JSON", SCORES, score[:40], "invalid_json", 7),
        Poison("truncated JSON", FX, fx[:10], "invalid_json", 0),
        # 100,000 nested arrays, bare and inside an otherwise valid event
        Poison("100k nested arrays", TX, deep, "invalid_json", 8),
        Poison(
            "100k nested arrays in a field",
            LOANS,
            loan[:-1] + b',"x":' + deep + b"}",
            "invalid_json",
            9,
        ),
        # wrong types
        Poison("amount as a JSON float", TX, _with(tx, amount=1234.5), "invalid_field", 10),
        Poison("direction as a number", TX, _with(tx, direction=1), "invalid_field", 11),
        Poison("USCC as an array", TX, _with(tx, enterprise_uscc=["x"]), "invalid_field", 0),
        Poison(
            "time as epoch seconds", LOANS, _with(loan, occurred_at=1740960000), "invalid_field", 1
        ),
        Poison("term as a string", LOANS, _with(loan, term_months="12"), "invalid_field", 2),
        Poison("score as a float", SCORES, _with(score, overall_score=55.5), "invalid_field", 4),
        Poison("rate as a float", FX, _with(fx, rate_to_cny=7.1), "invalid_field", 0),
        Poison("an array, not an object", TX, b"[" + tx + b"]", "invalid_shape", 3),
        Poison("a bare string", LOANS, b'"loan"', "invalid_shape", 4),
        Poison("a loan on the transactions topic", TX, loan, "invalid_shape", 5),
        # NaN and Infinity: not JSON at all, as strings not decimals, overflowing floats
        Poison("NaN token", TX, tx[:-1] + b',"amount":NaN}', "invalid_json", 6),
        Poison("Infinity token", LOANS, loan[:-1] + b',"principal":Infinity}', "invalid_json", 7),
        Poison(
            "1e999",
            FX,
            fx.replace(b'"rate_to_cny":"', b'"rate_to_cny":1e999,"x":"'),
            "invalid_json",
            0,
        ),
        Poison("amount 'NaN'", TX, _with(tx, amount="NaN"), "invalid_field", 7),
        Poison("amount 'Infinity'", TX, _with(tx, amount="Infinity"), "invalid_field", 8),
        Poison("amount '-Infinity'", LOANS, _with(loan, principal="-Infinity"), "invalid_field", 8),
        Poison("rate 'NaN'", FX, _with(fx, rate_to_cny="NaN"), "invalid_field", 0),
        # a date no calendar has (year 10000 cannot be represented)
        Poison(
            "year 10000", TX, _with(tx, occurred_at="10000-01-01T00:00:00Z"), "invalid_field", 9
        ),
        # unknown fields (the models are closed)
        Poison("unknown field", TX, _with(tx, iban=IBAN), "invalid_field", 10),
        Poison("unknown field", SCORES, _with(score, extra={"a": 1}), "invalid_field", 5),
        Poison("unknown field", FX, _with(fx, note="x"), "invalid_field", 0),
    ]
    return out


def produce(settings: KafkaSettings, poisons: list[Poison], **extra: Any) -> list[Sent]:
    """Send raw bytes with kafka-python (no adapter), each to its explicit partition."""
    producer = KafkaProducer(acks="all", **settings.kafka_python_config(), **extra)
    try:
        futures = [
            # a key for every record, as every DFIP producer sends them
            (
                p,
                producer.send(
                    settings.topic(p.topic), p.value, key=b"poison", partition=p.partition
                ),
            )
            for p in poisons
        ]
        producer.flush(timeout=60)
        sent = []
        for p, fut in futures:
            md = fut.get(timeout=30)
            sent.append(Sent(p, md.partition, md.offset))
        return sent
    finally:
        producer.close()


def add_expected(
    expected: Figures, sent: list[Sent], *, duplicates: Counter[str] | None = None
) -> Figures:
    """The oracle's figures plus what the poison records must add to the flow counters."""
    out = {name: dict(series) for name, series in expected.items()}
    received = out.setdefault("dfip_events_received_total", {})
    dead = out.setdefault("dfip_events_deadlettered_total", {})
    for s in sent:
        received[(s.poison.topic,)] = received.get((s.poison.topic,), 0) + 1
        key = (s.poison.topic, s.poison.error_class)
        dead[key] = dead.get(key, 0) + 1
    for topic, n in (duplicates or Counter()).items():
        received[(topic,)] = received.get((topic,), 0) + n
        dup = out.setdefault("dfip_events_duplicate_total", {})
        dup[(topic,)] = dup.get((topic,), 0) + n
    return out


def dead_letters(settings: KafkaSettings) -> dict[tuple[str, int, int], dict[str, Any]]:
    """Dead letters by the (topic, partition, offset) of the record they stand for."""
    out = {}
    for r in read_topic(settings, "dfip.deadletter"):
        doc = orjson.loads(r.value)
        out[(doc["topic"], doc["partition"], doc["offset"])] = doc
    return out


def assert_dead_lettered(settings: KafkaSettings, sent: list[Sent]) -> None:
    letters = dead_letters(settings)
    for s in sent:
        doc = letters.get((s.poison.topic, s.partition, s.offset))
        assert doc is not None, f"{s.poison.what} on {s.poison.topic} is not on dfip.deadletter"
        assert base64.b64decode(doc["original_b64"]) == (s.poison.value or b""), s.poison.what
        assert doc["error_class"] == s.poison.error_class, (s.poison.what, doc["reason"])
        assert doc["reason"].strip(), s.poison.what
        assert doc["stage"] == "ingress", s.poison.what
        # reasons are logged and shown: an account number in the input is never echoed
        assert IBAN not in doc["reason"], doc["reason"]


def assert_alive(worker: WorkerProcess) -> None:
    assert worker.alive, f"the worker died:\n{worker.tail()}"
    status, body = worker.get("/health")
    assert status == 200, body


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib must talk to the worker on loopback directly
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def worker(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[WorkerProcess]:
    w = WorkerProcess(kafka_settings, "poison", tmp_path).start()
    try:
        wait_ready(w)
        yield w
    finally:
        w.stop()


def valid_bytes() -> dict[str, Record]:
    return {t: first_valid(t) for t in (TX, LOANS, SCORES, FX)}


def test_poison_is_dead_lettered_duplicates_count_once_and_the_worker_runs_on(
    kafka_settings: KafkaSettings, worker: WorkerProcess
) -> None:
    result: SimulationResult = simulate(kafka_settings, FEED_EVENTS)
    valid = valid_bytes()
    tx = valid[TX]
    assert tx.event is not None
    raw = {t: encode(r.event) for t, r in valid.items() if r.event is not None}
    poisons = poison_records(raw[TX], raw[LOANS], raw[SCORES], raw[FX])
    sent = produce(kafka_settings, poisons)
    # the same valid event (already sent once by the simulator) 1,000 more times
    dup = Poison("duplicate", TX, raw[TX], "-", tx.partition)
    produce(kafka_settings, [dup] * DUPLICATES)

    expected = add_expected(
        oracle_figures(result.oracle), sent, duplicates=Counter({TX: DUPLICATES})
    )
    got = wait_converged([worker], expected)
    assert_alive(worker)
    assert_exact(got, expected)
    assert_flow_identity(got)
    assert_dead_lettered(kafka_settings, sent)


def test_a_record_just_under_the_message_size_limit_is_dead_lettered(
    kafka_settings: KafkaSettings, worker: WorkerProcess
) -> None:
    tx = encode(first_valid(TX).event)  # type: ignore[arg-type]
    filler = JUST_UNDER - len(tx) - len(b',"padding":""')
    big = _with(tx, padding="x" * filler)
    assert MAX_REQUEST - 1024 < len(big) < MAX_REQUEST
    sent = produce(kafka_settings, [Poison("just under the limit", TX, big, "invalid_field", 2)])
    # a small bad record after it: the worker must get past the big one
    sent += produce(kafka_settings, [Poison("after it", TX, b"\xff", "undecodable", 2)])
    expected = add_expected({}, sent)
    try:
        got = wait_converged([worker], expected, timeout=30)  # two records: seconds if healthy
        assert_alive(worker)
        assert total(got, "dfip_events_deadlettered_total") == 2
        assert_flow_identity(got)
        assert_dead_lettered(kafka_settings, sent)
    finally:
        worker.kill()  # a wedged worker would take the whole SIGTERM timeout to stop


def test_future_dated_events_do_not_corrupt_figures(
    kafka_settings: KafkaSettings, worker: WorkerProcess
) -> None:
    result = simulate(kafka_settings, 800)
    record = first_valid(TX, events=800)
    assert isinstance(record.event, TransactionEvent)
    valid = encode(record.event)
    future = _with(
        valid,
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "dfip-test-future")),
        occurred_at="2999-01-01T00:00:00Z",
        booking_date="2999-01-01",
        value_date="2999-01-01",
    )
    part = partition_for(record.event.enterprise_uscc)
    before = wait_converged([worker], oracle_figures(result.oracle))
    produce(kafka_settings, [Poison("year 2999", TX, future, "-", part)])
    wait_for(
        lambda: (
            total(scrape([worker]), "dfip_events_received_total")
            > total(before, "dfip_events_received_total")
        ),
        timeout=60,
        what="the future-dated record to be processed",
    )
    # a re-send of an event the simulator sent: a duplicate, whatever came before it
    produce(kafka_settings, [Poison("re-send", TX, valid, "-", part)])

    expected = add_expected(oracle_figures(result.oracle), [], duplicates=Counter({TX: 1}))
    expected["dfip_events_received_total"][(TX,)] += 1
    got = wait_converged([worker], expected)
    assert_alive(worker)
    assert_flow_identity(got)
    # no double count and nothing judged late: every figure but the dead letters is the
    # oracle's ...
    dl = "dfip_events_deadlettered_total"
    assert_exact(
        {n: s for n, s in got.items() if n != dl}, {n: s for n, s in expected.items() if n != dl}
    )
    # ... and the future-dated record is rejected (whatever its error class)
    dead = got.get(dl, {})
    want = expected.get(dl, {})
    assert sum(v for k, v in dead.items() if k[0] == TX) == 1 + sum(
        v for k, v in want.items() if k[0] == TX
    ), "the year-2999 event was not dead-lettered"


def test_event_producer_reports_a_record_over_the_limit_as_failed(
    kafka_settings: KafkaSettings,
) -> None:
    producer = EventProducer(kafka_settings)
    try:
        producer.send_raw(TX, b"x" * (MAX_REQUEST + 1024), partition=0)
        producer.send_raw(TX, b"\xff small", partition=0)
        with pytest.raises(DeliveryError) as caught:
            producer.flush(timeout=30)
        report = caught.value.report
        assert (report.sent, report.failed) == (1, 1)
        assert "MessageSizeTooLarge" in caught.value.errors[0], caught.value.errors
        assert producer.totals == (1, 1)
    finally:
        producer.close()
    # only the small record reached the topic
    values = [r.value for r in read_topic(kafka_settings, TX)]
    assert values == [b"\xff small"]
