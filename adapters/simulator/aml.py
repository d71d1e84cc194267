"""Planted large-value and suspicious patterns (and near misses that must not fire), and
the reference oracle of every rule hit (docs/aml-rules.md).

The oracle is written independently of the stream's rule engine (streams/rules/): it sees
the whole, time-sorted feed at once and decides each window in one pass, with no state,
pruning or arrival order. A hit exists when its window closed at or before `upto` (the
final watermark minus the grace period), as in the stream.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from schemas.alerts import AlertRule, RuleSet
from schemas.events import TransactionEvent
from schemas.ids import make_event_id
from schemas.txcodes import is_cash
from schemas.uscc import make_uscc

__all__ = ["ExpectedHit", "Plant", "expected_hits", "plant_feed"]

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


@dataclass(frozen=True, slots=True, order=True)
class ExpectedHit:
    window_start: int  # µs
    window_end: int
    rule: str
    uscc: str
    event_ids: tuple[str, ...]


def _us(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


class _Planter:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.events: list[TransactionEvent] = []
        self.plants: list[Plant] = []
        self._n = 0

    def enterprise(self, rule: AlertRule, near_miss: bool) -> str:
        self._n += 1
        uscc = make_uscc("330106", f"A{self.seed % 1000:03d}{self._n:04d}")
        self.plants.append(Plant(uscc, rule, near_miss))
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
    near miss of each; the last event is a clock tick two days after the others so that
    every planted window closes. Returns (events, plants, tick time)."""
    p = _Planter(seed)
    h = timedelta(hours=1)
    # `start` is 00:00 UTC = 08:00 Beijing; day 1 of the plants
    E = AlertRule
    u = p.enterprise(E.large_value, False)
    p.tx(u, start + 2 * h, "2000000.00", "debit")
    u = p.enterprise(E.large_value, True)
    p.tx(u, start + 2 * h, "1999999.99", "debit")

    u = p.enterprise(E.large_value_daily, False)
    for i, amount in enumerate(("800123.45", "700234.56", "600345.67")):
        p.tx(u, start + (1 + 3 * i) * h, amount)
    u = p.enterprise(E.large_value_daily, True)  # crosses over one UTC day, two Beijing days
    p.tx(u, start + 15 * h, "1200111.11")  # 23:00 Beijing
    p.tx(u, start + 17 * h, "1000222.22")  # 01:00 Beijing, the next day

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

    tick_at = start + timedelta(days=4)
    p.tx(p.enterprise(E.large_value, True), tick_at, "1.00")
    p.plants.pop()  # the clock tick is no plant
    p.events.sort(key=lambda e: (e.occurred_at, e.event_id))
    return p.events, p.plants, tick_at


def _cny_fen(ev: TransactionEvent) -> int:
    if ev.currency != "CNY":
        raise ValueError("the reference oracle converts CNY only; pass fen_of")
    return int(ev.amount * 100)


def _day(ts: int) -> int:
    return (ts + _BJ) // _D * _D - _BJ


