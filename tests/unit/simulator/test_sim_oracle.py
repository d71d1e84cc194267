"""The oracle: accounting identities on a simulated run, and a scenario worked out by hand."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.simulator.model import (
    FX,
    INPUT_TOPICS,
    LOANS,
    SCORES,
    TRANSACTIONS,
    FxFact,
    LoanFact,
    Record,
    ScoreFact,
    TxFact,
)
from adapters.simulator.oracle import Oracle
from schemas import make_uscc, partition_for
from schemas.figures import FIGURES, HEALTH_FIGURES, RATE_SCALE

# ---- identities on a simulated run -------------------------------------------------------


def test_every_figure_is_present_with_its_labels(small_run):
    figures = small_run.oracle["figures"]
    assert set(figures) == {f.name for f in (*FIGURES, *HEALTH_FIGURES)}
    for fig in (*FIGURES, *HEALTH_FIGURES):
        for series in figures[fig.name]:
            assert tuple(series["labels"]) == fig.labels
            assert isinstance(series["value"], int)
            assert series["value"] != 0 or not fig.labels


def test_flow_accounting_balances_per_topic(small_run):
    records = Counter(r.topic for r in small_run.records)
    for topic in INPUT_TOPICS:
        received = small_run.total("dfip_events_received_total", topic=topic)
        assert received == records[topic]
        assert received == (
            small_run.total("dfip_events_processed_total", topic=topic)
            + small_run.total("dfip_events_duplicate_total", topic=topic)
            + small_run.total("dfip_events_deadlettered_total", topic=topic)
            + small_run.total("dfip_fx_pending_events", topic=topic)  # waiting for a rate
        )


def test_health_counters_match_the_deliberate_anomalies(small_run):
    anomalies = Counter((r.topic, r.anomaly) for r in small_run.records if r.anomaly)
    for (topic, kind), count in anomalies.items():
        if kind == "duplicate":
            assert small_run.total("dfip_events_duplicate_total", topic=topic) == count
        elif kind == "late":
            assert small_run.total("dfip_events_late_total", topic=topic) == count
        elif kind == "fx_rate_missing":
            # a currency no rate is published for: the events wait (parked) until the
            # restatement floor passes them, then they are dead-lettered
            got = small_run.total(
                "dfip_events_deadlettered_total", topic=topic, error_class=kind
            ) + small_run.total("dfip_fx_pending_events", topic=topic)
            assert got == count, (topic, kind)
        elif kind != "wrong_partition":
            got = small_run.total("dfip_events_deadlettered_total", topic=topic, error_class=kind)
            assert got == count, (topic, kind)
    assert (
        sum(small_run.values("dfip_events_late_total").values())
        == anomalies[(TRANSACTIONS, "late")]
    )


def test_business_totals_match_processed_events(small_run):
    processed_tx = small_run.total("dfip_events_processed_total", topic=TRANSACTIONS)
    assert small_run.total("dfip_transactions_total") == processed_tx
    assert small_run.total("dfip_transactions_by_sector_total") == processed_tx
    assert small_run.total("dfip_transactions_by_sector_total", sector="unknown") == (
        small_run.total("dfip_transactions_by_sector_total", digitalization_band="unscored")
    )
    kinds = Counter(
        r.fact.event_type
        for r in small_run.records
        if isinstance(r.fact, LoanFact) and r.anomaly is None
    )
    assert small_run.total("dfip_loan_applications_total") == kinds["application_submitted"]
    for decision in ("approved", "rejected", "withdrawn"):
        got = small_run.total("dfip_loan_decisions_total", decision=decision)
        assert got == kinds[decision]
    assert small_run.total("dfip_loan_disbursements_total") == kinds["disbursed"]
    active = kinds["disbursed"] - kinds["closed"] - kinds["written_off"]
    assert small_run.total("dfip_loans_active") == active
    assert 0 < small_run.total("dfip_borrowers_active") <= active


def test_principal_is_conserved(small_run):
    """Every fen disbursed is repaid, written off or still outstanding."""
    disbursed = small_run.total("dfip_loan_disbursed_principal_yuan_total")
    assert disbursed == (
        small_run.total("dfip_loan_repaid_principal_yuan_total")
        + small_run.total("dfip_loan_written_off_principal_yuan_total")
        + small_run.total("dfip_loan_outstanding_principal_yuan")
    )
    assert small_run.total("dfip_loan_written_off_principal_yuan_total") > 0


def test_gauges_are_non_negative_and_past_due_within_outstanding(small_run):
    for name in (
        "dfip_loan_outstanding_principal_yuan",
        "dfip_loan_past_due_principal_yuan",
        "dfip_loans_active",
    ):
        assert all(v > 0 for v in small_run.values(name).values())
    for inst in ("bank", "fintech", "joint"):
        past_due = small_run.total("dfip_loan_past_due_principal_yuan", institution_type=inst)
        outstanding = small_run.total("dfip_loan_outstanding_principal_yuan", institution_type=inst)
        assert past_due <= outstanding
    npl = sum(
        small_run.total("dfip_loan_outstanding_principal_yuan", risk_class=c)
        for c in ("substandard", "doubtful", "loss")
    )
    assert npl / small_run.total("dfip_loan_outstanding_principal_yuan") < 0.15


def test_weighted_average_rates_are_plausible(small_run):
    for inst, (low, high) in {
        "bank": ("0.03", "0.07"),
        "fintech": ("0.05", "0.19"),
        "joint": ("0.04", "0.13"),
    }.items():
        weighted = small_run.total(
            "dfip_loan_disbursed_rate_weighted_yuan_total", institution_type=inst
        )
        principal = small_run.total(
            "dfip_loan_disbursed_principal_yuan_total", institution_type=inst
        )
        average = Decimal(weighted) / principal / RATE_SCALE
        assert Decimal(low) < average < Decimal(high), inst


def test_scored_enterprises_count_each_assessed_enterprise_once(small_run):
    assessed = {r.fact.uscc for r in small_run.records if isinstance(r.fact, ScoreFact)}
    assert small_run.total("dfip_enterprises_scored") == len(assessed)
    assert small_run.total("dfip_enterprises_scored", digitalization_band="unscored") == 0


def test_windows_hold_exactly_the_on_time_events(small_run):
    windows = small_run.oracle["windows"]
    on_time = small_run.total("dfip_transactions_total") - small_run.total(
        "dfip_events_late_total", topic=TRANSACTIONS
    )
    amount = small_run.total("dfip_transaction_amount_yuan_total")
    disbursed = small_run.total("dfip_loan_disbursed_principal_yuan_total")
    for size in ("1h", "1d"):
        tx = [w for w in windows if w["size"] == size and w["topic"] == TRANSACTIONS]
        assert sum(s["value"] for w in tx for s in w["figures"]["tx_count"]) == on_time
        in_windows = sum(s["value"] for w in tx for s in w["figures"]["tx_amount_fen"])
        assert 0 < in_windows < amount  # the late payments are missing
        loans = [w for w in windows if w["size"] == size and w["topic"] == LOANS]
        # no disbursement is late in the feed, so all of them are in windows
        assert sum(s["value"] for w in loans for s in w["figures"]["disbursed_fen"]) == disbursed
    hourly = [w for w in windows if w["size"] == "1h"]
    assert any(w["closed"] for w in hourly)
    assert not all(w["closed"] for w in hourly)  # the last hours are still open
    for w in windows:
        assert w["window_start"] < w["window_end"]
        assert w["partition"] in range(12)


# ---- a scenario small enough to work out by hand -------------------------------------------


def _t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


def _three_enterprises() -> tuple[str, str, str]:
    """Hangzhou, Ningbo and Shanghai enterprises on three different partitions."""
    for n in range(1000):
        a = make_uscc("330106", f"1000{n:04d}")
        b = make_uscc("330212", f"2000{n:04d}")
        c = make_uscc("310115", f"3000{n:04d}")
        if len({partition_for(a), partition_for(b), partition_for(c)}) == 3:
            return a, b, c
    raise AssertionError("no three distinct partitions found")


A, B, C = _three_enterprises()
PA, PB, PC = (partition_for(x) for x in (A, B, C))


def _tx(i, uscc, at, inst, direction, amount, currency="CNY", customs=None, **kw):
    fact = TxFact(f"tx{i}", uscc, at, inst, direction, Decimal(amount), currency, customs)
    home = partition_for(uscc)
    return Record(TRANSACTIONS, kw.pop("partition", home), home, fact, **kw)


def _loan(i, uscc, at, inst, kind, loan, **fields):
    fact = LoanFact(f"ln{i}", uscc, at, inst, kind, loan, **fields)
    return Record(LOANS, partition_for(uscc), partition_for(uscc), fact)


def _score(uscc, at, score, sector):
    p = partition_for(uscc)
    return Record(SCORES, p, p, ScoreFact(f"sc-{uscc}", uscc, at, Decimal(score), sector))


def _fx(day, rate):
    return Record(
        FX, 0, 0, FxFact(f"fx{day}", "USD", date(2025, 3, day), Decimal(rate), _t(day, 0))
    )


def _scenario() -> list[Record]:
    l1 = {"currency": "CNY"}
    l2 = {"currency": "USD"}
    tx1 = _tx(1, A, _t(3, 1), "bank", "credit", "1000.00")
    return [
        _fx(3, "7.1000"),
        _score(A, datetime(2025, 3, 1, tzinfo=UTC), "45.5", "C"),  # l2 from 1 March
        _score(C, _t(3, 6), "85.0", "I"),  # l4, but only from 06:00
        tx1,
        # 100.05 USD x 7.1 = 710.355 CNY = 71035.5 fen -> 71036 (half to even)
        _tx(2, B, _t(3, 1, 30), "fintech", "debit", "100.05", "USD", "9610"),
        Record(tx1.topic, tx1.partition, tx1.home_partition, tx1.fact, anomaly="duplicate"),
        _loan(
            1, A, _t(3, 2), "bank", "application_submitted", "L1", amount=Decimal(1_000_000), **l1
        ),
        _loan(2, B, _t(3, 2), "fintech", "application_submitted", "L2", amount=Decimal(1000), **l2),
        _loan(3, A, _t(3, 2, 30), "bank", "approved", "L1", amount=Decimal(1_000_000), **l1),
        _loan(4, B, _t(3, 2, 30), "fintech", "approved", "L2", amount=Decimal(1000), **l2),
        _loan(
            5,
            A,
            _t(3, 3),
            "bank",
            "disbursed",
            "L1",
            amount=Decimal(1_000_000),
            annual_rate=Decimal("0.0435"),
            inclusive_sme=True,
            **l1,
        ),
        _loan(
            6,
            B,
            _t(3, 3),
            "fintech",
            "disbursed",
            "L2",
            amount=Decimal(1000),
            annual_rate=Decimal("0.12"),
            inclusive_sme=True,
            **l2,
        ),
        _loan(7, A, _t(3, 4), "bank", "repayment", "L1", amount=Decimal(400_000), **l1),
        _tx(4, C, _t(3, 5), "bank", "credit", "500.00"),  # C still unscored
        _loan(8, A, _t(3, 5), "bank", "delinquency_changed", "L1", days_past_due=45),
        _loan(9, A, _t(3, 5, 10), "bank", "risk_class_changed", "L1", risk_class="substandard"),
        _tx(5, C, _t(3, 7), "bank", "credit", "200.00"),  # l4 now
        _tx(6, C, _t(3, 6, 30), "bank", "debit", "300.00", anomaly="late"),  # < 07:00 - 10 min
        Record(TRANSACTIONS, PA, PA, None, raw=b"\xff\x00", anomaly="undecodable"),
        _fx(4, "7.2000"),  # the USD loan stays booked at 7.1
        _loan(10, B, _t(4, 1), "fintech", "repayment", "L2", amount=Decimal(600), **l2),
        _loan(11, B, _t(4, 1, 30), "fintech", "repayment", "L2", amount=Decimal(400), **l2),
        _loan(12, B, _t(4, 2), "fintech", "closed", "L2"),
        _loan(13, C, _t(4, 2), "bank", "repayment", "NOPE", amount=Decimal(5), **l1),
        _tx(7, B, _t(4, 1), "bank", "credit", "10.00", "GBP"),  # no GBP rate ever
        # produced to C's partition: judged (and moves the watermark) there, counted at home
        _tx(8, A, _t(4, 0, 30), "bank", "credit", "50.00", partition=PC, anomaly="wrong_partition"),
    ]


def _by_labels(series):
    return {tuple(s["labels"].values()): s["value"] for s in series}


EXPECTED = {
    # no rule fires on the scenario (tests/unit/rules/ plant and check every rule)
    "dfip_alerts_total": {},
    "dfip_alert_amount_yuan_total": {},
    "dfip_alerts_overdue": {},
    "dfip_transactions_total": {
        ("bank", "l2", "hangzhou", "credit"): 2,
        ("fintech", "unscored", "ningbo", "debit"): 1,
        ("bank", "unscored", "other", "credit"): 1,
        ("bank", "l4", "other", "credit"): 1,
        ("bank", "l4", "other", "debit"): 1,
    },
    "dfip_transaction_amount_yuan_total": {
        ("bank", "l2", "hangzhou", "credit"): 100_000 + 5_000,
        ("fintech", "unscored", "ningbo", "debit"): 71_036,
        ("bank", "unscored", "other", "credit"): 50_000,
        ("bank", "l4", "other", "credit"): 20_000,
        ("bank", "l4", "other", "debit"): 30_000,
    },
    "dfip_transactions_by_sector_total": {
        ("C", "l2"): 2,
        ("unknown", "unscored"): 2,
        ("I", "l4"): 2,
    },
    "dfip_crossborder_ecommerce_payments_total": {("9610", "fintech"): 1},
    "dfip_crossborder_ecommerce_amount_yuan_total": {("9610", "fintech"): 71_036},
    "dfip_loan_applications_total": {("bank", "l2"): 1, ("fintech", "unscored"): 1},
    "dfip_loan_decisions_total": {
        ("bank", "l2", "approved"): 1,
        ("fintech", "unscored", "approved"): 1,
    },
    "dfip_loan_disbursements_total": {
        ("bank", "l2", "hangzhou"): 1,
        ("fintech", "unscored", "ningbo"): 1,
    },
    "dfip_loan_disbursed_principal_yuan_total": {
        ("bank", "l2", "hangzhou"): 100_000_000,
        ("fintech", "unscored", "ningbo"): 710_000,  # 1000 USD at 7.1
    },
    "dfip_loan_disbursed_rate_weighted_yuan_total": {
        ("bank", "l2"): 100_000_000 * 435,
        ("fintech", "unscored"): 710_000 * 1_200,
    },
    "dfip_loan_inclusive_sme_disbursed_principal_yuan_total": {
        ("bank",): 100_000_000,
        ("fintech",): 710_000,
    },
    "dfip_loan_repaid_principal_yuan_total": {
        ("bank", "l2"): 40_000_000,
        ("fintech", "unscored"): 426_000 + 284_000,  # booked rate 7.1, not the day's 7.2
    },
    "dfip_loan_written_off_principal_yuan_total": {},
    # 45 DPD implies special mention; the reported substandard is worse and wins.
    "dfip_loan_outstanding_principal_yuan": {("bank", "l2", "substandard"): 60_000_000},
    "dfip_loan_past_due_principal_yuan": {("bank", "30_59"): 60_000_000},
    "dfip_loans_active": {("bank", "l2"): 1},
    "dfip_borrowers_active": {(): 1},
    "dfip_enterprises_scored": {("l2", "C"): 1, ("l4", "I"): 1},
    "dfip_events_received_total": {(TRANSACTIONS,): 9, (LOANS,): 13, (SCORES,): 2, (FX,): 2},
    "dfip_events_processed_total": {(TRANSACTIONS,): 6, (LOANS,): 12, (SCORES,): 2, (FX,): 2},
    "dfip_events_duplicate_total": {(TRANSACTIONS,): 1},
    "dfip_events_deadlettered_total": {
        (TRANSACTIONS, "undecodable"): 1,
        (LOANS, "unknown_loan"): 1,
    },
    # the GBP payment: no GBP rate (yet), so it waits
    "dfip_fx_pending_events": {(TRANSACTIONS,): 1},
    "dfip_events_late_total": {(TRANSACTIONS,): 1},
    # every score of the scenario is read before the events it applies to
    "dfip_restated_events_total": {},
    "dfip_scores_beyond_restatement_total": {(): 0},
}


def _window(size, start, topic, partition, closed, **figures):
    end = start + {"1h": timedelta(hours=1), "1d": timedelta(days=1)}[size]
    labels = {
        "tx_count": ("institution_type", "digitalization_band"),
        "tx_amount_fen": ("institution_type", "digitalization_band"),
        "disbursed_fen": ("institution_type",),
    }
    return {
        "size": size,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        # Beijing date (UTC+8) of the window
        "local_date": (start + timedelta(hours=8)).date().isoformat(),
        "topic": topic,
        "partition": partition,
        "closed": closed,
        "figures": {
            name: [
                {"labels": dict(zip(labels[name], k, strict=True)), "value": v}
                for k, v in sorted(values.items())
            ]
            for name, values in figures.items()
        },
    }


def _tx_window(size, start, partition, closed, values):
    return _window(
        size,
        start,
        TRANSACTIONS,
        partition,
        closed,
        tx_count={k: c for k, (c, _) in values.items()},
        tx_amount_fen={k: a for k, (_, a) in values.items()},
    )


def _expected_windows():
    # Beijing days (Asia/Shanghai, UTC+8): 03-03 runs from 03-02 16:00 UTC to 03-03 16:00 UTC
    day3, day4 = _t(2, 16), _t(3, 16)
    # Final transaction watermarks: A 03-03 01:00 (the forwarded event does not move it),
    # B 03-04 01:00 (the GBP payment waits for a rate: parked, it moves it), C 03-04 00:30
    # (moved by the misplaced event).
    # Loan watermarks: A 03-03 05:10, B 03-04 02:00.
    windows = [
        _tx_window("1h", _t(3, 1), PA, False, {("bank", "l2"): (1, 100_000)}),
        _tx_window("1d", day3, PA, False, {("bank", "l2"): (1, 100_000)}),
        _tx_window("1h", _t(4, 0), PA, False, {("bank", "l2"): (1, 5_000)}),
        _tx_window("1d", day4, PA, False, {("bank", "l2"): (1, 5_000)}),
        _tx_window("1h", _t(3, 1), PB, True, {("fintech", "unscored"): (1, 71_036)}),
        _tx_window("1d", day3, PB, True, {("fintech", "unscored"): (1, 71_036)}),
        _tx_window("1h", _t(3, 5), PC, True, {("bank", "unscored"): (1, 50_000)}),
        _tx_window("1h", _t(3, 7), PC, True, {("bank", "l4"): (1, 20_000)}),
        _tx_window(
            "1d", day3, PC, True, {("bank", "unscored"): (1, 50_000), ("bank", "l4"): (1, 20_000)}
        ),
        _window("1h", _t(3, 3), LOANS, PA, True, disbursed_fen={("bank",): 100_000_000}),
        _window("1d", day3, LOANS, PA, False, disbursed_fen={("bank",): 100_000_000}),
        _window("1h", _t(3, 3), LOANS, PB, True, disbursed_fen={("fintech",): 710_000}),
        _window("1d", day3, LOANS, PB, True, disbursed_fen={("fintech",): 710_000}),
    ]
    key = lambda w: (w["topic"], w["partition"], w["size"], w["window_start"])  # noqa: E731
    return sorted(windows, key=key)


@pytest.fixture(scope="module")
def scenario():
    oracle = Oracle(grace_seconds=600)
    for record in _scenario():
        oracle.observe(record)
    return oracle.result({"seed": 0})


def test_scenario_figures_worked_out_by_hand(scenario):
    for name, expected in EXPECTED.items():
        assert _by_labels(scenario["figures"][name]) == expected, name
    assert set(scenario["figures"]) == set(EXPECTED)


def test_scenario_windows_worked_out_by_hand(scenario):
    assert scenario["windows"] == _expected_windows()
    assert scenario["meta"] == {"seed": 0, "grace_seconds": 600, "dedup_retention_days": 45}


def test_a_fully_repaid_loan_contributes_zero_outstanding():
    """Repaid in parts after the FX rate moved: still exactly zero, and still active."""
    oracle = Oracle()
    usd = {"currency": "USD"}
    for record in (
        _fx(3, "7.1234"),
        _loan(
            1,
            A,
            _t(3, 1),
            "bank",
            "disbursed",
            "L",
            amount=Decimal(300),
            annual_rate=Decimal("0.05"),
            inclusive_sme=True,
            **usd,
        ),
        _fx(4, "6.9876"),
        *(
            _loan(2 + i, A, _t(4, 1 + i), "bank", "repayment", "L", amount=Decimal(100), **usd)
            for i in range(3)
        ),
    ):
        oracle.observe(record)
    figures = oracle.result({})["figures"]
    assert figures["dfip_loan_outstanding_principal_yuan"] == []
    assert _by_labels(figures["dfip_loans_active"]) == {("bank", "unscored"): 1}
    assert _by_labels(figures["dfip_loan_repaid_principal_yuan_total"]) == {
        ("bank", "unscored"): 213_702  # 3 x 100 USD at the booked 7.1234
    }
    assert _by_labels(figures["dfip_borrowers_active"]) == {(): 1}


def test_forwarded_duplicates_and_dead_letters_leave_watermarks_alone():
    oracle = Oracle(grace_seconds=60)
    first = _tx(1, A, _t(3, 2), "bank", "credit", "1.00")
    steps = (
        (first, _t(3, 2)),
        (  # dead letter
            dataclasses.replace(
                _tx(2, A, _t(3, 3), "bank", "credit", "1.00"), fact=None, anomaly="invalid_field"
            ),
            _t(3, 2),
        ),
        (Record(TRANSACTIONS, PA, PA, first.fact, anomaly="duplicate"), _t(3, 2)),
        (_tx(3, B, _t(3, 4), "bank", "credit", "1.00", partition=PA), _t(3, 4)),  # misplaced
    )
    for record, watermark in steps:
        oracle.observe(record)
        assert oracle.watermark(TRANSACTIONS, PA) == watermark
    assert oracle.watermark(TRANSACTIONS, PB) is None  # forwarded events do not move it


def test_loan_events_that_cannot_be_applied_are_dead_lettered():
    oracle = Oracle()
    usd = {"currency": "USD"}
    disbursed = _loan(
        1,
        A,
        _t(3, 1),
        "bank",
        "disbursed",
        "L",
        amount=Decimal("100.01"),
        annual_rate=Decimal("0.05"),
        inclusive_sme=True,
        **usd,
    )
    for record in (
        _fx(3, "7.1234"),
        disbursed,
        _loan(2, A, _t(3, 2), "bank", "repayment", "L", amount=Decimal("100.02"), **usd),
        _loan(3, A, _t(3, 2), "bank", "repayment", "L", amount=Decimal(1), currency="CNY"),
        _loan(
            4,
            A,
            _t(3, 3),
            "bank",
            "disbursed",
            "L",
            amount=Decimal(1),
            annual_rate=Decimal("0.05"),
            inclusive_sme=True,
            **usd,
        ),
        _loan(5, A, _t(3, 4), "bank", "repayment", "L", amount=Decimal("50.01"), **usd),
        _loan(6, A, _t(3, 5), "bank", "closed", "L"),
        _loan(7, A, _t(3, 6), "bank", "repayment", "L", amount=Decimal(1), **usd),
    ):
        oracle.observe(record)
    figures = oracle.result({})["figures"]
    assert _by_labels(figures["dfip_events_deadlettered_total"]) == {
        (LOANS, "invalid_field"): 3,  # overpaid, wrong currency, second drawdown
        (LOANS, "unknown_loan"): 1,  # no longer active
    }
    # 100.01 USD = 71241 fen; 50.00 USD left = 35617 fen; the repayment is the drop, 35624
    assert _by_labels(figures["dfip_loan_disbursed_principal_yuan_total"]) == {
        ("bank", "unscored", "hangzhou"): 71_241
    }
    assert _by_labels(figures["dfip_loan_repaid_principal_yuan_total"]) == {
        ("bank", "unscored"): 35_624
    }
    assert figures["dfip_loans_active"] == []


def test_inclusive_sme_is_decided_on_the_borrowers_total_credit():
    oracle = Oracle()
    cny = {"currency": "CNY", "annual_rate": Decimal("0.04"), "inclusive_sme": True}
    for i, (loan, amount) in enumerate((("X", "6000000"), ("Y", "4000000"), ("Z", "0.01"))):
        oracle.observe(
            _loan(i, A, _t(3, 1 + i), "bank", "disbursed", loan, amount=Decimal(amount), **cny)
        )
    sme = oracle.result({})["figures"]["dfip_loan_inclusive_sme_disbursed_principal_yuan_total"]
    assert _by_labels(sme) == {("bank",): 1_000_000_000}  # X and Y (10 million, inclusive)


def test_dedup_goes_by_arrival_day_per_topic_partition():
    import dataclasses

    day = 86_400_000
    t0 = 20_000 * day
    oracle = Oracle(dedup_retention_days=2)
    first = _tx(1, A, _t(3, 2), "bank", "credit", "1.00")
    other = _loan(2, A, _t(9, 2), "bank", "application_submitted", "L")
    for record, at in (
        (first, t0),
        (other, t0 + 9 * day),  # the loans topic far ahead never prunes transactions
        (first, t0 + 2 * day + day - 1),  # last moment of day d + 2: remembered
        (first, t0 + 3 * day),  # day d + 3: forgotten, counted again
    ):
        oracle.observe(dataclasses.replace(record, timestamp_ms=at))
    figures = oracle.result({})["figures"]
    assert _by_labels(figures["dfip_events_duplicate_total"]) == {(TRANSACTIONS,): 1}
    assert _by_labels(figures["dfip_events_processed_total"])[(TRANSACTIONS,)] == 2


def test_fx_takes_the_rate_in_force_by_beijing_date_and_publication():
    oracle = Oracle(fx_max_age_days=10)
    fri = date(2025, 3, 7)
    oracle.observe(Record(FX, 0, 0, FxFact("f1", "USD", fri, Decimal(7), _t(7, 1))))
    oracle.observe(
        Record(FX, 0, 0, FxFact("f2", "USD", date(2025, 3, 10), Decimal(8), _t(10, 1, 15)))
    )
    for i, at in enumerate((_t(8, 12), _t(10, 0, 30), _t(10, 1, 15), _t(20, 16))):
        oracle.observe(_tx(100 + i, A, at, "bank", "credit", "1.00", "USD"))
    figures = oracle.result({})["figures"]
    # Saturday and Monday 08:30 Beijing: Friday's 7; Monday 09:15: 8; 21 Mar Beijing: too old
    assert sum(_by_labels(figures["dfip_transaction_amount_yuan_total"]).values()) == 2200
    # no rate in force: it waits (parked) for one, or for the restatement floor to pass it
    assert _by_labels(figures["dfip_fx_pending_events"]) == {(TRANSACTIONS,): 1}
