"""The committed snapshot taken incrementally (series unchanged since the last snapshot are
shared with it) equals a whole copy, key order included, and no snapshot changes after it
was taken, however adds, commits (mark_clean) and snapshots interleave."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.state.partition import Counters

_NAMES = ["a_total", "b_total", "c", "d"]
_ADD = st.tuples(
    st.just("add"),
    st.sampled_from(_NAMES),
    st.tuples(st.sampled_from(["x", "y", "z"])),
    st.integers(-3, 3),
)
_STEP = st.one_of(_ADD, st.just(("clean",)), st.just(("snap",)), st.just(("overlay",)))


def _whole(c: Counters) -> list[tuple[str, list[tuple[Any, int]]]]:
    return [(name, list(series.items())) for name, series in c.values.items()]


def _items(snap: dict[str, dict[Any, int]]) -> list[tuple[str, list[tuple[Any, int]]]]:
    return [(name, list(series.items())) for name, series in snap.items()]


@settings(max_examples=300)
@given(st.lists(_STEP, max_size=60))
def test_incremental_snapshot_equals_a_whole_copy(steps: list[tuple[Any, ...]]) -> None:
    c = Counters(track=True)
    taken: list[tuple[dict[str, dict[Any, int]], list[Any]]] = []
    for step in steps:
        if step[0] == "add":
            c.add(step[1], step[2], step[3])
        elif step[0] == "clean":
            c.mark_clean()
        elif step[0] == "overlay":  # a restore's delta, set around add
            c.overlay_json([["d", [[["x"], 7]]]])
        else:
            snap = c.snapshot()
            assert _items(snap) == _whole(c)
            taken.append((snap, copy.deepcopy(_items(snap))))
    for snap, then in taken:  # nothing written into a snapshot after it was taken
        assert _items(snap) == then
    assert _items(c.snapshot()) == _whole(c)


def test_unchanged_series_are_shared_with_the_last_snapshot() -> None:
    c = Counters(track=True)
    c.add("a", ("x",), 1)
    c.add("b", ("x",), 1)
    c.mark_clean()  # a commit: the changelog first, then the snapshot
    first = c.snapshot()
    c.mark_clean()
    c.add("b", ("y",), 2)
    c.mark_clean()
    second = c.snapshot()
    assert second["a"] is first["a"]
    assert second["b"] is not first["b"]
    assert second == {"a": {("x",): 1}, "b": {("x",): 1, ("y",): 2}}
    assert first == {"a": {("x",): 1}, "b": {("x",): 1}}


def test_untracked_counters_copy_every_series() -> None:
    c = Counters()
    c.add("a", ("x",), 1)
    first = c.snapshot()
    second = c.snapshot()
    assert first == second
    assert first["a"] is not second["a"]
