"""What the feed emits: the Kafka record to produce plus the ground truth behind it.

The oracle reads only the facts here (never the encoded bytes and never the stream's
decoder), so a bug in the codec or the stream cannot hide in both places at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from schemas import Event

__all__ = [
    "FX",
    "INPUT_TOPICS",
    "LOANS",
    "SCORES",
    "TRANSACTIONS",
    "Anomaly",
    "Fact",
    "FxFact",
    "LoanFact",
    "Record",
    "ScoreFact",
    "TxFact",
]

TRANSACTIONS = "dfip.transactions"
LOANS = "dfip.loans"
SCORES = "dfip.scores"
FX = "dfip.fx"
INPUT_TOPICS = (TRANSACTIONS, LOANS, SCORES, FX)

# Why a record is unusual. Error classes name records the stream must dead-letter;
# the rest are valid events the stream must treat specially.
Anomaly = Literal[
    "undecodable",
    "invalid_json",
    "invalid_shape",
    "unsupported_version",
    "invalid_field",
    "fx_rate_missing",
    "unknown_loan",
    "duplicate",
    "late",
    "wrong_partition",
]


@dataclass(frozen=True, slots=True)
class ScoreFact:
    event_id: str
    uscc: str
    assessed_at: datetime
    overall_score: Decimal
    sector: str


@dataclass(frozen=True, slots=True)
class FxFact:
    event_id: str
    currency: str
    rate_date: date
    rate_to_cny: Decimal
    published_at: datetime


@dataclass(frozen=True, slots=True)
class TxFact:
    event_id: str
    uscc: str
    occurred_at: datetime
    institution_type: str
    direction: str
    amount: Decimal
    currency: str
    customs_mode: str | None
    bank_tx_code: str | None = None


@dataclass(frozen=True, slots=True)
class LoanFact:
    """One loan lifecycle event; `amount` is the principal (application, approval,
    disbursement), the repaid principal (repayment) or the written-off amount."""

    event_id: str
    uscc: str
    occurred_at: datetime
    institution_type: str
    event_type: str
    loan_id: str
    amount: Decimal | None = None
    currency: str | None = None
    annual_rate: Decimal | None = None
    inclusive_sme: bool | None = None
    days_past_due: int | None = None
    risk_class: str | None = None


Fact = ScoreFact | FxFact | TxFact | LoanFact


@dataclass(frozen=True, slots=True)
class Record:
    """One record to produce, in produce order.

    `event` is sent with `EventProducer.send` (which partitions by `partition_for`);
    `raw` (bad input, wrong partition) is sent with `send_raw` to exactly `partition`.
    `fact` is None only for records no reader can validate (`anomaly` is then the
    error class the stream must report).
    """

    topic: str  # catalog name, without the settings' prefix
    partition: int  # partition the record lands on
    home_partition: int  # partition_for(enterprise); differs only for wrong_partition
    fact: Fact | None
    event: Event | None = None
    raw: bytes | None = None
    key: bytes | None = None
    anomaly: Anomaly | None = None
    barrier: bool = False  # flush after it: the end of a score round or an FX batch
    # explicit Kafka record timestamp (ms); None: the producer's clock at send time, which
    # for a run shorter than the dedup retention never expires a remembered id
    timestamp_ms: int | None = None
