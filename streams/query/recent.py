"""Recent flows per enterprise: counted transactions by Beijing day, for the last 30 days.

The exposure query (streams/query/answer.py) reports an enterprise's flows of the last
:data:`KEEP_DAYS` Beijing (Asia/Shanghai, UTC+8 all year) days. The partition keeps, per
enterprise, one packed ``bytes`` of day entries (:data:`ENTRY`: day, credit count, credit
fen, debit count, debit fen; 28 bytes a day, sorted by day), so an enterprise that transacts
every day costs at most 30 entries (bench/RESULTS.md, "Recent flows").

Days before the *floor* (the Beijing day of the partition's transactions watermark, minus
29) are not kept: a transaction dated before it is not recorded, and held days are swept
when the floor moves. The floor only rises, so every counted transaction dated on a day in
an answer's range [to - 29, to] (to: the later of the watermark's day and the enterprise's
newest day) is in it: the answer is exact for the range it states.

Changed enterprises are written to the changelog as ``rf:<uscc>`` (the packed bytes; a
tombstone when none are left) in the batch's transaction (streams/state/changelog.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import date, timedelta

from schemas.catalog import TRANSACTIONS
from streams.state.partition import PartitionState

__all__ = [
    "ENTRY",
    "KEEP_DAYS",
    "FlowTotals",
    "beijing_day",
    "changelog_records",
    "record",
    "restore",
    "totals",
]

KEEP_DAYS = 30
# China has kept UTC+8 all year since 1991: a Beijing day is a fixed offset from UTC
BEIJING_OFFSET_US = 8 * 3_600_000_000
DAY_US = 86_400_000_000
ENTRY = struct.Struct("<iIqIq")  # day, credit count, credit fen, debit count, debit fen
_TOPIC = TRANSACTIONS.name
_EPOCH_DAY = date(1970, 1, 1)
_PREFIX = "rf:"
_SIZE = ENTRY.size
_PACK = ENTRY.pack
_UNPACK_FROM = ENTRY.unpack_from
_KEPT_BEFORE = KEEP_DAYS - 1  # the floor: the watermark's day minus this
# the Beijing day last computed by record, as [its first µs + BEIJING_OFFSET_US, the next
# day's, the day] (none yet: an empty range): a cache of a division, the same for any state
_LAST_DAY = [0, 0, 0]


def beijing_day(ts_us: int) -> int:
    """Days since 1970-01-01 of the Beijing date of an instant (µs since the epoch)."""
    return (ts_us + BEIJING_OFFSET_US) // DAY_US


def day_date(day: int) -> date:
    return _EPOCH_DAY + timedelta(days=day)


def _floor(state: PartitionState) -> int | None:
    wm = state.watermarks.get(_TOPIC)
    return None if wm is None else beijing_day(wm) - KEEP_DAYS + 1


def record(state: PartitionState, uscc: str, ts_us: int, direction: str, fen: int) -> None:
    """Count one transaction (``direction`` credit or debit, CNY fen) of ``uscc``."""
    # once per counted transaction: beijing_day and _floor inlined
    shifted = ts_us + BEIJING_OFFSET_US
    cached = _LAST_DAY
    if cached[0] <= shifted < cached[1]:  # the day last computed: no division
        day = cached[2]
    else:
        day = shifted // DAY_US
        cached[0] = day * DAY_US
        cached[1] = cached[0] + DAY_US
        cached[2] = day
    wm = state.watermarks.get(_TOPIC)
    if wm is not None:
        held = state.recent_floor
        # the common case without a division: the floor (the watermark's day minus
        # _KEPT_BEFORE) has not risen above the held floor (the watermark is before the
        # first instant of day held + KEEP_DAYS) and the day is not before it
        if held is None or day < held or wm + BEIJING_OFFSET_US >= (held + KEEP_DAYS) * DAY_US:
            floor = (wm + BEIJING_OFFSET_US) // DAY_US - _KEPT_BEFORE
            if day < floor:
                return  # before the kept days: no answer's range can include it
            if held is None or floor > held:
                _sweep(state, floor)
    credit = direction == "credit"
    flows = state.recent_flows
    packed = flows.get(uscc)
    if packed is not None and len(packed) >= _SIZE:
        last = len(packed) - _SIZE
        d, cc, cf, dc, df = _UNPACK_FROM(packed, last)
        if d == day:  # the common case: the enterprise's newest day
            if credit:
                flows[uscc] = packed[:last] + _PACK(d, cc + 1, cf + fen, dc, df)
            else:
                flows[uscc] = packed[:last] + _PACK(d, cc, cf, dc + 1, df + fen)
            state.dirty_recent.add(uscc)
            return
        if d < day:  # a new newest day: append
            if credit:
                flows[uscc] = packed + _PACK(day, 1, fen, 0, 0)
            else:
                flows[uscc] = packed + _PACK(day, 0, 0, 1, fen)
            state.dirty_recent.add(uscc)
            return
        # an earlier day (statements arrive out of day order): its entry or its place, from
        # the end (sorted by day, at most KEEP_DAYS), spliced in without unpacking the rest
        pos = last - _SIZE
        while pos >= 0:
            d, cc, cf, dc, df = _UNPACK_FROM(packed, pos)
            if d <= day:
                break
            pos -= _SIZE
        if pos >= 0 and d == day:
            entry = (
                _PACK(d, cc + 1, cf + fen, dc, df) if credit else _PACK(d, cc, cf, dc + 1, df + fen)
            )
            after = pos + _SIZE
        else:  # a day with no entry yet: inserted after pos (before every entry if pos < 0)
            entry = _PACK(day, 1, fen, 0, 0) if credit else _PACK(day, 0, 0, 1, fen)
            pos = after = pos + _SIZE
        flows[uscc] = packed[:pos] + entry + packed[after:]
        state.dirty_recent.add(uscc)
        return
    # the enterprise's first kept day (every case with an entry returned above)
    flows[uscc] = _PACK(day, 1, fen, 0, 0) if credit else _PACK(day, 0, 0, 1, fen)
    state.dirty_recent.add(uscc)


def _sweep(state: PartitionState, floor: int) -> None:
    """Drop every enterprise's days before ``floor`` (the floor entered a new day)."""
    state.recent_floor = floor
    flows = state.recent_flows
    for uscc in list(flows):
        packed = flows[uscc]
        if ENTRY.unpack_from(packed, 0)[0] >= floor:
            continue
        kept = b"".join(ENTRY.pack(*e) for e in ENTRY.iter_unpack(packed) if e[0] >= floor)
        if kept:
            flows[uscc] = kept
        else:
            del flows[uscc]
        state.dirty_recent.add(uscc)


