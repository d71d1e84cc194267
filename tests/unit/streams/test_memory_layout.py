"""The compact layouts that keep a million scored enterprises under 500 MB (bench/RESULTS.md,
"1 million scored enterprises: memory"): they must read back exactly what was stored."""

from __future__ import annotations

import sys

from hypothesis import given
from hypothesis import strategies as st

from streams.aggregate import restate
from streams.query import recent
from streams.reference.scores import _IDX_MASK, ScoreTable, ScoreVersion
from streams.state.partition import PartitionState

U = "913301020000000006"
_DAY_US = 86_400_000_000
BANDS = ("l1", "l2", "l3")


@given(
    st.integers(-(2**62), 2**62),
    st.one_of(st.integers(-(2**65), 2**65), st.text(max_size=8)),
    st.sampled_from(("l0", "l4", "unscored")),
    st.sampled_from(("C", "K", "unknown")),
)
def test_a_version_reads_back_what_was_stored(at: int, eid: int | str, band: str, sec: str) -> None:
    v = ScoreVersion(at, eid, band, sec, U)
    assert (v.assessed_us, v.event_id, v.band, v.sector, v.uscc) == (at, eid, band, sec, U)
    assert v.labels == (band, sec)
    assert v == ScoreVersion(at, eid, band, sec)


def test_a_worker_version_is_one_packed_int() -> None:
    """The worker's case (a 64-bit id hash, a time after 1970): one int, shared labels."""
    a = ScoreVersion(1_790_000_000_000_000, 2**64 - 1, "l2", "C")
    b = ScoreVersion(1_790_000_000_000_001, 7, "l2", "C")
    assert isinstance(a._data, int)
    # shared labels: both versions hold the index of one (band, sector) tuple (compiled, the
    # property returns a new tuple of the same strings each time)
    assert a._data & _IDX_MASK == b._data & _IDX_MASK
    assert a.labels == b.labels == ("l2", "C")
    assert a < b
    assert not hasattr(a, "__dict__")
    assert sys.getsizeof(a) <= 32 + 16  # object header and two slots (+ GC header: 48)


def test_a_restore_keeps_one_uscc_string_per_enterprise() -> None:
    """Contributions, their delta counts and recent flows restored from the changelog are
    re-keyed by one string per enterprise: the score table's own where it keeps one (an
    enterprise held as objects), else the first store's."""
    for eid in (1, "not-a-hash"):  # the flat table (no key string) and an object
        table = ScoreTable()
        key = "".join([U[:9], U[9:]])
        table.add(key, ScoreVersion(0, eid, "l2", "C"))
        state = PartitionState(0)
        state.watermarks["dfip.transactions"] = 10 * _DAY_US
        fresh = ["".join([U[:9], U[9:]]) for _ in range(3)]
        restate.record(state, fresh[0], 10 * _DAY_US, ("bank", "credit", True, "l2", "C"), 5, None)
        state.contrib_deltas[fresh[1]] = 1
        recent.record(state, fresh[2], 10 * _DAY_US, "credit", 5)
        before = (
            dict(state.contributions),
            dict(state.contrib_deltas),
            dict(state.recent_flows),
        )
        restate.share_keys(state, table)
        keys = [
            next(iter(store))
            for store in (state.contributions, state.contrib_deltas, state.recent_flows)
        ]
        assert keys[0] is keys[1] is keys[2]
        assert keys[0] is (key if isinstance(eid, str) else fresh[0])
        assert (state.contributions, state.contrib_deltas, state.recent_flows) == before
        # an enterprise the table does not know keeps its own key
        state.recent_flows["X"] = b""
        restate.share_keys(state, table)
        assert "X" in state.recent_flows


@given(
    st.lists(
        st.tuples(st.integers(0, 2**52), st.integers(0, 2**64 - 1), st.sampled_from(BANDS)),
        max_size=12,
    ),
    st.lists(st.integers(-1, 2**52 + 1), max_size=12),
)
def test_packed_assessments_join_as_the_plain_ones(
    adds: list[tuple[int, int, str]], queries: list[int]
) -> None:
    """The worker's packed versions (int ids) give the same as-of join as plain ones."""
    packed, plain = ScoreTable(3), ScoreTable(3)
    for at, eid, band in adds:
        packed.add(U, ScoreVersion(at, eid, band, "C"))
        plain.add(U, ScoreVersion(at, f"{eid}", band, "C"))
        assert packed.scored == plain.scored
    for ts in queries + [at for at, _, _ in adds]:
        assert packed.as_of(U, ts) == plain.as_of(U, ts)
    for _, eid, _ in adds:
        assert packed.has(U, eid) == plain.has(U, f"{eid}")
