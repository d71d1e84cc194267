"""Restatement on the real broker: assessments written after the transactions they apply to
(back-dated, as MIIT/Zhejiang assessments are published) give the same figures as when they
are written first, equal to the oracle (issue 20)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.simulator.model import (
    LOANS,
    SCORES,
    TRANSACTIONS,
    LoanFact,
    Record,
    ScoreFact,
    TxFact,
)
from adapters.simulator.oracle import Oracle
from core.kafka_admin import create_topics
from core.kafka_config import KafkaSettings
from schemas.catalog import partition_for
from schemas.events import LoanDisbursed, LoanRejected, LoanRepayment
from tests.integration.test_order_dedup import _Sender
from tests.integration.test_stream_exact import assert_exact, assert_flow_identity
from tests.support.workers import (
    Figures,
    WorkerProcess,
    oracle_figures,
    wait_converged,
    wait_ready,
)
from tests.unit.streams.helpers import HANGZHOU, NINGBO, loan_common, score, tx

BASE = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
RESTATED = "dfip_restated_events_total"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _payment(uscc: str, at: datetime, amount: str, direction: str = "credit") -> Record:
    ev = tx(at, amount, uscc=uscc, direction=direction)
    p = partition_for(uscc)
    fact = TxFact(ev.event_id, uscc, at, "bank", direction, Decimal(amount), "CNY", None)
    return Record(TRANSACTIONS, p, p, fact, ev)


def _assessment(uscc: str, at: datetime, overall: str, sector: str) -> Record:
    ev = score(at, overall, uscc=uscc, sector=sector)
    p = partition_for(uscc)
    fact = ScoreFact(ev.event_id, uscc, at, Decimal(overall), sector)
    return Record(SCORES, p, p, fact, ev)


# October: payments every 12 hours for ten days, two enterprises
PAYMENTS = [
    _payment(uscc, BASE + timedelta(hours=12 * i), f"{i + 1}.{k}0", ("credit", "debit")[i % 2])
    for i in range(20)
    for k, uscc in enumerate((HANGZHOU, NINGBO))
]


def _rejection(uscc: str, at: datetime, loan_id: str) -> Record:
    ev = LoanRejected(**loan_common(at, loan_id, uscc), reason=None)
    p = partition_for(uscc)
    fact = LoanFact(ev.event_id, uscc, at, "fintech", "rejected", loan_id)
    return Record(LOANS, p, p, fact, ev)


def _loan(uscc: str, at: datetime, loan_id: str, kind: str, amount: str) -> Record:
    common = loan_common(at, loan_id, uscc)
    ev: Any
    if kind == "disbursed":
        ev = LoanDisbursed(
            **common,
            principal=Decimal(amount),
            currency="CNY",
            annual_rate=Decimal("0.0385"),
            term_months=12,
            collateral="credit",
            inclusive_sme=True,
            repayment_method="equal_installment",
        )
        fact = LoanFact(ev.event_id, uscc, at, "fintech", kind, loan_id, Decimal(amount),
                        "CNY", Decimal("0.0385"), True)  # fmt: skip
    else:
        ev = LoanRepayment(
            **common,
            principal_amount=Decimal(amount),
            interest_amount=Decimal("1.00"),
            currency="CNY",
        )
        fact = LoanFact(ev.event_id, uscc, at, "fintech", kind, loan_id, Decimal(amount), "CNY")
    p = partition_for(uscc)
    return Record(LOANS, p, p, fact, ev)


# a loan disbursed on day 3 (Hangzhou: l2 once assessed) and partly repaid on day 8
PAYMENTS += [
    _loan(HANGZHOU, BASE + timedelta(days=3), "HZ-1", "disbursed", "5000.00"),
    _loan(HANGZHOU, BASE + timedelta(days=8), "HZ-1", "repayment", "1234.56"),
]
PAYMENTS += [
    _rejection(uscc, BASE + timedelta(days=5), f"L-{uscc[-4:]}") for uscc in (HANGZHOU, NINGBO)
]


# assessed in October, published later: each applies from its assessed_at on
SCORES_ = [
    _assessment(HANGZHOU, BASE + timedelta(days=2, hours=5), "45", "C"),  # l2
    _assessment(HANGZHOU, BASE + timedelta(days=6), "82", "C"),  # l4 from day 6
    _assessment(NINGBO, BASE - timedelta(days=30), "15", "F"),  # l0, before every payment
    _assessment(NINGBO, BASE + timedelta(days=4, hours=7), "65", "I"),  # l3
]


def _now_ms() -> int:
    return int(datetime.now(tz=UTC).timestamp() * 1000)


def _namespace(kafka: KafkaSettings) -> KafkaSettings:
    ns = KafkaSettings(
        bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:10]}-"
    )
    create_topics(ns)
    return ns


def _check(worker: WorkerProcess, oracle: Oracle) -> Figures:
    expected = oracle_figures(oracle.result({}))
    got = wait_converged([worker], expected)
    assert_exact(got, expected)
    assert_flow_identity(got)
    return got


def test_scores_written_after_the_events_restate_them(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    # scores first: a plain as-of join
    first = _namespace(kafka_settings)
    oracle_a = Oracle()
    sender = _Sender(first, oracle_a)
    try:
        sender.send(SCORES_, _now_ms())
        sender.send(PAYMENTS, _now_ms())
    finally:
        sender.close()
    worker = WorkerProcess(first, "rs-a", tmp_path).start()
    try:
        wait_ready(worker)
        scores_first = _check(worker, oracle_a)
    finally:
        worker.stop()
    assert RESTATED not in scores_first

    # events first, counted unscored; the assessments arrive afterwards and restate them
    later = _namespace(kafka_settings)
    oracle_b = Oracle()
    sender = _Sender(later, oracle_b)
    worker = WorkerProcess(later, "rs-b", tmp_path).start()
    try:
        wait_ready(worker)
        sender.send(PAYMENTS, _now_ms())
        counted = _check(worker, oracle_b)
        unscored = ("bank", "unscored")
        assert (
            sum(v for k, v in counted["dfip_transactions_total"].items() if k[:2] == unscored)
            == len(PAYMENTS) - 4
        )
        sender.send(SCORES_, _now_ms())
        restated = _check(worker, oracle_b)
    finally:
        sender.close()
        worker.stop()
    assert restated[RESTATED][(TRANSACTIONS,)] > 0
    # Hangzhou's rejection and loan move once (to l2), Ningbo's rejection twice (to l0, then
    # to l3): each move counts
    assert restated[RESTATED][(LOANS,)] == 4
    for name in ("dfip_transactions_total", "dfip_transaction_amount_yuan_total",
                 "dfip_transactions_by_sector_total", "dfip_enterprises_scored",
                 "dfip_loan_decisions_total", "dfip_loans_active",
                 "dfip_loan_outstanding_principal_yuan", "dfip_loan_disbursements_total",
                 "dfip_loan_disbursed_principal_yuan_total",
                 "dfip_loan_disbursed_rate_weighted_yuan_total",
                 "dfip_loan_repaid_principal_yuan_total"):  # fmt: skip
        assert restated[name] == scores_first[name], name
    # nothing reached beyond the default 120-day horizon
    assert "dfip_scores_beyond_restatement_total" not in restated
