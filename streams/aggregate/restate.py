"""Restatement of the as-of join for transaction figures (docs/metrics.md, "Restatement").

Per enterprise, a partition keeps its counted transactions' contributions at or after the
restatement floor (the partition's newest input watermark minus the horizon): for each
(occurred_at µs, labels) with labels = (institution type, direction, windowed, band, sector),
the count and CNY fen. They are packed into one ``bytes`` per enterprise (22 bytes an entry;
the labels are an index into the partition's small table of label tuples), because a dict of
tuples per enterprise costs ~500 bytes for a single entry and the score table alone nearly
fills the 500 MB budget at a million enterprises (bench/RESULTS.md). Entries are appended as
transactions are counted; a restatement or the daily sweep merges equal keys and drops those
older than the floor. An append remembers where the enterprise's entries ended before the
batch (``PartitionState.contrib_base``), so the changelog can write only the entries after it
(``appended_json``, restored by ``append_json``); a merge forgets it and the changelog writes
all of them (``to_json`` / ``from_json``; streams/state/changelog.py).

When an assessment arrives (counted pass only), every kept entry at or after
max(assessed_at, floor) is joined again with the enterprise's score versions; entries whose
band or sector changes move from the old labels to the new ones, in the live counters and in
the event-time windows still held. The band and sector an entry was counted under are part of
its labels, so a move never depends on which versions the score table still keeps.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from typing import Any

import orjson

from schemas import figure_names as fn
from schemas.catalog import LOANS, TRANSACTIONS
from streams.aggregate import loans as book
from streams.aggregate.windows import TX_AMOUNT_FEN, TX_COUNT, amend_windows
from streams.reference.scores import ScoreTable
from streams.state.partition import ContribLabels, PartitionState

__all__ = [
    "BAND_ONLY_LOAN_EVENTS",
    "ENTRY_SIZE",
    "MAX_ENTRIES",
    "adjust_fen",
    "append_json",
    "append_value",
    "appended_json",
    "appended_value",
    "entries_of",
    "floor_of",
    "from_json",
    "from_value",
    "record",
    "restate",
    "share_keys",
    "sweep",
    "to_json",
    "to_value",
]

TX_TOPIC = TRANSACTIONS.name
LOANS_TOPIC = LOANS.name
# loan events kept for restatement, in the "direction" slot of the labels (a transaction's
# direction is credit or debit); their fen is 0 and they are never windowed
APPLICATION = "application_submitted"
BAND_ONLY_LOAN_EVENTS = frozenset((APPLICATION, "approved", "rejected", "withdrawn"))
RESTATED = fn.RESTATED_EVENTS_TOTAL
BEYOND = fn.SCORES_BEYOND_RESTATEMENT_TOTAL
# occurred µs, label index, count, fen
_ENTRY = struct.Struct("<qHiq")
ENTRY_SIZE: int = _ENTRY.size
# a packed changelog value: tag, length of the labels table, the table (JSON), the entries
_PACKED_TAG = 1  # a JSON value (the form before) starts with "["
_PACKED_HEAD = struct.Struct("<BI")

# distinct (occurred_at, labels) entries kept per enterprise: its rs:<uscc> changelog record
# (~60 bytes of JSON an entry) stays under ~600 kB, below Kafka's default 1 MB limit
MAX_ENTRIES = 10_000
# beyond this many bytes an enterprise's entries grow in a bytearray (in place) rather than
# a bytes object copied on every append (the small case stays small: 33 vs 57 bytes header)
_GROW_IN_PLACE = 2048
_PACK = _ENTRY.pack

Entries = dict[tuple[int, int], tuple[int, int]]  # (occurred µs, label index) → (count, fen)


def floor_of(state: PartitionState, horizon_us: int) -> int | None:
    """The restatement floor (µs): the larger of the partition's dfip.transactions and
    dfip.loans watermarks, minus the horizon; None before either has a watermark."""
    # called once per counted event: two lookups and a comparison, no list
    wms = state.watermarks
    tx = wms.get(TX_TOPIC)
    loans = wms.get(LOANS_TOPIC)
    if tx is None:
        return None if loans is None else loans - horizon_us
    if loans is None or tx >= loans:
        return tx - horizon_us
    return loans - horizon_us


def _label_index(state: PartitionState, labels: ContribLabels) -> int:
    idx = state.contrib_index.get(labels)
    if idx is None:
        idx = state.contrib_index[labels] = len(state.contrib_labels)
        state.contrib_labels.append(labels)
    return idx


def _unpack(packed: bytes | bytearray, floor: int | None) -> Entries:
    out: Entries = {}
    for occ, idx, n, fen in _ENTRY.iter_unpack(packed):
        if floor is not None and occ < floor:
            continue
        key = (occ, idx)
        pn, pf = out.get(key, (0, 0))
        out[key] = (pn + n, pf + fen)
    return out


# the packed fields' ranges: a merged entry beyond them is split (``_pieces``)
_FEN_LIMIT = 2**63 - 1
_COUNT_LIMIT = 2**31 - 1


def _pieces(n: int, fen: int) -> list[tuple[int, int]]:
    """(count, fen) pieces within the packed ranges whose sums are ``n`` and ``fen``.

    An entry is a sum of events at one µs and labels: ~9,200 events of the largest counted
    amount (schemas/money.py ``MAX_COUNTED_FEN``) at the same µs and labels would overflow
    int64 fen, and ``struct.pack`` would raise in the middle of a batch or a commit,
    stalling the partition. Entries with equal keys are summed wherever they are read
    (``_unpack``), as appends already leave them, so splitting keeps every figure exact.
    """
    k = max(-(-abs(fen) // _FEN_LIMIT), -(-abs(n) // _COUNT_LIMIT), 1)
    nq, nr = divmod(n, k)
    fq, fr = divmod(fen, k)
    return [(nq + (i < nr), fq + (i < fr)) for i in range(k)]


def _pack(entries: Entries) -> bytes:
    pack = _ENTRY.pack
    out: list[bytes] = []
    for (occ, idx), (n, f) in sorted(entries.items()):
        if not n:
            continue
        if -_FEN_LIMIT <= f <= _FEN_LIMIT and n <= _COUNT_LIMIT:
            out.append(pack(occ, idx, n, f))
        else:
            out.extend(pack(occ, idx, pn, pf) for pn, pf in _pieces(n, f))
    return b"".join(out)


def _store(state: PartitionState, uscc: str, entries: Entries) -> None:
    packed = _pack(entries)
    if packed:
        state.contributions[uscc] = packed
    else:
        state.contributions.pop(uscc, None)
    state.dirty_contributions.add(uscc)
    state.contrib_base.pop(uscc, None)  # merged and sorted: the changelog gets it whole


def record(
    state: PartitionState,
    uscc: str,
    occurred_us: int,
    labels: ContribLabels,
    fen: int,
    floor: int | None,
) -> None:
    """Remember one counted transaction's contribution (if not older than the floor)."""
    if floor is not None and occurred_us < floor:
        return
    idx = state.contrib_index.get(labels)
    if idx is None:
        idx = _label_index(state, labels)
    entry = _PACK(occurred_us, idx, 1, fen)
    contributions = state.contributions
    packed = contributions.get(uscc)
    if packed is not None and len(packed) >= MAX_ENTRIES * ENTRY_SIZE:
        # at the cap: merge and prune, then keep the event only if it fits (its changelog
        # record must stay well under Kafka's 1 MB message limit)
        entries = _unpack(packed, floor)
        key = (occurred_us, idx)
        if key not in entries and len(entries) >= MAX_ENTRIES:
            if len(entries) * _ENTRY.size < len(packed):
                _store(state, uscc, entries)
            return
        n, f = entries.get(key, (0, 0))
        entries[key] = (n + 1, f + fen)
        _store(state, uscc, entries)
        return
    dirty = state.dirty_contributions
    if uscc not in dirty:
        # the first change this batch is an append: the changelog needs only what follows
        state.contrib_base[uscc] = len(packed) if packed is not None else 0
        dirty.add(uscc)
    if packed is None:
        contributions[uscc] = entry
    elif type(packed) is bytearray:
        packed += entry  # in place, amortised: a busy enterprise is not copied per event
    else:
        grown = packed + entry
        contributions[uscc] = bytearray(grown) if len(grown) > _GROW_IN_PLACE else grown


