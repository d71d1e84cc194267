"""The per-event helpers made cheaper for the hot path (issue 18) against the code they
replaced: ``restate.floor_of``, ``restate.record``, ``recent.record``, ``DedupMemory.add``,
the arrival clock the processor moves inline (``DedupMemory.observe``), and ``flush_tally``
summing its groups per series. The references below are the previous implementations."""

from __future__ import annotations

import struct
from array import array
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.catalog import LOANS, TRANSACTIONS, partition_for
from schemas.codec import encode
from streams.aggregate import restate
from streams.aggregate.apply import flush_tally
from streams.processor import Processor, Record
from streams.query import recent
from streams.reference.scores import ScoreTable
from streams.state.dedup import DAY_MS, ID_HASH, DedupMemory, id_hash
from streams.state.partition import PartitionState
from tests.unit.streams.helpers import HANGZHOU, tx

_DAY_US = 86_400_000_000
_T0 = 20_000 * _DAY_US  # 2024-10-04, µs
_LABELS = [
    ("bank", "credit", True, "l2", "C"),
    ("bank", "debit", False, "unscored", "unknown"),
    ("fintech", "credit", True, "l1", "F"),
]
_USCCS = ["A", "B", "C"]
_AT = datetime(2026, 1, 5, tzinfo=UTC)


# ---- references: the code before issue 18's inlining ------------------------------------


def _floor_of_ref(state: PartitionState, horizon_us: int) -> int | None:
    wms = [w for t in (TRANSACTIONS.name, LOANS.name) if (w := state.watermarks.get(t)) is not None]
    return max(wms) - horizon_us if wms else None


def _restate_record_ref(
    state: PartitionState, uscc: str, occ: int, labels: Any, fen: int, floor: int | None
) -> None:
    entry_s = struct.Struct("<qHiq")
    if floor is not None and occ < floor:
        return
    idx = restate._label_index(state, labels)
    entry = entry_s.pack(occ, idx, 1, fen)
    packed = state.contributions.get(uscc)
    if packed is not None and len(packed) >= restate.MAX_ENTRIES * entry_s.size:
        entries = restate._unpack(packed, floor)
        key = (occ, idx)
        if key not in entries and len(entries) >= restate.MAX_ENTRIES:
            if len(entries) * entry_s.size < len(packed):
                restate._store(state, uscc, entries)
            return
        n, f = entries.get(key, (0, 0))
        entries[key] = (n + 1, f + fen)
        restate._store(state, uscc, entries)
        return
    if uscc not in state.dirty_contributions:
        state.contrib_base[uscc] = len(packed) if packed is not None else 0
    if packed is None:
        state.contributions[uscc] = entry
    elif isinstance(packed, bytearray):
        packed += entry
    else:
        grown = packed + entry
        state.contributions[uscc] = bytearray(grown) if len(grown) > 2048 else grown
    state.dirty_contributions.add(uscc)


def _recent_record_ref(
    state: PartitionState, uscc: str, ts_us: int, direction: str, fen: int
) -> None:
    entry_s = recent.ENTRY
    day = recent.beijing_day(ts_us)
    floor = recent._floor(state)
    if floor is not None:
        if day < floor:
            return
        if state.recent_floor is None or floor > state.recent_floor:
            recent._sweep(state, floor)
    credit = direction == "credit"
    flows = state.recent_flows
    packed = flows.get(uscc)
    if packed is not None and len(packed) >= entry_s.size:
        last = len(packed) - entry_s.size
        d, cc, cf, dc, df = entry_s.unpack_from(packed, last)
        if d == day:
            entry = (d, cc + 1, cf + fen, dc, df) if credit else (d, cc, cf, dc + 1, df + fen)
            flows[uscc] = packed[:last] + entry_s.pack(*entry)
            state.dirty_recent.add(uscc)
            return
        if d < day:
            c = 1 if credit else 0
            flows[uscc] = packed + entry_s.pack(day, c, fen * c, 1 - c, fen * (1 - c))
            state.dirty_recent.add(uscc)
            return
    entries = {e[0]: list(e) for e in entry_s.iter_unpack(packed)} if packed else {}
    row = entries.setdefault(day, [day, 0, 0, 0, 0])
    if credit:
        row[1] += 1
        row[2] += fen
    else:
        row[3] += 1
        row[4] += fen
    flows[uscc] = b"".join(entry_s.pack(*entries[d]) for d in sorted(entries))
    state.dirty_recent.add(uscc)


def _dedup_add_ref(mem: DedupMemory, h: int, day: int | None = None) -> None:
    if h in mem.ids:
        return
    d = mem.today if day is None else day
    mem.ids.add(h)
    mem.days.setdefault(d, array("Q")).append(h)
    mem._pending.setdefault(d, []).append(h)


