"""Restatement of the as-of join (transaction figures): an assessment read after the events
it applies to moves them; the figures do not depend on the order in which scores and events
are read (within the restatement horizon). No broker: the processor alone."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.catalog import partition_for
from schemas.codec import encode
from schemas.events import (
    LoanApplicationSubmitted,
    LoanClosed,
    LoanDisbursed,
    LoanRejected,
    LoanWithdrawn,
)
from streams.aggregate import restate
from streams.processor import LOANS, METRICS, SCORES, TRANSACTIONS, Processor
from streams.reference.scores import ScoreTable
from streams.state.changelog import apply_record, dirty_records, finish_restore
from streams.state.partition import PartitionState
from tests.unit.streams.helpers import (
    HANGZHOU,
    disbursed,
    feed,
    loan_common,
    processor,
    record,
    repayment,
    score,
    t,
    tx,
    value,
)

P = partition_for(HANGZHOU)
BAND_FIGURES = (
    "dfip_transactions_total",
    "dfip_transaction_amount_yuan_total",
    "dfip_transactions_by_sector_total",
    "dfip_loan_applications_total",
    "dfip_loan_decisions_total",
    "dfip_loan_disbursements_total",
    "dfip_loan_disbursed_principal_yuan_total",
    "dfip_loan_disbursed_rate_weighted_yuan_total",
    "dfip_loans_active",
    "dfip_loan_outstanding_principal_yuan",
)
BASE = t("00:00", day=5)
_BANDS = ((10, "l0"), (30, "l1"), (50, "l2"), (70, "l3"), (90, "l4"))


def _score(proc: Processor, at: Any, overall: str, sector: str = "C", *, counted: bool = True):
    ev = score(at, overall, sector=sector)
    proc.process_score(record(SCORES, encode(ev)), counted=counted)
    proc.finish_batch()


def _tx(proc: Processor, at: Any, amount: str = "100.00", **kw: Any) -> None:
    feed(proc, TRANSACTIONS, tx(at, amount, **kw))
    proc.finish_batch()


def _figures(proc: Processor) -> dict[str, dict[tuple[str, ...], int]]:
    c = proc.states[P].counters.values
    return {name: dict(c.get(name, {})) for name in BAND_FIGURES}


def _windows(proc: Processor, emitted: dict[bytes, Any]) -> dict[bytes, Any]:
    """Window records emitted so far (the last per key, as a compacted topic keeps them)."""
    for out in proc.take_outputs():
        if out.topic == METRICS:
            assert out.key is not None
            assert out.value is not None
            emitted[out.key] = orjson.loads(out.value)
    return emitted


def test_a_back_dated_assessment_moves_events_already_counted() -> None:
    proc = processor()
    _tx(proc, t("10:00"), "100.00")
    _tx(proc, t("12:00"), "50.00")
    _tx(proc, t("08:00", day=6), "7.00")  # closes day 5's windows (emitted unscored)
    emitted = _windows(proc, {})
    key = b"1d:2026-01-04T16:00:00+00:00:dfip.transactions:%d" % P  # Beijing 5 Jan
    assert emitted[key]["figures"]["tx_count"] == [{"labels": ["bank", "unscored"], "value": 2}]
    # assessed on day 5 at 11:00, read afterwards: only the 12:00 transaction and day 6 move
    _score(proc, t("11:00"), "65", sector="F")
    labels = ("bank", "l3", "hangzhou", "credit")
    assert value(proc, "dfip_transactions_total", labels) == 2
    assert value(proc, "dfip_transaction_amount_yuan_total", labels) == 5700
    assert value(proc, "dfip_transactions_total", ("bank", "unscored", "hangzhou", "credit")) == 1
    assert value(proc, "dfip_transactions_by_sector_total", ("F", "l3")) == 2
    assert value(proc, "dfip_transactions_by_sector_total", ("unknown", "unscored")) == 1
    assert value(proc, "dfip_restated_events_total", (TRANSACTIONS,)) == 2
    assert value(proc, "dfip_scores_beyond_restatement_total") == 0
    # the closed day window is emitted again, amended
    emitted = _windows(proc, emitted)
    assert sorted(
        (tuple(r["labels"]), r["value"]) for r in emitted[key]["figures"]["tx_count"]
    ) == [(("bank", "l3"), 1), (("bank", "unscored"), 1)]
    # a later assessment of the same band but another sector moves by-sector only
    _score(proc, t("00:00", day=6), "70", sector="G")
    assert value(proc, "dfip_transactions_by_sector_total", ("G", "l3")) == 1
    assert value(proc, "dfip_transactions_total", labels) == 2


def test_assessment_older_than_the_horizon_applies_from_the_floor() -> None:
    proc = processor()
    proc.restate_horizon_us = 10 * 86_400_000_000  # 10 days
    _tx(proc, BASE)  # 5 Jan
    _tx(proc, BASE + timedelta(days=20))  # 25 Jan: the floor becomes 15 Jan
    _tx(proc, BASE + timedelta(days=2))  # 7 Jan, late, counted under the floor: not kept
    state = proc.states[P]
    restate.sweep(state, state.watermarks[TRANSACTIONS] - proc.restate_horizon_us)
    assert [occ for occ, _ in restate.entries_of(state, HANGZHOU)] == [
        state.watermarks[TRANSACTIONS]
    ]
    _score(proc, BASE - timedelta(days=1), "90")
    assert value(proc, "dfip_scores_beyond_restatement_total") == 1
    assert value(proc, "dfip_transactions_total", ("bank", "l4", "hangzhou", "credit")) == 1
    assert value(proc, "dfip_transactions_total", ("bank", "unscored", "hangzhou", "credit")) == 2
    # events counted after it was read join with it as usual
    _tx(proc, BASE + timedelta(days=1))
    assert value(proc, "dfip_transactions_total", ("bank", "l4", "hangzhou", "credit")) == 2


def test_the_silent_restore_pass_does_not_restate() -> None:
    proc = processor()
    _tx(proc, t("10:00"))
    _score(proc, t("09:00"), "50", counted=False)
    assert value(proc, "dfip_transactions_total", ("bank", "unscored", "hangzhou", "credit")) == 1
    assert value(proc, "dfip_restated_events_total") == 0


def test_contributions_survive_a_restore_from_the_changelog() -> None:
    proc = processor()
    _tx(proc, t("10:00"), "10.00")
    _tx(proc, t("10:00"), "5.00")  # same instant: one aggregated entry
    _tx(proc, t("13:00"), "1.00", direction="debit")
    state = proc.states[P]
    assert len(restate.entries_of(state, HANGZHOU)) == 2
    restored = PartitionState(P)
    for key, val in dirty_records(state):
        apply_record(restored, key, val)
    finish_restore(restored)
    assert restate.entries_of(restored, HANGZHOU) == restate.entries_of(state, HANGZHOU)
    # the restored worker restates exactly like the one that kept running
    again = processor()
    again.states[P], again.scores[P] = restored, ScoreTable()
    for p in (proc, again):
        _score(p, t("09:00"), "30")
    assert _figures(again) == _figures(proc)
    assert value(again, "dfip_transactions_total", ("bank", "l1", "hangzhou", "credit")) == 2
    assert (
        value(again, "dfip_transaction_amount_yuan_total", ("bank", "l1", "hangzhou", "debit"))
        == 100
    )


# ---- properties: one enterprise's events and scores in any order -----------------------

_tx_spec = st.tuples(
    st.integers(0, 20 * 60 - 1),  # minutes after BASE: within a day of windows held
    st.sampled_from(["1.00", "2.50", "100.00"]),
    st.sampled_from(["bank", "fintech"]),
    # a transaction's direction, or a loan application / decision (by band only)
    st.sampled_from(
        ["credit", "debit", "application_submitted", "rejected", "withdrawn", "disbursed"]
    ),
)
_score_spec = st.tuples(
    st.integers(-600, 20 * 60),  # assessed_at, minutes after BASE
    st.sampled_from(_BANDS),
    st.sampled_from(["C", "F", "I"]),
)
_scores = st.lists(_score_spec, min_size=1, max_size=4, unique_by=lambda s: s[0])
_txs = st.lists(_tx_spec, min_size=1, max_size=8)


def _loan_event(at: Any, kind: str, inst: str, i: int, amount: str) -> Any:
    common = {**loan_common(at, f"L{i}"), "institution_type": inst, "event_id": f"ln-{i}"}
    if kind == "disbursed":
        return LoanDisbursed(
            **common,
            principal=Decimal(amount),
            currency="CNY",
            annual_rate=Decimal("0.0435"),
            term_months=12,
            collateral="credit",
            inclusive_sme=False,
            repayment_method="equal_installment",
        )
    if kind == "application_submitted":
        return LoanApplicationSubmitted(
            **common,
            principal=Decimal("100.00"),
            currency="CNY",
            annual_rate=Decimal("0.04"),
            term_months=12,
            collateral="credit",
            inclusive_sme=False,
        )
    if kind == "rejected":
        return LoanRejected(**common, reason=None)
    return LoanWithdrawn(**common)


def _run(steps: list[tuple[str, Any]]) -> tuple[Processor, dict[bytes, Any]]:
    proc = processor(partitions=(P,))
    emitted: dict[bytes, Any] = {}
    for i, (kind, spec) in enumerate(steps):
        if kind == "tx":
            minute, amount, inst, direction = spec
            at = BASE + timedelta(minutes=minute)
            if direction in ("credit", "debit"):
                ev = tx(at, amount, institution_type=inst, direction=direction,
                        event_id=f"tx-{i}")  # fmt: skip
                feed(proc, TRANSACTIONS, ev)
            else:
                feed(proc, LOANS, _loan_event(at, direction, inst, i, amount))
        else:
            minute, (overall, _), sector = spec
            ev = score(BASE + timedelta(minutes=minute), str(overall), sector=sector)
            proc.process_score(record(SCORES, encode(ev)), counted=True)
        proc.finish_batch()
        _windows(proc, emitted)
    return proc, emitted


def _by_rule(txs: list[Any], scores: list[Any]) -> dict[str, dict[tuple[str, ...], int]]:
    """The documented as-of join over the complete score history."""
    out: dict[str, dict[tuple[str, ...], int]] = {name: {} for name in BAND_FIGURES}

    def add(name: str, labels: tuple[str, ...], v: int) -> None:
        out[name][labels] = out[name].get(labels, 0) + v

    for minute, amount, inst, direction in txs:
        before = [s for s in scores if s[0] <= minute]
        band, sector = "unscored", "unknown"
        if before:
            _, (_, band), sector = max(before)
        fen = int(Decimal(amount) * 100)
        if direction == "disbursed":
            add("dfip_loan_disbursements_total", (inst, band, "hangzhou"), 1)
            add("dfip_loan_disbursed_principal_yuan_total", (inst, band, "hangzhou"), fen)
            add("dfip_loan_disbursed_rate_weighted_yuan_total", (inst, band), fen * 435)
            add("dfip_loans_active", (inst, band), 1)
            add("dfip_loan_outstanding_principal_yuan", (inst, band, "normal"), fen)
            continue
        if direction == "application_submitted":
            add("dfip_loan_applications_total", (inst, band), 1)
            continue
        if direction in ("rejected", "withdrawn"):
            add("dfip_loan_decisions_total", (inst, band, direction), 1)
            continue
        labels = (inst, band, "hangzhou", direction)
        add("dfip_transactions_total", labels, 1)
        add("dfip_transaction_amount_yuan_total", labels, fen)
        add("dfip_transactions_by_sector_total", (sector, band), 1)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(txs=_txs, scores=_scores, data=st.data())
def test_any_order_of_events_and_scores_gives_the_as_of_join_figures(
    txs: list[Any], scores: list[Any], data: st.DataObject
) -> None:
    steps = [("tx", s) for s in txs] + [("score", s) for s in scores]
    order = data.draw(st.permutations(steps))
    proc, _ = _run(order)
    assert _figures(proc) == _by_rule(txs, scores)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(txs=_txs, scores=_scores, data=st.data())
def test_windows_and_figures_do_not_depend_on_when_scores_are_read(
    txs: list[Any], scores: list[Any], data: st.DataObject
) -> None:
    """Events in one fixed (Kafka) order, scores interleaved anywhere: every figure and
    every window record (the last per key) equals reading all scores first."""
    score_order = data.draw(st.permutations(scores))
    slots = sorted(data.draw(st.lists(st.integers(0, len(txs)), min_size=len(scores),
                                      max_size=len(scores))))  # fmt: skip
    steps: list[tuple[str, Any]] = []
    k = 0
    for i, spec in enumerate(txs):
        while k < len(slots) and slots[k] == i:
            steps.append(("score", score_order[k]))
            k += 1
        steps.append(("tx", spec))
    steps.extend(("score", s) for s in score_order[k:])
    first, first_emitted = _run([("score", s) for s in scores] + [("tx", s) for s in txs])
    later, later_emitted = _run(steps)
    restated = "dfip_restated_events_total"
    a = {n: s for n, s in first.states[P].counters.values.items() if n != restated}
    b = {n: s for n, s in later.states[P].counters.values.items() if n != restated}
    assert a == b
    assert first_emitted == later_emitted
    assert {k: w.counters.values for k, w in first.states[P].windows.items()} == {
        k: w.counters.values for k, w in later.states[P].windows.items()
    }


def test_applications_decisions_and_active_loans_move_by_band() -> None:
    proc = processor()
    feed(
        proc,
        LOANS,
        LoanApplicationSubmitted(
            **loan_common(t("10:00"), "L1"),
            principal=Decimal("1000.00"),
            currency="CNY",
            annual_rate=Decimal("0.04"),
            term_months=12,
            collateral="credit",
            inclusive_sme=True,
        ),
        LoanRejected(**loan_common(t("11:00"), "L1"), reason=None),
        LoanApplicationSubmitted(
            **loan_common(t("12:00"), "L2"),
            principal=Decimal("500.00"),
            currency="CNY",
            annual_rate=Decimal("0.04"),
            term_months=12,
            collateral="credit",
            inclusive_sme=True,
        ),
    )
    feed(
        proc,
        LOANS,
        disbursed(t("13:00"), "L2", "500.00", rate="0.0435"),
        repayment(t("14:00"), "L2", "120.00"),
        disbursed(t("13:30"), "L3", "80.00"),
        LoanClosed(**loan_common(t("15:00"), "L3")),
        disbursed(t("09:00"), "L4", "70.00"),  # before the assessment: stays unscored
    )
    proc.finish_batch()
    _score(proc, t("10:30"), "85", sector="F")  # l4 from 10:30
    assert value(proc, "dfip_loan_applications_total", ("fintech", "unscored")) == 1
    assert value(proc, "dfip_loan_applications_total", ("fintech", "l4")) == 1
    assert value(proc, "dfip_loan_decisions_total", ("fintech", "l4", "rejected")) == 1
    # the active loan disbursed at 13:00 moves with everything it has counted; L3, closed
    # before the assessment was read, keeps the band joined at its disbursement
    l4, un = ("fintech", "l4"), ("fintech", "unscored")
    assert value(proc, "dfip_restated_events_total", (LOANS,)) == 3
    assert value(proc, "dfip_loans_active", l4) == 1
    assert value(proc, "dfip_loans_active", un) == 1  # L4
    assert value(proc, "dfip_loan_disbursements_total", (*l4, "hangzhou")) == 1
    assert value(proc, "dfip_loan_disbursements_total", (*un, "hangzhou")) == 2
    assert value(proc, "dfip_loan_disbursed_principal_yuan_total", (*l4, "hangzhou")) == 50000
    assert value(proc, "dfip_loan_disbursed_rate_weighted_yuan_total", l4) == 50000 * 435
    assert value(proc, "dfip_loan_repaid_principal_yuan_total", l4) == 12000
    assert value(proc, "dfip_loan_repaid_principal_yuan_total", un) == 0
    assert value(proc, "dfip_loan_outstanding_principal_yuan", (*l4, "normal")) == 38000
    # a second assessment of the same band moves nothing of the loans
    _score(proc, t("12:30"), "90", sector="G")
    assert value(proc, "dfip_restated_events_total", (LOANS,)) == 3


def test_a_busy_enterprise_grows_in_place_and_restates_exactly() -> None:
    proc = processor()
    for i in range(300):  # 300 instants x 22 bytes: past the in-place threshold
        feed(proc, TRANSACTIONS, tx(BASE + timedelta(minutes=i), "1.00"))
    state = proc.states[P]
    assert isinstance(state.contributions[HANGZHOU], bytearray)
    assert len(restate.entries_of(state, HANGZHOU)) == 300
    proc.finish_batch()
    _score(proc, BASE + timedelta(minutes=100), "55")
    assert value(proc, "dfip_transactions_total", ("bank", "l2", "hangzhou", "credit")) == 200
    assert value(proc, "dfip_transactions_total", ("bank", "unscored", "hangzhou", "credit")) == 100
    assert value(proc, "dfip_restated_events_total", (TRANSACTIONS,)) == 200


def test_an_enterprise_keeps_at_most_max_entries(monkeypatch: Any) -> None:
    monkeypatch.setattr(restate, "MAX_ENTRIES", 5)
    proc = processor()
    for i in range(8):
        feed(proc, TRANSACTIONS, tx(BASE + timedelta(minutes=i), "1.00"))
    feed(proc, TRANSACTIONS, tx(BASE + timedelta(minutes=2), "1.00"))  # an existing entry
    state = proc.states[P]
    entries = restate.entries_of(state, HANGZHOU)
    assert sorted((occ - entries_base(entries), v) for (occ, _), v in entries.items()) == [
        (0, (1, 100)),
        (60_000_000, (1, 100)),
        (120_000_000, (2, 200)),
        (180_000_000, (1, 100)),
        (240_000_000, (1, 100)),
    ]
    proc.finish_batch()
    _score(proc, BASE, "55")  # the three events beyond the cap stay unscored
    assert value(proc, "dfip_transactions_total", ("bank", "l2", "hangzhou", "credit")) == 6
    assert value(proc, "dfip_transactions_total", ("bank", "unscored", "hangzhou", "credit")) == 3


def entries_base(entries: dict[Any, Any]) -> int:
    return min(occ for occ, _ in entries)
