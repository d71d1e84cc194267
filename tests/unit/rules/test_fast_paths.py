"""The rule engine's fast paths (issue 18) against the behaviour they replace: the engine as
it was (observe calling flags_of and each rule's due_of_new/candidate, advance calling
decide then next_due) is kept here as the reference, and both run on the same random
streams with the same batches; states, due times and hits must be identical. Also: the
changelog written before issue 18 restores to the same state and hits."""

from __future__ import annotations

import bisect
import heapq
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.simulator.aml import _us
from schemas.alerts import AlertRule, RuleSet, load_ruleset
from schemas.events import TransactionEvent
from schemas.uscc import make_uscc
from streams.rules import RuleEngine, RulesState, flags_of
from streams.rules.base import (
    CASH,
    HOUR_US,
    LARGE,
    NEVER,
    AnchoredRule,
    DailyRule,
    Enterprise,
    Hit,
    Tx,
    day_end,
    hour_floor,
)
from streams.rules.dormant import DormantReactivation
from streams.rules.engine import _pack
from streams.rules.large_value import LargeValueSingle
from streams.rules.velocity import Velocity

GRACE = 600 * 1_000_000
CONFIG = load_ruleset()
START = datetime(2025, 9, 1, tzinfo=UTC)
ENTS = [make_uscc("330106", f"F{i:07d}") for i in range(3)]
SMALL = RuleSet.model_validate(
    {
        "version": "test-1",
        "velocity": {"baseline_hours": 6, "min_count": 3, "factor": 2},
        "round_amounts": {"min_count": 2},
        "structuring": {"min_count": 2},
        "pass_through": {"window_hours": 2, "tolerance_pct": 50, "min_credit_fen": 3_000_000},
    }
)

# without the daily rules (no rule is then due by the day: observe's fallback) or with only
# some of the others: observe's shortcuts must not depend on which rules are on
NO_DAILY = SMALL.model_copy(
    update={"disabled": [AlertRule.large_value_daily, AlertRule.cash, AlertRule.round_amounts]}
)
FEW = CONFIG.model_copy(
    update={
        "disabled": [AlertRule.pass_through, AlertRule.dormant_reactivation, AlertRule.velocity]
    }
)


class ReferenceEngine(RuleEngine):
    """The engine before issue 18: observe and advance as they were."""

    def observe(self, rs: RulesState, ev: TransactionEvent, ts: int, fen: int, band: str) -> None:
        if rs.stale:
            self.reschedule(rs)
        if ts < rs.upto:
            rs.skipped += 1
            return
        uscc = ev.enterprise_uscc
        ent = rs.enterprises.get(uscc)
        if ent is None:
            ent = self._enter(rs, uscc)
        tx = Tx(
            ts, ev.event_id, fen, flags_of(self.config, ev, fen), ev.institution_type.value, band
        )
        txs = ent.txs
        if not txs or txs[-1] < tx:
            pos = len(txs)
            txs.append(tx)
        else:
            pos = bisect.bisect_left(txs, tx)
            txs.insert(pos, tx)
        ent.added.append(tx)
        hour = ts // HOUR_US
        ent.hours[hour] = ent.hours.get(hour, 0) + 1
        dues = ent.dues
        if not dues:
            dues.extend([NEVER] * len(self.rules))
        hour_end = (hour + 1) * HOUR_US
        for i, rule in enumerate(self.rules):
            if isinstance(rule, LargeValueSingle):
                due = rule.due_of_new(tx)
            elif isinstance(rule, Velocity):
                due = hour_end if ent.hours[hour] >= self._vmin else None
            elif isinstance(rule, DormantReactivation):
                due = hour_end if rule.candidate(ent, pos) else None
            elif isinstance(rule, DailyRule):
                due = day_end(ts)
            else:
                assert isinstance(rule, AnchoredRule)
                due = rule.due_of_new(tx)
            if due is not None and due < dues[i]:
                dues[i] = due
        rs.dirty.add(uscc)
        due = min(dues)
        if due >= NEVER:
            due = day_end(ts)
        current = rs.due.get(uscc)
        if current is None or due < current:
            rs.schedule(uscc, due)

    def advance(self, rs: RulesState, upto: int) -> list[tuple[str, Hit]]:
        hits: list[tuple[str, Hit]] = []
        if rs.stale:
            self.reschedule(rs)
        if upto <= rs.upto:
            return hits
        rs.upto = upto
        heap = rs.heap
        while heap and heap[0][0] <= upto:
            due, uscc = heapq.heappop(heap)
            if rs.due.get(uscc) != due:
                continue
            del rs.due[uscc]
            ent = rs.enterprises[uscc]
            dues = ent.dues
            for i, rule in enumerate(self.rules):
                if dues[i] <= upto:
                    hits.extend((uscc, h) for h in rule.decide(ent, upto))
                    dues[i] = rule.next_due(ent, upto) or NEVER
            txs = ent.txs
            i = bisect.bisect_left(txs, (hour_floor(upto),))
            if i and txs[i - 1].ts >= hour_floor(ent.decided):
                ent.last_active = txs[i - 1].ts
            ent.decided = upto
            self._prune(ent, upto)
            rs.dirty.add(uscc)
            soonest = min(dues)
            next_due = None if soonest >= NEVER else max(soonest, upto + 1)
            last = ent.last_active
            if next_due is None and not ent.txs and last is not None:
                del rs.enterprises[uscc]
                rs.idle[uscc] = (last, _pack(ent.hours))
                rs.rewrite.add(uscc)
            rs.schedule(uscc, next_due)
        hits.sort(key=lambda h: (h[1].window_start, h[0], h[1].rule.value))
        return hits


