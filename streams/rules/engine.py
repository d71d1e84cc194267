"""The rule engine of one partition: keeps each enterprise's recent transactions, decides
the rules as event time becomes final, and turns hits into `Alert` records.

Bounded: transactions are kept for the longest rule window (at least a Beijing day) before
the final time, hourly counts for the velocity baseline; an enterprise without any keeps
only the time of its last transaction (for dormancy).
"""

from __future__ import annotations

import bisect
import heapq
from array import array
from base64 import b64decode, b64encode
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import chain
from operator import itemgetter
from typing import Any

import orjson
from mypy_extensions import mypyc_attr

from schemas.alerts import MAX_ALERT_EVENTS, Alert, AlertRule, RuleSet
from schemas.enums import Direction
from schemas.ids import make_event_id
from schemas.txcodes import is_cash
from schemas.uscc import region_of
from schemas.versions import SCHEMA_VERSION
from schemas.wire import AnyTransaction
from schemas.workdays import add_working_days
from streams.rules.base import (
    CASH,
    CASH_LARGE,
    CREDIT,
    DAY_US,
    HOUR_US,
    LARGE,
    NEVER,
    ROUND,
    DailyRule,
    Enterprise,
    Hit,
    Rule,
    Tx,
    day_end,
    hour_floor,
)
from streams.rules.cash import CashDaily
from streams.rules.dormant import DormantReactivation
from streams.rules.large_value import LargeValueDaily, LargeValueSingle
from streams.rules.pass_through import PassThrough
from streams.rules.round_amounts import RoundAmounts
from streams.rules.structuring import Structuring
from streams.rules.velocity import Velocity

__all__ = [
    "DELTA_MIN_TXS",
    "MAX_DELTAS",
    "MAX_PACK_AGE",
    "RuleEngine",
    "RulesState",
    "build_alert",
    "flags_of",
]

# `al:` delta records per enterprise before its whole record is written again
MAX_DELTAS = 32
# packs (`al:~<seq>`) live at most this many batches: the enterprises whose deltas keep an
# older one alive get a whole record, so a restore reads at most this many packs
MAX_PACK_AGE = 32
# deltas may hold this many transactions even when the enterprise keeps fewer
DELTA_MIN_TXS = 16

# distinct bank transaction codes whose cash test is remembered (input decides how many)
_CASH_CODES_MAX = 4096
_CREDIT = Direction.credit
_bisect_left = bisect.bisect_left
_new_tx = tuple.__new__  # Tx(...) without its Python-level __new__
_SHANGHAI_US = 8 * HOUR_US  # as streams/rules/base.py: Beijing days

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# build_alert: every field is set (as Record.__init__ sets kind and schema_version)
_ALERT_FIELDS = frozenset(Alert.model_fields)
_ALERT_KIND = Alert._wire_constants["kind"]
_FEN = itemgetter(2)  # Tx.fen
_SHANGHAI = timedelta(hours=8)
_DAILY_LARGE = AlertRule.large_value_daily


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def flags_of(config: RuleSet, ev: AnyTransaction, fen: int) -> int:
    """What the rules need to know of one transaction beyond its time and CNY amount."""
    flags = CREDIT if ev.direction.value == "credit" else 0
    usd = ev.currency == "USD"
    cents = int(ev.amount * 100) if usd else 0
    if is_cash(ev.bank_tx_code):
        flags |= CASH
        if fen >= config.cash.cny_fen or (usd and cents >= config.cash.usd_cents):
            flags |= CASH_LARGE
    if fen >= config.large_value.cny_fen or (usd and cents >= config.large_value.usd_cents):
        flags |= LARGE
    unit = config.round_amounts.unit
    if ev.currency == "CNY":  # integer arithmetic on fen (the amount itself, rate 1)
        if fen > 0 and fen % (unit * 100) == 0:
            flags |= ROUND
    else:
        amount: Decimal = ev.amount
        if amount > 0 and amount % unit == 0:
            flags |= ROUND
    return flags


def _pack(hours: dict[int, int]) -> bytes:
    return array("q", chain.from_iterable(sorted(hours.items()))).tobytes()


def _unpack(packed: bytes) -> dict[int, int]:
    flat = array("q")
    flat.frombytes(packed)
    return dict(zip(flat[::2], flat[1::2], strict=True))


