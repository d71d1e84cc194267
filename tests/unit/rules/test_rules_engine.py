"""The rule engine against the independent reference oracle (adapters/simulator/aml.py):
the planted patterns, random streams in random arrival orders, restores from the changelog."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.simulator.aml import ExpectedHit, _us, expected_hits, plant_feed, rule_input
from schemas.alerts import Alert, AlertRule, RuleSet, load_ruleset
from schemas.codec import encode
from schemas.events import TransactionEvent
from schemas.uscc import make_uscc
from streams.rules import RuleEngine, RulesState, build_alert
from streams.rules.base import CREDIT, DAY_US, HOUR_US, Hit
from streams.rules.engine import MAX_PACK_AGE

GRACE = 600 * 1_000_000
CONFIG = load_ruleset()
START = datetime(2025, 9, 1, tzinfo=UTC)
ENTS = [make_uscc("330106", f"P{i:07d}") for i in range(3)]


def _key(uscc: str, hit: Hit) -> ExpectedHit:
    txs = hit.txs
    direction = ""
    if hit.rule is AlertRule.large_value_daily:
        direction = "credit" if txs[0].flags & CREDIT else "debit"
    key = ExpectedHit(
        hit.window_start,
        hit.window_end,
        hit.rule.value,
        uscc,
        tuple(t.event_id for t in txs),
        sum(t.fen for t in txs),
        txs[0].institution_type,
        txs[0].band,
        build_alert(CONFIG, uscc, hit, START).report_due,
        direction,
    )
    assert build_alert(CONFIG, uscc, hit, START).event_id == key.alert_id
    return key


def run(
    arrivals: list[TransactionEvent],
    config: RuleSet = CONFIG,
    *,
    batch: int = 1,
    restore_every: int = 0,
    by_key: bool = False,
) -> tuple[list[ExpectedHit], int]:
    """Drive the engine as the processor does: observe on-time events, decide after each
    batch and write its changelog records (wholes and deltas); optionally restore from the
    records written so far, replayed in offset order or (`by_key`, as the RocksDB local copy
    does) the latest record per key in key order."""
    engine = RuleEngine(config)
    rs = RulesState()
    log: list[tuple[bytes, bytes | None]] = []
    wm: int | None = None
    hits = []
    for i, ev in enumerate(arrivals):
        ts = _us(ev.occurred_at)
        assert wm is None or ts >= wm - GRACE, "the driver must not make events late"
        engine.observe(rs, ev, ts, int(ev.amount * 100), "unscored")
        wm = ts if wm is None else max(wm, ts)
        if (i + 1) % batch == 0 or i + 1 == len(arrivals):
            hits += [_key(u, h) for u, h in engine.advance(rs, wm - GRACE)]
            log += rs.changelog_records()
            if restore_every and (i + 1) % restore_every == 0:
                rs = RulesState()
                replay = sorted(dict(log).items()) if by_key else log
                for key, value in replay:
                    rs.load(key.decode()[3:], None if value is None else orjson.loads(value))
    assert wm is not None
    return sorted(hits), wm - GRACE


def test_each_planted_pattern_fires_once_and_no_near_miss_fires() -> None:
    events, plants, tick = plant_feed(START)
    hits, upto = run(events)
    assert upto == _us(tick) - GRACE
    assert hits == expected_hits([rule_input(e) for e in events], CONFIG, upto)
    by_uscc: dict[str, list[str]] = {}
    for h in hits:
        by_uscc.setdefault(h.uscc, []).append(h.rule)
    assert set(by_uscc) <= {p.uscc for p in plants}
    for plant in plants:
        assert sorted(by_uscc.get(plant.uscc, [])) == [r.value for r in plant.hits], plant
        assert not plant.hits if plant.near_miss else plant.rule in plant.hits, plant
    assert {p.rule for p in plants if not p.near_miss} == set(AlertRule)
    # a day with a large_value_daily hit of each direction: two ids
    days = [(h.uscc, h.window_start) for h in hits if h.rule == "large_value_daily"]
    assert any(days.count(d) == 2 for d in days)
    ids = [h.alert_id for h in hits]
    assert len(ids) == len(set(ids))


def test_disabled_rules_do_not_fire() -> None:
    events, _, _ = plant_feed(START)
    config = CONFIG.model_copy(update={"disabled": [AlertRule.velocity, AlertRule.cash]})
    hits, _ = run(events, config)
    assert {h.rule for h in hits} == {r.value for r in AlertRule} - {"velocity", "cash"}


# ---- random streams in random orders ---------------------------------------------------

_AMOUNTS = [
    "46000.11", "48999.99", "45000.00", "49999.99", "30000.00", "20000.00", "10000.00",
    "700000.12", "900000.34", "2000000.00", "1999999.99", "123.45", "512345.67",
    "260000.00", "250000.01", "55.55",
]  # fmt: skip
_CODES = [None, "PMNT-RCDT-DMCT", "PMNT-CNTR-CDPT", "PMNT-CCRD-CWDL", "NTRF", "现金"]


@st.composite
def streams(draw: st.DrawFn) -> list[TransactionEvent]:
    n = draw(st.integers(1, 60))
    out = []
    t = START
    for i in range(n):
        # mostly minutes apart, sometimes hours or (dormancy) months
        gap = draw(
            st.sampled_from(
                [timedelta(minutes=m) for m in (0, 1, 3, 7, 20)]
                + [timedelta(hours=h) for h in (1, 3, 5, 9, 23)]
                + [timedelta(days=181)]
            )
        )
        t += gap
        out.append(
            TransactionEvent(
                event_id=f"ev{i:03d}",
                source="bank-a",
                institution_type=draw(st.sampled_from(["bank", "fintech"])),
                occurred_at=t,
                enterprise_uscc=draw(st.sampled_from(ENTS)),
                direction=draw(st.sampled_from(["credit", "debit"])),
                amount=Decimal(draw(st.sampled_from(_AMOUNTS))),
                currency="CNY",
                booking_date=t.date(),
                value_date=t.date(),
                bank_tx_code=draw(st.sampled_from(_CODES)),
            )
        )
    return out


# lower thresholds so that random streams of a few dozen events hit every rule now and then
SMALL = RuleSet.model_validate(
    {
        "version": "test-1",
        "velocity": {"baseline_hours": 6, "min_count": 3, "factor": 2},
        "round_amounts": {"min_count": 2},
        "structuring": {"min_count": 2},
        "pass_through": {"window_hours": 2, "tolerance_pct": 50},
    }
)


def _shuffled(events: list[TransactionEvent], seed: int) -> list[TransactionEvent]:
    """An arrival order in which no event is late: each arrives up to the grace period
    after its time (so every earlier arrival is less than the grace period later)."""
    rng = random.Random(seed)
    jitter = {e.event_id: rng.randrange(GRACE) for e in events}
    return sorted(events, key=lambda e: (_us(e.occurred_at) + jitter[e.event_id], e.event_id))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=streams(),
    seed=st.integers(0, 2**32),
    batch=st.integers(1, 7),
    restore_every=st.sampled_from([0, 0, 3, 5]),
    by_key=st.booleans(),
)
def test_hits_do_not_depend_on_arrival_order_or_restores(
    events: list[TransactionEvent], seed: int, batch: int, restore_every: int, by_key: bool
) -> None:
    in_order, upto = run(events, SMALL)
    shuffled, upto2 = run(
        _shuffled(events, seed), SMALL, batch=batch, restore_every=restore_every, by_key=by_key
    )
    assert upto2 == upto
    assert shuffled == in_order
    assert in_order == expected_hits([rule_input(e) for e in events], SMALL, upto)


# ---- bounds, records ---------------------------------------------------------------------


def test_state_is_pruned_by_event_time() -> None:
    engine = RuleEngine(CONFIG)
    rs = RulesState()
    uscc = ENTS[0]
    for i in range(24 * 20):  # twenty days, one an hour
        at = START + timedelta(hours=i)
        ev = TransactionEvent(
            event_id=f"p{i}",
            source="bank-a",
            institution_type="bank",
            occurred_at=at,
            enterprise_uscc=uscc,
            direction="credit",
            amount=Decimal("10.01"),
            currency="CNY",
            booking_date=at.date(),
            value_date=at.date(),
        )
        engine.observe(rs, ev, _us(at), 1001, "unscored")
        engine.advance(rs, _us(at) - GRACE)
    ent = rs.enterprises[uscc]
    assert len(ent.txs) <= (engine.lookback_us + DAY_US) // HOUR_US + 2
    assert len(ent.hours) <= CONFIG.velocity.baseline_hours + 2


def test_alert_record_is_valid_and_its_id_stable() -> None:
    events, _, _ = plant_feed(START)
    engine = RuleEngine(CONFIG)
    rs = RulesState()
    for ev in events:
        engine.observe(rs, ev, _us(ev.occurred_at), int(ev.amount * 100), "b3")
    hits = engine.advance(rs, _us(events[-1].occurred_at))
    now = datetime(2026, 12, 3, tzinfo=UTC)
    alerts = [build_alert(CONFIG, u, h, now) for u, h in hits]
    again = [build_alert(CONFIG, u, h, now + timedelta(hours=1)) for u, h in hits]
    assert [a.event_id for a in alerts] == [a.event_id for a in again]
    for alert in alerts:
        assert Alert.model_validate_json(encode(alert)) == alert
        assert alert.ruleset_version == CONFIG.version
        assert alert.total_fen == sum(alert.amounts_fen)
        assert alert.band == "b3"
    large = next(a for a in alerts if a.rule is AlertRule.large_value)
    assert large.total_fen == 200_000_000
    # 2025-09-01 10:00 Beijing, a Monday: due the next Monday
    assert large.report_due == date(2025, 9, 8)


def test_a_bad_rule_set_names_its_file(tmp_path: object) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "rules.toml"
    bad.write_text('version = "x1"\n[structuring]\nband_low_pct = 100\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"rules\.toml: structuring: .*band_low_pct must be below"):
        load_ruleset(bad)
    bad.write_text('version = "x1"\n[cash]\ncny_fen = "lots"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"rules\.toml: cash\.cny_fen: "):
        load_ruleset(bad)


def _restored(log: list[tuple[bytes, bytes | None]], by_key: bool) -> RulesState:
    rs = RulesState()
    for key, value in sorted(dict(log).items()) if by_key else log:
        rs.load(key.decode()[3:], None if value is None else orjson.loads(value))
    rs.settle()
    return rs


def test_delta_records_restore_the_same_state_in_offset_and_key_order() -> None:
    """Most batches write deltas; a restore from them (any replay order) is the live state."""
    engine = RuleEngine(CONFIG)
    rs = RulesState()
    log: list[tuple[bytes, bytes | None]] = []
    rng = random.Random(5)
    t = _us(START)
    for i in range(3000):
        t += rng.randrange(1, 120) * 1_000_000
        uscc = ENTS[rng.randrange(len(ENTS))]
        ev = TransactionEvent(
            event_id=f"d-{i}", source="bank-a", institution_type="bank",
            occurred_at=datetime.fromtimestamp(t / 1e6, tz=UTC), enterprise_uscc=uscc,
            direction="credit" if i % 2 else "debit", amount=Decimal(rng.randrange(1, 10**6)),
            currency="CNY", booking_date=date(2025, 9, 1), value_date=date(2025, 9, 1),
        )  # fmt: skip
        engine.observe(rs, ev, t, int(ev.amount * 100), "l1")
        if i % 7 == 6:
            engine.advance(rs, t - GRACE)
            log += rs.changelog_records()
    log += rs.changelog_records()
    # the deltas go in one pack per batch (al:~<seq>), far fewer records than enterprises
    packs = [orjson.loads(v) for k, v in log if k.startswith(b"al:~") and v is not None]
    wholes = sum(1 for k, v in log if k.count(b":") == 1 and not k.startswith(b"al:~"))
    assert sum(len(p) for p in packs) > wholes
    assert not any(k.count(b":") == 2 for k, _ in log)  # the per-enterprise form: no more
    for by_key in (False, True):
        back = _restored(log, by_key)
        assert back.idle == rs.idle
        assert set(back.enterprises) == set(rs.enterprises)
        for uscc, ent in rs.enterprises.items():
            got = back.enterprises[uscc]
            assert (got.txs, got.hours, got.cursors, got.decided, got.last_active) == (
                ent.txs,
                ent.hours,
                ent.cursors,
                ent.decided,
                ent.last_active,
            ), uscc
        assert back.based == rs.based
        assert (back.packs, back.pack_seq) == (rs.packs, rs.pack_seq)


def test_an_old_pack_is_retired_by_whole_records_of_what_it_still_holds() -> None:
    """One enterprise's delta could keep a pack (and everyone's deltas in it) alive for
    days: after MAX_PACK_AGE batches it gets a whole record and the pack is tombstoned, so a
    restore never reads more than MAX_PACK_AGE packs."""
    engine = RuleEngine(CONFIG)
    rs = RulesState()
    log: list[tuple[bytes, bytes | None]] = []
    t = _us(START)

    def tx(i: int, uscc: str) -> None:
        ev = TransactionEvent(
            event_id=f"p-{i}", source="bank-a", institution_type="bank",
            occurred_at=datetime.fromtimestamp(t / 1e6, tz=UTC), enterprise_uscc=uscc,
            direction="debit", amount=Decimal("12.34"), currency="CNY",
            booking_date=date(2025, 9, 1), value_date=date(2025, 9, 1),
        )  # fmt: skip
        engine.observe(rs, ev, t, 1234, "l1")

    for i in range(2):  # the straggler: a whole record, then one delta in pack 2
        tx(i, ENTS[0])
        log += rs.changelog_records()
    for i in range(2, 2 + 2 * MAX_PACK_AGE):  # only the other enterprise from now on
        t += 1_000_000
        tx(i, ENTS[1])
        log += rs.changelog_records()
        assert len(rs.packs) <= MAX_PACK_AGE
        assert min(rs.packs, default=rs.pack_seq) > rs.pack_seq - MAX_PACK_AGE
    assert (b"al:~2", None) in log  # retired
    assert sum(1 for k, _ in log if k == f"al:{ENTS[0]}".encode()) == 2
    back = _restored(log, by_key=True)
    for uscc, ent in rs.enterprises.items():
        got = back.enterprises[uscc]
        assert (got.txs, got.hours, got.decided) == (ent.txs, ent.hours, ent.decided)
    assert back.packs == rs.packs
