"""The memory benches (bench/worker_memory.py, bench/state_memory.py) at toy sizes, no broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench import state_memory
from bench.enterprises import score_records
from bench.worker_memory import transaction_records
from schemas import decode


def test_one_transaction_per_scored_enterprise_in_time_order() -> None:
    end = datetime(2026, 12, 1, tzinfo=UTC)
    txs = [decode(p.value) for p in transaction_records(50, 119, end)]
    scored = {decode(p.value).enterprise_uscc for p in score_records(50)}  # type: ignore[union-attr]
    assert {t.enterprise_uscc for t in txs} == scored  # type: ignore[union-attr]
    times = [t.occurred_at for t in txs]  # type: ignore[union-attr]
    assert times == sorted(times)
    assert (end - times[0]).days == 119
    assert times[-1] < end


def test_state_breakdown_runs(capsys: pytest.CaptureFixture[str]) -> None:
    state_memory.measure(40, 119, rules=True)
    out = capsys.readouterr().out
    for part in ("score table", "restatement contributions", "recent flows", "rules state"):
        assert part in out