# ---- properties -----------------------------------------------------------------------------

_wm = st.none() | st.integers(-(2**62), 2**62)


@settings(max_examples=200, deadline=None)
@given(_wm, _wm, st.integers(0, 2**40))
def test_floor_of_equals_the_reference(
    tx_wm: int | None, loans_wm: int | None, horizon: int
) -> None:
    state = PartitionState(0)
    if tx_wm is not None:
        state.watermarks[TRANSACTIONS.name] = tx_wm
    if loans_wm is not None:
        state.watermarks[LOANS.name] = loans_wm
    state.watermarks["other"] = 2**63  # another topic's watermark never counts
    assert restate.floor_of(state, horizon) == _floor_of_ref(state, horizon)


def _contrib_view(state: PartitionState) -> Any:
    return (
        {k: bytes(v) for k, v in state.contributions.items()},
        {k: type(v) for k, v in state.contributions.items()},
        state.contrib_base,
        state.dirty_contributions,
        state.contrib_labels,
    )


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_USCCS),
            st.integers(0, 400),  # minutes: repeats merge at the cap
            st.integers(0, len(_LABELS) - 1),
            st.integers(0, 10**9),
            st.none() | st.integers(0, 200),  # floor in minutes
            st.booleans(),  # end of a batch (the changelog clears the dirty marks)
        ),
        max_size=120,
    ),
    st.sampled_from([3, 10, 10_000]),
)
def test_restate_record_equals_the_reference(rows: list[Any], cap: int) -> None:
    old_cap = restate.MAX_ENTRIES
    restate.MAX_ENTRIES = cap
    try:
        ref, new = PartitionState(0), PartitionState(0)
        for uscc, minute, label, fen, floor_min, end in rows:
            occ = _T0 + minute * 60_000_000
            floor = None if floor_min is None else _T0 + floor_min * 60_000_000
            _restate_record_ref(ref, uscc, occ, _LABELS[label], fen, floor)
            restate.record(new, uscc, occ, _LABELS[label], fen, floor)
            assert _contrib_view(new) == _contrib_view(ref)
            if end:
                for s in (ref, new):
                    s.dirty_contributions.clear()
                    s.contrib_base.clear()
    finally:
        restate.MAX_ENTRIES = old_cap


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_USCCS),
            st.integers(-40 * 24, 60 * 24),  # hours around _T0
            st.sampled_from(["credit", "debit"]),
            st.integers(0, 10**12),
            st.none() | st.integers(-40 * 24, 60 * 24),  # the watermark moves (hours)
            st.booleans(),  # set as it is (a restore may lower it), not raised to it
        ),
        max_size=80,
    )
)
def test_recent_record_equals_the_reference(rows: list[Any]) -> None:
    ref, new = PartitionState(0), PartitionState(0)
    for uscc, hour, direction, fen, wm_hour, set_as_is in rows:
        if wm_hour is not None:
            wm = _T0 + wm_hour * 3_600_000_000
            for s in (ref, new):
                old = s.watermarks.get(TRANSACTIONS.name)
                raised = wm if old is None or set_as_is else max(old, wm)
                s.watermarks[TRANSACTIONS.name] = raised
        ts = _T0 + hour * 3_600_000_000 + 7
        _recent_record_ref(ref, uscc, ts, direction, fen)
        recent.record(new, uscc, ts, direction, fen)
        assert new.recent_flows == ref.recent_flows
        assert new.dirty_recent == ref.dirty_recent
        assert new.recent_floor == ref.recent_floor


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.integers(0, 12 * _DAY_US),
            st.booleans(),
            st.integers(0, 10**12),
        ),
        max_size=60,
    )
)
def test_recent_record_in_any_day_order_equals_the_reference(
    txs: list[tuple[str, int, bool, int]],
) -> None:
    """No watermark (so no floor, every day kept): statements arriving out of Beijing-day
    order are spliced into an enterprise's packed days exactly as the reference's
    sort-and-repack leaves them."""
    ref, new = PartitionState(0), PartitionState(0)
    for uscc, offset, credit, fen in txs:
        direction = "credit" if credit else "debit"
        _recent_record_ref(ref, uscc, _T0 + offset, direction, fen)
        recent.record(new, uscc, _T0 + offset, direction, fen)
        assert new.recent_flows == ref.recent_flows
    assert new.dirty_recent == ref.dirty_recent == {u for u, *_ in txs}


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.none() | st.integers(-5, 10 * DAY_MS),  # a record timestamp
            st.integers(0, 30),  # an id (repeats are duplicates)
            st.none() | st.integers(0, 12),  # an explicit day
        ),
        max_size=80,
    )
)
def test_dedup_add_equals_the_reference(rows: list[Any]) -> None:
    ref, new = DedupMemory(), DedupMemory()
    for stamp, h, day in rows:
        assert new.observe(stamp) == ref.observe(stamp)
        _dedup_add_ref(ref, h, day)
        new.add(h, day)
        assert (new.ids, new.days, new._pending, new.clock_ms) == (
            ref.ids,
            ref.days,
            ref._pending,
            ref.clock_ms,
        )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.none() | st.integers(-5, 60 * DAY_MS), st.integers(0, 50)),
        min_size=1,
        max_size=40,
    )
)
def test_the_processor_moves_the_arrival_clock_as_observe_does(rows: list[Any]) -> None:
    """``Processor.process`` moves the dedup memory's arrival clock inline; the clock and
    what expires equal ``observe`` + ``expire`` driven by hand (a retention of 2 days)."""
    proc = Processor(grace_us=600 * 1_000_000, dedup_retention_days=2)
    home = partition_for(HANGZHOU)
    proc.states[home] = PartitionState(home)
    proc.scores[home] = ScoreTable()
    ref = DedupMemory()
    expired: list[Any] = []
    for offset, (stamp, minute) in enumerate(rows):
        value = encode(tx(_AT + timedelta(minutes=minute)))
        rec = Record(TRANSACTIONS.name, home, offset, HANGZHOU.encode(), value, (), stamp)
        proc.process(rec)
        if ref.observe(stamp):
            expired.extend(ref.expire(2, proc.states[home].dedup_max_entries))
        mem = proc.states[home].memory(TRANSACTIONS.name)
        assert mem.clock_ms == ref.clock_ms
        assert mem.today == ref.today
    assert [(d, s) for _, d, s in proc.states[home].expired_dedup] == expired