def restate(
    state: PartitionState,
    table: ScoreTable,
    uscc: str,
    region: str,
    assessed_us: int,
    floor: int | None,
    grace_us: int,
    *,
    since_us: int | None = None,
) -> int:
    """Move the contributions a new assessment changes; returns the transactions moved.

    Call after the assessment was added to ``table``. ``since_us``: the ``assessed_at`` of
    an older version the new one pushed out of the kept history; events from there on are
    joined again too."""
    c = state.counters
    if floor is not None and assessed_us < floor:
        c.add(BEYOND, (), 1)
    since = assessed_us if since_us is None else min(assessed_us, since_us)
    start = since if floor is None else max(since, floor)
    if uscc in state.borrower_loans:
        _restate_loans(state, table, uscc, start)
    packed = state.contributions.get(uscc)
    if packed is None:
        return 0
    entries = _unpack(packed, floor)
    moved = loans_moved = 0
    for occ, idx in sorted(k for k in entries if k[0] >= start):
        it, direction, windowed, band, sector = state.contrib_labels[idx]
        new_band, new_sector = table.as_of(uscc, occ)
        if (new_band, new_sector) == (band, sector):
            continue
        n, fen = entries.pop((occ, idx))
        if direction in BAND_ONLY_LOAN_EVENTS:
            # a loan application or decision: by band only; kept with its sector so that
            # every entry is re-keyed the same way
            if direction == APPLICATION:
                c.add(fn.LOAN_APPLICATIONS_TOTAL, (it, band), -n)
                c.add(fn.LOAN_APPLICATIONS_TOTAL, (it, new_band), n)
            else:
                c.add(fn.LOAN_DECISIONS_TOTAL, (it, band, direction), -n)
                c.add(fn.LOAN_DECISIONS_TOTAL, (it, new_band, direction), n)
            if new_band != band:
                loans_moved += n
        else:
            old_labels = (it, band, region, direction)
            new_labels = (it, new_band, region, direction)
            c.add(fn.TRANSACTIONS_TOTAL, old_labels, -n)
            c.add(fn.TRANSACTIONS_TOTAL, new_labels, n)
            c.add(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, old_labels, -fen)
            c.add(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, new_labels, fen)
            c.add(fn.TRANSACTIONS_BY_SECTOR_TOTAL, (sector, band), -n)
            c.add(fn.TRANSACTIONS_BY_SECTOR_TOTAL, (new_sector, new_band), n)
            moved += n
        if windowed and new_band != band:
            amend_windows(
                state,
                TX_TOPIC,
                grace_us,
                occ,
                (
                    (TX_COUNT, (it, band), -n),
                    (TX_AMOUNT_FEN, (it, band), -fen),
                    (TX_COUNT, (it, new_band), n),
                    (TX_AMOUNT_FEN, (it, new_band), fen),
                ),
            )
        new_key = (occ, _label_index(state, (it, direction, windowed, new_band, new_sector)))
        pn, pf = entries.get(new_key, (0, 0))
        entries[new_key] = (pn + n, pf + fen)
    if moved:
        c.add(RESTATED, (TX_TOPIC,), moved)
    if loans_moved:
        c.add(RESTATED, (LOANS_TOPIC,), loans_moved)
    new_packed = _pack(entries)
    if new_packed != packed:
        _store(state, uscc, entries)
    return moved


