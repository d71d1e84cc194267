"""Minimal inputs on which the worker and docs/metrics.md once disagreed, or on which the
docs left the answer open (found by tests/contract/test_contract_oracle.py's oracle and
probes); each now pins the documented answer."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson

from streams.processor import METRICS, Record
from tests.contract.contract_inputs import (
    BASE,
    DIAGNOSTICS,
    ENTERPRISES,
    Written,
    fx_doc,
    ms,
    new_processor,
    run,
    score_doc,
    tx_doc,
    without,
)
from tests.contract.doc_oracle import FX, SCORES, TX, home_of

U = ENTERPRISES[0]
P = home_of(U)


def test_a_correction_across_the_amount_bound_gives_one_of_the_two_documented_answers() -> None:
    """docs/metrics.md, FX "At the bounds": read between the two rates, the transaction is
    counted at 7.1 and the correction, worth 10^15 fen or more, does not restate it; read
    after both, it is dead-lettered. Every order gives one of those two, and the oracle's."""
    at = BASE + timedelta(hours=2)
    day = (at + timedelta(hours=8)).date()
    recs = [
        Written(FX, 0, fx_doc("f1", "USD", day, "7.1", BASE - timedelta(hours=1)), None),
        Written(TX, P, tx_doc("t1", U, at, "1400000000000", "USD"), ms(at)),  # 9.94e14 fen
        Written(FX, 0, fx_doc("f2", "USD", day, "7.15", BASE), None),  # 1.001e15 fen
    ]
    amounts = set()
    for seed in range(8):  # orders: tx between the two rates, or after both
        result = run(recs, seed)
        assert without(result.processor, DIAGNOSTICS) == without(result.oracle, DIAGNOSTICS)
        rows = result.processor.get("dfip_transaction_amount_yuan_total", {})
        amounts.add(sum(rows.values()))
    assert amounts == {994_000_000_000_000, 0}  # both orders occur among the 8 seeds


def test_an_amended_window_is_emitted_again_when_the_batch_also_drops_it() -> None:
    u = ENTERPRISES[1]
    p = home_of(u)
    a, b, c = BASE, BASE + timedelta(days=1), BASE + timedelta(days=60)
    proc = new_processor()

    def batch(offset: int, *events: tuple[str, datetime]) -> list[dict[str, Any]]:
        recs = [
            Record(TX, p, offset + i, None, tx_doc(eid, u, at, "1", "CNY"), (), ms(at))
            for i, (eid, at) in enumerate(events)
        ]
        proc.process_batch(recs)
        proc.finish_batch()
        return [
            orjson.loads(o.value) for o in proc.take_outputs() if o.topic == METRICS and o.value
        ]

    first = batch(0, ("a", a), ("b", b))  # b closes a's hour: emitted, unscored
    key = [w for w in first if w["size"] == "1h" and w["window_start"].startswith("2026-03-02T16")]
    assert key
    assert key[0]["figures"]["tx_count"][0]["labels"] == ["bank", "unscored"]
    # the next batch: its catch-up reads an assessment dated before a (a is restated to l0
    # while its hour is still held), then the batch moves the watermark 60 days on
    score = score_doc("s", u, a - timedelta(days=1), "5", "C")
    proc.process_score(Record(SCORES, p, 0, None, score, (), ms(a)), counted=True)
    assert (
        proc.states[p].counters.values["dfip_transactions_total"][
            ("bank", "l0", "ningbo", "credit")
        ]
        == 2
    )
    later = batch(2, ("c", c))
    again = [
        w for w in later if w["size"] == "1h" and w["window_start"].startswith("2026-03-02T16")
    ]
    assert again, "the amended hour of a is emitted again"
    assert again[0]["figures"]["tx_count"][0]["labels"] == ["bank", "l0"]
