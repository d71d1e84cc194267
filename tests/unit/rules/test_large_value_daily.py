"""`large_value_daily` counted per direction (PBOC Order [2016] No. 3: 单边累计): credits and
debits of a Beijing day each on their own, each vetoed only by a `large_value` transfer of its
own direction; and the rule state written by the engine before (both directions at once)
restores mid-day and is decided the new way."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson

from adapters.simulator.aml import _us, expected_hits, rule_input
from schemas.alerts import AlertRule, load_ruleset
from schemas.events import TransactionEvent
from schemas.uscc import make_uscc
from streams.rules import RuleEngine, RulesState, build_alert
from streams.rules.base import CASH, CREDIT, DAY_US, Hit

GRACE = 600 * 1_000_000
CONFIG = load_ruleset()
START = datetime(2025, 9, 1, tzinfo=UTC)  # 08:00 Beijing: its day started 8 h before
DAY = _us(START) - 8 * 3_600_000_000
U = make_uscc("330106", "L0000001")
TRANSFER, CASH_IN = "PMNT-RCDT-DMCT", "PMNT-CNTR-CDPT"
USD_RATE = Decimal("7.1")

# (hours after START, amount, direction[, code[, currency]])
Row = tuple[float, str, str] | tuple[float, str, str, str] | tuple[float, str, str, str, str]


def _events(rows: list[Row]) -> list[TransactionEvent]:
    out = []
    for i, row in enumerate(rows):
        hours, amount, direction = row[:3]
        code = row[3] if len(row) > 3 else TRANSFER
        currency = row[4] if len(row) > 4 else "CNY"
        at = START + timedelta(hours=hours)
        ev = TransactionEvent(
            event_id=f"lv{i:02d}", source="bank-a", institution_type="bank", occurred_at=at,
            enterprise_uscc=U, direction=direction, amount=Decimal(amount), currency=currency,
            booking_date=at.date(), value_date=at.date(), bank_tx_code=code,
        )  # fmt: skip
        out.append(ev)
    return out


def _fen(ev: TransactionEvent) -> int:
    return int(ev.amount * (USD_RATE if ev.currency == "USD" else 1) * 100)


def _hits(rows: list[Row]) -> list[Hit]:
    """Every hit of the rows' day (closed by a transaction the next day), checked against the
    reference oracle."""
    events = _events([*rows, (41, "1.00", "credit")])
    engine, rs = RuleEngine(CONFIG), RulesState()
    found: list[Hit] = []
    for ev in events:
        ts = _us(ev.occurred_at)
        engine.observe(rs, ev, ts, _fen(ev), "l1")
        found += [h for _, h in engine.advance(rs, ts - GRACE)]
    upto = _us(events[-1].occurred_at) - GRACE
    want = expected_hits([rule_input(e, _fen(e), "l1") for e in events], CONFIG, upto)
    assert sorted((h.rule.value, tuple(t.event_id for t in h.txs)) for h in found) == sorted(
        (h.rule, h.event_ids) for h in want
    )
    ids = {h.alert_id for h in want}
    assert {build_alert(CONFIG, U, h, START).event_id for h in found} == ids
    assert len(ids) == len(want)
    return found


def _daily(hits: list[Hit]) -> list[tuple[str, ...]]:
    """The large_value_daily hits' events, in the order the engine gives them."""
    out = []
    for h in hits:
        if h.rule is AlertRule.large_value_daily:
            assert (h.window_start, h.window_end) == (DAY, DAY + DAY_US)
            out.append(tuple(t.event_id for t in h.txs))
    return out


def test_both_directions_of_one_day_are_two_hits_with_their_own_transfers() -> None:
    hits = _hits(
        [
            (1, "1200000.11", "credit"),
            (2, "1500000.22", "debit"),
            (9, "900000.33", "credit"),
            (10, "600000.44", "debit"),
            (11, "1.00", "debit", CASH_IN),  # cash: in neither
        ]
    )
    assert _daily(hits) == [("lv00", "lv02"), ("lv01", "lv03")]  # credits first
    credits, debits = (h for h in hits if h.rule is AlertRule.large_value_daily)
    assert all(t.flags & CREDIT for t in credits.txs)
    assert not any(t.flags & (CREDIT | CASH) for t in debits.txs)
    alerts = [build_alert(CONFIG, U, h, START) for h in (credits, debits)]
    assert alerts[0].event_id != alerts[1].event_id
    assert [a.total_fen for a in alerts] == [210_000_044, 210_000_066]


def test_a_large_value_vetoes_only_its_own_direction() -> None:
    hits = _hits(
        [
            (1, "2000000.00", "debit"),  # a large_value by itself: debits are not cumulated
            (2, "150000.00", "debit"),
            (3, "1000000.01", "credit"),
            (4, "999999.99", "credit"),
        ]
    )
    assert sorted(h.rule.value for h in hits) == ["large_value", "large_value_daily"]
    assert _daily(hits) == [("lv02", "lv03")]
    # the same with the large one a credit: the debits' day is their own
    hits = _hits(
        [
            (1, "2500000.00", "credit"),
            (2, "1999999.99", "debit"),
            (3, "0.01", "debit"),
            (4, "900000.00", "credit"),
        ]
    )
    assert _daily(hits) == [("lv01", "lv02")]