def _restate_loans(state: PartitionState, table: ScoreTable, uscc: str, start: int) -> None:
    """Move the vintage band of the enterprise's active loans disbursed at or after start."""
    c = state.counters
    moved = 0
    for loan_id in list(state.borrower_loans.get(uscc, ())):
        loan = state.loans[loan_id]
        if loan.disbursed_us < 0 or loan.disbursed_us < start or loan.rate_units < 0:
            continue
        new_band, _ = table.as_of(uscc, loan.disbursed_us)
        if new_band == loan.band:
            continue
        it, old_band, region = loan.institution_type, loan.band, loan.region
        for name, labels, value in book.contributions(loan):  # gauges
            c.add(name, labels, -value)
        loan.band = new_band
        for name, labels, value in book.contributions(loan):
            c.add(name, labels, value)
        state.dirty_loans.add(loan_id)
        fen = loan.principal_fen
        # repaid so far: the drops in its CNY value add up to principal - outstanding
        repaid = fen - loan.outstanding_fen
        for band, sign in ((old_band, -1), (new_band, 1)):
            c.add(fn.LOAN_DISBURSEMENTS_TOTAL, (it, band, region), sign)
            c.add(fn.LOAN_DISBURSED_PRINCIPAL_YUAN_TOTAL, (it, band, region), sign * fen)
            c.add(
                fn.LOAN_DISBURSED_RATE_WEIGHTED_YUAN_TOTAL,
                (it, band),
                sign * fen * loan.rate_units,
            )
            c.add(fn.LOAN_REPAID_PRINCIPAL_YUAN_TOTAL, (it, band), sign * repaid)
        moved += 1
    if moved:
        c.add(RESTATED, (LOANS_TOPIC,), moved)


