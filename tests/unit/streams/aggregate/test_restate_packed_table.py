"""The packed rs: value's label table (cached JSON rows) is byte for byte orjson's table."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from streams.aggregate import restate
from streams.state.partition import PartitionState

_LABELS = st.tuples(
    st.sampled_from(["bank", "fintech", "银行"]),
    st.sampled_from(["credit", "debit", "approved"]),
    st.booleans(),
    st.sampled_from(["unscored", "l1", "l2"]),
    st.sampled_from(["unknown", "C", '"q\\']),
)


@given(st.lists(st.tuples(st.sampled_from("UV"), _LABELS), min_size=1, max_size=30))
def test_table_is_orjsons_table_of_the_labels_used(events: list) -> None:  # type: ignore[type-arg]
    state = PartitionState(0)
    for i, (uscc, labels) in enumerate(events):
        restate.record(state, uscc, 1_000 + i, labels, 100, None)
        for u in {u for u, _ in events[: i + 1]}:  # interleave: the cache grows as it goes
            value = restate.to_value(state, u)
            assert value is not None
            size = int.from_bytes(value[1:5], "little")
            used = sorted({state.contrib_index[lab] for v, lab in events[: i + 1] if v == u})
            table = orjson.dumps([[idx, *state.contrib_labels[idx]] for idx in used])
            assert value[5 : 5 + size] == table


@given(
    st.lists(
        st.tuples(
            st.integers(-(2**62), 2**62),
            st.one_of(st.integers(0, 5), st.integers(250, 2**16 - 1)),  # beyond one byte too
            st.integers(0, 2**31 - 1),
            st.integers(-(2**63), 2**63 - 1),
        ),
        max_size=40,
    )
)
def test_labels_used_are_the_label_indices_of_the_entries(entries: list) -> None:  # type: ignore[type-arg]
    packed = b"".join(restate._ENTRY.pack(*e) for e in entries)
    assert restate._labels_used(packed) == sorted({idx for _, idx, _, _ in entries})
    assert restate._labels_used(bytearray(packed)) == sorted({idx for _, idx, _, _ in entries})
