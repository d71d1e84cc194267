"""FX on the real broker (issue 20): weekends, the Spring Festival closure, rates read after
the events they are in force for (events wait or are restated), a re-published rate and a
kill -9 in between give the same figures as every rate read first, equal to the oracle."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.simulator.model import FX, LOANS, TRANSACTIONS, FxFact, LoanFact, Record, TxFact
from adapters.simulator.oracle import Oracle
from core.kafka_admin import create_topics
from core.kafka_config import KafkaSettings
from schemas.catalog import partition_for
from schemas.events import FxRate
from tests.integration.test_order_dedup import _Sender
from tests.integration.test_stream_exact import assert_exact, assert_flow_identity
from tests.support.workers import WorkerProcess, oracle_figures, wait_converged, wait_ready
from tests.unit.streams.helpers import HANGZHOU, disbursed, repayment, tx

HOME = partition_for(HANGZHOU)
# a short session timeout lets the restarted worker take the killed one's partitions in
# seconds (as in test_faults.FAST_FAILOVER); the semantics under test are the same
FAST_FAILOVER = {"BROKER_SESSION_TIMEOUT": "6", "BROKER_HEARTBEAT_INTERVAL": "1"}
RESTATED = "dfip_restated_events_total"
PENDING = "dfip_fx_pending_events"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 2, day, hh, mm, tzinfo=UTC)


def _rate(currency: str, day: int, rate: str, published: datetime | None = None) -> Record:
    ev = FxRate(
        event_id=f"fx-{currency}-{day}-{rate}",
        source="cfets",
        currency=currency,
        rate_date=date(2026, 2, day),
        rate_to_cny=Decimal(rate),
        published_at=published or _at(day, 1, 15),  # 09:15 Beijing
    )
    fact = FxFact(ev.event_id, currency, ev.rate_date, ev.rate_to_cny, ev.published_at)
    return Record(FX, 0, 0, fact, ev)


def _payment(at: datetime, amount: str) -> Record:
    ev = tx(at, amount, currency="USD")
    fact = TxFact(ev.event_id, HANGZHOU, at, "bank", "credit", Decimal(amount), "USD", None)
    return Record(TRANSACTIONS, HOME, HOME, fact, ev)


def _loan(
    ev: object, kind: str, amount: str, annual: str | None = None, currency: str = "EUR"
) -> Record:
    assert hasattr(ev, "event_id")
    fact = LoanFact(
        ev.event_id, HANGZHOU, ev.occurred_at, "fintech", kind, ev.loan_id,  # type: ignore[attr-defined]
        amount=Decimal(amount), currency=currency,
        annual_rate=Decimal(annual) if annual else None,
        inclusive_sme=True if kind == "disbursed" else None,
    )  # fmt: skip
    return Record(LOANS, HOME, HOME, fact, ev)  # type: ignore[arg-type]


# 2026: Thursday 12 and Friday 13 Feb are the last business days before the Spring Festival
# closure (15-23 Feb; the working Saturday 14 is left without a rate), Tuesday 24 the first.
THU, FRI = _rate("USD", 12, "6.9000"), _rate("USD", 13, "7.0000")
FRI_CORRECTED = _rate("USD", 13, "7.0500", _at(13, 8))  # in force from 09:15 all the same
TUE = _rate("USD", 24, "7.2000")
EUR_FRI = _rate("EUR", 13, "7.8000")
RATES = [THU, FRI, FRI_CORRECTED, TUE, EUR_FRI]
EVENTS = [
    _payment(_at(12, 20), "3.00"),  # Fri 04:00 Beijing: Thursday's
    _payment(_at(14, 4), "1.00"),  # Saturday: Friday's (corrected)
    _payment(_at(18, 3), "2.00"),  # in the closure: Friday's
    _payment(_at(23, 15), "4.00"),  # 23:00 Beijing 23 Feb: Friday's, 10 days old
    _payment(_at(24, 0, 30), "8.00"),  # 08:30 Beijing 24 Feb: none in force, ever: waits
    _payment(_at(24, 2), "16.00"),  # 10:00 Beijing: Tuesday's
    # an EUR loan disbursed on the Saturday and repaid in the closure: waits for EUR
    _loan(
        disbursed(_at(14, 5), "L-EUR", "1000.00", currency="EUR"), "disbursed", "1000.00", "0.0435"
    ),
    _loan(repayment(_at(17, 5), "L-EUR", "400.00", currency="EUR"), "repayment", "400.00"),
    # a USD loan booked at Thursday's rate until Friday's (then its correction) is read
    _loan(
        disbursed(_at(14, 6), "L-USD", "500.00", currency="USD"),
        "disbursed",
        "500.00",
        "0.0435",
        "USD",
    ),
    _loan(
        repayment(_at(17, 6), "L-USD", "100.00", currency="USD"),
        "repayment",
        "100.00",
        currency="USD",
    ),
]


def _topics(kafka: KafkaSettings) -> KafkaSettings:
    fresh = KafkaSettings(
        bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:10]}-"
    )
    create_topics(fresh)
    return fresh


def _now_ms() -> int:
    return int(datetime.now(tz=UTC).timestamp() * 1000)


def _converge(worker: WorkerProcess, oracle: Oracle):  # type: ignore[no-untyped-def]
    expected = oracle_figures(oracle.result({}))
    got = wait_converged([worker], expected)
    assert_exact(got, expected)
    assert_flow_identity(got)
    return got


def _business(figures):  # type: ignore[no-untyped-def]
    return {n: v for n, v in figures.items() if v and n != RESTATED and "received" not in n}


def test_rates_read_after_the_events_and_a_kill_give_the_rates_first_figures(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    # every rate read before the events: the oracle alone (it equals the worker, below)
    oracle_a = Oracle()
    for r in [*RATES, *EVENTS]:
        oracle_a.observe(r)
    rates_first = oracle_figures(oracle_a.result({}))
    # 3 x 6.9 + (1 + 2 + 4) x 7.05 + 16 x 7.2 yuan; the 08:30 payment waits
    amounts = rates_first["dfip_transaction_amount_yuan_total"]
    assert sum(amounts.values()) == 2070 + 4935 + 11520
    assert rates_first[PENDING] == {(TRANSACTIONS,): 1}
    assert rates_first["dfip_loan_disbursed_principal_yuan_total"] == {
        ("fintech", "unscored", "hangzhou"): 780000 + 352500
    }

    # B: Thursday's rate and the events first, the rest only after a kill -9 and a restart
    kafka_b, oracle_b = _topics(kafka_settings), Oracle()
    sender = _Sender(kafka_b, oracle_b)
    worker = WorkerProcess(kafka_b, "fx-b1", tmp_path, **FAST_FAILOVER).start()
    try:
        wait_ready(worker)
        sender.send([THU, *EVENTS], _now_ms())
        early = _converge(worker, oracle_b)
        # counted at Thursday's rate (3 of them), four waiting (two payments, the loan)
        assert early[PENDING] == {(TRANSACTIONS,): 3, (LOANS,): 2}
        worker.kill()
        worker = WorkerProcess(kafka_b, "fx-b2", tmp_path, **FAST_FAILOVER).start()
        wait_ready(worker)
        sender.send([FRI, FRI_CORRECTED, TUE, EUR_FRI], _now_ms())
        late = _converge(worker, oracle_b)
    finally:
        sender.close()
        worker.stop()
    assert _business(late) == _business(rates_first)
    # Saturday's and the closure's payments and the USD loan moved twice (Friday's rate, then
    # its correction), the 23 Feb payment once (released at Friday's rate, then corrected)
    assert late[RESTATED] == {(TRANSACTIONS,): 5, (LOANS,): 2}
