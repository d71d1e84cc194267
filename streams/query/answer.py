"""The answer to an exposure query, built from one partition's state (pure: no I/O).

Shape (docs/api/openapi.json, schema ``Enterprise``): the enterprise's assessment versions
as kept for the as-of join (band and sector), its active loans with their CNY value in fen
and yuan, risk class and days past due, totals by institution type, and its counted
transactions of the last 30 Beijing days (streams/query/recent.py). Amounts are integer fen
plus the same value in yuan as an exact decimal string (never a float).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.catalog import utc_iso
from schemas.enums import dpd_bucket
from schemas.uscc import region_of
from streams.aggregate.loans import effective_risk
from streams.query import recent
from streams.reference.scores import ScoreTable, ScoreVersion
from streams.state.partition import LoanState, PartitionState

__all__ = ["enterprise_answer", "yuan"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def yuan(fen: int) -> str:
    """Integer fen as an exact yuan decimal string: 123456 → "1234.56"."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def _iso(us: int) -> str:
    return utc_iso(_EPOCH + timedelta(microseconds=us))


def _money(fen: int) -> dict[str, Any]:
    return {"fen": fen, "yuan": yuan(fen)}


def _versions(table: ScoreTable, uscc: str) -> list[ScoreVersion]:
    return table.versions_of(uscc)


def _loan(loan_id: str, loan: LoanState) -> dict[str, Any]:
    return {
        "loan_id": loan_id,
        "institution_type": loan.institution_type,
        "vintage_band": loan.band,
        "currency": loan.currency,
        "outstanding": loan.outstanding,
        "outstanding_fen": loan.outstanding_fen,
        "outstanding_yuan": yuan(loan.outstanding_fen),
        "principal_fen": loan.principal_fen,
        "principal_yuan": yuan(loan.principal_fen),
        "days_past_due": loan.days_past_due,
        "dpd_bucket": dpd_bucket(loan.days_past_due).value,
        "risk_class": effective_risk(loan),
        "reported_risk_class": loan.reported_risk,
        "defaulted": loan.defaulted,
        "disbursed_at": _iso(loan.disbursed_us) if loan.disbursed_us >= 0 else None,
    }


def enterprise_answer(uscc: str, state: PartitionState, scores: ScoreTable) -> dict[str, Any]:
    """What the partition knows of ``uscc`` (a valid, normalised USCC it owns)."""
    versions = _versions(scores, uscc)
    history = [
        {"assessed_at": _iso(v.assessed_us), "band": v.band, "sector": v.sector} for v in versions
    ]
    loans = [
        _loan(loan_id, state.loans[loan_id])
        for loan_id in sorted(state.borrower_loans.get(uscc, ()))
        if loan_id in state.loans
    ]
    by_type: dict[str, dict[str, int]] = {}
    for row in loans:
        t = by_type.setdefault(
            row["institution_type"], {"loans": 0, "outstanding_fen": 0, "past_due_fen": 0}
        )
        t["loans"] += 1
        t["outstanding_fen"] += row["outstanding_fen"]
        if row["days_past_due"] > 0:
            t["past_due_fen"] += row["outstanding_fen"]
    totals = {
        it: {
            "loans": t["loans"],
            "outstanding_fen": t["outstanding_fen"],
            "outstanding_yuan": yuan(t["outstanding_fen"]),
            "past_due_fen": t["past_due_fen"],
            "past_due_yuan": yuan(t["past_due_fen"]),
        }
        for it, t in sorted(by_type.items())
    }
    flows = recent.totals(state, uscc)
    return {
        "uscc": uscc,
        "region": region_of(uscc).value,
        "partition": state.partition,
        "scores": history,
        "current": history[-1] if history else None,
        "loans": loans,
        "loan_totals": totals,
        "flows": None
        if flows is None
        else {
            "zone": "Asia/Shanghai",
            "first_day": flows.first.isoformat(),
            "last_day": flows.last.isoformat(),
            "credit": {"count": flows.credit_count, **_money(flows.credit_fen)},
            "debit": {"count": flows.debit_count, **_money(flows.debit_fen)},
        },
    }
