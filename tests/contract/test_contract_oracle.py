"""The worker's figures against an oracle written from docs/metrics.md alone, on adversarial
inputs (duplicates, late and future events, scores and FX rates read before or after the
events they affect, misplaced records) read in several orders consistent with Kafka's
per-partition order. Compared exactly, in integer fen."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.catalog import partition_for
from tests.contract.contract_inputs import (
    BASE,
    ENTERPRISES,
    Written,
    assert_same_figures,
    fx_doc,
    loan_doc,
    ms,
    run,
    score_doc,
    shared_partition_pair,
    tx_doc,
)
from tests.contract.doc_oracle import FX, LOANS, SCORES, TX, Oracle, home_of

PAIR = shared_partition_pair()
USCCS = [*ENTERPRISES, *PAIR]
AMOUNTS = ["0", "0.00", "1.005", "0.015", "2.5", "100.00", "123.45", "99999.99", "7"]
# at and just below the bound of 10^15 fen (dead-lettered invalid_field at or above it)
BIG = ["10000000000000", "9999999999999.99", "140000000000"]
SCORES_TEXT = ["0", "19.99", "20", "39.999", "45", "60", "79.5", "80", "100"]
FX_RATES = ["7.1", "7.1234", "0.0478", "0.05", "1.00000001", "7.15"]
RATE_DAYS = [BASE.date() + timedelta(days=d) for d in (-12, -11, -3, -1, 0, 1)]
# valid records of another kind: invalid_shape on this topic
CROSS = [
    loan_doc("x-ln", ENTERPRISES[0], BASE, "defaulted", "L9"),
    score_doc("x-sc", ENTERPRISES[0], BASE, "50", "C"),
    fx_doc("x-fx", "USD", BASE.date(), "7.1", BASE),
]
JUNK: list[bytes | None] = [
    *CROSS,
    b"null",
    b"NaN",
    b"\xef\xbb\xbf{}",
    b'{"kind": "transaction", "schema_version": 1.0}',
    b'{"kind": "transaction", "schema_version": true}',
    b'{"kind": "loan", "schema_version": 2}',
    None,
    b"\xff\xfe",
    b"",
    b"{",
    b"[1]",
    b'{"kind": "nope", "schema_version": 1}',
]

settings.register_profile(
    "contract", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_murmur2_home_partition_matches_the_catalog() -> None:
    for uscc in [*USCCS, "91330106MA2CDL8K41"]:
        assert home_of(uscc) == partition_for(uscc)
    assert home_of("91330106MA2CDL8K41") == 9  # docs/events.md's example


minutes = st.one_of(
    # clustered: exact grace edges (10 min) and Beijing midnight (minute 0) recur
    st.sampled_from([-20, -10, -1, 0, 0, 1, 9, 10, 11, 20]),
    st.integers(-180, 180),  # around Beijing midnight
    st.sampled_from([-1500, -700, 24 * 60 + 5]),  # late by far, next day
)


EDGES = st.sampled_from([-10, 0, 10, 20, 21])  # multiples of the grace period, and ±1 min


@st.composite
def when(draw: st.DrawFn, dense: bool = False) -> Any:
    at = BASE + timedelta(minutes=draw(EDGES if dense else minutes))
    if not dense and draw(st.integers(0, 3)) == 0:
        at += timedelta(microseconds=draw(st.integers(0, 999_999)))
    return at


def stamp(draw: st.DrawFn, at: Any) -> int | None:
    """The Kafka timestamp: usually just after the event, sometimes absent, too early
    (the event is future-dated), or far later (the arrival clock jumps past dedup retention)."""
    kind = draw(st.sampled_from(["soon"] * 6 + ["none", "early", "edge", "later", "d45", "d46"]))
    if kind == "none":
        return None
    if kind == "early":
        return ms(at - timedelta(days=1, seconds=1))
    if kind == "edge":
        return ms(at - timedelta(days=1))
    if kind == "later":
        return ms(at + timedelta(days=47))
    if kind in ("d45", "d46"):  # the edge of the 45-day duplicate memory (arrival days)
        return ms(at + timedelta(days=int(kind[1:]), seconds=30))
    return ms(at + timedelta(seconds=30))


@st.composite
def transactions(draw: st.DrawFn, n_max: int = 10, dense: bool = False) -> list[Written]:
    out: list[Written] = []
    for _ in range(draw(st.integers(0, n_max))):
        if out and draw(st.integers(0, 5)) == 0:  # an exact re-send of an earlier record
            out.append(draw(st.sampled_from(out)))
            continue
        if draw(st.integers(0, 14)) == 0:
            # junk moves the arrival clock too when it has a timestamp
            ts = draw(st.sampled_from([None, ms(BASE), ms(BASE + timedelta(days=47))]))
            out.append(Written(TX, draw(st.integers(0, 11)), draw(st.sampled_from(JUNK)), ts))
            continue
        uscc = USCCS[0] if dense else draw(st.sampled_from([USCCS[0], *USCCS]))
        at = draw(when(dense))
        value = tx_doc(
            f"tx-{draw(st.integers(0, 6))}",  # ids collide: same id, other content
            uscc, at, draw(st.sampled_from(AMOUNTS + AMOUNTS + BIG)),
            draw(st.sampled_from(["CNY", "CNY", "USD", "JPY"])),
            it=draw(st.sampled_from(["bank", "fintech", "joint"])),
            direction=draw(st.sampled_from(["credit", "debit"])),
            customs=draw(st.sampled_from([None, None, "9610", "1210"])),
            style=draw(st.integers(0, 2)),
        )  # fmt: skip
        home = home_of(uscc)
        p = home if draw(st.integers(0, 7)) else (home + 1) % 12  # some land on the wrong one
        out.append(Written(TX, p, value, stamp(draw, at)))
    return out


@st.composite
def scores(draw: st.DrawFn, n_max: int = 6) -> list[Written]:
    out: list[Written] = []
    for _ in range(draw(st.integers(0, n_max))):
        if out and draw(st.integers(0, 5)) == 0:
            out.append(draw(st.sampled_from(out)))
            continue
        uscc = draw(st.sampled_from(USCCS))
        at = BASE + timedelta(minutes=draw(st.sampled_from([-2000, -200, -60, -1, 0, 30, 120])))
        value = score_doc(
            f"sc-{draw(st.integers(0, 8))}", uscc, at,
            draw(st.sampled_from(SCORES_TEXT)), draw(st.sampled_from("CGJ")),
        )  # fmt: skip
        home = home_of(uscc)
        p = home if draw(st.integers(0, 7)) else (home + 5) % 12
        late_stamp = draw(
            st.sampled_from([timedelta(seconds=5)] * 5 + [-timedelta(days=1, seconds=1)])
        )
        out.append(Written(SCORES, p, value, ms(at + late_stamp)))
    return out


@st.composite
def rates(draw: st.DrawFn, n_max: int = 5) -> list[Written]:
    out: list[Written] = []
    for i in range(draw(st.integers(0, n_max))):
        if draw(st.integers(0, 12)) == 0:
            out.append(Written(FX, 0, draw(st.sampled_from(JUNK)), None))
            continue
        day = draw(st.sampled_from(RATE_DAYS))
        hours = draw(st.sampled_from([-30, 0, 1, 15, 40]))
        published = BASE.replace(year=day.year, month=day.month, day=day.day, hour=1, minute=15)
        published += timedelta(hours=hours)
        value = fx_doc(
            f"fx-{i}", draw(st.sampled_from(["USD", "JPY"])), day,
            draw(st.sampled_from(FX_RATES)), published,
        )  # fmt: skip
        out.append(Written(FX, 0, value, None))
    return out


def check(records: list[Written], seeds: list[int]) -> None:
    """Each seed is one read order: the first by one worker, the others by two workers of
    which one is killed (kill -9) as many times as the seed's position; the partitions it
    owned are restored from the committed changelog and assigned again."""
    for i, seed in enumerate(seeds):
        oracle = Oracle()
        result = run(records, seed, crashes=i, workers=1 if i == 0 else 2, oracle=oracle)
        assert_same_figures(result, seed, i)
        for topic in (TX, LOANS, SCORES, FX):  # flow accounting, summed over partitions
            flow = {
                name: sum(v for lab, v in result.processor.get(name, {}).items() if lab[0] == topic)
                for name in (
                    "dfip_events_received_total", "dfip_events_processed_total",
                    "dfip_events_duplicate_total", "dfip_events_deadlettered_total",
                    "dfip_fx_pending_events",
                )
            }  # fmt: skip
            received = flow.pop("dfip_events_received_total")
            assert received == sum(flow.values()), (topic, received, flow)
        # each event counted late is copied to dfip.late (original bytes), and only those
        late = sum(result.oracle.get("dfip_events_late_total", {}).values())
        assert len(result.late_copies) == late, (len(result.late_copies), late)
        if result.metrics != result.oracle_metrics:
            keys = set(result.metrics) | set(result.oracle_metrics)
            diff_w = {
                k: (result.metrics.get(k), result.oracle_metrics.get(k))
                for k in sorted(keys)
                if result.metrics.get(k) != result.oracle_metrics.get(k)
            }
            raise AssertionError(f"seed {seed}, {i} crashes: windows (processor, oracle): {diff_w}")


@settings(settings.get_profile("contract"))
@given(transactions(), scores(), rates(), st.lists(st.integers(0, 2**31), min_size=3, max_size=3))
def test_transaction_figures_match_the_doc_oracle(
    txs: list[Written], scs: list[Written], fxs: list[Written], seeds: list[int]
) -> None:
    check([*txs, *scs, *fxs], seeds)


@settings(settings.get_profile("contract"))
@given(
    transactions(dense=True),
    scores(n_max=2),
    st.lists(st.integers(0, 2**31), min_size=2, max_size=2),
)
def test_one_enterprise_at_the_grace_edges_matches_the_doc_oracle(
    txs: list[Written], scs: list[Written], seeds: list[int]
) -> None:
    """One enterprise, times on multiples of the grace period: lateness at its edge,
    duplicates with other content, dedup expiry by arrival day."""
    check([*txs, *scs], seeds)


def test_smoke_scores_after_events_and_fx_late() -> None:
    u = ENTERPRISES[0]
    at = BASE + timedelta(minutes=5)
    recs = [
        Written(TX, home_of(u), tx_doc("a", u, at, "10.01", "USD"), ms(at)),
        Written(TX, home_of(u), tx_doc("b", u, at, "1.005", "CNY"), ms(at)),
        Written(SCORES, home_of(u), score_doc("s", u, at - timedelta(hours=1), "45", "C"), ms(at)),
        Written(
            FX, 0, fx_doc("f", "USD", date(2026, 3, 2), "7.1234", BASE - timedelta(hours=20)), None
        ),
    ]
    check(recs, [1, 2, 3])


def loan_story(draw: st.DrawFn) -> list[str]:
    """One loan's event types, mostly in lifecycle order (disorder comes from swaps)."""
    story = [draw(st.sampled_from(["application_submitted", "approved", "rejected", "withdrawn"]))]
    if draw(st.integers(0, 4)):
        story.append("disbursed")
    middle = ["repayment", "repayment", "delinquency_changed", "risk_class_changed", "defaulted"]
    story += draw(st.lists(st.sampled_from(middle), max_size=4))
    story += draw(st.sampled_from([[], [], ["written_off"], ["closed"], ["closed", "disbursed"]]))
    return story


