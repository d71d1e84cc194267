"""Partition state ⇄ records of the compacted ``dfip.state`` changelog topic.

A commit writes only what changed: the checkpoint (offsets and watermarks), the counters,
each changed loan, the dedup chunk sealed by this commit (plus tombstones for expired ones)
and each changed window. All of it goes into one Kafka transaction together with the batch's
outputs, so a restore never sees half a batch.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.state.partition import Counters, LoanState, PartitionState, Window, WindowKey

__all__ = ["apply_record", "dirty_records", "finish_restore"]

CK = b"ck"
CTR = b"ctr"


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
    sealed = state.dedup.seal()
    if sealed is not None:
        seq, max_ts, ids = sealed
        out.append((f"dedup:{seq}".encode(), orjson.dumps({"ts": max_ts, "ids": ids})))
    out.extend((f"dedup:{seq}".encode(), None) for seq in state.expired_dedup)
    state.expired_dedup.clear()
    if state.counters.dirty:
        out.append((CTR, orjson.dumps(state.counters.to_json())))
        state.counters.mark_clean()
    # the checkpoint goes last; restore order does not depend on it (one transaction)
    out.append((CK, orjson.dumps({"offsets": state.offsets, "watermarks": state.watermarks})))
    return out


def apply_record(state: PartitionState, key: bytes, value: bytes | None) -> None:
    """Apply one changelog record during a restore (later records win)."""
    k = key.decode()
    doc: Any = orjson.loads(value) if value is not None else None
    if k == "ck":
        if doc is not None:
            state.offsets = {t: int(o) for t, o in doc["offsets"].items()}
            state.watermarks = {t: int(w) for t, w in doc["watermarks"].items()}
    elif k == "ctr":
        state.counters = Counters.from_json(doc or [])
    elif k.startswith("loan:"):
        loan_id = k[5:]
        if doc is None:
            state.loans.pop(loan_id, None)
        else:
            state.loans[loan_id] = LoanState.from_json(doc)
    elif k.startswith("dedup:"):
        seq = int(k[6:])
        if doc is None:
            chunk = state.dedup.chunks.pop(seq, None)
            if chunk is not None:
                for eid in chunk[1]:
                    if state.dedup.ids.get(eid) == seq:
                        del state.dedup.ids[eid]
        else:
            state.dedup.restore_chunk(seq, int(doc["ts"]), list(doc["ids"]))
    elif k.startswith("win:"):
        _, rest = k.split(":", 1)
        topic, size, start = rest.rsplit(":", 2)
        wkey: WindowKey = (topic, size, int(start))
        if doc is None:
            state.windows.pop(wkey, None)
        else:
            state.windows[wkey] = Window.from_json(doc)


def finish_restore(state: PartitionState) -> None:
    """Derive what is not stored: the borrower index."""
    state.dedup.finish_restore()
    state.borrowers.clear()
    for loan in state.loans.values():
        state.borrowers[loan.uscc] = state.borrowers.get(loan.uscc, 0) + 1
    state.counters.mark_clean()
    state.dirty_loans.clear()
    state.dirty_windows.clear()
