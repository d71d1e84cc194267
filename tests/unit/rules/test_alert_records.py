"""`build_alert` builds its record without validating it again (`model_construct`): it must
equal the validated `Alert` the engine built before, field for field and byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.simulator.aml import _us
from schemas.alerts import MAX_ALERT_EVENTS, Alert, AlertRule, RuleSet
from schemas.codec import encode
from schemas.events import TransactionEvent
from schemas.ids import make_event_id
from schemas.uscc import make_uscc, region_of
from schemas.workdays import add_working_days
from streams.rules import RuleEngine, RulesState, build_alert
from streams.rules.base import CREDIT, Hit, Tx
from tests.unit.rules.test_fast_paths import CONFIG, GRACE, SMALL, streams

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def validated_alert(config: RuleSet, uscc: str, hit: Hit, detected_at: datetime) -> Alert:
    """build_alert as it was: the model validates every field."""
    txs = hit.txs[:MAX_ALERT_EVENTS]
    first, last = hit.txs[0], hit.txs[-1]
    parts = ["alert", hit.rule.value, uscc, str(hit.window_start), first.event_id]
    if hit.rule is AlertRule.large_value_daily:  # one hit a day per direction
        parts.append("credit" if first.flags & CREDIT else "debit")
    alert_id = make_event_id(*parts)
    last_day = (_at(last.ts) + timedelta(hours=8)).date()
    return Alert(
        event_id=alert_id,
        rule=hit.rule,
        ruleset_version=config.version,
        enterprise_uscc=uscc,
        institution_type=first.institution_type,
        band=first.band,
        region=region_of(uscc).value,
        event_ids=[tx.event_id for tx in txs],
        amounts_fen=[tx.fen for tx in txs],
        event_count=len(hit.txs),
        total_fen=sum(tx.fen for tx in hit.txs),
        window_start=_at(hit.window_start),
        window_end=_at(hit.window_end),
        detected_at=detected_at,
        report_due=add_working_days(last_day),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=streams(),
    config=st.sampled_from([CONFIG, SMALL]),
    offset_hours=st.sampled_from([0, 8, -5]),
)
def test_build_alert_equals_the_validated_record(
    stream: list[tuple[TransactionEvent, int]], config: RuleSet, offset_hours: int
) -> None:
    engine = RuleEngine(config)
    rs = RulesState()
    hits = []
    wm = None
    for ev, fen in stream:
        ts = _us(ev.occurred_at)
        engine.observe(rs, ev, ts, fen, "l2")
        wm = ts if wm is None else max(wm, ts)
        hits += engine.advance(rs, wm - GRACE)
    assert wm is not None
    hits += engine.advance(rs, wm + 400 * 24 * 3_600_000_000)
    # the worker passes datetime.now(tz=UTC); any other offset is normalised as validation does
    now = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=timezone(timedelta(hours=offset_hours)))
    for uscc, hit in hits:
        fast, ref = build_alert(config, uscc, hit, now), validated_alert(config, uscc, hit, now)
        assert fast == ref
        assert fast.model_fields_set == ref.model_fields_set
        assert fast.model_dump() == ref.model_dump()
        assert encode(fast) == encode(ref)
        assert fast.detected_at.tzinfo is ref.detected_at.tzinfo


def test_a_hit_over_the_alert_event_limit_lists_the_first_events_and_counts_all() -> None:
    uscc = make_uscc("330106", "L0000001")
    t0 = _us(datetime(2025, 9, 1, 23, tzinfo=UTC))
    txs = tuple(
        Tx(t0 + i, f"e{i:04d}", 100 + i, 1, "bank", "l1") for i in range(MAX_ALERT_EVENTS + 7)
    )
    hit = Hit(AlertRule.round_amounts, txs, t0, t0 + 86_400_000_000)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    fast, ref = build_alert(CONFIG, uscc, hit, now), validated_alert(CONFIG, uscc, hit, now)
    assert encode(fast) == encode(ref)
    assert fast.event_count == MAX_ALERT_EVENTS + 7
    assert fast.event_ids == [f"e{i:04d}" for i in range(MAX_ALERT_EVENTS)]
    assert fast.total_fen == sum(tx.fen for tx in txs)
