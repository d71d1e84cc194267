"""`dfip alerts`: follow rule hits on dfip.alerts (docs/aml-rules.md) and count the reports
that are overdue (no acknowledgement on dfip.alerts.ack by the report-due date).

Hits name enterprises: run these with the credentials of compliance staff only (the ACL in
docs/aml-rules.md); the `overdue` summary prints counts without identifiers unless asked.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.errors import DfipError
from core.text import printable

if TYPE_CHECKING:
    from schemas.alerts import Alert

__all__ = ["AlertFilter", "alerts_app", "format_alert", "make_ack", "overdue"]

alerts_app = typer.Typer(
    no_args_is_help=True,
    help="Large-value and suspicious-pattern rule hits (dfip.alerts; compliance staff only).",
)

_BEIJING = timedelta(hours=8)


@dataclass(frozen=True)
class AlertFilter:
    rules: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    institution_types: frozenset[str] = frozenset()
    uscc: str | None = None
    due_by: date | None = None

    def __call__(self, alert: Alert) -> bool:
        return (
            (not self.rules or alert.rule.value in self.rules)
            and (not self.regions or alert.region in self.regions)
            and (not self.institution_types or alert.institution_type in self.institution_types)
            and (self.uscc is None or alert.enterprise_uscc == self.uscc)
            and (self.due_by is None or alert.report_due <= self.due_by)
        )


def _yuan(fen: int) -> str:
    return f"¥{fen // 100:,}.{fen % 100:02d}"


def format_alert(alert: Alert) -> str:
    """One line: rule, enterprise, where, how much, which window (Beijing time), due date."""
    start = (alert.window_start + _BEIJING).strftime("%Y-%m-%d %H:%M")
    end = (alert.window_end + _BEIJING).strftime("%Y-%m-%d %H:%M")
    return (
        f"{alert.rule.value:<20} {alert.enterprise_uscc} {alert.region:<9} "
        f"{alert.institution_type:<8} {alert.band:<8} {_yuan(alert.total_fen):>18} "
        f"{alert.event_count:>4} ev  {start} → {end} (Beijing)  due {alert.report_due}  "
        f"[{alert.ruleset_version}] {alert.event_id}"
    )


def _decode(record: Any) -> Alert | None:
    from schemas.alerts import Alert

    try:
        return Alert.model_validate_json(record.value)
    except ValueError:
        return None


def _set(values: Sequence[str] | None) -> frozenset[str]:
    return frozenset(values or ())


@alerts_app.command("tail")
def alerts_tail(
    rule: Annotated[
        list[str] | None, typer.Option("--rule", help="Only these rules (repeatable).")
    ] = None,
    region: Annotated[
        list[str] | None, typer.Option("--region", help="Only these regions (repeatable).")
    ] = None,
    institution_type: Annotated[
        list[str] | None,
        typer.Option("--institution-type", help="Only these institution types (repeatable)."),
    ] = None,
    uscc: Annotated[str | None, typer.Option("--uscc", help="Only this enterprise.")] = None,
    count: Annotated[
        int, typer.Option("-n", "--count", min=0, help="Last hits per partition to look at.")
    ] = 20,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new hits (Ctrl-C stops).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print each hit as JSON.")] = False,
) -> None:
    """Print rule hits (committed only), oldest first, one line each, then follow."""
    from core.kafka_config import KafkaSettings
    from dfip.peek import tail

    keep = AlertFilter(_set(rule), _set(region), _set(institution_type), uscc)
    out = Console(emoji=False, soft_wrap=True, highlight=False)

    def emit(record: Any) -> None:
        alert = _decode(record)
        if alert is None or not keep(alert):
            return
        out.print(escape(printable(alert.model_dump_json() if as_json else format_alert(alert))))

    kafka = KafkaSettings()
    try:
        tail(kafka, kafka.topic("dfip.alerts"), count=count, follow=follow, emit=emit)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `| head`
        sys.stderr.close()


def overdue(alerts: Sequence[Alert], acked: set[str], today: date) -> list[Alert]:
    """Hits whose report was due before `today` (Beijing) and that nobody acknowledged; a hit
    id written twice is one report (as the worker's dfip_alerts_overdue counts it)."""
    seen: set[str] = set()
    out = []
    for a in alerts:
        if a.event_id in seen:
            continue
        seen.add(a.event_id)
        if a.report_due < today and a.event_id not in acked:
            out.append(a)
    return out


def _read_all(topic: str) -> list[Any]:
    from core.kafka_config import KafkaSettings
    from dfip.peek import _connected, _partitions

    kafka = KafkaSettings()
    name = kafka.topic(topic)
    # connected first with the admin client's bounded bootstrap: no broker is one line
    # within seconds, not a KafkaTimeoutError traceback after half a minute
    with _connected(kafka) as consumer:
        tps = _partitions(consumer, name)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise DfipError(f"could not read {name} to its end within 120 s")
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        return out


@alerts_app.command("overdue")
def alerts_overdue(
    show: Annotated[
        bool, typer.Option("--list", help="Also list each overdue hit (identifiers!).")
    ] = False,
) -> None:
    """Hits past their report-due date without an acknowledgement on dfip.alerts.ack,
    counted by rule and region."""
    from schemas.alerts import AlertAck

    alerts = [a for r in _read_all("dfip.alerts") if (a := _decode(r)) is not None]
    acked: set[str] = set()
    for r in _read_all("dfip.alerts.ack"):
        try:
            acked.add(AlertAck.model_validate_json(r.value).alert_id)
        except ValueError:
            continue
    today = (datetime.now(tz=UTC) + _BEIJING).date()
    late = overdue(alerts, acked, today)
    counts = Counter((a.rule.value, a.region) for a in late)
    table = Table("rule", "region", "overdue", title=f"{len(late)} of {len(alerts)} hits overdue")
    for (rule, region), n in sorted(counts.items()):
        table.add_row(rule, region, str(n))
    out = Console(emoji=False, soft_wrap=True, highlight=False)
    out.print(table)
    if show:
        for alert in late:
            out.print(escape(printable(format_alert(alert))))


def make_ack(alert_id: str, uscc: str, outcome: str) -> tuple[int, bytes, bytes]:
    """(partition, key, value) of an acknowledgement: keyed and placed like the hit, so the
    worker owning the hit's partition reads it (docs/metrics.md, overdue reports)."""
    from schemas.alerts import AlertAck
    from schemas.catalog import partition_for
    from schemas.codec import encode
    from schemas.ids import make_event_id

    ack = AlertAck(
        event_id=make_event_id("alert-ack", alert_id, outcome),
        alert_id=alert_id,
        enterprise_uscc=uscc,
        outcome=outcome,  # type: ignore[arg-type]  # checked by the model
        acknowledged_at=datetime.now(tz=UTC),
    )
    return partition_for(uscc), uscc.encode(), encode(ack)


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(help="The hit's id (last column of `tail`).")],
    uscc: Annotated[str, typer.Option("--uscc", help="The hit's enterprise USCC.")],
    outcome: Annotated[str, typer.Option("--outcome", help="reported or dismissed.")] = "reported",
) -> None:
    """Acknowledge a hit on dfip.alerts.ack: it no longer counts as overdue."""
    from kafka import KafkaProducer

    from core.kafka_config import KafkaSettings
    from dfip.peek import _connected, _partitions

    if outcome not in ("reported", "dismissed"):
        raise DfipError(f"--outcome: {outcome!r} is not reported or dismissed", exit_code=2)
    try:
        partition, key, value = make_ack(alert_id, uscc, outcome)
    except ValueError as exc:
        raise DfipError(f"acknowledgement refused: {exc}", exit_code=2) from exc
    kafka = KafkaSettings()
    topic = kafka.topic("dfip.alerts.ack")
    with _connected(kafka) as consumer:  # bounded: no broker or no topic is one line
        _partitions(consumer, topic)
        producer = KafkaProducer(
            client_id="dfip-alerts", acks="all", max_block_ms=30_000, **kafka.kafka_python_config()
        )
        try:
            producer.send(topic, key=key, value=value, partition=partition).get(timeout=30)
        finally:
            producer.close(timeout=5)
    Console(emoji=False, highlight=False).print(f"acknowledged {escape(alert_id)} ({outcome})")
