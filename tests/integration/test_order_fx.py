"""FX on the real broker: weekends, the Spring Festival closure and a rate written after
events it is not in force for give the same figures, equal to the oracle (issue 20)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.simulator.model import FX, TRANSACTIONS, FxFact, Record, TxFact
from adapters.simulator.oracle import Oracle
from dfip.kafka_config import KafkaSettings
from dfip.topics import create_topics
from schemas.catalog import partition_for
from tests.integration.test_order_dedup import _Sender
from tests.integration.test_stream_exact import assert_exact, assert_flow_identity
from tests.support.workers import WorkerProcess, oracle_figures, wait_converged, wait_ready
from tests.unit.streams.helpers import HANGZHOU, fx, tx

# 2026: Friday 13 Feb is the last business day before the Spring Festival closure (15-23 Feb
# here; the working Saturday 14 Feb is left without a rate on purpose), Tuesday 24 the first.
FRI, TUE = date(2026, 2, 13), date(2026, 2, 24)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 2, day, hh, mm, tzinfo=UTC)


def _rate(day: date, rate: str) -> Record:
    ev = fx(day, "USD", rate)  # published 01:15 UTC = 09:15 Beijing
    fact = FxFact(ev.event_id, "USD", day, Decimal(rate), ev.published_at)
    return Record(FX, 0, 0, fact, ev)


def _payment(at: datetime, amount: str) -> Record:
    ev = tx(at, amount, currency="USD")
    p = partition_for(HANGZHOU)
    fact = TxFact(ev.event_id, HANGZHOU, at, "bank", "credit", Decimal(amount), "USD", None)
    return Record(TRANSACTIONS, p, p, fact, ev)


PAYMENTS = [
    _payment(_at(14, 4), "1.00"),  # Saturday: Friday's rate
    _payment(_at(18, 3), "2.00"),  # in the closure: Friday's rate
    _payment(_at(23, 15), "4.00"),  # 23:00 Beijing on 23 Feb: Friday's, 10 days old
    _payment(_at(24, 0, 30), "8.00"),  # 08:30 Beijing 24 Feb: Friday's is 11 days old → dead
    _payment(_at(24, 2), "16.00"),  # 10:00 Beijing 24 Feb: Tuesday's rate
]


def _run(kafka: KafkaSettings, tmp_path: Path, name: str, records: list[Record]):  # type: ignore[no-untyped-def]
    oracle = Oracle()
    sender = _Sender(kafka, oracle)
    try:
        for r in records:
            sender.send([r], int(datetime.now(tz=UTC).timestamp() * 1000))
    finally:
        sender.close()
    expected = oracle_figures(oracle.result({}))
    worker = WorkerProcess(kafka, name, tmp_path).start()
    try:
        wait_ready(worker)
        got = wait_converged([worker], expected)
        assert_exact(got, expected)
        assert_flow_identity(got)
        return got
    finally:
        worker.stop()


def test_weekend_holiday_and_a_rate_written_after_earlier_events(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    fri, tue = _rate(FRI, "7.0000"), _rate(TUE, "7.2000")
    rates_first = _run(kafka_settings, tmp_path, "fx-a", [fri, tue, *PAYMENTS])
    # the same feed with Tuesday's rate written only when it is published, after the events
    # before 09:15 Beijing: nothing changes
    later = KafkaSettings(
        bootstrap_servers=kafka_settings.bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}-",
    )
    create_topics(later)
    as_published = _run(later, tmp_path, "fx-b", [fri, *PAYMENTS[:4], tue, PAYMENTS[4]])
    assert as_published == rates_first
    amounts = rates_first["dfip_transaction_amount_yuan_total"]
    # 1 + 2 + 4 USD at 7.0 and 16 USD at 7.2 = 49 + 115.20 yuan
    assert sum(amounts.values()) == 4900 + 11520
    assert rates_first["dfip_events_deadlettered_total"] == {(TRANSACTIONS, "fx_rate_missing"): 1}