# RulesState.based[uscc]: its live deltas and their transactions since its whole record, the
# fields as the last record left them (a delta writes only those that changed), and the packs
# (`al:~<seq>`) holding its live deltas (empty: none, or deltas in the per-enterprise form
# `al:<uscc>:<n>` written before the packs, which its next record replaces)
_COUNT, _TXS, _DECIDED, _CURSORS, _ACTIVE, _LOW_HOUR, _KEPT, _PACKS = range(8)


def _base(ent: Enterprise, count: int, txs: int, packs: list[int] | None = None) -> list[Any]:
    low = min(ent.hours) if ent.hours else None
    return [
        count, txs, ent.decided, dict(ent.cursors), ent.last_active, low, len(ent.txs),
        packs if packs is not None else [],
    ]  # fmt: skip


def _apply_delta(ent: Enterprise, d: dict[str, Any]) -> int:
    """Apply one delta (either form) on the records before it; the transactions it added."""
    added = 0
    for row in zip(*d.get("t", ()), strict=True):
        tx = Tx(*row)
        bisect.insort(ent.txs, tx)
        hour = tx.ts // HOUR_US
        ent.hours[hour] = ent.hours.get(hour, 0) + 1
        added += 1
    if "d" in d:
        ent.decided = int(d["d"])
    if "c" in d:
        ent.cursors = {k: int(v) for k, v in d["c"].items()}
    if "a" in d:
        ent.last_active = d["a"]
    if "n" in d:
        excess = len(ent.txs) - int(d["n"])
        if excess > 0:
            del ent.txs[:excess]  # pruning drops the oldest
    if "hl" in d:
        low = d["hl"]
        ent.hours = {h: n for h, n in ent.hours.items() if low is not None and h >= low}
    return added


def _delta(ent: Enterprise, base: list[Any], added: list[Tx]) -> dict[str, Any] | None:
    """The `al:<uscc>:<seq>` delta: the transactions kept since the last record and the
    fields that changed since (None: nothing did). A restore applies it on the records
    before it, so a field left out stays as they left it."""
    delta: dict[str, Any] = {}
    first: int | None = None  # the earliest hour kept since
    if added:
        # zip without strict (rows of six) and min without a tuple compare for one row: both
        # builtins parse keywords, a large share of a small delta's cost
        delta["t"] = list(zip(*added))  # noqa: B905
        first = (added[0][0] if len(added) == 1 else min(added)[0]) // HOUR_US
    decided = ent.decided
    if decided != base[_DECIDED]:
        delta["d"] = base[_DECIDED] = decided
    cursors = ent.cursors
    if cursors != base[_CURSORS]:
        delta["c"] = cursors
        base[_CURSORS] = cursors.copy()
    last_active = ent.last_active
    if last_active != base[_ACTIVE]:
        delta["a"] = base[_ACTIVE] = last_active
    kept = len(ent.txs)
    if kept != base[_KEPT] + len(added):  # pruned (dropped the oldest)
        delta["n"] = kept
    base[_KEPT] = kept
    hours = ent.hours
    low = base[_LOW_HOUR]
    # the lowest hour moves only when pruning dropped it or a transaction came before it
    if low is None or low not in hours or (first is not None and first < low):
        low = min(hours) if hours else None
    # written when it moved, or when the hours of the transactions in `t` were dropped
    # again (a restore adds them, then drops what is below it)
    if low != base[_LOW_HOUR] or (first is not None and (low is None or first < low)):
        delta["hl"] = base[_LOW_HOUR] = low
    return delta or None


