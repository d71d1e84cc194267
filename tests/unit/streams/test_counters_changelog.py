"""The counters' changelog layout round-trips, the older row layout still restores, and the
changelog's ctr / ctr:<seq> records restore the live counters however they are replayed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.state import changelog
from streams.state.changelog import apply_record, dirty_records, finish_restore
from streams.state.local import RocksStore
from streams.state.partition import Counters, PartitionState, Window

_SERIES = st.dictionaries(
    st.sampled_from(["dfip_transactions_total", "dfip_loan_applications_total", "g"]),
    st.dictionaries(
        st.tuples(st.sampled_from(["bank", "fintech", "A", "东部"]), st.text(max_size=3)),
        st.integers(-(10**18), 10**18).filter(bool),
        min_size=1,
        max_size=5,
    ),
    max_size=3,
)


@given(_SERIES)
def test_round_trip_through_json(values: dict[str, dict[tuple[str, ...], int]]) -> None:
    c = Counters()
    for name, series in values.items():
        for labels, value in series.items():
            c.add(name, labels, value)
    back = Counters.from_json(orjson.loads(orjson.dumps(c.to_json())))
    assert back.values == c.values


@given(_SERIES)
def test_older_rows_restore_the_same(values: dict[str, dict[tuple[str, ...], int]]) -> None:
    old_rows = [
        [name, list(labels), value]
        for name, series in values.items()
        for labels, value in series.items()
    ]
    back = Counters.from_json(orjson.loads(orjson.dumps(old_rows)))
    assert back.values == {n: s for n, s in values.items() if s}


# ---- the counters in the dfip.state changelog: deltas of the changed series ---------------

Log = list[tuple[bytes, bytes | None]]
_A = ("bank", "l1")
_B = ("fintech", "l2")


def _replay(records: Log) -> PartitionState:
    state = PartitionState(0)
    for key, value in records:
        apply_record(state, key, value)
    finish_restore(state)
    return state


def _compacted(log: Log) -> Log:
    """What log compaction may leave: the newest record of each key, in offset order."""
    last = {key: i for i, (key, _) in enumerate(log)}
    return [rec for i, rec in enumerate(log) if last[rec[0]] == i]


def _rocks(log: Log) -> Log:
    """The RocksDB local copy: newest value per key, tombstones deleted, in key order."""
    kept: dict[bytes, bytes] = {}
    for key, value in log:
        if value is None:
            kept.pop(key, None)
        else:
            kept[key] = value
    return sorted(kept.items())


def _ctr(log: Log) -> list[tuple[bytes, bool]]:
    return [(k, v is not None) for k, v in log if k == b"ctr" or k.startswith(b"ctr:")]


def _check(log: Log, live: PartitionState) -> None:
    for replay in (log, _compacted(log), _rocks(log)):
        assert _replay(replay).counters.values == live.counters.values


def test_a_commit_writes_only_the_changed_series_after_the_first_whole_record() -> None:
    state = PartitionState(0)
    for i in range(30):
        state.counters.add("n", ("bank", str(i)), i + 1)
    log = dirty_records(state)
    assert _ctr(log) == [(b"ctr", True)]
    state.counters.add("n", ("bank", "3"), 5)
    state.counters.add("n", ("bank", "4"), -5)  # gone: 0 in the delta
    state.counters.add("m", _A, 7)
    delta = dirty_records(state)
    assert _ctr(delta) == [(b"ctr:1", True)]
    rows = orjson.loads(dict(delta)[b"ctr:1"] or b"")
    assert sorted((n, tuple(lab), v) for n, items in rows for lab, v in items) == [
        ("m", _A, 7),
        ("n", ("bank", "3"), 9),
        ("n", ("bank", "4"), 0),
    ]
    assert _ctr(dirty_records(state)) == []  # nothing changed: no counters record
    _check(log + delta, state)


def test_deltas_outgrowing_their_budget_are_replaced_by_a_whole_record() -> None:
    state = PartitionState(0)
    state.counters.add("n", _A, 1)
    log = dirty_records(state)
    seen: list[bytes] = []
    for i in range(40):
        state.counters.add("n", ("x", str(i)), 1)  # each delta about as big as the whole
        batch = dirty_records(state)
        written = [k for k, live in _ctr(batch) if live]
        if written == [b"ctr"]:  # a whole record tombstones every delta before it
            assert _ctr(batch)[1:] == [(b"ctr:%d" % i, False) for i in range(1, len(seen) + 1)]
            seen = []
        else:  # the deltas after it are numbered from 1
            assert written == [b"ctr:%d" % (len(seen) + 1)]
            seen += written
        log += batch
        _check(log, state)
    assert len(seen) < 30  # rewritten on the way
    kept = [k for k, _ in _ctr(_rocks(log))]
    assert len(kept) <= 1 + changelog.MAX_CTR_DELTAS


def test_more_than_nine_deltas_replay_in_order_from_a_copy_sorted_by_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ctr:10 sorts before ctr:2: the deltas are applied by number, not as read."""
    monkeypatch.setattr(changelog, "CTR_DELTA_BUDGET", 100)
    state = PartitionState(0)
    for i in range(20):
        state.counters.add("n", ("s", str(i)), 1)
    log = dirty_records(state)
    for i in range(12):
        state.counters.add("n", _A, i + 1)
        log += dirty_records(state)
    assert _ctr(log)[-1] == (b"ctr:12", True)
    assert [k for k, _ in _ctr(_rocks(log))][:3] == [b"ctr", b"ctr:1", b"ctr:10"]
    _check(log, state)
    restored = _replay(_rocks(log))
    assert (restored.ctr_deltas, restored.ctr_delta_bytes) == (12, state.ctr_delta_bytes)
    restored.counters.add("n", _B, 1)  # continues the numbering
    assert _ctr(dirty_records(restored)) == [(b"ctr:13", True)]


