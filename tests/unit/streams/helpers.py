"""Builders for stream unit tests: valid events as bytes, records, a processor."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from schemas.catalog import partition_for
from schemas.codec import encode
from schemas.events import (
    DigitalizationScore,
    DimensionScores,
    FxRate,
    LoanDisbursed,
    LoanRepayment,
    TransactionEvent,
)
from schemas.uscc import make_uscc
from streams.processor import Processor, Record
from streams.reference.scores import ScoreTable
from streams.state.partition import PartitionState

HANGZHOU = make_uscc("330106", "MA2B3C4D")
NINGBO = make_uscc("330203", "MA7X8Y9W")
_ids = itertools.count()
_offsets: dict[tuple[str, int], itertools.count[int]] = {}


def t(hhmm: str, day: int = 5) -> datetime:
    h, m = hhmm.split(":")
    return datetime(2026, 1, day, int(h), int(m), tzinfo=UTC)


def processor(grace_s: int = 600, partitions: tuple[int, ...] | None = None) -> Processor:
    proc = Processor(grace_us=grace_s * 1_000_000)
    for p in partitions or range(12):
        proc.states[p] = PartitionState(p)
        proc.scores[p] = ScoreTable()
    return proc


def record(
    topic: str,
    value: bytes,
    *,
    uscc: str = HANGZHOU,
    partition: int | None = None,
    headers: tuple[tuple[str, bytes], ...] = (),
    timestamp_ms: int | None = None,
) -> Record:
    p = partition_for(uscc) if partition is None else partition
    offs = _offsets.setdefault((topic, p), itertools.count())
    return Record(topic, p, next(offs), uscc.encode(), value, headers, timestamp_ms)


def tx(
    at: datetime,
    amount: str = "100.00",
    *,
    uscc: str = HANGZHOU,
    currency: str = "CNY",
    event_id: str | None = None,
    **kw: Any,
) -> TransactionEvent:
    return TransactionEvent(
        event_id=event_id or f"tx-{next(_ids)}",
        source="bank-a",
        institution_type=kw.pop("institution_type", "bank"),
        occurred_at=at,
        enterprise_uscc=uscc,
        direction=kw.pop("direction", "credit"),
        amount=Decimal(amount),
        currency=currency,
        booking_date=at.date(),
        value_date=at.date(),
        **kw,
    )


def score(
    at: datetime, overall: str, *, uscc: str = HANGZHOU, sector: str = "C"
) -> DigitalizationScore:
    return DigitalizationScore(
        event_id=f"sc-{next(_ids)}",
        source="assessor",
        institution_type="bank",
        occurred_at=at,
        enterprise_uscc=uscc,
        framework="miit_sme_2022",
        overall_score=Decimal(overall),
        dimensions=DimensionScores(
            foundation=None, operations=None, management=None, outcomes=None
        ),
        level="L?",
        assessed_at=at,
        valid_until=None,
        industry_section=sector,
    )


def fx(day: date, currency: str, rate: str) -> FxRate:
    return FxRate(
        event_id=f"fx-{next(_ids)}",
        source="cfets",
        currency=currency,
        rate_date=day,
        rate_to_cny=Decimal(rate),
        published_at=datetime(day.year, day.month, day.day, 1, 15, tzinfo=UTC),
    )


def loan_common(at: datetime, loan_id: str, uscc: str = HANGZHOU) -> dict[str, Any]:
    return dict(
        event_id=f"ln-{next(_ids)}",
        source="fintech-b",
        institution_type="fintech",
        occurred_at=at,
        enterprise_uscc=uscc,
        loan_id=loan_id,
        application_id=f"app-{loan_id}",
        lender_id="fintech-b",
        channel="online",
    )


def disbursed(
    at: datetime,
    loan_id: str,
    principal: str,
    *,
    currency: str = "CNY",
    rate: str = "0.0435",
    inclusive: bool = True,
) -> LoanDisbursed:
    return LoanDisbursed(
        **loan_common(at, loan_id),
        principal=Decimal(principal),
        currency=currency,
        annual_rate=Decimal(rate),
        term_months=12,
        collateral="credit",
        inclusive_sme=inclusive,
        repayment_method="equal_installment",
    )


def repayment(
    at: datetime, loan_id: str, principal: str, *, currency: str = "CNY"
) -> LoanRepayment:
    return LoanRepayment(
        **loan_common(at, loan_id),
        principal_amount=Decimal(principal),
        interest_amount=Decimal("1.00"),
        currency=currency,
    )


def feed(proc: Processor, topic: str, *events: Any, uscc: str = HANGZHOU) -> None:
    for ev in events:
        proc.process(record(topic, encode(ev), uscc=uscc))


def value(proc: Processor, name: str, labels: tuple[str, ...] | None = None) -> int:
    proc.flush_figures()  # the batch's summed updates, as the end of a batch applies them
    total = 0
    for state in proc.states.values():
        for lab, v in state.counters.values.get(name, {}).items():
            if labels is None or lab == labels:
                total += v
    return total