def adjust_fen(
    state: PartitionState,
    uscc: str,
    occurred_us: int,
    kind: tuple[str, str, bool],
    delta: int,
) -> tuple[str, str] | None:
    """Add ``delta`` fen to a kept transaction contribution (an FX restatement, see
    streams/aggregate/fx_book.py); ``kind`` is (institution type, direction, windowed).
    Returns the (band, sector) it is counted under now, None if it is not kept."""
    packed = state.contributions.get(uscc)
    if packed is None:
        return None
    entries = _unpack(packed, None)
    labels_of = state.contrib_labels
    for occ, idx in entries:
        if occ == occurred_us and labels_of[idx][:3] == kind:
            n, fen = entries[(occ, idx)]
            entries[(occ, idx)] = (n, fen + delta)
            _store(state, uscc, entries)
            band, sector = labels_of[idx][3:]
            return band, sector
    return None


def share_keys(state: PartitionState, table: ScoreTable) -> None:
    """Re-key restored contributions, their delta counts and the recent flows
    (streams/query/recent.py) by one USCC string per enterprise: the score table's own where
    it keeps one, else the first store's (a restore reads them from different records, so
    each enterprise's key would otherwise exist two or three times: 80 bytes each,
    bench/RESULTS.md)."""
    seen: dict[str, str] = {}
    canonical = table.canonical
    for store in (state.contributions, state.contrib_deltas, state.recent_flows):
        _rekey(store, seen, canonical)


def _rekey(store: dict[str, Any], seen: dict[str, str], canonical: Callable[[str], str]) -> None:
    for uscc in list(store):
        canon = seen.get(uscc)
        if canon is None:
            canon = seen[uscc] = canonical(uscc)
        if canon is not uscc:
            store[canon] = store.pop(uscc)


def sweep(state: PartitionState, floor: int | None) -> None:
    """Forget every contribution older than the floor (run when the floor enters a new day)."""
    if floor is None:
        return
    for uscc, packed in list(state.contributions.items()):
        if any(occ < floor for occ, _, _, _ in _ENTRY.iter_unpack(packed)):
            _store(state, uscc, _unpack(packed, floor))


def entries_of(
    state: PartitionState, uscc: str
) -> dict[tuple[int, ContribLabels], tuple[int, int]]:
    """An enterprise's contributions with their labels (tests, changelog)."""
    packed = state.contributions.get(uscc, b"")
    return {(occ, state.contrib_labels[idx]): v for (occ, idx), v in _unpack(packed, None).items()}


def _rows(state: PartitionState, packed: bytes | bytearray) -> list[list[Any]]:
    labels_of = state.contrib_labels
    entries = {(occ, labels_of[idx]): v for (occ, idx), v in _unpack(packed, None).items()}
    return [[occ, *labels, n, f] for (occ, labels), (n, f) in sorted(entries.items())]


def to_json(state: PartitionState, uscc: str) -> list[list[Any]]:
    """All of an enterprise's entries: its whole ``rs:<uscc>`` changelog record."""
    return _rows(state, state.contributions.get(uscc, b""))


def appended_json(state: PartitionState, uscc: str, start: int) -> list[list[Any]]:
    """The entries appended after the first ``start`` bytes of the enterprise's packed
    entries (see PartitionState.contrib_base): an ``rs:<uscc>:<seq>`` delta record."""
    return _rows(state, memoryview(state.contributions.get(uscc, b""))[start:].tobytes())


def _packed_rows(state: PartitionState, rows: list[list[Any]]) -> bytes:
    intern = sys.intern  # label strings shared by every entry, as when counted
    entries: Entries = {}
    for occ, it, direction, windowed, band, sector, n, f in rows:
        labels = (intern(it), intern(direction), bool(windowed), intern(band), intern(sector))
        key = (int(occ), _label_index(state, labels))
        pn, pf = entries.get(key, (0, 0))
        entries[key] = (pn + int(n), pf + int(f))
    return _pack(entries)


def from_json(state: PartitionState, uscc: str, rows: list[list[Any]]) -> None:
    """Restore from a whole record: replaces the enterprise's entries."""
    packed = _packed_rows(state, rows)
    if packed:
        state.contributions[uscc] = packed
    else:
        state.contributions.pop(uscc, None)


