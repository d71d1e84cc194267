"""The per-record pipeline: join, FX, loans, dedup, lateness, windows, dead letters."""

from __future__ import annotations

import base64

import orjson

from schemas.catalog import partition_for
from schemas.codec import encode
from schemas.events import LoanClosed, LoanDelinquencyChanged, LoanWrittenOff
from streams.processor import DEADLETTER, FX, LATE, LOANS, METRICS, SCORES, TRANSACTIONS, Record
from streams.state.changelog import apply_record, dirty_records, finish_restore
from streams.state.dedup import id_hash
from streams.state.partition import PartitionState
from tests.unit.streams.helpers import (
    HANGZHOU,
    NINGBO,
    disbursed,
    feed,
    fx,
    loan_common,
    processor,
    record,
    repayment,
    score,
    t,
    tx,
    value,
)


def _score(proc, ev, uscc=HANGZHOU):
    proc.process_score(record(SCORES, encode(ev), uscc=uscc), counted=True)


def test_as_of_join_uses_the_assessment_valid_at_event_time() -> None:
    proc = processor()
    _score(proc, score(t("09:00"), "45"))  # l2
    _score(proc, score(t("12:00"), "85"))  # l4
    feed(proc, TRANSACTIONS, tx(t("08:00")), tx(t("10:00")), tx(t("13:00")))
    # an event between the two assessments, read after both, still joins the older one
    feed(proc, TRANSACTIONS, tx(t("11:59")))
    by_band = {
        band: value(proc, "dfip_transactions_total", ("bank", band, "hangzhou", "credit"))
        for band in ("unscored", "l2", "l4")
    }
    assert by_band == {"unscored": 1, "l2": 2, "l4": 1}
    assert value(proc, "dfip_transactions_by_sector_total", ("C", "l2")) == 2
    assert value(proc, "dfip_transactions_by_sector_total", ("unknown", "unscored")) == 1
    p = partition_for(HANGZHOU)
    assert proc.scores[p].scored == {("l4", "C"): 1}


def test_fx_conversion_to_fen_and_missing_rate_is_dead_lettered() -> None:
    proc = processor()
    proc.process_fx(record(FX, encode(fx(t("00:00").date(), "USD", "7.1234")), partition=0))
    feed(proc, TRANSACTIONS, tx(t("10:00"), "10.01", currency="USD"))
    # 11 days after the only rate: beyond DFIP_WORKER_FX_MAX_AGE_DAYS (10); it waits for a
    # rate (parked) until the restatement floor passes it (here at once: no horizon)
    proc.restate_horizon_us = 0
    feed(proc, TRANSACTIONS, tx(t("10:00", day=16), "5.00", currency="USD"))
    feed(proc, TRANSACTIONS, tx(t("11:00", day=16), "0.00"))
    proc.finish_batch()
    # 10.01 x 7.1234 = 71.305234 yuan → 7130.5234 fen → 7131
    assert value(proc, "dfip_transaction_amount_yuan_total") == 7131
    letters = [o for o in proc.take_outputs() if o.topic == DEADLETTER]
    assert len(letters) == 1
    doc = orjson.loads(letters[0].value)
    assert doc["error_class"] == "fx_rate_missing"
    assert value(proc, "dfip_events_deadlettered_total", (TRANSACTIONS, "fx_rate_missing")) == 1


def test_loan_lifecycle_keeps_the_book_exact() -> None:
    proc = processor()
    feed(proc, LOANS, disbursed(t("10:00"), "L1", "1000.00", rate="0.05"))
    feed(proc, LOANS, repayment(t("11:00"), "L1", "400.00"))
    assert (
        value(proc, "dfip_loan_outstanding_principal_yuan", ("fintech", "unscored", "normal"))
        == 60000
    )
    assert value(proc, "dfip_loan_repaid_principal_yuan_total") == 40000
    assert value(proc, "dfip_loan_disbursed_rate_weighted_yuan_total") == 100000 * 500
    feed(proc, LOANS, LoanDelinquencyChanged(**loan_common(t("12:00"), "L1"), days_past_due=95))
    assert (
        value(proc, "dfip_loan_outstanding_principal_yuan", ("fintech", "unscored", "substandard"))
        == 60000
    )
    assert value(proc, "dfip_loan_past_due_principal_yuan", ("fintech", "90_plus")) == 60000
    assert value(proc, "dfip_borrowers_active") == 1
    feed(
        proc,
        LOANS,
        LoanWrittenOff(**loan_common(t("13:00"), "L1"), amount="600.00", currency="CNY"),
    )
    assert value(proc, "dfip_loan_written_off_principal_yuan_total") == 60000
    for gauge in (
        "dfip_loan_outstanding_principal_yuan",
        "dfip_loan_past_due_principal_yuan",
        "dfip_loans_active",
        "dfip_borrowers_active",
    ):
        assert value(proc, gauge) == 0
    # the loan has ended: a later repayment is for an unknown loan
    feed(proc, LOANS, repayment(t("14:00"), "L1", "1.00"))
    assert value(proc, "dfip_events_deadlettered_total", (LOANS, "unknown_loan")) == 1


