"""The oracle's per-enterprise view: what ``GET /v1/enterprises/{uscc}`` must answer.

Built from the ground truth the :class:`~adapters.simulator.oracle.Oracle` keeps while it
replays a feed (assessment history, active loans, counted transactions), written out again
here rather than shared with the stream (streams/query/answer.py), like the oracle itself.
:func:`replay` regenerates a run's feed (it is deterministic in its config) so a test can
ask for views after :func:`~adapters.simulator.runner.run_simulation` returned.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from adapters.simulator.feed import Feed
from adapters.simulator.model import TRANSACTIONS
from adapters.simulator.oracle import Oracle, _band, _dpd_bucket, _region
from adapters.simulator.province import Province, build_province
from adapters.simulator.runner import SimulationConfig
from schemas.catalog import partition_for

__all__ = ["RECENT_DAYS", "enterprise_view", "province_usccs", "replay"]

RECENT_DAYS = 30
SCORE_VERSIONS_KEPT = 8  # the worker's default score_history
_BEIJING = timedelta(hours=8)  # Asia/Shanghai: UTC+8 all year since 1991
_TX_LABELS = ("credit", "debit")


def replay(config: SimulationConfig) -> Oracle:
    """The oracle of the feed ``run_simulation(…, config)`` sent (``config.events`` set)."""
    if config.events is None:
        raise ValueError("replay needs a bounded run (events)")
    oracle = Oracle(
        grace_seconds=config.grace_seconds, dedup_retention_days=config.dedup_retention_days
    )
    for n, record in enumerate(Feed(config.feed_config())):
        if n >= config.events:
            break
        oracle.observe(record)
    return oracle


def province_usccs(config: SimulationConfig) -> list[str]:
    province: Province = build_province(config.seed, config.enterprises)
    return [e.uscc for e in province.enterprises]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _beijing_date(at: datetime) -> date:
    return (at.astimezone(UTC) + _BEIJING).date()


def enterprise_view(oracle: Oracle, uscc: str) -> dict[str, Any] | None:
    """The expected answer for ``uscc`` (without ``served_by``); None: nothing is held
    (no assessment, no active loan, no transaction in the recent days) → 404."""
    home = partition_for(uscc)
    history = oracle._history.get(uscc, [])[-SCORE_VERSIONS_KEPT:]
    scores = [
        {"assessed_at": _iso(at), "band": _band(score), "sector": sector}
        for at, score, sector in history
    ]
    loans = []
    for loan_id, loan in sorted(oracle._loans.items()):
        if loan.uscc != uscc:
            continue
        fen = loan.outstanding_fen
        loans.append(
            {
                "loan_id": loan_id,
                "institution_type": loan.institution_type,
                "vintage_band": loan.band,
                "currency": loan.currency,
                "outstanding": str(loan.outstanding),
                "outstanding_fen": fen,
                "outstanding_yuan": _yuan(fen),
                "principal_fen": loan.principal_fen,
                "principal_yuan": _yuan(loan.principal_fen),
                "days_past_due": loan.days_past_due,
                "dpd_bucket": "current" if loan.days_past_due == 0 else
                _dpd_bucket(loan.days_past_due),
                "risk_class": loan.risk_class(),
                "reported_risk_class": loan.reported,
                "defaulted": loan.defaulted,
                "disbursed_at": _iso(loan.disbursed_at) if loan.disbursed_at else None,
            }
        )  # fmt: skip
    totals: dict[str, dict[str, Any]] = {}
    for row in loans:
        t = totals.setdefault(
            str(row["institution_type"]), {"loans": 0, "outstanding_fen": 0, "past_due_fen": 0}
        )
        t["loans"] += 1
        t["outstanding_fen"] += row["outstanding_fen"]
        t["past_due_fen"] += row["outstanding_fen"] if row["days_past_due"] else 0
    for t in totals.values():
        t["outstanding_yuan"] = _yuan(t["outstanding_fen"])
        t["past_due_yuan"] = _yuan(t["past_due_fen"])
    # counted transactions (the oracle also keeps loan applications there: direction tells)
    txs = [tx for tx in oracle._counted.get(uscc, ()) if tx[2] in _TX_LABELS]
    ends = [_beijing_date(tx[0]) for tx in txs]
    wm = oracle.watermark(TRANSACTIONS, home)
    if wm is not None:
        ends.append(_beijing_date(wm))
    flows = None
    if ends:
        last = max(ends)
        first = last - timedelta(days=RECENT_DAYS - 1)
        sums = {d: [0, 0] for d in _TX_LABELS}
        held = False
        for at, _inst, direction, *_rest, fen, _p in txs:
            day = _beijing_date(at)
            if first <= day <= last:
                sums[direction][0] += 1
                sums[direction][1] += fen
                held = True
        flows = {
            "zone": "Asia/Shanghai",
            "first_day": first.isoformat(),
            "last_day": last.isoformat(),
            **{d: {"count": c, "fen": f, "yuan": _yuan(f)} for d, (c, f) in sums.items()},
        }
        if not held and not scores and not loans:
            return None
    elif not scores and not loans:
        return None
    return {
        "uscc": uscc,
        "region": _region(uscc),
        "partition": home,
        "scores": scores,
        "current": scores[-1] if scores else None,
        "loans": loans,
        "loan_totals": dict(sorted(totals.items())),
        "flows": flows,
    }