@pytest.mark.parametrize("layout", ["pairs", "rows"])
def test_a_whole_record_of_the_current_main_restores_and_is_continued(layout: str) -> None:
    """Migration: changelogs written before hold one whole ctr record per commit (the
    [name, [[labels, value], ...]] layout, or the older [name, labels, value] rows)."""
    old = Counters()
    for i in range(10):
        old.add("dfip_transactions_total", ("bank", "l1", str(i)), 100 + i)
    old.add("g", (), 3)
    rows: Any = (
        old.to_json()
        if layout == "pairs"
        else [[n, list(lab), v] for n, s in old.values.items() for lab, v in s.items()]
    )
    log: Log = [(b"ctr", orjson.dumps(rows)), (b"ctr", orjson.dumps(rows))]
    restored = _replay(log)
    assert restored.counters.values == old.values
    assert restored.ctr_whole_bytes == len(log[-1][1] or b"")
    restored.counters.add("g", (), -3)
    log += dirty_records(restored)
    assert _ctr(log)[-1] == (b"ctr:1", True)
    _check(log, restored)


def test_the_rocksdb_copy_restores_deltas_and_rewrites(tmp_path: Path) -> None:
    pytest.importorskip("rocksdict")
    state = PartitionState(0)
    store = RocksStore(tmp_path)
    offset = 0
    for i in range(60):
        state.counters.add("n", ("x", str(i % 17)), 1 if i % 5 else -1)
        records = dirty_records(state)
        offset += len(records)
        store.save(0, records, offset)
    assert state.ctr_deltas  # the last batches wrote deltas
    items, _ = store.load(0)
    assert _replay(list(items)).counters.values == state.counters.values
    store.close()


def test_window_counters_do_not_track_changes() -> None:
    state = PartitionState(0)
    assert Window().counters.changed is None
    assert state.counters.changed == {}


_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, 6),
            st.integers(-3, 3),
        ),
        st.tuples(st.just("commit"), st.just(""), st.just(0), st.just(0)),
        st.tuples(st.just("restore"), st.just(""), st.integers(0, 2), st.just(0)),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(_ops, st.sampled_from([0.5, 1, 2]), st.integers(1, 12))
def test_every_replay_of_the_changelog_restores_the_live_counters(
    ops: list[tuple[str, str, int, int]], budget: float, max_deltas: int
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(changelog, "CTR_DELTA_BUDGET", budget)
        mp.setattr(changelog, "MAX_CTR_DELTAS", max_deltas)
        live = Counters()  # the reference: never written nor restored
        worker = PartitionState(0)
        log: Log = []

        views: list[tuple[Any, Any]] = []  # committed snapshots and what they showed

        def commit() -> None:
            log.extend(dirty_records(worker))
            assert worker.counters.values == live.values
            snap = worker.counters.snapshot()
            assert snap == live.values
            views.append((snap, {n: dict(s) for n, s in snap.items()}))
            assert all(shown == kept for shown, kept in views)  # never changed later
            for replay in (log, _compacted(log), _rocks(log)):
                assert _replay(replay).counters.values == live.values
            assert len(_ctr(_rocks(log))) <= 1 + max_deltas

        for kind, name, i, amount in ops:
            if kind == "add":
                labels = ("x", str(i)) if i else ()
                live.add(name, labels, amount)
                worker.counters.add(name, labels, amount)
            elif kind == "commit":
                commit()
            else:  # the worker restarts from what was committed
                commit()
                worker = _replay((log, _compacted(log), _rocks(log))[i])
        commit()


def test_counters_that_do_not_track_changes_are_written_whole() -> None:
    state = PartitionState(0)
    state.counters.add("n", _A, 1)
    log = dirty_records(state)
    state.counters = Counters.from_json(state.counters.to_json())  # untracked
    state.counters.add("n", _B, 2)
    batch = dirty_records(state)
    assert _ctr(batch) == [(b"ctr", True)]
    _check(log + batch, state)