_AMOUNTS = [
    "46000.11", "48999.99", "45000.00", "30000.00", "20000.00", "10000.00", "0.00",
    "700000.12", "2000000.00", "1999999.99", "123.45", "250000.01", "150000.00", "9000.00",
]  # fmt: skip
_CODES = [None, "PMNT-RCDT-DMCT", "PMNT-CNTR-CDPT", "PMNT-CCRD-CWDL", "NTRF", "现金", " cash "]
_RATES = {"CNY": 1, "USD": Decimal("7.1234"), "EUR": Decimal("7.8"), "HKD": Decimal("0.91")}


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[TransactionEvent, int]]:
    """Events (with their CNY fen) in arrival order, none late (jitter under the grace)."""
    n = draw(st.integers(1, 50))
    t = START
    out = []
    for i in range(n):
        gap = draw(
            st.sampled_from(
                [timedelta(minutes=m) for m in (0, 1, 7, 20, 45)]
                + [timedelta(hours=h) for h in (1, 3, 7)]
                + [timedelta(days=181)]
            )
        )
        t += gap
        currency = draw(st.sampled_from(["CNY", "CNY", "CNY", "USD", "EUR", "HKD"]))
        amount = Decimal(draw(st.sampled_from(_AMOUNTS)))
        ev = TransactionEvent(
            event_id=f"fp{i:03d}",
            source="bank-a",
            institution_type=draw(st.sampled_from(["bank", "fintech"])),
            occurred_at=t,
            enterprise_uscc=draw(st.sampled_from(ENTS)),
            direction=draw(st.sampled_from(["credit", "debit"])),
            amount=amount,
            currency=currency,
            booking_date=t.date(),
            value_date=t.date(),
            bank_tx_code=draw(st.sampled_from(_CODES)),
        )
        out.append((ev, int(amount * _RATES[currency] * 100)))
    rng = random.Random(draw(st.integers(0, 2**32)))
    jitter = {ev.event_id: rng.randrange(GRACE) for ev, _ in out}
    out.sort(key=lambda e: (_us(e[0].occurred_at) + jitter[e[0].event_id], e[0].event_id))
    return out