class RulesState:
    """Rule state of one partition: enterprise → its `Enterprise`, plus a due-time heap.
    An enterprise with nothing left to decide keeps only its last transaction time (`idle`,
    for dormancy)."""

    def __init__(self) -> None:
        self.enterprises: dict[str, Enterprise] = {}
        # uscc → (last transaction µs, its recent hourly counts packed): ~100 bytes instead of
        # an `Enterprise` (~800) for the many enterprises with nothing left to decide
        self.idle: dict[str, tuple[int, bytes]] = {}
        self.due: dict[str, int] = {}
        self.heap: list[tuple[int, str]] = []
        self.dirty: set[str] = set()
        self.upto = 0  # event time before which everything is decided
        self.skipped = 0  # on-time for figures but already decided here (see observe)
        self.stale = False  # loaded from the changelog: the heap is rebuilt before use
        # hits written and not yet acknowledged: uscc → alert id → (rule, region,
        # institution type, band, report-due ISO date); streams/rules/overdue.py
        self.open: dict[str, dict[str, tuple[str, ...]]] = {}
        # changelog deltas (changelog_records): uscc → _Base (its live deltas after its
        # whole record and what they last wrote); enterprises whose next record must be
        # whole; deltas read by a restore, applied by settle()
        self.based: dict[str, list[Any]] = {}
        self.rewrite: set[str] = set()
        self._deltas: dict[str, dict[int, dict[str, Any]]] = {}
        # packs: seq → the enterprises whose delta in it is live (tombstoned when none is);
        # the last seq written (whole records carry it as "s": a pack at or before it does
        # not apply to them); packs a restore read, and the whole records' "s"
        self.packs: dict[int, set[str]] = {}
        self.pack_seq = 0
        self._packs_read: dict[int, dict[str, dict[str, Any]]] = {}
        self._whole_seq: dict[str, int] = {}
        self.open_dirty: set[tuple[str, str]] = set()  # (uscc, hit id) opened or closed

    def schedule(self, uscc: str, due: int | None) -> None:
        if due is None:
            self.due.pop(uscc, None)
            return
        if self.due.get(uscc) != due:
            self.due[uscc] = due
            heapq.heappush(self.heap, (due, uscc))

    # ---- changelog (`al:<uscc>` records of dfip.state) ----------------------------------

    def to_json(self, uscc: str) -> dict[str, Any] | None:
        """The enterprise's `al:` record: transactions as six columns and hourly counts as
        packed base64, so that encoding is a few C-level passes (it runs for every
        enterprise a batch touched). Its open hits have records of their own."""
        ent = self.enterprises.get(uscc)
        if ent is None:
            idle = self.idle.get(uscc)
            if idle is None:
                return None
            return {"a": idle[0], "h": b64encode(idle[1]).decode("ascii")}
        return {
            "t": list(zip(*ent.txs, strict=True)),
            "d": ent.decided,
            "c": ent.cursors,
            "h": b64encode(_pack(ent.hours)).decode("ascii"),
            "a": ent.last_active,
        }

    def changelog_records(self) -> list[tuple[bytes, bytes | None]]:
        """The `al:` records of the enterprises changed since the last commit. An enterprise
        whose state only moved on (transactions kept, time decided, old ones pruned) gets a
        delta: its new transactions and the small fields that changed (`_delta`; none if
        nothing did), all of this call's deltas in one pack record `al:~<seq>` ({uscc:
        delta}; one record per batch instead of one per enterprise: fewer Kafka records to
        produce and restore). A whole record `al:<uscc>` (with "s": the seq of this call, so
        a restore applies only later packs to it) when it has none yet, went idle or back,
        its deltas reached MAX_DELTAS or hold more transactions than it keeps (so the bytes
        written stay linear in the transactions kept), or one of its packs is MAX_PACK_AGE
        old. A pack no enterprise needs any more is tombstoned. Each open hit is a record
        `al:<uscc>#<hit id>`, tombstoned when acknowledged."""
        self.settle()
        out: list[tuple[bytes, bytes | None]] = []
        for uscc, hit_id in sorted(self.open_dirty):
            key = self.open.get(uscc, {}).get(hit_id)
            value = orjson.dumps(key) if key is not None else None
            out.append((f"al:{uscc}#{hit_id}".encode(), value))
        self.open_dirty.clear()
        packs = self.packs
        for n in [n for n, left in packs.items() if not left]:  # restored, needed by none
            del packs[n]
            out.append((b"al:~%d" % n, None))
        if not self.dirty:
            return out
        seq = self.pack_seq = self.pack_seq + 1
        for n, usccs in packs.items():  # by seq: written (and restored) in order
            if n > seq - MAX_PACK_AGE:
                break
            self.dirty |= usccs  # too old: what it still holds goes into whole records
            self.rewrite |= usccs
        pack: dict[str, dict[str, Any]] = {}
        released: list[tuple[int, str]] = []
        enterprises, based, rewrite = self.enterprises, self.based, self.rewrite
        for uscc in sorted(self.dirty):
            ent = enterprises.get(uscc)
            base = based.get(uscc)
            added: list[Tx] = ent.added if ent is not None else []
            if (
                ent is not None
                and base is not None
                and uscc not in rewrite
                and len(base) > _PACKS
                and len(base[_PACKS]) == base[_COUNT]  # none in the form before the packs
                and base[_COUNT] < MAX_DELTAS
                # at most max(len(ent.txs), DELTA_MIN_TXS) (max parses keywords: spelt out)
                and ((n_txs := base[_TXS] + len(added)) <= DELTA_MIN_TXS or n_txs <= len(ent.txs))
            ):
                delta = _delta(ent, base, added)
                ent.added = []
                if delta is None:
                    continue  # nothing a restore would change
                base[_COUNT] += 1
                base[_TXS] = n_txs
                base[_PACKS].append(seq)
                pack[uscc] = delta
                continue
            if ent is not None:
                ent.added = []
            doc = self.to_json(uscc)
            if doc is not None:
                doc["s"] = seq  # the packs up to this one hold nothing for it any more
            out.append((f"al:{uscc}".encode(), orjson.dumps(doc) if doc is not None else None))
            if base is not None and len(base) > _PACKS and base[_PACKS]:
                released += [(n, uscc) for n in base[_PACKS]]
            elif base is not None:  # deltas in the per-enterprise form (before the packs)
                tombstones = range(1, base[_COUNT] + 1)
                out.extend((f"al:{uscc}:{n}".encode(), None) for n in tombstones)
            if doc is None:
                self.based.pop(uscc, None)
            else:  # an idle enterprise: whole again when it comes back
                self.based[uscc] = _base(ent, 0, 0) if ent is not None else [0, 0]
        self.dirty.clear()
        self.rewrite.clear()
        if pack:
            packs[seq] = set(pack)
            out.append((b"al:~%d" % seq, orjson.dumps(pack)))
        for n, uscc in released:
            live = packs.get(n)
            if live is None:
                continue
            live.discard(uscc)
            if not live:  # no enterprise needs it any more
                del packs[n]
                out.append((b"al:~%d" % n, None))
        return out

    def settle(self) -> None:
        """Apply the deltas a restore read, in order, on their whole records (a restore
        meets them in any order: the local copy replays by key): the per-enterprise ones
        written before the packs, then the packs by seq, each only on a whole record older
        than it."""
        if not self._deltas and not self._packs_read:
            self._whole_seq.clear()
            return
        for uscc, deltas in self._deltas.items():
            ent = self.enterprises.get(uscc)
            if ent is None or not deltas:
                continue  # tombstoned with its whole record
            added = 0
            for seq in sorted(deltas):
                # a field a delta leaves out is as the record before it left it (the form
                # before issue 18 has every field)
                added += _apply_delta(ent, deltas[seq])
                self.upto = max(self.upto, ent.decided)
            self.based[uscc] = _base(ent, len(deltas), added)  # its next record is whole
        self._deltas.clear()
        whole = self._whole_seq
        for seq in sorted(self._packs_read):
            self.pack_seq = max(self.pack_seq, seq)
            live: set[str] = set()
            for uscc, d in self._packs_read[seq].items():
                ent = self.enterprises.get(uscc)
                base = self.based.get(uscc)
                if ent is None or base is None or seq <= whole.get(uscc, 0):
                    continue  # its whole record (or tombstone) came after this pack
                added = _apply_delta(ent, d)
                self.upto = max(self.upto, ent.decided)
                packs = base[_PACKS] + [seq] if len(base) > _PACKS else [seq]
                self.based[uscc] = _base(ent, base[_COUNT] + 1, base[_TXS] + added, packs)
                live.add(uscc)
            self.packs[seq] = live  # none: superseded throughout, tombstoned next time
        self._packs_read.clear()
        self._whole_seq.clear()
        self.stale = True

    def load(self, uscc: str, doc: Any) -> None:
        if "#" in uscc:  # an open hit
            uscc, _, hit_id = uscc.partition("#")
            if doc is None:
                hits = self.open.get(uscc)
                if hits is not None:
                    hits.pop(hit_id, None)
                    if not hits:
                        del self.open[uscc]
            else:
                self.open.setdefault(uscc, {})[hit_id] = tuple(doc)
            return
        if uscc[:1] == "~":  # a pack of deltas (RulesState.changelog_records)
            n = int(uscc[1:])
            self.pack_seq = max(self.pack_seq, n)
            if doc is None:
                self._packs_read.pop(n, None)
            else:
                self._packs_read[n] = doc
            self.stale = True
            return
        uscc, delta, seq = uscc.partition(":")
        if delta:
            if doc is None:
                self._deltas.get(uscc, {}).pop(int(seq), None)
            else:
                self._deltas.setdefault(uscc, {})[int(seq)] = doc
            self.stale = True
            return
        if doc is None:
            self.enterprises.pop(uscc, None)
            self.idle.pop(uscc, None)
            self.based.pop(uscc, None)
            self._deltas.pop(uscc, None)
            self._whole_seq.pop(uscc, None)
            return
        whole_seq = int(doc.get("s", 0))  # none before the packs
        self._whole_seq[uscc] = whole_seq
        self.pack_seq = max(self.pack_seq, whole_seq)
        self.based[uscc] = [0, 0]  # idle: whole again when it comes back
        hours = b64decode(doc["h"])
        if "t" not in doc:
            self.enterprises.pop(uscc, None)
            self.idle[uscc] = (int(doc["a"]), hours)
            return
        self.idle.pop(uscc, None)
        ent = self.enterprises[uscc] = Enterprise(
            txs=[Tx(*row) for row in zip(*doc["t"], strict=True)],
            decided=int(doc["d"]),
            cursors={k: int(v) for k, v in doc["c"].items()},
            hours=_unpack(hours),
            last_active=doc["a"],
        )
        self.based[uscc] = _base(ent, 0, 0)
        self.upto = max(self.upto, int(doc["d"]))
        self.stale = True


