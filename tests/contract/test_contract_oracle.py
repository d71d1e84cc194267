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
    DIAGNOSTICS,
    ENTERPRISES,
    Written,
    fx_doc,
    loan_doc,
    ms,
    run,
    score_doc,
    shared_partition_pair,
    tx_doc,
    without,
)
from tests.contract.doc_oracle import FX, LOANS, SCORES, TX, home_of

PAIR = shared_partition_pair()
USCCS = [*ENTERPRISES, *PAIR]
AMOUNTS = ["0", "0.00", "1.005", "0.015", "2.5", "100.00", "123.45", "99999.99", "7"]
SCORES_TEXT = ["0", "19.99", "20", "39.999", "45", "60", "79.5", "80", "100"]
FX_RATES = ["7.1", "7.1234", "0.0478", "0.05", "1.00000001", "7.15"]
RATE_DAYS = [BASE.date() + timedelta(days=d) for d in (-12, -11, -3, -1, 0, 1)]
JUNK: list[bytes | None] = [
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
    st.integers(-180, 180),  # around Beijing midnight
    st.sampled_from([-1500, -700, -11, -10, 10, 11, 24 * 60 + 5]),  # late, grace edges, next day
)


@st.composite
def when(draw: st.DrawFn) -> Any:
    at = BASE + timedelta(minutes=draw(minutes))
    if draw(st.booleans()):
        at += timedelta(microseconds=draw(st.integers(0, 999_999)))
    return at


def stamp(draw: st.DrawFn, at: Any) -> int | None:
    """The Kafka timestamp: usually just after the event, sometimes absent, too early
    (the event is future-dated), or far later (the arrival clock jumps past dedup retention)."""
    kind = draw(st.sampled_from(["soon"] * 6 + ["none", "early", "edge", "later"]))
    if kind == "none":
        return None
    if kind == "early":
        return ms(at - timedelta(days=1, seconds=1))
    if kind == "edge":
        return ms(at - timedelta(days=1))
    if kind == "later":
        return ms(at + timedelta(days=47))
    return ms(at + timedelta(seconds=30))


@st.composite
def transactions(draw: st.DrawFn, n_max: int = 10) -> list[Written]:
    out: list[Written] = []
    for _ in range(draw(st.integers(0, n_max))):
        if out and draw(st.integers(0, 5)) == 0:  # an exact re-send of an earlier record
            out.append(draw(st.sampled_from(out)))
            continue
        if draw(st.integers(0, 14)) == 0:
            out.append(Written(TX, draw(st.integers(0, 11)), draw(st.sampled_from(JUNK)), None))
            continue
        uscc = draw(st.sampled_from(USCCS))
        at = draw(when())
        value = tx_doc(
            f"tx-{draw(st.integers(0, 6))}",  # ids collide: same id, other content
            uscc, at, draw(st.sampled_from(AMOUNTS)),
            draw(st.sampled_from(["CNY", "CNY", "USD", "JPY"])),
            it=draw(st.sampled_from(["bank", "fintech", "joint"])),
            direction=draw(st.sampled_from(["credit", "debit"])),
            customs=draw(st.sampled_from([None, None, "9610", "1210"])),
            style=draw(st.integers(0, 1)),
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
        out.append(Written(SCORES, p, value, ms(at + timedelta(seconds=5))))
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
    for seed in seeds:
        result = run(records, seed)
        got = without(result.processor, DIAGNOSTICS)
        want = without(result.oracle, DIAGNOSTICS)
        if got != want:
            diff = {
                name: {
                    lab: (got.get(name, {}).get(lab, 0), want.get(name, {}).get(lab, 0))
                    for lab in set(got.get(name, {})) | set(want.get(name, {}))
                    if got.get(name, {}).get(lab, 0) != want.get(name, {}).get(lab, 0)
                }
                for name in set(got) | set(want)
            }
            diff = {n: d for n, d in diff.items() if d}
            raise AssertionError(f"seed {seed}: (processor, oracle) differ: {diff}")


@settings(settings.get_profile("contract"))
@given(transactions(), scores(), rates(), st.lists(st.integers(0, 2**31), min_size=3, max_size=3))
def test_transaction_figures_match_the_doc_oracle(
    txs: list[Written], scs: list[Written], fxs: list[Written], seeds: list[int]
) -> None:
    check([*txs, *scs, *fxs], seeds)


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


LOAN_TYPES = [
    "application_submitted", "approved", "rejected", "withdrawn", "disbursed", "disbursed",
    "repayment", "repayment", "delinquency_changed", "risk_class_changed", "defaulted",
    "written_off", "closed",
]  # fmt: skip


@st.composite
def loan_events(draw: st.DrawFn, n_max: int = 10) -> list[Written]:
    """Loan lifecycles in any order: repayments before disbursements, second disbursements,
    loan ids shared by two enterprises of one partition, foreign-currency loans."""
    out: list[Written] = []
    for _ in range(draw(st.integers(0, n_max))):
        if out and draw(st.integers(0, 6)) == 0:
            out.append(draw(st.sampled_from(out)))
            continue
        uscc = draw(st.sampled_from([ENTERPRISES[0], *PAIR]))
        at = draw(when())
        et = draw(st.sampled_from(LOAN_TYPES))
        loan_id = draw(st.sampled_from(["L1", "L2"]))
        currency = draw(st.sampled_from(["CNY", "CNY", "USD"]))
        extra: dict[str, Any] = {"it": draw(st.sampled_from(["bank", "fintech", "joint"]))}
        principal = draw(st.sampled_from(["1000.00", "333.33", "5000000", "6000000.01", "0.01"]))
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
            paid = draw(st.sampled_from(["0", "111.11", "333.33", "1000.00"]))
            extra |= {"principal_amount": paid, "interest_amount": "1.00", "currency": currency}
        if et == "delinquency_changed":
            extra["days_past_due"] = draw(st.sampled_from([0, 1, 29, 30, 89, 90, 91, 271, 361]))
        if et == "risk_class_changed":
            extra["risk_class"] = draw(st.sampled_from(["normal", "doubtful", "special_mention"]))
        if et == "written_off":
            extra |= {"amount": "1.00", "currency": "CNY"}
        value = loan_doc(f"ln-{draw(st.integers(0, 12))}", uscc, at, et, loan_id, **extra)
        out.append(Written(LOANS, home_of(uscc), value, stamp(draw, at)))
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
