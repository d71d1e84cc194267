"""bench/batch_cost.py's pure parts (the broker-driven part is run by hand, bench/RESULTS.md)
and the latency round's batch counts."""

from __future__ import annotations

import pytest

from bench.batch_cost import event_batches, fit
from bench.latency import batch_counts
from streams.processor import Record


def test_fit_recovers_a_line() -> None:
    fixed, per = fit([(50, 1_000 + 50 * 3.5), (200, 1_000 + 200 * 3.5), (1000, 1_000 + 3_500)])
    assert fixed == pytest.approx(1_000)
    assert per == pytest.approx(3.5)


def test_event_batches_keep_produce_order_within_a_partition() -> None:
    recs = [Record("t", p, o, None, b"", (), 0) for o in range(3) for p in (2, 0, 1)]
    batches = list(event_batches(recs, 4))
    assert [len(b) for b in batches] == [4, 4, 1]
    first = batches[0]
    assert [(r.partition, r.offset) for r in first] == [(0, 0), (1, 0), (2, 0), (2, 1)]
    key = [(r.partition, r.offset) for r in recs]
    assert sorted((r.partition, r.offset) for b in batches for r in b) == sorted(key)


def test_batch_counts_read_the_worker_counters() -> None:
    text = (
        "# TYPE dfip_worker_batches counter\n"
        "dfip_worker_batches_total 33.0\n"
        "dfip_worker_records_total 160776.0\n"
    )
    assert batch_counts(text) == (33, 160_776)
    assert batch_counts("dfip_worker_batches_total 3.0\n") == (None, None)