def test_repayment_at_booked_rate_ends_at_zero_and_overpayment_is_rejected() -> None:
    proc = processor()
    proc.process_fx(record(FX, encode(fx(t("00:00").date(), "USD", "7.1")), partition=0))
    feed(proc, LOANS, disbursed(t("10:00"), "L2", "333.33", currency="USD"))
    # repayments on a day without a USD rate: the booked rate is used
    feed(proc, LOANS, repayment(t("10:00", day=9), "L2", "111.11", currency="USD"))
    feed(proc, LOANS, repayment(t("10:00", day=9), "L2", "500.00", currency="USD"))
    feed(proc, LOANS, repayment(t("10:00", day=9), "L2", "222.22", currency="USD"))
    assert value(proc, "dfip_loan_outstanding_principal_yuan") == 0
    assert (
        value(proc, "dfip_loan_repaid_principal_yuan_total")
        == value(proc, "dfip_loan_disbursed_principal_yuan_total")
        == 236664
    )
    assert value(proc, "dfip_events_deadlettered_total", (LOANS, "invalid_field")) == 1
    feed(proc, LOANS, LoanClosed(**loan_common(t("10:00", day=10), "L2")))
    assert value(proc, "dfip_loans_active") == 0


def test_duplicates_are_counted_once() -> None:
    proc = processor()
    ev = tx(t("10:00"), event_id="same")
    feed(proc, TRANSACTIONS, ev, ev, ev)
    assert value(proc, "dfip_transactions_total") == 1
    assert value(proc, "dfip_events_received_total") == 3
    assert value(proc, "dfip_events_duplicate_total") == 2
    assert value(proc, "dfip_events_processed_total") == 1


def test_bad_records_are_dead_lettered_with_their_original_bytes() -> None:
    proc = processor()
    bad = [b"\xff\x00garbage", b'{"kind": "transaction"}', b"[1,2", encode(score(t("09:00"), "50"))]
    future = orjson.loads(encode(tx(t("10:00"))))
    future["schema_version"] = 99
    bad.append(orjson.dumps(future))
    for raw in bad:
        proc.process(record(TRANSACTIONS, raw))
    letters = [orjson.loads(o.value) for o in proc.take_outputs() if o.topic == DEADLETTER]
    assert [base64.b64decode(d["original_b64"]) for d in letters] == bad
    classes = [d["error_class"] for d in letters]
    assert classes[-2:] == ["invalid_shape", "unsupported_version"]
    assert all(d["reason"] for d in letters)
    assert value(proc, "dfip_events_received_total") == 5
    assert value(proc, "dfip_events_deadlettered_total") == 5


def test_late_events_count_live_but_not_in_windows() -> None:
    proc = processor(grace_s=600)
    feed(proc, TRANSACTIONS, tx(t("10:05"), "1.00"), tx(t("12:00"), "2.00"))
    feed(proc, TRANSACTIONS, tx(t("10:30"), "4.00"))  # 90 min behind the watermark: late
    feed(proc, TRANSACTIONS, tx(t("11:55"), "8.00"))  # within grace: on time
    proc.finish_batch()
    assert value(proc, "dfip_transaction_amount_yuan_total") == 1500
    assert value(proc, "dfip_events_late_total") == 1
    outs = proc.take_outputs()
    assert [o.topic for o in outs].count(LATE) == 1
    windows = [orjson.loads(o.value) for o in outs if o.topic == METRICS]
    # only the 10:00 hour window has closed (watermark 12:00 ≥ 11:00 + 10 min)
    assert [(w["size"], w["window_start"]) for w in windows] == [
        ("1h", "2026-01-05T10:00:00+00:00")
    ]
    assert windows[0]["figures"]["tx_amount_fen"] == [
        {"labels": ["bank", "unscored"], "value": 100}
    ]