@st.composite
def loan_events(draw: st.DrawFn, n_loans: int = 3) -> list[Written]:
    """Loan lifecycles, some in disorder (repayments before disbursements, events after
    closing), second disbursements, loan ids shared by two enterprises of one partition,
    foreign-currency loans, re-sends."""
    out: list[Written] = []
    for _ in range(draw(st.integers(0, n_loans))):
        uscc = draw(st.sampled_from([ENTERPRISES[0], *PAIR]))
        loan_id = draw(st.sampled_from(["L1", "L2"]))
        currency = draw(st.sampled_from(["CNY", "CNY", "USD"]))
        # around the inclusive SME bound (CNY 10 million per borrower), in CNY and, at the
        # rates FX_RATES offers, in USD (1408450.70 x 7.1 is just below it, x 7.1234 above)
        principal = draw(
            st.sampled_from(
                ["1000.00", "333.33", "5000000", "6000000.01", "0.01", "10000000", "1408450.70"]
            )
        )
        it = draw(st.sampled_from(["bank", "fintech", "joint"]))
        at = draw(when())
        for et in loan_story(draw):
            at += timedelta(minutes=draw(st.sampled_from([0, 1, 7, 30])))
            extra: dict[str, Any] = {"it": draw(st.sampled_from([it, it, it, "bank"]))}
            if et in ("application_submitted", "approved", "disbursed"):
                rate = draw(st.sampled_from(["0", "0.0435", "0.05", "0.123456"]))
                extra |= {"principal": principal, "currency": currency, "annual_rate": rate}
            if et in ("application_submitted", "disbursed"):
                extra |= {
                    "term_months": 12,
                    "collateral": "credit",
                    "inclusive_sme": draw(st.booleans()),
                }
            if et == "disbursed":
                extra["repayment_method"] = "bullet"
            if et == "repayment":
                paid = draw(st.sampled_from(["0", "111.11", "0.01", principal, "1000.00"]))
                cur = draw(st.sampled_from([currency, currency, currency, "CNY", "USD"]))
                extra |= {"principal_amount": paid, "interest_amount": "1.00", "currency": cur}
            if et == "delinquency_changed":
                extra["days_past_due"] = draw(st.sampled_from([0, 1, 29, 30, 89, 90, 91, 271, 361]))
            if et == "risk_class_changed":
                extra["risk_class"] = draw(
                    st.sampled_from(["normal", "doubtful", "special_mention"])
                )
            if et == "written_off":
                extra |= {"amount": "1.00", "currency": "CNY"}
            eid = f"ln-{draw(st.integers(0, 40))}"
            value = loan_doc(eid, uscc, at, et, loan_id, **extra)
            home = home_of(uscc)
            p = home if draw(st.integers(0, 9)) else (home + 3) % 12  # some land elsewhere
            out.append(Written(LOANS, p, value, stamp(draw, at)))
    for _ in range(draw(st.integers(0, 3))):  # disorder and re-sends
        if len(out) >= 2:
            i = draw(st.integers(0, len(out) - 2))
            if draw(st.booleans()):
                out[i], out[i + 1] = out[i + 1], out[i]
            else:
                out.insert(i + 1, out[i])
    return out


