"""Planted large-value and suspicious patterns (and near misses that must not fire), and
the reference oracle of every rule hit (docs/aml-rules.md).

The oracle is written independently of the stream's rule engine (streams/rules/): it sees
the whole, time-sorted feed at once and decides each window in one pass, with no state,
pruning or arrival order. A hit exists when its window closed at or before `upto` (the
final watermark minus the grace period), as in the stream.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from schemas.alerts import AlertRule, RuleSet
from schemas.catalog import USCC_PARTITIONS, partition_for
from schemas.events import TransactionEvent
from schemas.ids import make_event_id
from schemas.txcodes import is_cash
from schemas.uscc import make_uscc
from schemas.workdays import add_working_days

__all__ = ["ExpectedHit", "Plant", "RTx", "expected_hits", "plant_feed", "rule_input"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_H = 3_600 * 1_000_000
_D = 24 * _H
_BJ = 8 * _H
_INSTITUTION = "icbc-zj"


@dataclass(frozen=True, slots=True)
class Plant:
    uscc: str
    rule: AlertRule
    near_miss: bool
    # the rules of the hits it must get, one entry per hit, sorted (none for a near miss)
    hits: tuple[AlertRule, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class ExpectedHit:
    window_start: int  # µs
    window_end: int
    rule: str
    uscc: str
    event_ids: tuple[str, ...]
    total_fen: int
    institution_type: str  # of the first event
    band: str
    # the 5th China working day after the Beijing date of the last event
    report_due: date = date.min
    # large_value_daily: the direction it totals ("credit" or "debit"); else ""
    direction: str = ""

    @property
    def alert_id(self) -> str:
        """The id the stream gives this hit on dfip.alerts (a large_value_daily one also
        names its direction: a day can have one of each)."""
        parts = ["alert", self.rule, self.uscc, str(self.window_start), self.event_ids[0]]
        if self.direction:
            parts.append(self.direction)
        return make_event_id(*parts)


def _us(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


class _Planter:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.events: list[TransactionEvent] = []
        self.plants: list[Plant] = []
        self._n = 0

    def enterprise(
        self, rule: AlertRule, near_miss: bool, hits: tuple[AlertRule, ...] | None = None
    ) -> str:
        """A new planted enterprise; `hits` defaults to one hit of `rule` (none if a near
        miss)."""
        self._n += 1
        uscc = make_uscc("330106", f"A{self.seed % 1000:03d}{self._n:04d}")
        if hits is None:
            hits = () if near_miss else (rule,)
        self.plants.append(Plant(uscc, rule, near_miss, tuple(sorted(hits))))
        return uscc

    def tx(
        self,
        uscc: str,
        at: datetime,
        amount: str,
        direction: str = "credit",
        code: str = "PMNT-RCDT-DMCT",
    ) -> None:
        seq = len(self.events)
        self.events.append(
            TransactionEvent(
                event_id=make_event_id(_INSTITUTION, f"aml{self.seed}", f"tx{seq}"),
                source=_INSTITUTION,
                institution_type="bank",
                occurred_at=at,
                enterprise_uscc=uscc,
                direction=direction,
                amount=Decimal(amount),
                currency="CNY",
                booking_date=(at + timedelta(hours=8)).date(),
                value_date=(at + timedelta(hours=8)).date(),
                bank_tx_code=code,
                counterparty_country="CN",
            )
        )


def plant_feed(
    start: datetime = datetime(2025, 9, 1, tzinfo=UTC), seed: int = 1
) -> tuple[list[TransactionEvent], list[Plant], datetime]:
    """Events (sorted by time) planting each pattern of the default rule set once, and a
    near miss of each; the last events are a clock tick on every partition, days after the
    others, so that every planted window closes. Returns (events, plants, tick time)."""
    p = _Planter(seed)
    h = timedelta(hours=1)
    # `start` is 00:00 UTC = 08:00 Beijing; day 1 of the plants
    E = AlertRule
    u = p.enterprise(E.large_value, False)
    p.tx(u, start + 2 * h, "2000000.00", "debit")
    u = p.enterprise(E.large_value, True)
    p.tx(u, start + 2 * h, "1999999.99", "debit")

    # each direction of a Beijing day on its own (Beijing day 2 starts at start + 16 h, day
    # 3 at start + 40 h); debits kept more than 6 h from credits, or 10 % off (pass-through)
    daily, single = E.large_value_daily, E.large_value
    u = p.enterprise(daily, False, (daily,) * 4 + (single,))
    for i, amount in enumerate(("800123.45", "700234.56", "600345.67")):  # day 1: credits
        p.tx(u, start + (1 + 3 * i) * h, amount)
    p.tx(u, start + 17 * h, "1100123.45")  # day 2: credits and debits, one hit each
    p.tx(u, start + 18 * h, "1000234.56")
    p.tx(u, start + 30 * h, "1300345.67", "debit")
    p.tx(u, start + 31 * h, "900456.78", "debit")
    p.tx(u, start + 42 * h, "2345678.90", "debit")  # day 3: a large_value debit, and
    p.tx(u, start + 44 * h, "999999.99")  # credits of exactly CNY 2,000,000: their own hit
    p.tx(u, start + 46 * h, "1000000.01")
    u = p.enterprise(daily, True)  # crosses over one UTC day, two Beijing days
    p.tx(u, start + 15 * h, "1200111.11")  # 23:00 Beijing
    p.tx(u, start + 17 * h, "1000222.22")  # 01:00 Beijing, the next day
    p.tx(u, start + 41 * h, "1500000.33")  # day 3: the two directions together reach it,
    p.tx(u, start + 50 * h, "1400000.44", "debit")  # neither alone

    cash_in = "PMNT-CNTR-CDPT"
    u = p.enterprise(E.cash, False)
    p.tx(u, start + 1 * h, "30000.50", code=cash_in)
    p.tx(u, start + 5 * h, "25000.25", "debit", code="PMNT-CCRD-CWDL")
    u = p.enterprise(E.cash, True)
    p.tx(u, start + 1 * h, "49999.99", code=cash_in)
    p.tx(u, start + 2 * h, "60000.01")  # not cash

    u = p.enterprise(E.structuring, False)
    for i, amount in enumerate(("46000.11", "47500.22", "48900.33")):
        p.tx(u, start + (2 + 9 * i) * h, amount)
    u = p.enterprise(E.structuring, True)  # the same three, 30 h from first to last
    for i, amount in enumerate(("46000.11", "47500.22", "48900.33")):
        p.tx(u, start + (2 + 15 * i) * h, amount)

    u = p.enterprise(E.velocity, False)
    v = p.enterprise(E.velocity, True)
    for hour in range(24):  # a quiet baseline: one an hour
        p.tx(u, start + hour * h + timedelta(minutes=5), f"{120 + hour}.{hour:02d}")
        p.tx(v, start + hour * h + timedelta(minutes=5), f"{130 + hour}.{hour:02d}")
    burst = start + 30 * h
    for i in range(25):
        p.tx(u, burst + timedelta(minutes=2 * i), f"{300 + i}.17", "debit")
    for i in range(19):  # one short of the minimum count
        p.tx(v, burst + timedelta(minutes=3 * i), f"{300 + i}.19", "debit")

    u = p.enterprise(E.pass_through, False)
    p.tx(u, start + 3 * h, "512345.67")
    p.tx(u, start + 5 * h, "300000.12", "debit")
    p.tx(u, start + 6 * h, "210000.34", "debit")
    u = p.enterprise(E.pass_through, True)  # only 78 % goes on
    p.tx(u, start + 3 * h, "512345.67")
    p.tx(u, start + 5 * h, "400001.23", "debit")

    u = p.enterprise(E.round_amounts, False)
    for i, amount in enumerate(("10000.00", "20000.00", "30000.00")):
        p.tx(u, start + (1 + i) * h, amount, "debit")
    u = p.enterprise(E.round_amounts, True)
    for i, amount in enumerate(("10000.00", "20000.00", "30000.01")):
        p.tx(u, start + (1 + i) * h, amount, "debit")

    u = p.enterprise(E.dormant_reactivation, False)
    p.tx(u, start - timedelta(days=181), "888.88")
    p.tx(u, start + 4 * h, "999.99")
    u = p.enterprise(E.dormant_reactivation, True)
    p.tx(u, start - timedelta(days=179), "777.77")
    p.tx(u, start + 4 * h, "666.66")

    # the clock tick: one event on every partition (rules decide per partition)
    tick_at = start + timedelta(days=4)
    ticked: set[int] = set()
    n = 0
    while len(ticked) < USCC_PARTITIONS:
        n += 1
        uscc = make_uscc("330106", f"T{seed % 1000:03d}{n:04d}")
        if partition_for(uscc) not in ticked:
            ticked.add(partition_for(uscc))
            p.tx(uscc, tick_at, "1.00")
    p.events.sort(key=lambda e: (e.occurred_at, e.event_id))
    return p.events, p.plants, tick_at


class RTx(NamedTuple):
    """A counted, on-time transaction as the reference oracle needs it."""

    ts: int  # µs
    event_id: str
    uscc: str
    fen: int
    credit: bool
    cash: bool
    amount: Decimal
    currency: str
    institution_type: str
    band: str


def rule_input(ev: TransactionEvent, fen: int | None = None, band: str = "unscored") -> RTx:
    """The oracle's view of one event (fen defaults to a CNY amount's)."""
    if fen is None:
        if ev.currency != "CNY":
            raise ValueError("pass the fen of a non-CNY transaction")
        fen = int(ev.amount * 100)
    return RTx(
        _us(ev.occurred_at),
        ev.event_id,
        ev.enterprise_uscc,
        fen,
        ev.direction == "credit",
        is_cash(ev.bank_tx_code),
        ev.amount,
        ev.currency,
        ev.institution_type.value,
        band,
    )


def _hour_end(ts: int) -> int:
    """One-event rules are decided once the event's hour is final (as in the stream)."""
    return (ts // _H + 1) * _H


def _beijing_date(ts: int) -> date:
    return (_EPOCH + timedelta(microseconds=ts + _BJ)).date()


def _day(ts: int) -> int:
    return (ts + _BJ) // _D * _D - _BJ


def expected_hits(txs: Iterable[RTx], config: RuleSet, upto: int) -> list[ExpectedHit]:
    """Every hit of `config` over `txs` whose window closed by `upto` (µs)."""
    by_ent: dict[str, list[RTx]] = defaultdict(list)
    for t in txs:
        by_ent[t.uscc].append(t)
    out: list[ExpectedHit] = []
    for uscc, mine in by_ent.items():
        mine.sort(key=lambda t: (t.ts, t.event_id))
        for rule, inside, start, end, decided_at in _hits(mine, config):
            if decided_at <= upto and config.enabled(rule):
                first = inside[0]
                side = ""
                if rule is AlertRule.large_value_daily:
                    side = "credit" if first.credit else "debit"
                out.append(
                    ExpectedHit(
                        start,
                        end,
                        rule.value,
                        uscc,
                        tuple(t.event_id for t in inside),
                        sum(t.fen for t in inside),
                        first.institution_type,
                        first.band,
                        add_working_days(_beijing_date(inside[-1].ts)),
                        side,
                    )
                )
    return sorted(out)


_Found = tuple[AlertRule, list[RTx], int, int, int]  # rule, events, window, decided at


def _usd_cents(t: RTx) -> int:
    return int(t.amount * 100) if t.currency == "USD" else 0


def _hits(txs: list[RTx], config: RuleSet) -> list[_Found]:
    out: list[_Found] = []
    lv, cc = config.large_value, config.cash

    def large(t: RTx) -> bool:
        return t.fen >= lv.cny_fen or _usd_cents(t) >= lv.usd_cents

    # large value one by one; dormant reactivation
    for i, t in enumerate(txs):
        if large(t) and not t.cash:
            out.append((AlertRule.large_value, [t], t.ts, t.ts + 1, _hour_end(t.ts)))
        if i and t.ts - txs[i - 1].ts >= config.dormant.days * _D:
            out.append(
                (AlertRule.dormant_reactivation, [t], txs[i - 1].ts, t.ts + 1, _hour_end(t.ts))
            )
    # Beijing days
    days: dict[int, list[RTx]] = defaultdict(list)
    for t in txs:
        days[_day(t.ts)].append(t)
    for d, day in sorted(days.items()):
        for credit in (True, False):  # each direction on its own (单边累计)
            side = [t for t in day if not t.cash and t.credit is credit]
            if sum(t.fen for t in side) >= lv.cny_fen and not any(large(t) for t in side):
                out.append((AlertRule.large_value_daily, side, d, d + _D, d + _D))
        cash = [t for t in day if t.cash]
        if sum(t.fen for t in cash) >= cc.cny_fen or any(
            _usd_cents(t) >= cc.usd_cents for t in cash
        ):
            out.append((AlertRule.cash, cash, d, d + _D, d + _D))
        unit = config.round_amounts.unit
        rounds = [t for t in day if t.amount > 0 and t.amount % unit == 0]
        if len(rounds) >= config.round_amounts.min_count:
            out.append((AlertRule.round_amounts, rounds, d, d + _D, d + _D))
    # hours against the hours before
    hours: dict[int, list[RTx]] = defaultdict(list)
    for t in txs:
        hours[t.ts // _H].append(t)
    vc = config.velocity
    for hr, inside in sorted(hours.items()):
        base = sum(len(hours.get(k, ())) for k in range(hr - vc.baseline_hours, hr))
        if len(inside) >= vc.min_count and len(inside) * vc.baseline_hours > vc.factor * base:
            out.append((AlertRule.velocity, inside, hr * _H, (hr + 1) * _H, (hr + 1) * _H))
    # structuring: windows anchored at the first unused near-threshold transaction
    sc = config.structuring
    low, high = sc.threshold_fen * sc.band_low_pct, sc.threshold_fen * sc.band_high_pct
    near = [t for t in txs if low <= t.fen * 100 < high]
    cursor = 0
    for a in near:
        if a.ts < cursor:
            continue
        end = a.ts + sc.window_hours * _H
        inside = [t for t in near if a.ts <= t.ts < end]
        if len(inside) >= sc.min_count and sum(t.fen for t in inside) >= sc.threshold_fen:
            out.append((AlertRule.structuring, inside, a.ts, end, end))
            cursor = end
        else:
            cursor = a.ts + 1
    # pass-through: windows anchored at the first unused credit
    pc = config.pass_through
    cursor = 0
    for a in txs:
        if a.ts < cursor or not a.credit:
            continue
        end = a.ts + pc.window_hours * _H
        inside = [t for t in txs if a.ts <= t.ts < end]
        c = sum(t.fen for t in inside if t.credit)
        dr = sum(t.fen for t in inside if not t.credit)
        if c >= pc.min_credit_fen and abs(dr - c) * 100 <= pc.tolerance_pct * c:
            out.append((AlertRule.pass_through, inside, a.ts, end, end))
            cursor = end
        else:
            cursor = a.ts + 1
    return out


# ---- patterns in the realistic feed (`dfip simulate`, adapters/simulator/feed.py) -------


class FeedTx(NamedTuple):
    """One transaction of a pattern planted in the realistic feed."""

    at_us: int
    amount: Decimal
    direction: str
    code: str


def feed_pattern(rng: random.Random, now_us: int) -> list[FeedTx]:
    """The transactions of one pattern, picked at random, for one enterprise from `now_us`
    on (the feed emits each at its first tick at or after its time). Patterns whose windows
    close within hours of event time, so a live demo shows hits: cash, structuring,
    velocity, round amounts and a per-day large-value total. Whether each fires is for the
    rules to say (the oracle decides independently); they are built to fire for an
    enterprise of ordinary activity."""
    m = 60 * 1_000_000
    kind = rng.randrange(5)
    if kind == 0:  # one cash withdrawal of CNY 50,000-80,000
        fen = rng.randrange(5_000_000, 8_000_000)
        return [FeedTx(now_us, Decimal(fen).scaleb(-2), "debit", "PMNT-CCRD-CWDL")]
    if kind == 1:  # structuring: three deposits just under CNY 50,000 within a few hours
        return [
            FeedTx(now_us + i * rng.randrange(20, 90) * m,
                   Decimal(rng.randrange(4_600_000, 4_999_900)).scaleb(-2), "credit",
                   "PMNT-RCDT-DMCT")
            for i in range(3)
        ]  # fmt: skip
    if kind == 2:  # velocity: 24 small payments within one clock hour (the next one)
        hour = (now_us // (60 * m) + 1) * 60 * m
        return [
            FeedTx(hour + (i * 2 + 1) * m, Decimal(rng.randrange(50_000, 500_000)).scaleb(-2),
                   "debit", "PMNT-ICDT-DMCT")
            for i in range(24)
        ]  # fmt: skip
    if kind == 3:  # round amounts: three whole multiples of CNY 10,000 within two hours
        return [
            FeedTx(now_us + i * 30 * m, Decimal(10_000 * rng.randrange(1, 10)), "debit",
                   "PMNT-ICDT-DMCT")
            for i in range(3)
        ]  # fmt: skip
    # a per-day large-value total: two transfers of CNY 1.1-1.5 million one hour apart
    return [
        FeedTx(now_us + i * 60 * m, Decimal(rng.randrange(110_000_000, 150_000_000)).scaleb(-2),
               "credit", "PMNT-RCDT-DMCT")
        for i in range(2)
    ]  # fmt: skip