def _state(rs: RulesState) -> Any:
    ents = {
        u: (e.txs, e.decided, e.cursors, e.hours, e.last_active, e.dues)
        for u, e in rs.enterprises.items()
    }
    return ents, rs.idle, rs.due, rs.upto, rs.skipped


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=streams(),
    config=st.sampled_from([CONFIG, SMALL, NO_DAILY, FEW]),
    batch=st.integers(1, 6),
    restore_at=st.integers(0, 12),
)
def test_the_fast_paths_keep_the_same_state_and_hits(
    stream: list[tuple[TransactionEvent, int]], config: RuleSet, batch: int, restore_at: int
) -> None:
    fast, ref = RuleEngine(config), ReferenceEngine(config)
    a, b = RulesState(), RulesState()
    log: list[tuple[bytes, bytes | None]] = []
    wm: int | None = None
    # a third copy restored from the changelog after batch `restore_at`, then carrying on
    # (writing packs on top of the restored ones): the same hits, and its own log restores
    back: RulesState | None = None
    back_log: list[tuple[bytes, bytes | None]] = []
    batches = 0
    for i, (ev, fen) in enumerate(stream):
        ts = _us(ev.occurred_at)
        fast.observe(a, ev, ts, fen, "l2")
        ref.observe(b, ev, ts, fen, "l2")
        assert a.enterprises[ev.enterprise_uscc].txs[-1].flags == flags_of(config, ev, fen) or (
            # an insertion: compare the transaction itself
            next(
                t for t in a.enterprises[ev.enterprise_uscc].txs if t.event_id == ev.event_id
            ).flags
            == flags_of(config, ev, fen)
        )
        if back is not None:
            fast.observe(back, ev, ts, fen, "l2")
        wm = ts if wm is None else max(wm, ts)
        if (i + 1) % batch == 0 or i + 1 == len(stream):
            hits = fast.advance(a, wm - GRACE)
            assert hits == ref.advance(b, wm - GRACE)
            assert _state(a) == _state(b)
            log += a.changelog_records()  # deltas with only what changed
            _assert_restores(log, a)
            if back is not None:
                assert fast.advance(back, wm - GRACE) == hits
                back_log += back.changelog_records()
                _assert_restores(back_log, back)
            batches += 1
            if batches == restore_at:
                back = _restore(log)
                back_log = list(log)
    assert wm is not None
    # and everything to the end of time (every window closes)
    end = wm + 400 * 24 * HOUR_US
    hits = fast.advance(a, end)
    assert hits == ref.advance(b, end)
    assert _state(a) == _state(b)
    log += a.changelog_records()
    _assert_restores(log, a)
    if back is not None:
        assert fast.advance(back, end) == hits
        back_log += back.changelog_records()
        _assert_restores(back_log, back)


def _restore(log: list[tuple[bytes, bytes | None]]) -> RulesState:
    rs = RulesState()
    for key, value in log:
        rs.load(key.decode()[3:], None if value is None else orjson.loads(value))
    rs.settle()
    return rs


def _assert_restores(log: list[tuple[bytes, bytes | None]], live: RulesState) -> None:
    back = _restore(log)
    assert back.idle == live.idle
    assert back.upto <= live.upto
    assert {
        u: (e.txs, e.hours, e.cursors, e.decided, e.last_active)
        for u, e in back.enterprises.items()
    } == {
        u: (e.txs, e.hours, e.cursors, e.decided, e.last_active)
        for u, e in live.enterprises.items()
    }
    assert back.based == live.based
    assert back.packs == live.packs
    assert back.pack_seq <= live.pack_seq  # ahead of every pack and whole record read


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 12 * HOUR_US),
            st.integers(0, 30_000_000),
            st.integers(0, 31),
        ),
        max_size=40,
    ),
    cursor=st.integers(0, 14 * HOUR_US),
    upto=st.integers(1, 20 * HOUR_US),
    config=st.sampled_from([CONFIG, SMALL]),
)
def test_pass_through_in_one_pass_is_decide_then_next_due(
    rows: list[tuple[int, int, int]], cursor: int, upto: int, config: RuleSet
) -> None:
    rule = RuleEngine(config).rules[5]
    assert rule.rule.value == "pass_through"
    txs = sorted(
        Tx(ts, f"e{i}", fen, flags, "bank", "l1") for i, (ts, fen, flags) in enumerate(rows)
    )
    fast = Enterprise(txs=list(txs), cursors={"pass_through": cursor} if cursor else {})
    ref = Enterprise(txs=list(txs), cursors=dict(fast.cursors))
    hits, due = rule.decide_due(fast, upto)
    ref_hits = rule.decide(ref, upto)
    ref_due = rule.next_due(ref, upto) or NEVER
    assert (hits, due, fast.cursors) == (ref_hits, ref_due, ref.cursors)


