"""`dfip alerts`: filters, the one-line format and overdue reports (no Kafka here; the
integration test tails the real topic)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from adapters.simulator.aml import _us, plant_feed
from dfip.alerts_cli import AlertFilter, format_alert, overdue
from schemas.alerts import Alert, load_ruleset
from streams.rules import RuleEngine, RulesState, build_alert

CONFIG = load_ruleset()


def _alerts() -> list[Alert]:
    events, _, _ = plant_feed()
    engine, rs = RuleEngine(CONFIG), RulesState()
    for ev in events:
        engine.observe(rs, ev, _us(ev.occurred_at), int(ev.amount * 100), "l2")
    now = datetime(2025, 9, 6, tzinfo=UTC)
    return [build_alert(CONFIG, u, h, now) for u, h in engine.advance(rs, 1 << 62)]


def test_filters_combine() -> None:
    alerts = _alerts()
    assert len(alerts) == 12
    assert [a.rule.value for a in alerts if AlertFilter(frozenset({"cash"}))(a)] == ["cash"]
    some = alerts[0]
    by_uscc = AlertFilter(uscc=some.enterprise_uscc)
    assert [a for a in alerts if by_uscc(a)] == [some]
    assert not [a for a in alerts if AlertFilter(regions=frozenset({"ningbo"}))(a)]
    assert all(AlertFilter(institution_types=frozenset({"bank"}))(a) for a in alerts)


def test_format_is_one_line_in_beijing_time() -> None:
    large = next(a for a in _alerts() if a.rule.value == "large_value")
    line = format_alert(large)
    assert "\n" not in line
    assert "¥2,000,000.00" in line
    assert "2025-09-01 10:00 → 2025-09-01 10:00 (Beijing)" in line
    assert "due 2025-09-08" in line


def test_overdue_needs_a_passed_due_date_and_no_ack() -> None:
    alerts = _alerts()
    assert overdue(alerts, set(), date(2025, 9, 8)) == []  # due that day: not yet overdue
    late = overdue(alerts, set(), date(2025, 9, 30))
    assert len(late) == 12
    acked = {alerts[0].event_id}
    assert len(overdue(alerts, acked, date(2025, 9, 30))) == 11


def test_a_hit_written_twice_is_one_overdue_report() -> None:
    from datetime import date

    from dfip.alerts_cli import overdue

    class Hit:
        def __init__(self, event_id: str, due: date) -> None:
            self.event_id, self.report_due = event_id, due

    hits = [Hit("a", date(2026, 1, 5)), Hit("a", date(2026, 1, 5)), Hit("b", date(2026, 1, 5))]
    late = overdue(hits, acked=set(), today=date(2026, 2, 1))  # type: ignore[arg-type]
    assert [h.event_id for h in late] == ["a", "b"]
    assert overdue(hits, acked={"a"}, today=date(2026, 2, 1)) == [hits[2]]  # type: ignore[arg-type]
