"""Reports that are overdue: hits whose report-due date has passed without an
acknowledgement on `dfip.alerts.ack` (docs/aml-rules.md, "Overdue reports").

The worker that writes a hit keeps it *open* in the partition's rule state (changelog record
`al:<uscc>#<hit id>`, tombstoned when acknowledged) and counts it in the partition's counters under
`OPEN` by (rule, region, institution type, band, report-due date). It reads the partition's
acknowledgements with the reference topics (before each batch and on idle ticks), with their
offset in the partition checkpoint: an acknowledgement closes the hit in the same Kafka
transaction as that offset, so across restarts and rebalances each hit is opened once and
closed at most once. The exporter turns the committed `OPEN` series into the gauge
`dfip_alerts_overdue` at each scrape, comparing the due date with the Beijing date then.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

from schemas import figure_names as fn
from schemas.alerts import Alert, AlertAck
from streams.rules.engine import RulesState
from streams.state.partition import Counters

__all__ = ["OPEN", "OVERDUE", "acknowledge", "beijing_today", "open_hit", "overdue"]

# hidden series (not exported as such): open hits by rule, region, institution type, band
# and report-due date (ISO); the exporter derives OVERDUE from it
OPEN = "dfip_alerts_open"
OVERDUE = fn.ALERTS_OVERDUE
_BEIJING = timedelta(hours=8)

Labels = tuple[str, ...]


def open_hit(rs: RulesState, counters: Counters, alert: Alert) -> None:
    """A hit just written: open until acknowledged."""
    key = (
        alert.rule.value,
        alert.region,
        alert.institution_type,
        alert.band,
        alert.report_due.isoformat(),
    )
    hits = rs.open.setdefault(alert.enterprise_uscc, {})
    if alert.event_id in hits:
        return  # decided again (cannot happen: a hit is decided once); never count twice
    hits[alert.event_id] = key
    counters.add(OPEN, key, 1)
    rs.open_dirty.add((alert.enterprise_uscc, alert.event_id))


def acknowledge(rs: RulesState, counters: Counters, ack: AlertAck) -> bool:
    """Close the hit an acknowledgement names; False if it is not open here (unknown,
    already acknowledged, or keyed to another partition)."""
    hits = rs.open.get(ack.enterprise_uscc)
    key = hits.pop(ack.alert_id, None) if hits is not None else None
    if key is None:
        return False
    if not hits:
        del rs.open[ack.enterprise_uscc]
    counters.add(OPEN, key, -1)
    rs.open_dirty.add((ack.enterprise_uscc, ack.alert_id))
    return True


def beijing_today(now: datetime | None = None) -> date:
    return ((now or datetime.now(tz=UTC)) + _BEIJING).date()


def overdue(open_series: Mapping[Labels, int], today: date) -> dict[Labels, int]:
    """Open hits due before `today`, by (rule, region, institution type, band)."""
    cutoff = today.isoformat()  # ISO dates compare as strings
    out: dict[Labels, int] = {}
    for (*labels, due), n in open_series.items():
        if due < cutoff:
            key = tuple(labels)
            out[key] = out.get(key, 0) + n
    return out
