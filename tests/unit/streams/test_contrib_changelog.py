"""Restatement contributions in the changelog: delta records for appends, whole records
(with tombstones for the deltas) for rewrites, and every way of replaying them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.aggregate import restate
from streams.reference.scores import ScoreTable, ScoreVersion
from streams.state import changelog
from streams.state.changelog import apply_record, dirty_records, finish_restore
from streams.state.local import RocksStore
from streams.state.partition import PartitionState

Log = list[tuple[bytes, bytes | None]]
U1, U2 = "91330106MA2B3C4D5X", "91330203MA7X8Y9W6Y"
_LABELS = [
    ("bank", "credit", False, "unscored", "unknown"),
    ("bank", "debit", False, "unscored", "unknown"),
    ("fintech", "credit", False, "l2", "C"),
]
_S = 1_000_000


def _record(state: PartitionState, uscc: str, minute: int, labels: int = 0) -> None:
    restate.record(state, uscc, minute * 60 * _S, _LABELS[labels], 100, None)


def _rs(log: Log) -> list[tuple[str, bool]]:
    return [(k.decode(), v is not None) for k, v in log if k.startswith(b"rs:")]


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


def _entries(state: PartitionState) -> dict[str, Any]:
    return {u: restate.entries_of(state, u) for u in state.contributions}


def test_appends_to_a_busy_enterprise_write_only_the_new_entries() -> None:
    state = PartitionState(0)
    for m in range(20):
        _record(state, U1, m)
    log = dirty_records(state)
    assert _rs(log) == [(f"rs:{U1}", True)]  # new: whole
    _record(state, U1, 100)
    _record(state, U1, 100)
    _record(state, U1, 101, labels=1)
    delta = dirty_records(state)
    assert _rs(delta) == [(f"rs:{U1}:1", True)]
    alone = PartitionState(0)  # the delta's entries on their own
    restate.from_value(alone, U1, dict(delta)[f"rs:{U1}:1".encode()])
    assert restate.to_json(alone, U1) == [
        [6000 * _S, *_LABELS[0], 2, 200],
        [6060 * _S, *_LABELS[1], 1, 100],
    ]
    log += delta
    _record(state, U1, 102)
    log += dirty_records(state)
    assert _rs(log)[-1] == (f"rs:{U1}:2", True)
    for replay in (log, _compacted(log), _rocks(log)):
        restored = _replay(replay)
        assert _entries(restored) == _entries(state)
        assert restored.contrib_deltas[U1] & 0xFFFF == 2


def test_a_rewrite_tombstones_the_deltas_it_supersedes() -> None:
    state = PartitionState(0)
    for m in range(20):
        _record(state, U1, m)
    log = dirty_records(state)
    for m in (30, 31):
        _record(state, U1, m)
        log += dirty_records(state)
    restate.sweep(state, 3 * 60 * _S)  # drops minutes 0-2: a rewrite
    rewrite = dirty_records(state)
    assert _rs(rewrite) == [(f"rs:{U1}", True), (f"rs:{U1}:1", False), (f"rs:{U1}:2", False)]
    assert U1 not in state.contrib_deltas
    log += rewrite
    _record(state, U1, 40)
    log += dirty_records(state)
    assert _rs(log)[-1] == (f"rs:{U1}:1", True)  # numbering starts again
    compacted = _compacted(log)
    assert sum(1 for k, _ in compacted if k.startswith(f"rs:{U1}".encode())) == 3
    for replay in (log, compacted, _rocks(log)):
        assert _entries(_replay(replay)) == _entries(state)


def test_the_rocksdb_copy_restores_deltas_and_their_rewrites(tmp_path: Path) -> None:
    pytest.importorskip("rocksdict")
    state = PartitionState(0)
    store = RocksStore(tmp_path)
    offset = 0
    for m in range(40):
        _record(state, U1, m)
        if m % 7 == 6:
            restate.sweep(state, (m - 30) * 60 * _S)
        records = dirty_records(state)
        offset += len(records)
        store.save(0, records, offset)
    assert U1 in state.contrib_deltas  # the last batches wrote deltas
    items, next_offset = store.load(0)
    assert next_offset == offset
    assert _entries(_replay(list(items))) == _entries(state)
    store.close()


def test_a_record_from_before_deltas_restores_and_continues() -> None:
    """Migration: an old changelog holds only whole rs:<uscc> records, rows as to_json."""
    rows = [[m * 60 * _S, *_LABELS[0], 1, 100] for m in range(20)]
    old: Log = [(f"rs:{U1}".encode(), orjson.dumps(rows)), (f"rs:{U2}".encode(), None)]
    restored = _replay(old)
    assert restate.to_json(restored, U1) == rows
    assert U1 not in restored.contrib_deltas
    assert U2 not in restored.contributions
    _record(restored, U1, 50)
    log = old + dirty_records(restored)
    assert _rs(log)[-1] == (f"rs:{U1}:1", True)
    assert _entries(_replay(log)) == _entries(restored)


def test_small_enterprises_and_outgrown_deltas_get_whole_records() -> None:
    state = PartitionState(0)
    _record(state, U1, 0)
    dirty_records(state)
    _record(state, U1, 1)  # fewer than DELTA_MIN_ENTRIES before the batch
    assert _rs(dirty_records(state)) == [(f"rs:{U1}", True)]
    assert U1 not in state.contrib_deltas
    for m in range(2, changelog.DELTA_MIN_ENTRIES):
        _record(state, U1, m)
    dirty_records(state)
    for m in range(100, 100 + changelog.DELTA_MIN_ENTRIES + 1):  # more than the whole record
        _record(state, U1, m)
    assert _rs(dirty_records(state)) == [(f"rs:{U1}", True)]


# ---- property: random appends, restatements, FX amendments, sweeps and restores ----------

_op = st.one_of(
    st.tuples(st.just("tx"), st.integers(0, 1), st.integers(0, 40), st.integers(0, 2)),
    st.tuples(st.just("score"), st.integers(0, 1), st.integers(0, 40), st.integers(0, 2)),
    st.tuples(st.just("fx"), st.integers(0, 1), st.integers(0, 40), st.integers(-50, 50)),
    st.tuples(st.just("sweep"), st.integers(0, 1), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("commit"), st.just(0), st.just(0), st.just(0)),
    st.tuples(st.just("restore"), st.integers(0, 2), st.just(0), st.just(0)),
)
_BANDS = [("l1", "C"), ("l3", "F"), ("l5", "C")]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(_op, max_size=120))
def test_every_replay_of_the_changelog_restores_the_live_entries(
    ops: list[tuple[str, int, int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # small limits, so that deltas, outgrown deltas and the entry cap all happen
    monkeypatch.setattr(changelog, "_DELTA_MIN_BYTES", 3 * restate.ENTRY_SIZE)
    monkeypatch.setattr(changelog, "MAX_DELTAS", 4)
    monkeypatch.setattr(restate, "MAX_ENTRIES", 12)
    table = ScoreTable()
    live = PartitionState(0)  # never restored: the reference
    worker = PartitionState(0)  # writes the changelog; restored from it now and then
    log: Log = []
    versions = 0

    def commit() -> None:
        dirty_records(live)
        log.extend(dirty_records(worker))
        for replay in (log, _compacted(log), _rocks(log)):
            assert _entries(_replay(replay)) == _entries(live)
        for uscc in (U1, U2):  # bounded: a whole record and at most MAX_DELTAS deltas
            prefix = f"rs:{uscc}".encode()
            assert sum(1 for k, _ in _rocks(log) if k.startswith(prefix)) <= 1 + 4

    for kind, u, minute, arg in ops:
        uscc = (U1, U2)[u % 2]
        if kind == "tx":
            for st_ in (live, worker):
                _record(st_, uscc, minute, arg)
        elif kind == "score":
            versions += 1
            table.add(uscc, ScoreVersion(minute * 60 * _S, versions, *_BANDS[arg]))
            for st_ in (live, worker):
                restate.restate(st_, table, uscc, "hangzhou", minute * 60 * _S, None, 0)
        elif kind == "fx":
            for st_ in (live, worker):
                restate.adjust_fen(st_, uscc, minute * 60 * _S, _LABELS[0][:3], arg)
        elif kind == "sweep":
            for st_ in (live, worker):
                restate.sweep(st_, minute * 60 * _S)
        elif kind == "commit":
            commit()
        else:  # the worker restarts from the changelog (committed state only)
            commit()
            worker = _replay((log, _compacted(log), _rocks(log))[u])
    commit()


def test_packed_records_map_the_writers_label_indices_to_the_restorers() -> None:
    state = PartitionState(0)
    for m in range(12):
        _record(state, U1, m, labels=m % 3)
    log = dirty_records(state)
    _record(state, U1, 50, labels=2)
    log += dirty_records(state)
    assert _rs(log)[-1] == (f"rs:{U1}:1", True)
    restored = PartitionState(0)
    for labels in reversed(_LABELS):  # another table: other indices for the same labels
        restate.record(restored, U2, 0, labels, 1, None)
    for key, value in log:
        apply_record(restored, key, value)
    finish_restore(restored)
    assert restate.entries_of(restored, U1) == restate.entries_of(state, U1)
    assert restored.contrib_deltas[U1] == state.contrib_deltas[U1]


def test_json_deltas_from_before_mix_with_packed_records() -> None:
    """A changelog of the JSON form (whole record and a delta) continued in the packed one."""
    state = PartitionState(0)
    for m in range(10):
        _record(state, U1, m)
    old: Log = [(f"rs:{U1}".encode(), orjson.dumps(restate.to_json(state, U1)))]
    state.dirty_contributions.clear()
    state.contrib_base.clear()
    _record(state, U1, 20, labels=1)
    delta = restate.appended_json(state, U1, 10 * restate.ENTRY_SIZE)
    old.append((f"rs:{U1}:1".encode(), orjson.dumps(delta)))
    restored = _replay(old)
    assert _entries(restored) == _entries(state)
    _record(restored, U1, 21, labels=2)
    _record(state, U1, 21, labels=2)
    log = old + dirty_records(restored)
    assert _rs(log)[-1] == (f"rs:{U1}:2", True)
    assert isinstance(dict(log)[f"rs:{U1}:2".encode()], bytes)
    for replay in (log, _compacted(log), _rocks(log)):
        assert _entries(_replay(replay)) == _entries(state)


def test_packed_records_are_smaller_than_json_rows() -> None:
    state = PartitionState(0)
    for m in range(40):
        _record(state, U1, m, labels=m % 3)
    packed = restate.to_value(state, U1)
    assert packed is not None
    assert len(packed) < len(orjson.dumps(restate.to_json(state, U1))) / 2
