"""Restatement entries whose merged sums leave the packed ranges (int64 fen, int32 count)
are split, never refused: a merge at commit or in a batch must not raise struct.error."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas.money import MAX_COUNTED_FEN
from streams.aggregate import restate
from streams.state.changelog import apply_record, dirty_records, finish_restore
from streams.state.partition import PartitionState

U = "91330106MA2B3C4D5X"
LABELS = ("bank", "credit", False, "unscored", "unknown")
AT = 1_700_000_000_000_000


@given(
    n=st.integers(min_value=1, max_value=2**40),
    fen=st.integers(min_value=-(2**80), max_value=2**80),
)
def test_pieces_fit_the_packed_ranges_and_sum_to_the_entry(n: int, fen: int) -> None:
    pieces = restate._pieces(n, fen)
    assert sum(p for p, _ in pieces) == n
    assert sum(f for _, f in pieces) == fen
    assert all(abs(f) < 2**63 and 0 <= p < 2**31 for p, f in pieces)


def test_maximal_events_at_one_microsecond_merge_without_overflow() -> None:
    state = PartitionState(0)
    events = restate.MAX_ENTRIES + 1  # the last one merges the entries at the cap
    for _ in range(events):
        restate.record(state, U, AT, LABELS, MAX_COUNTED_FEN - 1, None)
    total = events * (MAX_COUNTED_FEN - 1)
    assert total >= 2**63  # beyond int64: one packed entry could not hold it
    assert restate.entries_of(state, U) == {(AT, LABELS): (events, total)}
    # the changelog writes it (packed, split) and a restore reads back the same sums
    restored = PartitionState(0)
    for key, value in dirty_records(state):
        apply_record(restored, key, value)
    finish_restore(restored)
    assert restate.entries_of(restored, U) == {(AT, LABELS): (events, total)}
    # an old JSON record with the same sum restores too
    legacy = PartitionState(0)
    restate.from_json(legacy, U, restate.to_json(state, U))
    assert restate.entries_of(legacy, U) == {(AT, LABELS): (events, total)}
    # and the sweep (another merge) keeps it
    restate.sweep(state, AT)
    assert restate.entries_of(state, U) == {(AT, LABELS): (events, total)}