def test_flags_inline_equal_flags_of_for_cash_and_large() -> None:
    engine = RuleEngine(CONFIG)
    rs = RulesState()
    for i, (amount, code) in enumerate(
        [("2000000.00", None), ("50000.00", "PMNT-CNTR-CDPT"), ("1999999.99", "NTRF")]
    ):
        ev = TransactionEvent(
            event_id=f"fl{i}", source="bank-a", institution_type="bank",
            occurred_at=START + timedelta(minutes=i), enterprise_uscc=ENTS[0],
            direction="credit", amount=Decimal(amount), currency="CNY",
            booking_date=START.date(), value_date=START.date(), bank_tx_code=code,
        )  # fmt: skip
        fen = int(ev.amount * 100)
        engine.observe(rs, ev, _us(ev.occurred_at), fen, "l1")
        assert rs.enterprises[ENTS[0]].txs[-1].flags == flags_of(CONFIG, ev, fen)
    flags = [tx.flags for tx in rs.enterprises[ENTS[0]].txs]
    assert flags[0] & LARGE
    assert not flags[0] & CASH
    assert flags[1] & CASH
    assert not flags[2] & (CASH | LARGE)


# ---- the changelog written before issue 18 ------------------------------------------------

FIXTURE = Path(__file__).with_name("data") / "al_changelog_v1.json"


def _fixture_events() -> list[TransactionEvent]:
    """The stream tests/unit/rules/data/al_changelog_v1.json was written from (by the engine
    at 3507e7f, whose deltas carry every field): the same generator."""
    rng = random.Random(18)
    ents = [make_uscc("330106", f"Q{i:07d}") for i in range(4)]
    amounts = [
        "46000.11", "48999.99", "2000000.00", "150000.00", "140000.00", "10000.00", "123.45",
        "260000.00",
    ]  # fmt: skip
    t = int(START.timestamp() * 1e6)
    out = []
    for i in range(400):
        t += rng.choice([1, 2, 5, 30, 60, 90, 600, 3600 * 9]) * 1_000_000
        at = datetime.fromtimestamp(t / 1e6, tz=UTC)
        out.append(
            TransactionEvent(
                event_id=f"v1-{i:04d}",
                source="bank-a",
                institution_type="bank",
                occurred_at=at,
                enterprise_uscc=ents[rng.randrange(len(ents))],
                direction=rng.choice(["credit", "debit"]),
                amount=Decimal(rng.choice(amounts)),
                currency="CNY",
                booking_date=at.date(),
                value_date=at.date(),
                bank_tx_code=rng.choice([None, "PMNT-RCDT-DMCT", "PMNT-CNTR-CDPT"]),
            )
        )
    return out


