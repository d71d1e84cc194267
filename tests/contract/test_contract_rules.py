"""The rule hits (dfip_alerts_total, dfip_alert_amount_yuan_total and the dfip.alerts
records) against tests/contract/doc_rules_oracle.py, written from docs/aml-rules.md and
docs/metrics.md alone: inputs at and around every threshold, across Beijing day edges and the
anchored windows' ends, read in several orders (with kill -9 and restores), some records
landing on the wrong partition, some waiting for their FX rate. Compared exactly."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.contract_inputs import (
    BASE,
    ENTERPRISES,
    Written,
    assert_same_figures,
    fx_doc,
    ms,
    run,
    score_doc,
    shared_partition_pair,
    tx_doc,
)
from tests.contract.doc_oracle import FX, SCORES, TX, Oracle, home_of, us_of
from tests.contract.doc_rules_oracle import RulesOracle

PAIR = shared_partition_pair()
USCCS = [ENTERPRISES[0], ENTERPRISES[2], PAIR[0], PAIR[1]]
HOUR = timedelta(hours=1)
US = timedelta(microseconds=1)

# at and around every threshold of the default rule set (CNY unless a currency is given)
AMOUNTS = [
    "2000000.00", "1999999.99", "2000000.01", "1000000", "1000000.00", "600000",  # large
    "50000", "49999.99", "25000", "24999.99",  # cash
    "45000.00", "44999.99", "49999.99", "47000.50",  # structuring band [45,000, 50,000)
    "100000", "99999.99", "90000", "110000", "110000.01", "89999.99",  # pass-through
    "10000", "20000.00", "0", "10000.5", "10000.004", "9999.995", "1.00", "123.45",  # round
]  # fmt: skip
USD_AMOUNTS = ["200000", "199999.99", "281690.15", "10000", "9999.99", "6338.03", "10000.00"]
CODES = [
    None, None, None, "PMNT-RCDT-XBCT", "PMNT-CNTR-CDPT", "PMNT-CNTR-CWDL", "PMNT/CNTR/CDPT",
    "NCSH", "CASH", "现金", "CAMT-CASH-OTHR", "cash", " ncsh ", "pmnt-cntr-cdpt", "PMNT-CCRD-CWDL",
    "PMNT-CCRD-POSD", "PMNT-CASH", "NTRF",
]  # fmt: skip
# offsets from Beijing midnight (BASE): the day edge, hour edges, 6 h and 24 h window ends
OFFSETS = [
    -HOUR - US, -US, timedelta(0), US, timedelta(minutes=5), HOUR - US, HOUR,
    6 * HOUR - US, 6 * HOUR, 6 * HOUR + US, timedelta(hours=8), 24 * HOUR - US, 24 * HOUR,
    24 * HOUR + US, timedelta(hours=30), -timedelta(hours=7),
]  # fmt: skip


@st.composite
def rule_feed(draw: st.DrawFn) -> list[Written]:
    out: list[Written] = []
    n = 0

    def tx(uscc: str, at: Any, amount: str, currency: str, **kw: Any) -> None:
        nonlocal n
        n += 1
        home = home_of(uscc)
        p = (home + 1) % 12 if misplaced(uscc) else home  # some land on the wrong one
        ts = ms(at + timedelta(seconds=30))
        out.append(Written(TX, p, tx_doc(f"r{n}", uscc, at, amount, currency, **kw), ts))

    def misplaced(uscc: str) -> bool:
        return draw(st.integers(0, 19)) == 0

    if draw(st.integers(0, 2)) == 0:  # dormancy: 180 days before, to the microsecond (first)
        uscc = draw(st.sampled_from(USCCS))
        gap = draw(st.sampled_from([timedelta(days=180), timedelta(days=180) - US]))
        tx(uscc, BASE + timedelta(minutes=5) - gap, "1.00", "CNY")
        tx(uscc, BASE + timedelta(minutes=5), "2.00", "CNY")
    if draw(st.integers(0, 2)) == 0:  # a burst: velocity (the baseline: an hour before)
        uscc = draw(st.sampled_from(USCCS))
        hour = BASE + draw(st.sampled_from([-HOUR, timedelta(0), 5 * HOUR]))
        for _ in range(draw(st.sampled_from([0, 0, 1, 4, 5]))):
            tx(uscc, hour - timedelta(minutes=30), "3.00", "CNY")
        for i in range(draw(st.sampled_from([19, 20, 21]))):
            tx(uscc, hour + timedelta(minutes=2 * i + 1), "1.00", "CNY")
    for _ in range(draw(st.integers(0, 2))):  # structuring: near 50,000 around 24 h
        uscc = draw(st.sampled_from(USCCS))
        t0 = BASE + draw(st.sampled_from([-HOUR, timedelta(0), timedelta(hours=3)]))
        for _ in range(draw(st.integers(2, 5))):
            at = t0 + draw(st.sampled_from([timedelta(0), HOUR, 24 * HOUR - US, 24 * HOUR]))
            amount = draw(st.sampled_from(["45000.00", "44999.99", "49999.99", "50000", "47000"]))
            tx(uscc, at, amount, "CNY", direction=draw(st.sampled_from(["credit", "debit"])))
    for _ in range(draw(st.integers(0, 2))):  # pass-through: a credit and debits around 6 h
        uscc = draw(st.sampled_from(USCCS))
        t0 = BASE + draw(st.sampled_from([-HOUR, timedelta(0), timedelta(hours=20)]))
        tx(uscc, t0, draw(st.sampled_from(["100000", "99999.99", "150000", "60000"])), "CNY")
        for _ in range(draw(st.integers(1, 2))):
            at = t0 + draw(st.sampled_from([timedelta(0), HOUR, 6 * HOUR - US, 6 * HOUR]))
            amount = draw(st.sampled_from(["90000", "110000", "89999.99", "110000.01", "100000"]))
            tx(uscc, at, amount, "CNY", direction=draw(st.sampled_from(["debit", "credit"])))
    for _ in range(draw(st.integers(0, 1))):  # large-value cumulative: two halves on one day
        uscc = draw(st.sampled_from(USCCS))
        t0 = BASE + draw(st.sampled_from([-HOUR, timedelta(hours=3)]))
        for half in ("1000000", draw(st.sampled_from(["1000000", "999999.99", "2000000"]))):
            at = t0 + draw(st.sampled_from([timedelta(0), 20 * HOUR, 21 * HOUR]))
            tx(uscc, at, half, "CNY", direction=draw(st.sampled_from(["credit", "debit"])))
    for _ in range(draw(st.integers(1, 14))):
        uscc = draw(st.sampled_from(USCCS))
        currency = draw(st.sampled_from(["CNY"] * 6 + ["USD", "JPY"]))
        pool = USD_AMOUNTS if currency == "USD" else AMOUNTS
        if currency == "JPY":
            pool = ["42000000", "41841004.19", "1000000", "10000", "0"]
        at = BASE + draw(st.sampled_from(OFFSETS))
        for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):  # repeated at one instant
            tx(
                uscc, at, draw(st.sampled_from(pool)), currency,
                it=draw(st.sampled_from(["bank", "fintech", "joint"])),
                direction=draw(st.sampled_from(["credit", "debit"])),
                code=draw(st.sampled_from(CODES)),
            )  # fmt: skip
    for _ in range(draw(st.integers(0, 2))):  # exact re-sends: duplicates, never seen twice
        if out:
            out.append(draw(st.sampled_from(out)))
    for uscc in USCCS:  # assessments: the band a hit's first event carries
        if draw(st.booleans()):
            at = BASE + draw(st.sampled_from([-timedelta(days=1), timedelta(hours=2)]))
            doc = score_doc(f"s-{uscc}-{at:%H}", uscc, at, draw(st.sampled_from(["15", "65"])), "C")
            out.append(Written(SCORES, home_of(uscc), doc, ms(at)))
    for cur, rate in (("USD", "7.1"), ("JPY", "0.0478")):
        if draw(st.integers(0, 4)):  # else USD / JPY wait for a rate that never comes
            day = (BASE - timedelta(days=1)).date()
            out.append(Written(FX, 0, fx_doc(f"fx-{cur}", cur, day, rate, BASE - HOUR * 20), None))
    if draw(st.booleans()):  # a correction read at some point: restates counted amounts
        day = (BASE - timedelta(days=1)).date()
        out.append(Written(FX, 0, fx_doc("fx-c", "USD", day, "7.0422", BASE - HOUR * 19), None))
    # last on every home partition: traffic two days on closes every window
    for uscc in USCCS:
        if draw(st.integers(0, 5)):
            at = BASE + timedelta(days=2, hours=draw(st.sampled_from([0, 7])))
            n += 1
            doc = tx_doc(f"close{n}", uscc, at, "1.00", "CNY")
            out.append(Written(TX, home_of(uscc), doc, ms(at)))
    return out


RECORD_FIELDS = (
    "rule", "enterprise_uscc", "region", "institution_type", "band", "event_ids",
    "amounts_fen", "event_count", "total_fen", "window_start", "window_end", "report_due",
)  # fmt: skip


def record_of(alert: dict[str, Any]) -> tuple[Any, ...]:
    """The documented fields of a committed hit, times as µs (the id, clock and rule set
    version are not derived here)."""
    out: list[Any] = []
    for name in RECORD_FIELDS:
        v = alert[name]
        if name in ("window_start", "window_end"):
            v = us_of(v)
        out.append(tuple(v) if isinstance(v, list) else v)
    return tuple(out)


def check_rules(records: list[Written], seeds: list[int], rules: RulesOracle | None = None) -> int:
    """Every figure (the rule hits included) and every committed hit, for each read order;
    returns how many hits the oracle expects."""
    hits = 0
    for i, seed in enumerate(seeds):
        oracle = Oracle(rules=rules or RulesOracle())
        result = run(records, seed, crashes=i, workers=1 if i == 0 else 2, oracle=oracle,
                     rules=True)  # fmt: skip
        assert_same_figures(result, seed, i)
        expected = oracle.rule_hits()
        want_records = Counter(record_of(h.record()) for h in expected)
        got_records = Counter(record_of(a) for a in result.alerts)
        assert got_records == want_records, (
            f"seed {seed}, {i} crashes: hits only the worker wrote "
            f"{got_records - want_records}, only the oracle {want_records - got_records}"
        )
        partitions = sorted(h.partition for h in expected)
        assert sorted(a["partition"] for a in result.alerts) == partitions
        hits += len(expected)
    return hits


settings.register_profile(
    "contract_rules", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@settings(settings.get_profile("contract_rules"))
@given(rule_feed(), st.lists(st.integers(0, 2**31), min_size=2, max_size=2))
def test_rule_hits_match_the_doc_oracle(records: list[Written], seeds: list[int]) -> None:
    check_rules(records, seeds)


def threshold_feed(base: datetime = BASE) -> list[Written]:
    """Each rule just reached and just missed, one case per Beijing day (two days apart, so
    no window spans two cases), plus the day edge and the anchored windows' ends; ``base``
    is a Beijing midnight."""
    u, v = ENTERPRISES[0], ENTERPRISES[1]  # v alone on its partition: dormancy jumps months
    out: list[Written] = []
    n = 0

    def tx(uscc: str, at: Any, amount: str, currency: str = "CNY", **kw: Any) -> None:
        nonlocal n
        n += 1
        doc = tx_doc(f"t{n}", uscc, at, amount, currency, **kw)
        out.append(Written(TX, home_of(uscc), doc, ms(at + timedelta(seconds=30))))

    def day(k: int, hours: float = 1) -> Any:
        return base + timedelta(days=2 * k, hours=hours)

    for k in (0, 4, 7, 10, 19):  # rates in force (at most 10 days old) for every case
        rate_day = (day(k) - timedelta(days=1)).date()
        published = day(k) - timedelta(days=1)
        usd = "4.99" if k == 7 else "7.1"  # USD 10,000 below CNY 50,000
        out.append(Written(FX, 0, fx_doc(f"u{k}", "USD", rate_day, usd, published), None))
        out.append(Written(FX, 0, fx_doc(f"j{k}", "JPY", rate_day, "0.0478", published), None))
    tx(u, day(0), "2000000.00")  # large_value; the day has no cumulative hit
    tx(u, day(0, 8), "1999999.99", direction="debit")
    tx(u, day(1), "200000", "USD")  # large_value in USD (CNY 1,420,000)
    tx(u, day(1, 2), "199999.99", "USD")  # not large; the day's credits: CNY 2,839,999.93
    tx(u, day(2), "1000000")  # large_value_daily: exactly CNY 2,000,000 of credits
    tx(u, day(2, 20), "1000000")
    tx(u, day(2, 21), "1999999.99", direction="debit")
    tx(u, day(3), "1000000")  # 1 fen short
    tx(u, day(3, 5), "999999.99")
    tx(u, day(4), "25000", code="PMNT-CNTR-CDPT")  # cash: deposits + withdrawals
    tx(u, day(4, 5), "25000", code="ncsh", direction="debit")
    tx(u, day(5), "25000", code="现金")  # 1 fen short; a transfer does not count
    tx(u, day(5, 2), "24999.99", code="CAMT-CASH-OTHR")
    tx(u, day(5, 3), "40000", code="PMNT-RCDT-XBCT")
    tx(u, day(5, 4), "30000", code="PMNT/RCDT/XBCT")  # a transfer, in slashes
    tx(u, day(6, 0) - US, "25000", code="CASH")  # across Beijing midnight: two days
    tx(u, day(6, 0), "25000", code="CASH")
    tx(u, day(7), "10000", "USD", code="CSH")  # one USD cash transaction of USD 10,000
    tx(u, day(8), "9999.99", "USD", code="CSH")  # CNY 49,899.95
    for h in (0, 1, 24 - 1e-9):  # structuring: three in [45,000, 50,000) within 24 h
        tx(u, day(9) + timedelta(hours=h), "45000.00", direction="debit")
    for h in (0, 1, 24 - 1e-9):
        tx(u, day(11) + timedelta(hours=h), "44999.99")  # below the band
    for h in (0, 24 - 1e-9, 24):  # the third at the window's end: not in it
        tx(u, day(13) + timedelta(hours=h), "49999.99")
    for i in range(20):  # velocity: 20 in one hour, 19 in the next day's
        tx(u, day(15) + timedelta(minutes=2 * i + 1), "3.00")
    for i in range(19):
        tx(u, day(16) + timedelta(minutes=2 * i + 1), "3.00")
    tx(u, day(17), "100000")  # pass-through: debits 10 % under the credit, inside 6 h
    tx(u, day(17, 6) - US, "90000", direction="debit")
    tx(u, day(18), "100000")
    tx(u, day(18, 1), "110000.01", direction="debit")  # 1 fen beyond the tolerance
    tx(u, day(19), "100000")
    tx(u, day(19, 7), "100000", direction="debit")  # at the window's end: not in it
    tx(u, day(20), "10000")  # round amounts: three multiples of 10,000 units
    tx(u, day(20, 2), "20000.00", direction="debit")
    tx(u, day(20, 3), "1000000", "JPY")  # JPY 1,000,000: round in its own currency
    tx(u, day(21), "10000")
    tx(u, day(21, 2), "0")  # zero is not round
    tx(u, day(21, 3), "10000.5")
    for i in range(501):  # velocity again: a hit lists its first 500 events, counts all
        tx(u, day(22) + timedelta(seconds=7 * i), "0.01")
    tx(u, day(23), "1000000.01")  # a large debit vetoes the debits only: the credits' own
    tx(u, day(23, 2), "999999.99")  # CNY 2,000,000 are a large_value_daily
    tx(u, day(23, 12), "2000000", direction="debit")
    tx(u, day(24), "10000.004")  # round amounts: a CNY amount is judged on its fen
    tx(u, day(24, 2), "9999.995")
    tx(u, day(24, 3), "20000", direction="debit")
    tx(u, day(25), "50000", code="PMNT/CNTR/CDPT")  # cash written with slashes
    tx(u, day(26), "1000000.01")  # large_value_daily: credits and debits, one hit each
    tx(u, day(26, 2), "999999.99")
    tx(u, day(26, 12), "1500000.50", direction="debit")
    tx(u, day(26, 13), "499999.50", direction="debit")
    tx(u, day(27), "1.00")  # closes every day above
    w = ENTERPRISES[2]  # alone on its partition here: the watermark exactly at hour end + grace
    tx(w, base + HOUR, "2000000")
    tx(w, base + 2 * HOUR + timedelta(minutes=10), "1.00")
    tx(v, base, "1.00")  # dormancy: 180 days to the microsecond, then 1 µs short of it
    tx(v, base + timedelta(days=180), "1.00")
    tx(v, base + timedelta(days=360) - US, "1.00")
    tx(v, base + timedelta(days=362), "1.00")
    return out


def test_every_rule_at_its_thresholds_matches_the_doc_oracle() -> None:
    records = threshold_feed()
    assert check_rules(records, [11, 12, 13]) > 0
    oracle = Oracle(rules=RulesOracle())
    run(records, 11, oracle=oracle, rules=True)
    fired = Counter(h.rule for h in oracle.rule_hits())
    assert fired == {
        "large_value": 4, "large_value_daily": 4, "cash": 3, "structuring": 1,
        "velocity": 2, "pass_through": 1, "round_amounts": 2, "dormant_reactivation": 1,
    }, fired  # fmt: skip


def test_the_comparison_fails_on_a_wrong_threshold() -> None:
    """The oracle with the large-value threshold 1 fen higher disagrees with the worker."""
    with pytest.raises(AssertionError):
        check_rules(threshold_feed(), [11], RulesOracle(large_cny_fen=200_000_001))


def test_events_counted_again_after_the_duplicate_horizon_are_seen_again_if_not_final() -> None:
    """docs/aml-rules.md, "Overdue reports": re-sent once the arrival clock has passed the
    45-day duplicate memory, and before their windows are final, a transfer and a cash
    deposit are counted and seen again: the large_value hit is written twice (same id, one
    report) and the day's hits hold each event twice. Re-sent after the windows are final,
    they are late: counted, never seen."""
    u = ENTERPRISES[0]
    p = home_of(u)
    t = BASE + HOUR
    big = tx_doc("big", u, t, "2000000", "CNY")
    cash = tx_doc("cash", u, t, "30000", "CNY", code="CASH")
    later = ms(BASE + timedelta(days=48))
    records = [
        Written(TX, p, big, ms(t)),
        Written(TX, p, cash, ms(t)),
        Written(TX, p, b"junk", later),  # moves the arrival clock past the memory
        Written(TX, p, big, later),
        Written(TX, p, cash, later),
        Written(TX, p, tx_doc("close", u, BASE + timedelta(days=1, minutes=10), "1", "CNY"), later),
        Written(TX, p, big, ms(BASE + timedelta(days=96))),  # late by now: not seen
    ]
    assert check_rules(records, [1, 2, 3]) == 3 * 4
    oracle = Oracle(rules=RulesOracle())
    result = run(records, 1, oracle=oracle, rules=True)
    assert sorted((a["rule"], a["event_count"]) for a in result.alerts) == [
        ("cash", 2), ("large_value", 1), ("large_value", 1), ("round_amounts", 4),
    ]  # fmt: skip
    assert len({a["event_id"] for a in result.alerts}) == 3


def parked_until_final_feed() -> list[Written]:
    """The example hypothesis found (seeds [0, 943]): a USD 200,000 credit 1 µs before its
    hour's end waits for the USD rate while later transactions (some forwarded) make the hour
    final; with seed 943 a worker is killed and the partition restored before the rate is
    read. The credit is counted then, its time final: not seen, no large_value (the restored
    worker saw it: tests/unit/rules/test_parked_final_after_restore.py)."""
    u, w = ENTERPRISES[0], ENTERPRISES[2]
    out: list[Written] = []

    def tx(p: int, n: int, uscc: str, at: datetime, amount: str, currency: str = "CNY") -> None:
        doc = tx_doc(f"r{n}", uscc, at, amount, currency)
        out.append(Written(TX, p, doc, ms(at + timedelta(seconds=30))))

    tx(9, 1, u, BASE + timedelta(minutes=5) - timedelta(days=180), "1.00")
    tx(9, 2, u, BASE + timedelta(minutes=5), "2.00")
    for n in range(3, 13):
        tx(7 if n < 12 else 6, n, w, BASE - HOUR, "45000.00")
    tx(8, 13, u, BASE - HOUR - US, "200000", "USD")
    for n in (14, 15, 16):
        tx(8 if n == 14 else 9, n, u, BASE - US, "2000000.00")
    for n in range(17, 29):
        tx(8 if n == 28 else 9, n, u, BASE - HOUR - US, "2000000.00")
    day = (BASE - timedelta(days=1)).date()
    out.append(Written(FX, 0, fx_doc("fx-USD", "USD", day, "7.1", BASE - HOUR * 20), None))
    return out


def test_a_parked_transaction_final_before_a_restore_reads_its_rate_is_not_seen() -> None:
    """Read in order 0 (no crash) the rate comes before the credit's hour is final: one
    large_value hit (r13); in order 943 (one crash) after, and after the restore: none."""
    records = parked_until_final_feed()
    assert check_rules(records, [0, 943]) == 1
    oracle = Oracle(rules=RulesOracle())
    result = run(records, 943, crashes=1, workers=2, oracle=oracle, rules=True)
    assert result.restarts
    assert oracle.rule_hits() == []
    assert result.alerts == []
