"""streams/query/recent.py ``record`` splices a transaction of an earlier Beijing day into
an enterprise's packed days (statements arrive out of day order) instead of unpacking and
re-sorting them all: the packed bytes must be exactly what the sort-and-repack gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.query import recent
from streams.state.partition import PartitionState

_DAY = recent.DAY_US
_BASE = 20_000 * _DAY


def _reference(packed: bytes | None, day: int, credit: bool, fen: int) -> bytes:
    """The sort-and-repack path record took for every day before the newest."""
    entries = {e[0]: list(e) for e in recent.ENTRY.iter_unpack(packed)} if packed else {}
    row = entries.setdefault(day, [day, 0, 0, 0, 0])
    if credit:
        row[1] += 1
        row[2] += fen
    else:
        row[3] += 1
        row[4] += fen
    return b"".join(recent.ENTRY.pack(*entries[d]) for d in sorted(entries))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.integers(0, 12 * _DAY),
            st.booleans(),
            st.integers(0, 10**12),
        ),
        max_size=60,
    )
)
def test_record_in_any_day_order_equals_sort_and_repack(
    txs: list[tuple[str, int, bool, int]],
) -> None:
    state = PartitionState(0)  # no watermark: no floor, every day is kept
    expected: dict[str, bytes] = {}
    for uscc, offset, credit, fen in txs:
        ts = _BASE + offset
        recent.record(state, uscc, ts, "credit" if credit else "debit", fen)
        expected[uscc] = _reference(expected.get(uscc), recent.beijing_day(ts), credit, fen)
        assert bytes(state.recent_flows[uscc]) == expected[uscc]
    assert state.dirty_recent == set(expected)