def _drive(
    engine: RuleEngine, rs: RulesState, events: list[TransactionEvent], first: int
) -> tuple[list[Any], list[tuple[bytes, bytes | None]]]:
    hits: list[Any] = []
    log: list[tuple[bytes, bytes | None]] = []
    wm = max((_us(e.occurred_at) for e in events[:first]), default=None)
    for i, ev in enumerate(events[first:], start=first):
        ts = _us(ev.occurred_at)
        engine.observe(rs, ev, ts, int(ev.amount * 100), "l1")
        wm = ts if wm is None else max(wm, ts)
        if i % 6 == 5:
            hits += [[u, h.rule.value, h.window_start] for u, h in engine.advance(rs, wm - GRACE)]
            log += rs.changelog_records()
    assert wm is not None
    hits += [[u, h.rule.value, h.window_start] for u, h in engine.advance(rs, wm - GRACE)]
    log += rs.changelog_records()
    return hits, log


def test_a_changelog_in_the_form_before_issue_18_restores_the_same_state_and_hits() -> None:
    doc = json.loads(FIXTURE.read_text(encoding="utf-8"))
    old_log = [(k.encode(), v.encode() if v is not None else None) for k, v in doc["records"]]
    assert any(k.count(b":") == 2 and b'"hl"' in (v or b"") for k, v in old_log)  # old deltas
    events = _fixture_events()
    half = len(events) // 2
    # the live engine of today over the first half: the same hits as the old one wrote
    live = RulesState()
    engine = RuleEngine(CONFIG)
    hits, _ = _drive(engine, live, events[:half], 0)
    assert hits == doc["hits"]
    for by_key in (False, True):
        rs = RulesState()
        for key, value in sorted(dict(old_log).items()) if by_key else old_log:
            rs.load(key.decode()[3:], None if value is None else orjson.loads(value))
        rs.settle()
        assert set(rs.enterprises) == set(live.enterprises)
        assert rs.idle == live.idle
        assert rs.upto == live.upto
        for uscc, ent in live.enterprises.items():
            got = rs.enterprises[uscc]
            assert (got.txs, got.hours, got.cursors, got.decided, got.last_active) == (
                ent.txs,
                ent.hours,
                ent.cursors,
                ent.decided,
                ent.last_active,
            )
        # carrying on from the restored state (writing the new form) gives the hits of a run
        # without the restore, and the new records restore too
        on, log2 = _drive(RuleEngine(CONFIG), rs, events, half)
        ref_rs = RulesState()
        ref_hits, _ = _drive(RuleEngine(CONFIG), ref_rs, events, 0)
        assert hits + on == ref_hits
        back = RulesState()
        for key, value in old_log + log2:
            back.load(key.decode()[3:], None if value is None else orjson.loads(value))
        back.settle()
        for uscc, ent in rs.enterprises.items():
            got = back.enterprises[uscc]
            assert (got.txs, got.hours, got.cursors, got.decided, got.last_active) == (
                ent.txs,
                ent.hours,
                ent.cursors,
                ent.decided,
                ent.last_active,
            )
        assert back.idle == rs.idle


def test_no_rule_due_schedules_the_earlier_day_when_it_arrives_late() -> None:
    """Without daily rules a plain debit leaves every rule's due at NEVER: the enterprise is
    looked at by the day's end, so one arriving late from the day before moves it earlier
    even though no rule's due moved."""
    midnight = datetime(2025, 9, 1, 16, tzinfo=UTC)  # 00:00 in Beijing
    events = []
    for i, at in enumerate([midnight + timedelta(minutes=2), midnight - timedelta(minutes=3)]):
        events.append(
            TransactionEvent(
                event_id=f"nd{i}",
                source="bank-a",
                institution_type="bank",
                occurred_at=at,
                enterprise_uscc=ENTS[0],
                direction="debit",
                amount=Decimal("123.45"),
                currency="CNY",
                booking_date=at.date(),
                value_date=at.date(),
            )
        )
    fast, ref = RuleEngine(NO_DAILY), ReferenceEngine(NO_DAILY)
    a, b = RulesState(), RulesState()
    for ev in events:
        fast.observe(a, ev, _us(ev.occurred_at), 12345, "l1")
        ref.observe(b, ev, _us(ev.occurred_at), 12345, "l1")
        assert a.due == b.due
    assert a.due[ENTS[0]] == day_end(_us(events[1].occurred_at))