def test_wrongly_partitioned_events_are_forwarded_then_applied_once() -> None:
    proc = processor()
    home = partition_for(NINGBO)
    wrong = (home + 1) % 12
    ev = tx(t("10:00"), "3.00", uscc=NINGBO)
    proc.process(record(TRANSACTIONS, encode(ev), uscc=NINGBO, partition=wrong))
    (fwd,) = proc.take_outputs()
    assert (fwd.topic, fwd.partition) == (TRANSACTIONS, home)
    assert value(proc, "dfip_transactions_total") == 0
    proc.process(
        record(TRANSACTIONS, fwd.value, uscc=NINGBO, partition=home, headers=tuple(fwd.headers))
    )
    assert value(proc, "dfip_transactions_total", ("bank", "unscored", "ningbo", "credit")) == 1
    assert value(proc, "dfip_events_received_total") == 1  # counted where it landed only


def test_changelog_round_trip_restores_the_same_state() -> None:
    proc = processor()
    _score(proc, score(t("09:00"), "65"))
    feed(proc, TRANSACTIONS, tx(t("10:00")), tx(t("11:00"), event_id="dup"))
    feed(proc, LOANS, disbursed(t("10:00"), "L9", "5000.00"))
    proc.finish_batch()
    p = partition_for(HANGZHOU)
    restored = PartitionState(p)
    for key, val in dirty_records(proc.states[p]):
        apply_record(restored, key, val)
    finish_restore(restored)
    original = proc.states[p]
    assert restored.counters.values == original.counters.values
    assert restored.offsets == original.offsets
    assert restored.watermarks == original.watermarks
    assert restored.loans == original.loans
    assert restored.borrowers == original.borrowers
    assert restored.borrower_loans == original.borrower_loans
    assert restored.memory(TRANSACTIONS).seen(id_hash("dup"))
    # records below the checkpoint are skipped after a restore
    proc.states[p] = restored
    before = value(proc, "dfip_events_received_total")
    proc.process(Record(TRANSACTIONS, p, 0, HANGZHOU.encode(), b"already applied"))
    assert value(proc, "dfip_events_received_total") == before


def test_a_forwarded_event_never_recreates_a_window_its_home_has_dropped() -> None:
    """A copy that landed on a partition with no watermark is "on time" there; at home the
    hour it belongs to was emitted and dropped days ago. It counts live, and the emitted
    window record (compacted by key) is not replaced by a window holding it alone."""
    proc = processor()
    home = partition_for(NINGBO)
    wrong = (home + 1) % 12
    feed(proc, TRANSACTIONS, *(tx(t(f"10:{m:02d}"), uscc=NINGBO) for m in (5, 10, 15)), uscc=NINGBO)
    feed(proc, TRANSACTIONS, tx(t("10:00", day=8), uscc=NINGBO), uscc=NINGBO)  # 3 days on
    proc.finish_batch()
    feed(proc, TRANSACTIONS, tx(t("11:00", day=8), uscc=NINGBO), uscc=NINGBO)
    proc.finish_batch()  # the emitted hour is dropped at a batch after the one emitting it
    emitted = [orjson.loads(o.value) for o in proc.take_outputs() if o.topic == METRICS]
    hour = [
        w for w in emitted if w["size"] == "1h" and w["window_start"].startswith("2026-01-05T10")
    ]
    assert hour[0]["figures"]["tx_count"][0]["value"] == 3
    proc.process(
        record(TRANSACTIONS, encode(tx(t("10:30"), uscc=NINGBO)), uscc=NINGBO, partition=wrong)
    )
    (fwd,) = proc.take_outputs()
    proc.process(
        record(TRANSACTIONS, fwd.value, uscc=NINGBO, partition=home, headers=tuple(fwd.headers))
    )
    proc.finish_batch()
    assert value(proc, "dfip_transactions_total", ("bank", "unscored", "ningbo", "credit")) == 6
    assert value(proc, "dfip_events_late_total") == 0  # not late where it landed
    assert not [o for o in proc.take_outputs() if o.topic == METRICS]


def test_a_parked_transaction_does_not_make_a_loan_event_with_its_id_a_duplicate() -> None:
    """Duplicates are per topic-partition: an id waiting for its FX rate on the transactions
    topic says nothing about the loans topic of the same partition."""
    proc = processor()
    feed(proc, TRANSACTIONS, tx(t("10:00"), "5.00", currency="USD", event_id="shared-id"))
    assert value(proc, "dfip_fx_pending_events") == 1  # no USD rate: it waits
    loan = disbursed(t("10:05"), "L-1", "1000.00").model_copy(update={"event_id": "shared-id"})
    feed(proc, LOANS, loan)
    assert value(proc, "dfip_events_duplicate_total") == 0
    assert value(proc, "dfip_loan_disbursements_total") == 1
    feed(proc, TRANSACTIONS, tx(t("10:00"), "5.00", currency="USD", event_id="shared-id"))
    assert value(proc, "dfip_events_duplicate_total") == 1  # on its own topic it is one
