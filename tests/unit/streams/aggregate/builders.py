"""Plain objects for the aggregate/ unit tests: a partition, a rate source, loan events."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings

from schemas import events as ev
from schemas.uscc import make_uscc
from streams.aggregate.apply import Join
from streams.state.partition import PartitionState

BORROWER = make_uscc("330106", "MA2B3C4D")
OTHER = make_uscc("330203", "MA7X8Y9W")
JOIN = Join(band="l2", sector="C", region="hangzhou")
AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
LOANS = "dfip.loans"
_ids = itertools.count()

# property tests: no wall-clock deadline per example (the machine is shared and noisy)
patient = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Rates:
    """A rate source: one rate per currency, in force at every instant (or none)."""

    max_age_days = 7

    def __init__(self, **rates: str) -> None:
        self.rates = {cur: Decimal(r) for cur, r in rates.items()}

    def rate_at(self, currency: str, at: datetime) -> Decimal | None:
        return self.rates.get(currency)


def partition() -> PartitionState:
    return PartitionState(0)


def _common(loan_id: str, uscc: str, at: datetime, it: str) -> dict[str, Any]:
    return dict(
        event_id=f"ln-{next(_ids)}",
        source="bank-a",
        institution_type=it,
        occurred_at=at,
        enterprise_uscc=uscc,
        loan_id=loan_id,
        application_id=f"app-{loan_id}",
        lender_id="bank-a",
        channel="online",
    )


def loan_event(
    kind: type[ev.LoanEventBase],
    loan_id: str = "L1",
    *,
    uscc: str = BORROWER,
    at: datetime = AT,
    it: str = "bank",
    **fields: Any,
) -> Any:
    """A valid loan event of class ``kind``; fields not given get plain defaults."""
    defaults: dict[type[ev.LoanEventBase], dict[str, Any]] = {
        ev.LoanApplicationSubmitted: dict(
            principal=Decimal("1000.00"), currency="CNY", annual_rate=Decimal("0.04"),
            term_months=12, collateral="credit", inclusive_sme=True,
        ),
        ev.LoanApproved: dict(
            principal=Decimal("1000.00"), currency="CNY", annual_rate=Decimal("0.04")
        ),
        ev.LoanDisbursed: dict(
            principal=Decimal("1000.00"), currency="CNY", annual_rate=Decimal("0.0435"),
            term_months=12, collateral="credit", inclusive_sme=False,
            repayment_method="equal_installment",
        ),
        ev.LoanRepayment: dict(
            principal_amount=Decimal("100.00"), interest_amount=Decimal("1.00"), currency="CNY"
        ),
        ev.LoanDelinquencyChanged: dict(days_past_due=31),
        ev.LoanRiskClassChanged: dict(risk_class="doubtful"),
        ev.LoanWrittenOff: dict(amount=Decimal("1.00"), currency="CNY"),
    }  # fmt: skip
    return kind(**_common(loan_id, uscc, at, it), **{**defaults.get(kind, {}), **fields})


def figure(state: PartitionState, name: str, labels: tuple[str, ...] | None = None) -> int:
    """One series of a figure, or (labels None) the sum over its series."""
    series = state.counters.values.get(name, {})
    if labels is not None:
        return series.get(labels, 0)
    return sum(series.values())