@mypyc_attr(allow_interpreted_subclasses=True)  # tests and bench/rules_cost.py extend it
class RuleEngine:
    """The rules of one rule set, applied to the partitions' `RulesState`s."""

    def __init__(self, config: RuleSet) -> None:
        self.config = config
        self.velocity = Velocity(config)
        every: list[Rule] = [
            LargeValueSingle(config),
            LargeValueDaily(config),
            CashDaily(config),
            Structuring(config),
            self.velocity,
            PassThrough(config),
            RoundAmounts(config),
            DormantReactivation(config),
        ]
        self.rules = [r for r in every if config.enabled(r.rule)]
        # a new transaction's due time per rule, by kind (inline in observe, which runs once
        # per transaction; -1: the rule is off)
        index = {type(r): i for i, r in enumerate(self.rules)}
        self._single = index.get(LargeValueSingle, -1)
        self._velocity_i = index.get(Velocity, -1)
        self._vmin = config.velocity.min_count
        self._dormant_i = index.get(DormantReactivation, -1)
        self._gap_us = config.dormant.days * DAY_US
        self._daily = [i for i, r in enumerate(self.rules) if isinstance(r, DailyRule)]
        self._day0 = self._daily[0] if self._daily else -1
        self._pass_i = index.get(PassThrough, -1)
        self._pass_w = config.pass_through.window_hours * HOUR_US
        self._struct_i = index.get(Structuring, -1)
        self._struct_w = config.structuring.window_hours * HOUR_US
        st = config.structuring
        self._struct_low = st.threshold_fen * st.band_low_pct
        self._struct_high = st.threshold_fen * st.band_high_pct
        # every rule's due time is one of the above (checked at start: a new rule kind must
        # be added to observe)
        known = {LargeValueSingle, Velocity, DormantReactivation, PassThrough, Structuring}
        assert all(type(r) in known or isinstance(r, DailyRule) for r in self.rules)
        self._nevers = [NEVER] * len(self.rules)
        self._indexed = list(enumerate(self.rules))
        self._large_fen = config.large_value.cny_fen
        self._round_fen = config.round_amounts.unit * 100
        # bank transaction code → is_cash (no code: not cash)
        self._cash_codes: dict[str | None, bool] = {None: False}
        # structuring's band in fen: low ≤ fen·100 < high, for integer fen
        self._struct_fen_low = -(-self._struct_low // 100)
        self._struct_fen_high = -(-self._struct_high // 100)
        # the last hour (start, end, index) and Beijing day (start, end) observe computed
        self._hour = (0, 0, 0)
        self._day = (0, 0)
        self.lookback_us = max((r.lookback_us for r in every), default=0) + HOUR_US

    def observe(self, rs: RulesState, ev: AnyTransaction, ts: int, fen: int, band: str) -> None:
        """Keep one counted, on-time transaction (the processor calls it once per event).

        The per-event cost of the rules: a few attribute reads and one tuple, the due times
        inline (what `Rule.due_of_new` and `DormantReactivation.candidate` say, without a
        call per rule; tests/unit/rules/test_fast_paths.py checks them against those). The
        hour and the Beijing day of the last transaction are remembered: the stream comes
        nearly in time order, and dividing µs (two-digit ints) is a large share of the cost."""
        if rs.stale:  # restored: its deltas are applied before anything new is kept
            self.reschedule(rs)
        if ts < rs.upto:
            # only a record forwarded from a partition whose watermark was behind this one's:
            # its time is already decided here, so no rule may take it (deterministic)
            rs.skipped += 1
            return
        uscc = ev.enterprise_uscc
        ent = rs.enterprises.get(uscc)
        if ent is None:
            ent = self._enter(rs, uscc)
        # flags_of, inline for the common case (a CNY transfer); no code: not cash
        cash = self._cash_codes.get(ev.bank_tx_code)
        if cash is None:
            cash = self._is_cash(ev.bank_tx_code)
        if cash or ev.currency != "CNY":
            flags = flags_of(self.config, ev, fen)
        else:
            flags = CREDIT if ev.direction is _CREDIT else 0
            if fen >= self._large_fen:
                flags |= LARGE
            if fen > 0 and fen % self._round_fen == 0:
                flags |= ROUND
        tx = _new_tx(Tx, (ts, ev.event_id, fen, flags, ev.institution_type._value_, band))
        txs = ent.txs
        if not txs:
            prev = None  # the time of the transaction kept before it
            txs.append(tx)
        else:
            last = txs[-1]
            if last[0] < ts or last < tx:
                prev = last[0]
                txs.append(tx)
            else:
                pos = _bisect_left(txs, tx)
                txs.insert(pos, tx)
                prev = txs[pos - 1][0] if pos else None
        ent.added.append(tx)
        hour_start, hour_end, hour = self._hour
        if not hour_start <= ts < hour_end:
            hour = ts // HOUR_US
            hour_start = hour * HOUR_US
            hour_end = hour_start + HOUR_US
            self._hour = (hour_start, hour_end, hour)
        hours = ent.hours
        count = hours.get(hour, 0) + 1
        hours[hour] = count
        dues = ent.dues
        if not dues:
            dues.extend(self._nevers)
        # one-event rules and velocity are due only when a transaction can fire them (a large
        # transfer, a reactivation candidate, an hour reaching min_count), so an enterprise
        # without any is looked at when its day or an anchored window closes, not hourly
        lowered = False  # a due moved earlier (else the enterprise's schedule stands)
        if flags & LARGE and not flags & CASH:
            k = self._single
            if k >= 0 and hour_end < dues[k]:
                dues[k] = hour_end
                lowered = True
        if count >= self._vmin:
            k = self._velocity_i
            if k >= 0 and hour_end < dues[k]:
                dues[k] = hour_end
                lowered = True
        k = self._dormant_i
        if k >= 0 and hour_end < dues[k]:
            # DormantReactivation.candidate(ent, pos)
            last_active = ent.last_active
            if last_active is not None and (prev is None or last_active > prev):
                prev = last_active
            if prev is not None and ts - prev >= self._gap_us:
                dues[k] = hour_end
                lowered = True
        k = self._day0
        if k >= 0:
            # the daily rules' dues are always equal (each is the end of the first Beijing
            # day with transactions not yet decided): one test for all of them
            day_start, day_end_ = self._day
            if not day_start <= ts < day_end_:
                day_start = (ts + _SHANGHAI_US) // DAY_US * DAY_US - _SHANGHAI_US
                day_end_ = day_start + DAY_US
                self._day = (day_start, day_end_)
            if day_end_ < dues[k]:
                for k in self._daily:
                    dues[k] = day_end_
                lowered = True
        if flags & CREDIT:
            k = self._pass_i
            if k >= 0:
                due_k = ts + self._pass_w
                if due_k < dues[k]:
                    dues[k] = due_k
                    lowered = True
        if self._struct_fen_low <= fen < self._struct_fen_high:
            k = self._struct_i
            if k >= 0:
                due_k = ts + self._struct_w
                if due_k < dues[k]:
                    dues[k] = due_k
                    lowered = True
        rs.dirty.add(uscc)
        current = rs.due.get(uscc)
        if not lowered and current is not None and self._day0 >= 0:
            # no due moved (and the daily ones are set, so one is due): the enterprise is
            # already scheduled at or before the soonest (observe schedules the soonest,
            # advance the soonest, which is after `upto`)
            return
        # the soonest rule due (never before the hour is over: one-event rules go by the
        # hour, the others by hour, day or W ≥ 1 h)
        due = min(dues)
        if due >= NEVER:
            due = day_end(ts)  # no rule due: looked at once a day all the same (pruning)
        if current is None or due < current:
            rs.schedule(uscc, due)

    def _enter(self, rs: RulesState, uscc: str) -> Enterprise:
        """A new `Enterprise` for a transaction of an enterprise that has none (first seen
        here, or idle)."""
        idle = rs.idle.pop(uscc, None)
        ent = rs.enterprises[uscc] = Enterprise(decided=rs.upto)
        rs.rewrite.add(uscc)
        if idle is not None:
            ent.last_active, ent.hours = idle[0], _unpack(idle[1])
        return ent

    def _is_cash(self, code: str | None) -> bool:
        """`is_cash`, remembered per code (a bank's feed has a handful)."""
        cash = self._cash_codes.get(code)
        if cash is None:
            cash = code is not None and is_cash(code)
            if len(self._cash_codes) < _CASH_CODES_MAX:
                self._cash_codes[code] = cash
        return cash

    def advance(self, rs: RulesState, upto: int) -> list[tuple[str, Hit]]:
        """Decide everything whose window closed by `upto` (watermark - grace)."""
        hits: list[tuple[str, Hit]] = []
        if rs.stale:
            self.reschedule(rs)
        if upto <= rs.upto:
            return hits
        rs.upto = upto
        heap = rs.heap
        pending = rs.due
        enterprises = rs.enterprises
        dirty = rs.dirty
        rules = self.rules
        heappop = heapq.heappop
        bisect_left = bisect.bisect_left
        upto_hour = hour_floor(upto)
        # _prune's bounds, the same for every enterprise decided now
        keep_from = upto - self.lookback_us
        low_hour = self.velocity.keep_hours_from(upto)
        while heap and heap[0][0] <= upto:
            due, uscc = heappop(heap)
            if pending.get(uscc) != due:
                continue  # superseded
            del pending[uscc]
            ent = enterprises[uscc]
            dues = ent.dues
            # the others have nothing in (decided, upto]; deciding one rule moves no other's due
            # (so setting dues[i] while going through them is safe)
            for i, d in enumerate(dues):
                if d <= upto:
                    decided, dues[i] = rules[i].decide_due(ent, upto)
                    for hit in decided:
                        hits.append((uscc, hit))
            # the newest transaction decided now (PerEventRule.pending's last, without a slice)
            txs = ent.txs
            i = bisect_left(txs, (upto_hour,))
            if i and txs[i - 1][0] >= ent.decided // HOUR_US * HOUR_US:
                ent.last_active = txs[i - 1][0]
            ent.decided = upto
            # _prune, inline
            if txs and txs[0][0] < keep_from:
                ent.txs = txs = txs[bisect_left(txs, (keep_from,)) :]
            hours = ent.hours
            if hours and min(hours) < low_hour:
                for h in [h for h in hours if h < low_hour]:
                    del hours[h]
            cursors = ent.cursors
            if cursors:
                for key in [k for k, c in cursors.items() if c < keep_from]:
                    del cursors[key]
            dirty.add(uscc)
            soonest = min(dues)
            if soonest >= NEVER:
                last = ent.last_active
                if not txs and last is not None:
                    del enterprises[uscc]  # nothing left to decide: keep it compact
                    rs.idle[uscc] = (last, _pack(hours))
                    rs.rewrite.add(uscc)
                pending.pop(uscc, None)  # rs.schedule(uscc, None)
            else:
                next_due = soonest if soonest > upto else upto + 1
                pending[uscc] = next_due  # rs.schedule: popped above, so not pending
                heapq.heappush(heap, (next_due, uscc))
        hits.sort(key=lambda h: (h[1].window_start, h[0], h[1].rule.value))
        return hits

    def next_due(self, ent: Enterprise, upto: int) -> int | None:
        """Every rule's next due time, kept on the enterprise; the soonest (None: none)."""
        ent.dues = [r.next_due(ent, upto) or NEVER for r in self.rules]
        soonest = min(ent.dues, default=NEVER)
        return None if soonest >= NEVER else max(soonest, upto + 1)

    def _prune(self, ent: Enterprise, upto: int) -> None:
        keep_from = upto - self.lookback_us
        if ent.txs and ent.txs[0].ts < keep_from:
            ent.txs = ent.txs[bisect.bisect_left(ent.txs, (keep_from,)) :]
        low = self.velocity.keep_hours_from(upto)
        hours = ent.hours
        if hours and min(hours) < low:
            for h in [h for h in hours if h < low]:
                del hours[h]
        if ent.cursors:
            for key, cursor in list(ent.cursors.items()):
                if cursor < keep_from:
                    del ent.cursors[key]

    def reschedule(self, rs: RulesState) -> None:
        """Rebuild the due-time heap after enterprises were loaded from the changelog."""
        rs.settle()
        rs.heap.clear()
        rs.due.clear()
        for uscc, ent in rs.enterprises.items():
            rs.schedule(uscc, self.next_due(ent, ent.decided))
        rs.stale = False


def build_alert(config: RuleSet, uscc: str, hit: Hit, detected_at: datetime) -> Alert:
    """The `dfip.alerts` record of one hit; its id is the same whenever it is decided.

    Built with `model_construct`: every value comes from validated input (the events' ids,
    USCC and amounts, the rule set, the score table's band) or is made here in the form
    validation gives (UTC datetimes, a date, lists within MAX_ALERT_EVENTS), and validating
    it again was most of a hit's cost. tests/unit/rules/test_alert_records.py checks that it
    equals the validated `Alert(...)`, encoded bytes included."""
    txs = hit.txs
    first = txs[0]
    shown = txs[:MAX_ALERT_EVENTS]
    rule = hit.rule
    start = str(hit.window_start)
    if rule is _DAILY_LARGE:
        # one a day per direction: the direction keeps the two ids apart even if one event
        # id were in both (counted again, re-sent as the other direction)
        side = "credit" if first[3] & CREDIT else "debit"
        alert_id = make_event_id("alert", rule._value_, uscc, start, first[1], side)
    else:
        alert_id = make_event_id("alert", rule._value_, uscc, start, first[1])
    last_day = (_at(txs[-1][0]) + _SHANGHAI).date()
    if detected_at.tzinfo is not UTC:  # as validation normalises it (UtcDatetime)
        detected_at = detected_at.astimezone(UTC)
    return Alert.model_construct(
        set(_ALERT_FIELDS),  # its own: pydantic keeps the set given
        kind=_ALERT_KIND,
        event_id=alert_id,
        schema_version=SCHEMA_VERSION,
        rule=rule,
        ruleset_version=config.version,
        enterprise_uscc=uscc,
        institution_type=first[4],
        band=first[5],
        region=region_of(uscc)._value_,
        event_ids=[tx[1] for tx in shown],
        amounts_fen=[tx[2] for tx in shown],
        event_count=len(txs),
        total_fen=sum(map(_FEN, txs)),
        window_start=_at(hit.window_start),
        window_end=_at(hit.window_end),
        detected_at=detected_at,
        report_due=add_working_days(last_day),
    )
