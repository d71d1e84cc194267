"""FX order independence (issue 20): events with no rate in force wait (parked), counted
events are restated when a rate read later changes the rate in force, so the figures do not
depend on whether a rate or an event was read first. No broker: the processor alone.

2026-02-13 is a Friday; the Spring Festival closure of 2026 runs 15-23 February.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.simulator.model import FX as SIM_FX
from adapters.simulator.model import FxFact, LoanFact, Record, ScoreFact, TxFact
from adapters.simulator.oracle import Oracle
from schemas.catalog import partition_for
from schemas.codec import encode
from schemas.events import FxRate
from schemas.money import to_fen
from streams.processor import DEADLETTER, FX, LOANS, METRICS, SCORES, TRANSACTIONS, Processor
from streams.reference.fx import FxTable
from streams.reference.scores import ScoreTable
from streams.state.changelog import apply_record, dirty_records, finish_restore
from streams.state.partition import PartitionState
from tests.support.workers import oracle_figures
from tests.unit.streams.helpers import (
    HANGZHOU,
    disbursed,
    feed,
    processor,
    record,
    repayment,
    score,
    tx,
    value,
)

P = partition_for(HANGZHOU)
AMOUNT = "dfip_transaction_amount_yuan_total"
CROSS = "dfip_crossborder_ecommerce_amount_yuan_total"
PENDING = "dfip_fx_pending_events"
RESTATED = "dfip_restated_events_total"


def _at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 2, day, hh, mm, tzinfo=UTC)


def _rate(day: int, rate: str, published: datetime | None = None, n: int = 0) -> FxRate:
    return FxRate(
        event_id=f"fx-{day}-{rate}-{n}",
        source="cfets",
        currency="USD",
        rate_date=date(2026, 2, day),
        rate_to_cny=Decimal(rate),
        published_at=published or _at(day, 1, 15),  # 09:15 Beijing
    )


RATES = [
    _rate(12, "6.9000"),
    _rate(13, "7.0000"),
    # a correction of Friday's parity, published later the same day
    _rate(13, "7.0500", _at(13, 8), n=1),
    _rate(24, "7.2000"),
]
# (occurred_at, USD amount, customs mode)
PAYMENTS = [
    (_at(12, 20), "3.00", None),  # Fri 04:00 Beijing: Thursday's rate
    (_at(14, 4), "1.00", "9610"),  # Saturday: Friday's (corrected) rate
    (_at(18, 3), "2.00", None),  # in the closure: Friday's
    (_at(23, 15), "4.00", "9710"),  # 23:00 Beijing 23 Feb: Friday's, 10 days old
    (_at(24, 0, 30), "8.00", None),  # 08:30 Beijing 24 Feb: none in force, ever (waits)
    (_at(24, 2), "16.00", None),  # 10:00 Beijing: Tuesday's
]


def _in_force(at: datetime) -> Decimal | None:
    table = FxTable()
    for r in RATES:
        table.put(r.currency, r.rate_date, r.rate_to_cny, r.published_at)
    return table.rate_at("USD", at)


def _feed_rate(proc: Processor, ev: FxRate) -> None:
    proc.process_fx(record(FX, encode(ev), partition=0))
    proc.finish_batch()


# a USD loan disbursed on the Saturday, partly repaid in the closure (fed after payment 2)
LOAN = [
    disbursed(_at(14, 5), "L-USD", "1000.00", currency="USD"),
    repayment(_at(17, 5), "L-USD", "400.00", currency="USD"),
]


def _feed_payment(proc: Processor, i: int) -> None:
    if i == 2:
        for ev in LOAN:
            feed(proc, LOANS, ev)
    at, amount, cm = PAYMENTS[i]
    kw: dict[str, Any] = {} if cm is None else {"customs_mode": cm}
    feed(proc, TRANSACTIONS, tx(at, amount, currency="USD", event_id=f"pay-{i}", **kw))
    proc.finish_batch()


def _restart(proc: Processor, changelog: list[tuple[bytes, bytes | None]]) -> Processor:
    """A new worker restores P from the changelog written so far (its FX table has read every
    rate the old one had, as a real restore reads dfip.fx to its end)."""
    for p, state in proc.states.items():
        if p == P:
            changelog.extend(dirty_records(state))
    fresh = processor(partitions=tuple(q for q in proc.states if q != P))
    state = PartitionState(P)
    for key, val in changelog:
        apply_record(state, key, val)
    finish_restore(state)
    # a restore rebuilds the score table silently; the same table stands in for that here
    fresh.states[P], fresh.scores[P] = state, proc.scores.get(P, ScoreTable())
    fresh.fx = proc.fx
    fresh.restored(P)
    return fresh


def _figures(proc: Processor) -> dict[str, dict[tuple[str, ...], int]]:
    c = proc.states[P].counters.values
    return {n: dict(s) for n, s in c.items() if n != RESTATED}


def _windows(proc: Processor) -> dict[Any, Any]:
    return {k: w.counters.values for k, w in proc.states[P].windows.items()}


def _run(rate_slots: list[int], restart_at: int | None) -> Processor:
    """Payments in order; rate i read just before payment rate_slots[i] (len: after all)."""
    proc = processor()
    changelog: list[tuple[bytes, bytes | None]] = []
    proc.process_score(record(SCORES, encode(score(_at(1, 0), "85"))), counted=True)
    for slot in range(len(PAYMENTS) + 1):
        for i, r in enumerate(RATES):
            if rate_slots[i] == slot:
                _feed_rate(proc, r)
        if slot == restart_at:
            proc = _restart(proc, changelog)
        if slot < len(PAYMENTS):
            _feed_payment(proc, slot)
    return proc


def _by_rule() -> dict[tuple[str, ...], int]:
    total = sum(
        to_fen(Decimal(amount), rate)
        for at, amount, _ in PAYMENTS
        if (rate := _in_force(at)) is not None
    )
    return {("bank", "l4", "hangzhou", "credit"): total}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(0, len(PAYMENTS)), min_size=len(RATES), max_size=len(RATES)),
    st.one_of(st.none(), st.integers(0, len(PAYMENTS))),
)
def test_figures_do_not_depend_on_when_rates_are_read(
    slots: list[int], restart_at: int | None
) -> None:
    # rates are read in dfip.fx order (one partition): the slots only interleave them
    slots = sorted(slots)
    got = _run(slots, restart_at)
    first = _run([0] * len(RATES), None)
    assert _figures(got) == _figures(first)
    assert _windows(got) == _windows(first)
    assert got.states[P].counters.values[AMOUNT] == _by_rule()
    # the loan is booked at Friday's corrected rate whatever the order
    fen = to_fen(Decimal("1000.00"), Decimal("7.05"))
    assert value(got, "dfip_loan_disbursed_principal_yuan_total") == fen
    assert value(got, "dfip_loan_repaid_principal_yuan_total") == fen - to_fen(
        Decimal("600.00"), Decimal("7.05")
    )
    assert value(got, "dfip_loan_outstanding_principal_yuan") == to_fen(
        Decimal("600.00"), Decimal("7.05")
    )
    # the 08:30 payment of 24 Feb never has a rate in force: it waits, in every order
    assert value(got, PENDING) == 1


def test_a_rate_read_after_the_events_restates_them_and_releases_parked_ones() -> None:
    proc = processor()
    _feed_rate(proc, RATES[0])  # Thursday only
    for i in range(3):
        _feed_payment(proc, i)
    # Thursday's rate is in force (10-day bound) for all three until Friday's is read
    assert value(proc, AMOUNT) == to_fen(Decimal("6.00"), Decimal("6.9"))
    _feed_payment(proc, 3)  # 23 Feb 23:00 Beijing: Thursday's is 11 days old → parked
    assert value(proc, PENDING) == 1
    _feed_rate(proc, RATES[1])  # Friday: restates two, releases the parked one
    assert value(proc, PENDING) == 0
    assert value(proc, RESTATED, (TRANSACTIONS,)) == 2
    assert value(proc, AMOUNT) == 2070 + 700 + 1400 + 2800
    assert value(proc, CROSS) == 700 + 2800
    _feed_rate(proc, RATES[2])  # the correction: 7.05 from Friday's first publication
    assert value(proc, AMOUNT) == 2070 + 705 + 1410 + 2820
    assert value(proc, CROSS) == 705 + 2820
    assert value(proc, RESTATED, (TRANSACTIONS,)) == 5
    # flow accounting holds with the parked event applied
    assert value(proc, "dfip_events_processed_total", (TRANSACTIONS,)) == 4
    assert not [o for o in proc.take_outputs() if o.topic == DEADLETTER]


def test_a_re_sent_parked_event_is_a_duplicate() -> None:
    proc = processor()
    _feed_payment(proc, 1)
    _feed_payment(proc, 1)
    assert value(proc, PENDING) == 1
    assert value(proc, "dfip_events_duplicate_total", (TRANSACTIONS,)) == 1
    _feed_rate(proc, RATES[1])
    assert value(proc, AMOUNT) == 700
    assert value(proc, "dfip_events_processed_total", (TRANSACTIONS,)) == 1


def test_a_closed_window_amended_by_a_rate_is_emitted_again() -> None:
    proc = processor()
    _feed_rate(proc, RATES[1])
    _feed_payment(proc, 1)  # Saturday 04:00 UTC
    feed(proc, TRANSACTIONS, tx(_at(14, 6), "1.00", event_id="cny-1"))  # closes the 04:00 hour
    proc.finish_batch()
    first = {o.key: o for o in proc.take_outputs() if o.topic == METRICS}
    assert any(k is not None and k.startswith(b"1h:") for k in first)
    _feed_rate(proc, RATES[2])
    again = [o for o in proc.take_outputs() if o.topic == METRICS]
    assert again, "the amended hourly window is emitted again"
    doc = orjson.loads(again[0].value or b"{}")
    amounts = {tuple(r["labels"]): r["value"] for r in doc["figures"]["tx_amount_fen"]}
    assert amounts[("bank", "unscored")] == 705


def test_parked_events_survive_a_restore() -> None:
    proc = processor()
    _feed_payment(proc, 1)
    assert value(proc, PENDING) == 1
    restored = _restart(proc, [])
    assert value(restored, PENDING) == 1
    _feed_rate(restored, RATES[1])
    assert value(restored, AMOUNT) == 700
    assert value(restored, PENDING) == 0


def test_re_reading_rates_after_a_rewind_restates_nothing() -> None:
    """A restore of the FX accounting partition rewinds dfip.fx: re-reading the original
    and then the corrected Friday rate must not flip counted events back and forth."""
    proc = processor()
    records = [record(FX, encode(r), partition=0) for r in RATES[1:3]]
    for r in records:
        proc.process_fx(r)
    _feed_payment(proc, 1)
    before = _figures(proc)
    for r in records:  # the same records again, at their offsets
        proc.process_fx(r)
    proc.finish_batch()
    assert _figures(proc) == before
    assert value(proc, RESTATED) == 0


def test_a_partition_dropped_after_a_rate_touched_it_is_not_committed() -> None:
    proc = processor()
    _feed_payment(proc, 1)  # parked on P
    proc.process_fx(record(FX, encode(RATES[1]), partition=0))  # touches P
    del proc.states[P]  # a rebalance dropped it before the batch ended
    proc.finish_batch()
    assert P not in proc.touched


# ---- the same permutations through the simulator's oracle ---------------------------------

_COMPARED = (
    AMOUNT,
    CROSS,
    "dfip_transactions_total",
    "dfip_loan_disbursed_principal_yuan_total",
    "dfip_loan_repaid_principal_yuan_total",
    "dfip_loan_outstanding_principal_yuan",
    "dfip_loan_inclusive_sme_disbursed_principal_yuan_total",
    "dfip_events_processed_total",
    PENDING,
    RESTATED,
)


def _oracle_run(rate_slots: list[int]) -> dict[str, dict[tuple[str, ...], int]]:
    oracle = Oracle()
    sc = score(_at(1, 0), "85")
    oracle.observe(
        Record(
            SCORES, P, P, ScoreFact(sc.event_id, HANGZHOU, sc.assessed_at, sc.overall_score, "C")
        )
    )

    def rate(r: FxRate) -> None:
        fact = FxFact(r.event_id, r.currency, r.rate_date, r.rate_to_cny, r.published_at)
        oracle.observe(Record(SIM_FX, 0, 0, fact))

    def payment(i: int) -> None:
        if i == 2:
            for ev in LOAN:
                kind = ev.event_type.value
                amount = ev.principal if kind == "disbursed" else ev.principal_amount
                fact = LoanFact(
                    ev.event_id, HANGZHOU, ev.occurred_at, "fintech", kind, ev.loan_id,
                    amount=amount, currency="USD",
                    annual_rate=getattr(ev, "annual_rate", None),
                    inclusive_sme=getattr(ev, "inclusive_sme", None),
                )  # fmt: skip
                oracle.observe(Record(LOANS, P, P, fact))
        at, amount, cm = PAYMENTS[i]
        fact = TxFact(f"pay-{i}", HANGZHOU, at, "bank", "credit", Decimal(amount), "USD", cm)
        oracle.observe(Record(TRANSACTIONS, P, P, fact))

    for slot in range(len(PAYMENTS) + 1):
        for i, r in enumerate(RATES):
            if rate_slots[i] == slot:
                rate(r)
        if slot < len(PAYMENTS):
            payment(slot)
    return oracle_figures(oracle.result({}))


def _proc_figures(proc: Processor) -> dict[str, dict[tuple[str, ...], int]]:
    out: dict[str, dict[tuple[str, ...], int]] = {}
    for name in _COMPARED:
        series: dict[tuple[str, ...], int] = {}
        for state in proc.states.values():
            for labels, v in state.counters.values.get(name, {}).items():
                series[labels] = series.get(labels, 0) + v
        out[name] = {k: v for k, v in series.items() if v}
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(PAYMENTS)), min_size=len(RATES), max_size=len(RATES)))
def test_the_oracle_computes_the_same_figures_in_every_order(slots: list[int]) -> None:
    slots = sorted(slots)
    got = _proc_figures(_run(slots, None))
    want = _oracle_run(slots)
    for name in _COMPARED:
        if name == "dfip_events_processed_total":  # the oracle sees no FX accounting partition
            continue
        assert got[name] == want.get(name, {}), name