def expected_hits(
    events: Iterable[TransactionEvent],
    config: RuleSet,
    upto: int,
    fen_of: Callable[[TransactionEvent], int] = _cny_fen,
) -> list[ExpectedHit]:
    """Every hit of `config` over `events` whose window closed by `upto` (µs)."""
    by_ent: dict[str, list[tuple[int, str, int, TransactionEvent]]] = defaultdict(list)
    for ev in events:
        by_ent[ev.enterprise_uscc].append((_us(ev.occurred_at), ev.event_id, fen_of(ev), ev))
    out: list[ExpectedHit] = []

    def hit(
        rule: AlertRule,
        uscc: str,
        txs: Iterable[tuple[int, str, int, TransactionEvent]],
        s: int,
        e: int,
    ) -> None:
        if e <= upto and config.enabled(rule):
            out.append(ExpectedHit(s, e, rule.value, uscc, tuple(t[1] for t in txs)))

    lv, cash_cfg = config.large_value, config.cash
    for uscc, txs in by_ent.items():
        txs.sort(key=lambda t: (t[0], t[1]))

        def usd_cents(ev: TransactionEvent) -> int:
            return int(ev.amount * 100) if ev.currency == "USD" else 0

        def large(t: tuple[int, str, int, TransactionEvent]) -> bool:
            return t[2] >= lv.cny_fen or usd_cents(t[3]) >= lv.usd_cents

        # large value, one by one; dormant reactivation
        for i, t in enumerate(txs):
            if large(t) and not is_cash(t[3].bank_tx_code):
                hit(AlertRule.large_value, uscc, [t], t[0], t[0] + 1)
            if i and t[0] - txs[i - 1][0] >= config.dormant.days * _D:
                hit(AlertRule.dormant_reactivation, uscc, [t], txs[i - 1][0], t[0] + 1)
        # Beijing days
        days: dict[int, list[tuple[int, str, int, TransactionEvent]]] = defaultdict(list)
        for t in txs:
            days[_day(t[0])].append(t)
        for d, day in sorted(days.items()):
            transfers = [t for t in day if not is_cash(t[3].bank_tx_code)]
            cash = [t for t in day if is_cash(t[3].bank_tx_code)]
            credit = sum(t[2] for t in transfers if t[3].direction == "credit")
            debit = sum(t[2] for t in transfers if t[3].direction != "credit")
            if not any(large(t) for t in transfers) and max(credit, debit) >= lv.cny_fen:
                hit(AlertRule.large_value_daily, uscc, transfers, d, d + _D)
            if cash and (
                sum(t[2] for t in cash) >= cash_cfg.cny_fen
                or any(
                    t[2] >= cash_cfg.cny_fen or usd_cents(t[3]) >= cash_cfg.usd_cents for t in cash
                )
            ):
                hit(AlertRule.cash, uscc, cash, d, d + _D)
            unit = config.round_amounts.unit
            rounds = [t for t in day if t[3].amount > 0 and t[3].amount % unit == 0]
            if len(rounds) >= config.round_amounts.min_count:
                hit(AlertRule.round_amounts, uscc, rounds, d, d + _D)
        # hours
        hours: dict[int, list[tuple[int, str, int, TransactionEvent]]] = defaultdict(list)
        for t in txs:
            hours[t[0] // _H].append(t)
        vc = config.velocity
        for hr, inside in sorted(hours.items()):
            base = sum(len(hours.get(k, ())) for k in range(hr - vc.baseline_hours, hr))
            if len(inside) >= vc.min_count and len(inside) * vc.baseline_hours > vc.factor * base:
                hit(AlertRule.velocity, uscc, inside, hr * _H, (hr + 1) * _H)
        # structuring: windows anchored at the first unused near-threshold transaction
        sc = config.structuring
        near = [
            t
            for t in txs
            if sc.threshold_fen * sc.band_low_pct
            <= t[2] * 100
            < sc.threshold_fen * sc.band_high_pct
        ]
        cursor = 0
        for a in near:
            if a[0] < cursor:
                continue
            end = a[0] + sc.window_hours * _H
            inside = [t for t in near if a[0] <= t[0] < end]
            if len(inside) >= sc.min_count and sum(t[2] for t in inside) >= sc.threshold_fen:
                hit(AlertRule.structuring, uscc, inside, a[0], end)
                cursor = end
            else:
                cursor = a[0] + 1
        # pass-through: windows anchored at the first unused credit
        pc = config.pass_through
        cursor = 0
        for a in txs:
            if a[0] < cursor or a[3].direction != "credit":
                continue
            end = a[0] + pc.window_hours * _H
            inside = [t for t in txs if a[0] <= t[0] < end]
            c = sum(t[2] for t in inside if t[3].direction == "credit")
            d_ = sum(t[2] for t in inside if t[3].direction != "credit")
            if c >= pc.min_credit_fen and abs(d_ - c) * 100 <= pc.tolerance_pct * c:
                hit(AlertRule.pass_through, uscc, inside, a[0], end)
                cursor = end
            else:
                cursor = a[0] + 1
    return sorted(out)