@dataclass(frozen=True, slots=True)
class FlowTotals:
    """Counted transactions of one enterprise on Beijing days ``first``..``last``."""

    first: date
    last: date
    credit_count: int
    credit_fen: int
    debit_count: int
    debit_fen: int


def totals(state: PartitionState, uscc: str) -> FlowTotals | None:
    """The last :data:`KEEP_DAYS` Beijing days of ``uscc`` (None: the partition has counted
    no transaction yet)."""
    wm = state.watermarks.get(_TOPIC)
    packed = state.recent_flows.get(uscc, b"")
    days = [e[0] for e in ENTRY.iter_unpack(packed)]
    ends = [*days[-1:], *([beijing_day(wm)] if wm is not None else [])]
    if not ends:
        return None
    last = max(ends)
    first = last - KEEP_DAYS + 1
    cc = cf = dc = df = 0
    for d, c1, f1, c2, f2 in ENTRY.iter_unpack(packed):
        if first <= d <= last:
            cc, cf, dc, df = cc + c1, cf + f1, dc + c2, df + f2
    return FlowTotals(day_date(first), day_date(last), cc, cf, dc, df)


def changelog_records(state: PartitionState) -> list[tuple[bytes, bytes | None]]:
    """``rf:<uscc>`` records of the enterprises changed since the last commit."""
    out = [
        ((_PREFIX + uscc).encode(), bytes(state.recent_flows[uscc]) or None)
        if uscc in state.recent_flows
        else ((_PREFIX + uscc).encode(), None)
        for uscc in sorted(state.dirty_recent)
    ]
    state.dirty_recent.clear()
    return out


def restore(state: PartitionState, key: str, value: bytes | None) -> bool:
    """Apply a changelog record if it is one of ours (``rf:``); False otherwise."""
    if not key.startswith(_PREFIX):
        return False
    uscc = key[len(_PREFIX) :]
    if value:
        state.recent_flows[uscc] = value
    else:
        state.recent_flows.pop(uscc, None)
    return True