def test_id_hash_is_the_inlined_hash() -> None:
    for key in ("8f8bed49-c68e-5c76-a85e-a5c56f27a35f", "origin dfip.transactions 3 17", "é"):
        assert id_hash(key) == ID_HASH(key.encode())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["bank", "fintech"]),
            st.sampled_from(["l1", "l2", "unscored"]),
            st.sampled_from(["hangzhou", "other"]),
            st.sampled_from(["credit", "debit"]),
            st.sampled_from(["C", "F", "unknown"]),
            st.none() | st.sampled_from(["9610", "9710"]),
            st.integers(1, 5),
            st.integers(0, 10**12),
        ),
        max_size=40,
    )
)
def test_flush_tally_per_series_equals_one_update_per_group(rows: list[Any]) -> None:
    """``flush_tally`` sums the groups per series before updating the counters: the same
    figures as updating them group by group (the code before)."""
    from schemas import figure_names as fn

    state, ref = PartitionState(0), PartitionState(0)
    for it, band, region, direction, sector, cm, n, fen in rows:
        key = (it, band, region, direction, sector, cm)
        acc = state.tally.tx.setdefault(key, [0, 0])
        acc[0] += n
        acc[1] += fen
    for (it, band, region, direction, sector, cm), (n, fen) in state.tally.tx.items():
        c = ref.counters
        c.add(fn.TRANSACTIONS_TOTAL, (it, band, region, direction), n)
        c.add(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, (it, band, region, direction), fen)
        c.add(fn.TRANSACTIONS_BY_SECTOR_TOTAL, (sector, band), n)
        if cm is not None:
            c.add(fn.CROSSBORDER_ECOMMERCE_PAYMENTS_TOTAL, (cm, it), n)
            c.add(fn.CROSSBORDER_ECOMMERCE_AMOUNT_YUAN_TOTAL, (cm, it), fen)
    flush_tally(state)
    assert state.counters.values == ref.counters.values
    assert not state.tally


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_USCCS),
            st.integers(0, 50),  # assessed at
            st.sampled_from(["l1", "l2", "l3"]),
            st.sampled_from(["C", "F"]),
        ),
        max_size=30,
    ),
    st.lists(st.tuples(st.sampled_from([*_USCCS, "D"]), st.integers(-1, 60)), max_size=20),
    st.integers(1, 4),
)
def test_score_join_equals_as_of_and_canonical(
    adds: list[Any], queries: list[Any], history: int
) -> None:
    """``ScoreTable.join`` (the processor's one lookup per event) is ``as_of`` and
    ``canonical`` together, for single versions and version lists alike."""
    from streams.reference.scores import ScoreVersion

    table = ScoreTable(history)
    for i, (uscc, at, band, sector) in enumerate(adds):
        table.add("".join(uscc), ScoreVersion(at, i, band, sector))  # a copy of the string
        for q, ts in queries:
            got = table.join(q, ts)
            assert got == (*table.as_of(q, ts), table.canonical(q))
            assert got[2] is table.canonical(q)