@settings(settings.get_profile("contract"))
@given(
    loan_events(), transactions(n_max=3), scores(), rates(),
    st.lists(st.integers(0, 2**31), min_size=2, max_size=2),
)  # fmt: skip
def test_loan_figures_match_the_doc_oracle(
    loans: list[Written],
    txs: list[Written],
    scs: list[Written],
    fxs: list[Written],
    seeds: list[int],
) -> None:
    check([*loans, *txs, *scs, *fxs], seeds)


DAYS = [0, 0, 0, 1, 60, 119, 121, 125, 245]


@st.composite
def wide(draw: st.DrawFn) -> list[Written]:
    """Months apart: the restatement floor (120 days) passes events, scores arrive beyond
    it, parked events outlive it; one enterprise gets more assessments than the 8 kept."""
    out: list[Written] = []
    uscc_pool = [ENTERPRISES[0], ENTERPRISES[1]]
    for _ in range(draw(st.integers(0, 10))):
        uscc = draw(st.sampled_from(uscc_pool))
        at = BASE + timedelta(days=draw(st.sampled_from(DAYS)), minutes=draw(st.integers(-30, 30)))
        value = tx_doc(
            f"tx-{draw(st.integers(0, 12))}", uscc, at, draw(st.sampled_from(AMOUNTS)),
            draw(st.sampled_from(["CNY", "USD"])),
        )  # fmt: skip
        out.append(Written(TX, home_of(uscc), value, stamp(draw, at)))
    for _ in range(draw(st.integers(0, 12))):
        uscc = draw(st.sampled_from([ENTERPRISES[0], ENTERPRISES[0], ENTERPRISES[1]]))
        at = BASE + timedelta(
            days=draw(st.sampled_from([-1, *DAYS])), minutes=draw(st.sampled_from([-40, -5, 0, 5]))
        )
        value = score_doc(
            f"sc-{draw(st.integers(0, 20))}", uscc, at,
            draw(st.sampled_from(SCORES_TEXT)), draw(st.sampled_from("CG")),
        )  # fmt: skip
        out.append(Written(SCORES, home_of(uscc), value, ms(at)))
    for i in range(draw(st.integers(0, 4))):
        day = (BASE + timedelta(days=draw(st.sampled_from([-2, *DAYS])))).date()
        published = BASE.replace(year=day.year, month=day.month, day=day.day, hour=1, minute=15)
        value = fx_doc(f"fx-{i}", "USD", day, draw(st.sampled_from(FX_RATES)), published)
        out.append(Written(FX, 0, value, None))
    return out


@settings(settings.get_profile("contract"))
@given(wide(), st.lists(st.integers(0, 2**31), min_size=3, max_size=3))
def test_figures_across_the_restatement_floor_match_the_doc_oracle(
    records: list[Written], seeds: list[int]
) -> None:
    check(records, seeds)


@settings(settings.get_profile("contract"))
@given(
    loan_events(), transactions(), scores(), rates(), wide(),
    st.lists(st.integers(0, 2**31), min_size=3, max_size=3),
)  # fmt: skip
def test_everything_together_matches_the_doc_oracle(
    loans: list[Written], txs: list[Written], scs: list[Written], fxs: list[Written],
    far: list[Written], seeds: list[int],
) -> None:  # fmt: skip
    check([*loans, *txs, *scs, *fxs, *far], seeds)