def append_json(state: PartitionState, uscc: str, rows: list[list[Any]]) -> int:
    """Restore from a delta record: appends its entries; returns the bytes appended."""
    added = _packed_rows(state, rows)
    if added:
        packed = state.contributions.get(uscc)
        grown = added if packed is None else bytes(packed) + added
        state.contributions[uscc] = bytearray(grown) if len(grown) > _GROW_IN_PLACE else grown
    return len(added)


# ---- the packed changelog form ----------------------------------------------------------
# A changelog value holds the entries as kept in memory (22 bytes each) after a table of the
# label tuples they use, by the writer's label index: encoding copies bytes instead of
# building and serialising a JSON row per entry (~60 bytes each), which was the largest
# share of the commit's changelog bytes and CPU (issue 18). A restore maps the writer's
# indices to its own. Values written before (JSON rows, ``to_json``) still restore.


def _labels_used(entries: bytes | bytearray) -> list[int]:
    """The label indices of packed entries, sorted. The index is a little-endian uint16 at
    byte 8 of each entry: strided slices take its two bytes of every entry in C, rather
    than a tuple per entry from ``iter_unpack`` (a whole record of a busy enterprise holds
    thousands of entries)."""
    low = entries[8::ENTRY_SIZE]
    high = entries[9::ENTRY_SIZE]
    if high.count(0) == len(high):  # fewer than 256 label tuples: the usual case
        return sorted(set(low))
    return sorted({lo | hi << 8 for lo, hi in zip(low, high, strict=True)})


def _packed_value(state: PartitionState, entries: bytes | bytearray) -> bytes:
    # each label row's JSON is kept per index (the table only grows): a commit writes a
    # delta per busy enterprise and batch, each repeating a few of the same rows; the bytes
    # are those of orjson.dumps over the whole table
    rows = state.contrib_label_json
    labels_of = state.contrib_labels
    if len(rows) < len(labels_of):
        for idx in range(len(rows), len(labels_of)):
            rows.append(orjson.dumps([idx, *labels_of[idx]]))
    table = b"[" + b",".join([rows[idx] for idx in _labels_used(entries)]) + b"]"
    return _PACKED_HEAD.pack(_PACKED_TAG, len(table)) + table + entries


def to_value(state: PartitionState, uscc: str) -> bytes | None:
    """All of an enterprise's entries, packed: its whole ``rs:<uscc>`` changelog value
    (None when it has none: a tombstone)."""
    packed = state.contributions.get(uscc)
    return _packed_value(state, packed) if packed else None


def appended_value(state: PartitionState, uscc: str, start: int) -> bytes:
    """The entries after the first ``start`` bytes, packed: an ``rs:<uscc>:<seq>`` delta."""
    return _packed_value(state, state.contributions.get(uscc, b"")[start:])


def _unpacked_value(state: PartitionState, value: bytes) -> bytes:
    """The entries of a packed value, with this state's label indices."""
    tag, size = _PACKED_HEAD.unpack_from(value)
    if tag != _PACKED_TAG:
        raise ValueError(f"unknown contributions record form {tag}")
    body_at = _PACKED_HEAD.size + size
    intern = sys.intern
    remap: dict[int, int] = {}
    for idx, it, direction, windowed, band, sector in orjson.loads(
        value[_PACKED_HEAD.size : body_at]
    ):
        labels = (intern(it), intern(direction), bool(windowed), intern(band), intern(sector))
        remap[idx] = _label_index(state, labels)
    body = value[body_at:]
    if all(idx == own for idx, own in remap.items()):
        return body
    pack = _ENTRY.pack
    return b"".join([pack(occ, remap[idx], n, f) for occ, idx, n, f in _ENTRY.iter_unpack(body)])


def from_value(state: PartitionState, uscc: str, value: bytes | None) -> None:
    """Restore from a whole record (packed, or JSON rows as written before)."""
    if value is None or value[:1] == b"[":
        from_json(state, uscc, orjson.loads(value) if value is not None else [])
        return
    packed = _unpacked_value(state, value)
    if packed:
        state.contributions[uscc] = packed
    else:
        state.contributions.pop(uscc, None)


def append_value(state: PartitionState, uscc: str, value: bytes) -> int:
    """Restore from a delta record (packed, or JSON rows); returns the bytes appended."""
    if value[:1] == b"[":
        return append_json(state, uscc, orjson.loads(value))
    added = _unpacked_value(state, value)
    if added:
        packed = state.contributions.get(uscc)
        grown = added if packed is None else bytes(packed) + added
        state.contributions[uscc] = bytearray(grown) if len(grown) > _GROW_IN_PLACE else grown
    return len(added)
