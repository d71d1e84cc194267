"""Partition state ⇄ records of the compacted ``dfip.state`` changelog topic.

A commit writes only what changed: the checkpoint (offsets and watermarks), the changed
counters (``ctr``, see below), each changed loan, each enterprise's changed restatement
contributions (``rs:<uscc>``, see below), recent flows (``rf:<uscc>``) and rule state
(``al:<uscc>``, each batch's deltas packed in one ``al:~<seq>`` and open hits
``al:<uscc>#<hit id>``; the per-enterprise ``al:<uscc>:<seq>`` deltas of older workers still
restore: docs/aml-rules.md), each changed FX entry (``fx:<seq>``: a counted foreign-currency
transaction with the rate it was counted at, or a parked event), the duplicate-memory ids
added by this commit per (topic, arrival day) (plus tombstones for expired days) and each
changed window.

Restatement contributions: when a batch only appended entries to an enterprise that already
has at least ``DELTA_MIN_ENTRIES``, the commit writes just those entries as a delta record
``rs:<uscc>:<seq>`` (seq 1, 2, … since its last whole record), not all its entries again.
A whole ``rs:<uscc>`` record (the only form before deltas, so old changelogs restore as
they are) is written when entries were merged, moved or swept (restatement, FX restatement,
sweep, the entry cap), or once its deltas reach ``MAX_DELTAS`` records or hold as many
bytes as the whole record they follow (so the bytes written stay linear in the entries
appended); tombstones for its deltas go with it, keeping the compacted topic bounded. A
restore applies the whole record and then the deltas after it, in any order (the RocksDB
copy replays by key, where ``rs:<uscc>`` sorts before its deltas); a delta is at most as
large as its whole record, so under the same message size limit. Both hold the entries
packed as in memory (22 bytes each) after a small JSON table of the label tuples they use
(streams/aggregate/restate.py ``to_value``); records written before hold JSON rows (first
byte ``[``) and restore as they are, mixed with packed ones.

Counters: the first commit of a partition writes them whole (``ctr``: every series); later
commits write a delta ``ctr:<seq>`` (seq 1, 2, …) with only the series the batch changed, at
their new values (0: gone), until the deltas reach ``MAX_CTR_DELTAS`` records or
``CTR_DELTA_BUDGET`` times the whole record's bytes; then the whole record again, with
tombstones for its deltas. The bench feed changes ~40 % of a partition's series per batch,
a busier label space far fewer. A restore keeps the records it reads and applies them in
``finish_restore``: the whole record, then the deltas by number (a RocksDB copy replays by
key, where ``ctr:10`` sorts before ``ctr:2``). Changelogs written before deltas hold whole
``ctr`` records only (the same form): they restore as they are and the next commit
continues them with a delta. Not the other way round: a worker from before deltas ignores
``ctr:<seq>`` and refuses packed ``rs:`` values (docs/operations.md, upgrading workers).

Migration: changelogs written before duplicate memory went by arrival time hold
``dedup:<seq>`` records (JSON ids, shared by all topics). A restore loads their ids into the
memory of every topic of the partition, as remembered on the UTC day of the partition's newest
event-time watermark, and the next commit rewrites them in the new form and tombstones the old
records (streams/state/dedup.py).

All of it goes into one Kafka transaction together with the batch's outputs, so a restore
never sees half a batch.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.aggregate import fx_book, restate
from streams.query import recent
from streams.state.dedup import DAY_MS, id_hash, pack
from streams.state.partition import Counters, LoanState, PartitionState, Window, WindowKey

__all__ = ["apply_record", "dirty_records", "finish_restore"]

CK = b"ck"
CTR = b"ctr"
# an enterprise with fewer entries before a batch gets its whole rs:<uscc> record rewritten
# (small anyway; no delta bookkeeping in memory for it)
DELTA_MIN_ENTRIES = 8
# delta records per enterprise before its whole record is rewritten
MAX_DELTAS = 64
# counters: ctr:<seq> deltas before the whole ctr record is rewritten, and the bytes they may
# hold together, in whole records (so a restore reads at most 1 + this many whole records)
MAX_CTR_DELTAS = 64
CTR_DELTA_BUDGET: float = 2  # a ratio (tests try fractions)
_DELTA_MIN_BYTES = DELTA_MIN_ENTRIES * restate.ENTRY_SIZE
_COUNT_MASK = 0xFFFF  # PartitionState.contrib_deltas: count | bytes << 16
# topics whose ids (and forwarded copies' origins) the pre-arrival-time format held
_LEGACY_TOPICS = ("dfip.transactions", "dfip.loans", "dfip.scores")


def _window_key(key: WindowKey) -> bytes:
    topic, size, start = key
    return f"win:{topic}:{size}:{start}".encode()


def dirty_records(state: PartitionState) -> list[tuple[bytes, bytes | None]]:
    """Records for everything changed since the last commit; clears the dirty marks."""
    out: list[tuple[bytes, bytes | None]] = []
    for loan_id in sorted(state.dirty_loans):
        loan = state.loans.get(loan_id)
        out.append((f"loan:{loan_id}".encode(), orjson.dumps(loan.to_json()) if loan else None))
    state.dirty_loans.clear()
    for key in sorted(state.dirty_windows):
        win = state.windows.get(key)
        out.append((_window_key(key), orjson.dumps(win.to_json()) if win else None))
    state.dirty_windows.clear()
    for uscc in sorted(state.dirty_contributions):
        out.extend(_contribution_records(state, uscc))
    state.dirty_contributions.clear()
    state.contrib_base.clear()
    out.extend(recent.changelog_records(state))
    out.extend(fx_book.dirty_records(state))
    out.extend(state.rules.changelog_records())  # al:<uscc>[:<seq>] (streams/rules/engine.py)
    for topic, mem in sorted(state.dedup.items()):
        for day, seq, hashes in mem.seal():
            out.append((f"dd:{topic}:{day}:{seq}".encode(), pack(hashes)))
    out.extend((f"dd:{t}:{day}:{seq}".encode(), None) for t, day, seq in state.expired_dedup)
    state.expired_dedup.clear()
    out.extend((f"dedup:{seq}".encode(), None) for seq in state.legacy_tombstones)
    state.legacy_tombstones.clear()
    if state.counters.dirty:
        out.extend(_counter_records(state))
        state.counters.mark_clean()
    # the checkpoint goes last; restore order does not depend on it (one transaction)
    arrival = {t: m.clock_ms for t, m in state.dedup.items() if m.clock_ms >= 0}
    checkpoint = {"offsets": state.offsets, "watermarks": state.watermarks, "arrival": arrival}
    out.append((CK, orjson.dumps(checkpoint)))
    return out


def _counter_records(state: PartitionState) -> list[tuple[bytes, bytes | None]]:
    """A ``ctr:<seq>`` delta with the changed series, else the whole ``ctr`` record and
    tombstones for the deltas it supersedes."""
    counters = state.counters
    count = state.ctr_deltas
    if state.ctr_whole_bytes and count < MAX_CTR_DELTAS and counters.changed is not None:
        value = orjson.dumps(counters.changed_json())
        grown = state.ctr_delta_bytes + len(value)
        if grown <= CTR_DELTA_BUDGET * state.ctr_whole_bytes:
            state.ctr_deltas, state.ctr_delta_bytes = count + 1, grown
            return [(b"ctr:%d" % (count + 1), value)]
    whole = orjson.dumps(counters.to_json())
    state.ctr_deltas = state.ctr_delta_bytes = 0
    state.ctr_whole_bytes = len(whole)
    out: list[tuple[bytes, bytes | None]] = [(CTR, whole)]
    out.extend((b"ctr:%d" % seq, None) for seq in range(1, count + 1))
    return out


def _restore_counters(state: PartitionState) -> None:
    """The counters from the records read: the whole record, then the deltas in order."""
    records = state.ctr_restored
    if not records:  # none read (or the partition is new): the next commit writes it whole
        return
    whole = records.pop(0, None)
    counters = Counters.from_json(orjson.loads(whole) if whole else [], track=True)
    for seq in sorted(records):
        counters.overlay_json(orjson.loads(records[seq]))
    state.counters = counters
    state.ctr_whole_bytes = len(whole) if whole else 0
    state.ctr_deltas = max(records, default=0)
    state.ctr_delta_bytes = sum(len(v) for v in records.values())
    records.clear()


def _contribution_records(state: PartitionState, uscc: str) -> list[tuple[bytes, bytes | None]]:
    """A delta record for what a batch appended, else the whole record and tombstones."""
    packed = state.contributions.get(uscc)
    start = state.contrib_base.get(uscc)
    live = state.contrib_deltas.get(uscc, 0)
    count, delta_bytes = live & _COUNT_MASK, live >> 16
    if packed is not None and start is not None and start >= _DELTA_MIN_BYTES:
        grown = delta_bytes + len(packed) - start
        if count < MAX_DELTAS and grown <= start - delta_bytes:
            state.contrib_deltas[uscc] = (count + 1) | grown << 16
            value = restate.appended_value(state, uscc, start)
            return [(f"rs:{uscc}:{count + 1}".encode(), value)]
    state.contrib_deltas.pop(uscc, None)
    out: list[tuple[bytes, bytes | None]] = [(f"rs:{uscc}".encode(), restate.to_value(state, uscc))]
    out.extend((f"rs:{uscc}:{seq}".encode(), None) for seq in range(1, count + 1))
    return out


def _restore_contributions(state: PartitionState, key: str, value: bytes | None) -> None:
    uscc, _, seq = key.partition(":")
    if not seq:  # a whole record: replaces the entries and every delta before it
        state.contrib_deltas.pop(uscc, None)
        restate.from_value(state, uscc, value)
    elif value is not None:  # a delta (a tombstoned one is superseded by a whole record)
        added = restate.append_value(state, uscc, value)
        live = state.contrib_deltas.get(uscc, 0)
        count = max(live & _COUNT_MASK, int(seq))
        state.contrib_deltas[uscc] = count | ((live >> 16) + added) << 16


def apply_record(state: PartitionState, key: bytes, value: bytes | None) -> None:
    """Apply one changelog record during a restore (later records win)."""
    k = key.decode()
    if k.startswith("dd:"):  # binary value: hashes, not JSON
        topic, day_s, seq_s = k[3:].rsplit(":", 2)
        state.memory(topic).restore(int(day_s), int(seq_s), value)
        return
    if recent.restore(state, k, value):  # binary value: packed day entries
        return
    if k.startswith("rs:"):  # packed entries, or JSON rows as written before
        _restore_contributions(state, k[3:], value)
        return
    if k == "ctr" or k.startswith("ctr:"):  # applied in order by finish_restore
        seq = int(k[4:]) if len(k) > 3 else 0
        if value is None:
            state.ctr_restored.pop(seq, None)
        else:
            state.ctr_restored[seq] = value
        return
    doc: Any = orjson.loads(value) if value is not None else None
    if k == "ck":
        if doc is not None:
            state.offsets = {t: int(o) for t, o in doc["offsets"].items()}
            state.watermarks = {t: int(w) for t, w in doc["watermarks"].items()}
            for t, clock in doc.get("arrival", {}).items():
                state.memory(t).clock_ms = int(clock)
    elif k.startswith("al:"):
        state.rules.load(k[3:], doc)
    elif k.startswith("fx:"):
        fx_book.from_json(state, int(k[3:]), doc)
    elif k.startswith("loan:"):
        loan_id = k[5:]
        if doc is None:
            state.loans.pop(loan_id, None)
        else:
            state.loans[loan_id] = LoanState.from_json(doc)
    elif k.startswith("dedup:"):  # the pre-arrival-time format: migrated by finish_restore
        legacy_seq = int(k[6:])
        if doc is None:
            state.legacy_dedup.pop(legacy_seq, None)
        else:
            state.legacy_dedup[legacy_seq] = list(doc["ids"])
    elif k.startswith("win:"):
        _, rest = k.split(":", 1)
        topic, size, start = rest.rsplit(":", 2)
        wkey: WindowKey = (topic, size, int(start))
        if doc is None:
            state.windows.pop(wkey, None)
        else:
            state.windows[wkey] = Window.from_json(doc)


def finish_restore(state: PartitionState) -> None:
    """Derive what is not stored: the borrower indexes; migrate a legacy dedup memory;
    apply the counters records read."""
    _restore_counters(state)
    for mem in state.dedup.values():
        mem.finish_restore()
    if state.legacy_dedup:
        newest = max(state.watermarks.values(), default=None)
        for topic in _LEGACY_TOPICS:
            mem = state.memory(topic)
            day = newest // 1000 // DAY_MS if newest is not None else mem.today
            for ids in state.legacy_dedup.values():
                for eid in ids:
                    mem.add(id_hash(eid), day)
        state.legacy_tombstones.extend(sorted(state.legacy_dedup))
        state.legacy_dedup.clear()
    state.borrowers.clear()
    state.borrower_credit.clear()
    state.borrower_loans.clear()
    for loan_id, loan in state.loans.items():
        state.borrower_loans.setdefault(loan.uscc, []).append(loan_id)
        state.borrowers[loan.uscc] = state.borrowers.get(loan.uscc, 0) + 1
        credit = state.borrower_credit
        credit[loan.uscc] = credit.get(loan.uscc, 0) + loan.principal_fen
    state.counters.mark_clean()
    state.dirty_loans.clear()
    state.dirty_windows.clear()
    state.dirty_contributions.clear()
    state.contrib_base.clear()
    state.dirty_recent.clear()
    fx_book.finish_restore(state)