def test_a_usd_large_value_below_cny_2m_vetoes_its_direction() -> None:
    # USD 200,000 is a large_value (CNY 1,420,000 here); the credits add up to CNY 2,020,000
    hits = _hits([(1, "200000", "credit", TRANSFER, "USD"), (2, "600000", "credit")])
    assert [h.rule.value for h in hits] == ["large_value"]
    hits = _hits([(1, "199999.99", "credit", TRANSFER, "USD"), (2, "600000", "credit")])
    assert _daily(hits) == [("lv00", "lv01")]


def test_exactly_cny_2m_fires_and_one_fen_less_does_not() -> None:
    assert _daily(_hits([(1, "1000000.00", "debit"), (5, "1000000.00", "debit")])) == [
        ("lv00", "lv01")
    ]
    assert _daily(_hits([(1, "1000000.00", "debit"), (5, "999999.99", "debit")])) == []


def test_the_directions_are_never_summed_together() -> None:
    assert _daily(_hits([(1, "1500000.00", "credit"), (9, "1400000.00", "debit")])) == []


def test_cash_neither_counts_nor_vetoes() -> None:
    # a cash deposit of CNY 3,000,000 is no large_value and adds nothing to the credits
    rows: list[Row] = [(1, "3000000.00", "credit", CASH_IN), (2, "1999999.99", "credit")]
    hits = _hits(rows)
    assert _daily(hits) == []
    assert [h.rule.value for h in hits] == ["cash"]
    hits = _hits([*rows, (3, "0.01", "credit")])
    assert _daily(hits) == [("lv01", "lv02")]


# ---- the state written before (one hit a day over both directions) ------------------------

FIXTURE = Path(__file__).with_name("data") / "al_changelog_lv_daily_both.json"


def _upgrade_events() -> list[TransactionEvent]:
    """The stream tests/unit/rules/data/al_changelog_lv_daily_both.json was written from (its
    first four events, by the engine at 54547a3): x has both directions of the day reach CNY
    2,000,000; y a large_value debit and credits of exactly CNY 2,000,000."""
    x, y = make_uscc("330106", "U0000001"), make_uscc("330106", "U0000002")
    rows = [
        (x, 1, "1200000.11", "credit"), (y, 1.5, "2100000.55", "debit"),
        (x, 2, "1500000.22", "debit"), (y, 3, "1000000.01", "credit"),
        # the worker is upgraded here
        (x, 9, "900000.33", "credit"), (x, 10, "600000.44", "debit"),
        (y, 11, "999999.99", "credit"), (x, 41, "1.00", "credit"),
    ]  # fmt: skip
    out = []
    for i, (uscc, hours, amount, direction) in enumerate(rows):
        at = START + timedelta(hours=hours)
        ev = TransactionEvent(
            event_id=f"up-{i}", source="bank-a", institution_type="bank", occurred_at=at,
            enterprise_uscc=uscc, direction=direction, amount=Decimal(amount), currency="CNY",
            booking_date=at.date(), value_date=at.date(), bank_tx_code=TRANSFER,
        )  # fmt: skip
        out.append(ev)
    return out


def _drive(
    engine: RuleEngine, rs: RulesState, events: list[TransactionEvent]
) -> list[list[object]]:
    hits: list[list[object]] = []
    for ev in events:
        ts = _us(ev.occurred_at)
        engine.observe(rs, ev, ts, int(ev.amount * 100), "l1")
        hits += [
            [u, h.rule.value, h.window_start, [t.event_id for t in h.txs]]
            for u, h in engine.advance(rs, ts - GRACE)
        ]
        rs.changelog_records()
    return hits


def test_state_written_before_restores_mid_day_and_is_decided_per_direction() -> None:
    doc = json.loads(FIXTURE.read_text(encoding="utf-8"))
    events = _upgrade_events()
    x, y = events[0].enterprise_uscc, events[1].enterprise_uscc
    # the engine before: x one hit with the day's four transfers, y only its large_value
    assert [(h[0], h[1], h[3]) for h in doc["old_hits"]] == [
        (y, "large_value", ["up-1"]),
        (x, "large_value_daily", ["up-0", "up-2", "up-4", "up-5"]),
    ]
    for by_key in (False, True):
        records = [(k, v) for k, v in doc["records"]]
        rs = RulesState()
        for key, value in sorted(dict(records).items()) if by_key else records:
            rs.load(key[3:], None if value is None else orjson.loads(value))
        rs.settle()
        assert [t.event_id for t in rs.enterprises[x].txs] == ["up-0", "up-2"]
        after = _drive(RuleEngine(CONFIG), rs, events[4:])
        # y's large_value was decided (and written) before the upgrade
        assert [(h[0], h[1], h[3]) for h in after] == [
            (x, "large_value_daily", ["up-0", "up-4"]),
            (x, "large_value_daily", ["up-2", "up-5"]),
            (y, "large_value_daily", ["up-3", "up-6"]),
        ]
        # as a worker that never stopped
        whole = _drive(RuleEngine(CONFIG), RulesState(), events)
        assert [h for h in whole if h[1] == "large_value_daily"] == after
