"""The per-record pipeline, independent of Kafka I/O: decode, route, dedupe, judge lateness,
join, aggregate. It mutates partition state and collects outgoing records; the worker
(streams/worker.py) writes those and the state changes in one Kafka transaction.

Order for an input record at (topic, partition q, offset o):
  skip if o was already applied → count received → decode/validate (else dead letter) →
  dated too far after its Kafka timestamp? (dead letter) → wrong partition? judge lateness
  at q, forward to the right partition → duplicate? → lateness → no FX rate in force yet?
  (park it: streams/aggregate/fx_book.py) → as-of join → apply (else dead letter) →
  watermark, dedup memory, windows.

Figure updates that commute (flow counts, transaction counters and their windows) are summed
per group in the partition's tally and applied once (``flush_tally``): at the end of the batch
and before anything reads or moves figures (a restatement, FX reconciliation, a restore).
The order-dependent steps (offsets, dedup, watermarks, forwarding, parking, loan state,
restatement contributions) stay in the one pass over the records. ``batched=False`` applies
every update at once instead: the per-event reference path the tests compare with.

A forwarded copy carries its origin (topic, partition, offset) in a header. The home
partition remembers the origins it has taken (in its dedup memory, persisted with it) and
ignores a second copy of the same origin without counting it: a replay from the start re-reads
the copies the first run wrote and forwards the originals again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from schemas import catalog
from schemas import figure_names as fn
from schemas.alerts import AlertAck
from schemas.catalog import partition_for
from schemas.codec import EMPTY_VALUE, decode, encode, validate_wire
from schemas.errors import ErrorClass, FieldError, SchemaError
from schemas.events import (
    DeadLetter,
    DigitalizationScore,
    FxRate,
    LoanDisbursed,
    LoanEventBase,
    TransactionEvent,
)
from schemas.uscc import region_of
from schemas.wire import AnyTransaction, TransactionWire, decode_transaction
from streams.aggregate import fx_book, restate
from streams.aggregate.apply import (
    Join,
    Rejected,
    apply_loan_event,
    apply_transaction,
    flush_tally,
    tally_transaction,
)
from streams.aggregate.windows import (
    EPOCH,
    RETAIN_CLOSED_US,
    close_due,
    to_us,
    window_record,
)
from streams.query import recent
from streams.reference.fx import FxTable
from streams.reference.fx_state import Parked
from streams.reference.scores import ScoreTable, ScoreVersion
from streams.rules import RuleEngine, build_alert
from streams.rules import overdue as rule_reports
from streams.state.dedup import DAY_MS, ID_HASH, DedupMemory, id_hash
from streams.state.partition import PartitionState

__all__ = [
    "ALERTS",
    "ALERTS_ACK",
    "DEADLETTER",
    "FUTURE_DATED",
    "FX",
    "INPUT_TOPICS",
    "LATE",
    "LOANS",
    "METRICS",
    "SCORES",
    "TRANSACTIONS",
    "Output",
    "Processor",
    "Record",
]

log = logging.getLogger(__name__)

# catalog names (unprefixed) of the topics the processor reads and writes
TRANSACTIONS = catalog.TRANSACTIONS.name
LOANS = catalog.LOANS.name
SCORES = catalog.SCORES.name
FX = catalog.FX.name
DEADLETTER = catalog.DEADLETTER.name
LATE = catalog.LATE.name
METRICS = catalog.METRICS.name
ALERTS = catalog.ALERTS.name
ALERTS_ACK = catalog.ALERTS_ACK.name
INPUT_TOPICS = (TRANSACTIONS, LOANS)

H_FORWARDED = "dfip-forwarded"
H_LATE = "dfip-late"
# "<topic>:<partition>:<offset>" of the record a forwarded copy was made from (catalog name)
H_ORIGIN = "dfip-origin"

FUTURE_DATED = "future_dated"
DEFAULT_MAX_FUTURE_US = 86_400 * 1_000_000
DEFAULT_RESTATE_HORIZON_US = 120 * 86_400 * 1_000_000
_DAY_US = 86_400 * 1_000_000

# FX lives on a single partition read by every worker; its flow accounting and dead letters
# belong to the owner of this partition number so they are counted exactly once.
FX_ACCOUNTING_PARTITION = 0


_NO_HEADERS: dict[str, bytes] = {}

# enterprise → (its partition (Kafka's murmur2 partitioner), its region's value), for the
# codes seen lately: one lookup per event gives both
_HOMES: dict[str, tuple[int, str]] = {}
_HOMES_MAX = 1 << 16


def _home(uscc: str) -> tuple[int, str]:
    if len(_HOMES) >= _HOMES_MAX:
        _HOMES.clear()  # a cache: bounded
    where = _HOMES[uscc] = (partition_for(uscc, cached=False), region_of(uscc)._value_)
    return where


class _FlowKeys(dict[str, tuple[str, tuple[str]]]):
    """Tally keys of one per-topic flow counter for the event topics, made once."""

    def __init__(self, name: str) -> None:
        super().__init__({t: (name, (t,)) for t in INPUT_TOPICS})
        self.name = name


_RECEIVED = _FlowKeys(fn.EVENTS_RECEIVED_TOTAL)
_PROCESSED = _FlowKeys(fn.EVENTS_PROCESSED_TOTAL)
_EMPTY = EMPTY_VALUE
# the hot path's inlined helpers (process): decode's fast path, id_hash's hash, to_us's epoch
_validate_wire = validate_wire
_decode_transaction = decode_transaction
_xxh3 = ID_HASH
_EPOCH = EPOCH
_DAY_MS = DAY_MS
# a cache of a division (a long division costs more than the rest of its line): the arrival
# day last computed as [its first ms, the next day's first ms] (none yet: an empty range)
_ARRIVAL_DAY = [0, 0]


def _origin_key(headers: dict[str, bytes]) -> str | None:
    """The dedup-memory key of a forwarded copy's origin; None for copies without a (valid)
    origin header, i.e. written before origins were carried. Keys contain spaces, which an
    event id cannot (schemas.fields.EventId), so they never collide with event ids."""
    raw = headers.get(H_ORIGIN)
    if raw is None:
        return None
    try:
        topic, partition, offset = raw.decode("ascii").rsplit(":", 2)
        return f"origin {topic} {int(partition)} {int(offset)}"
    except ValueError:
        return None


def _misplaced(kind: str, topic: str) -> SchemaError:
    return SchemaError(
        "invalid_shape", [FieldError("kind", repr(kind), f"does not belong on {topic}")]
    )


@dataclass(slots=True)
class Record:
    """One consumed record; ``topic`` is the catalog name (prefix stripped).

    Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__,
    measurably slower for the one object built per consumed record. Treat it as read-only.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Output:
    """A record to write in the batch's transaction; ``topic`` is a catalog name."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: Sequence[tuple[str, bytes]] = ()
    # Kafka record timestamp to write (None: the producer's clock); a forwarded copy keeps
    # the original's, so it arrives at home when the original arrived (dedup by arrival time)
    timestamp_ms: int | None = None


@dataclass
class Processor:
    """Applies records to the states of the partitions this worker owns."""

    grace_us: int
    # ids are remembered this many UTC days of the topic-partition's arrival clock
    dedup_retention_days: int = 45
    # an event dated more than this after its record's Kafka timestamp is dead-lettered
    max_future_us: int = DEFAULT_MAX_FUTURE_US
    # counted transactions are restated by assessments back to the transactions watermark
    # minus this (event time, µs; streams/aggregate/restate.py)
    restate_horizon_us: int = DEFAULT_RESTATE_HORIZON_US
    # the rules over the transaction stream (streams/rules/); None: off
    rules: RuleEngine | None = None
    states: dict[int, PartitionState] = field(default_factory=dict)
    scores: dict[int, ScoreTable] = field(default_factory=dict)
    fx: FxTable = field(default_factory=FxTable)
    outputs: list[Output] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)
    # False: every figure update goes to the counters and windows at once, event by event
    # (the reference path the tests compare the batched one with)
    batched: bool = True

    # ---- flow accounting helpers -------------------------------------------------------

    def _count(self, state: PartitionState, name: str, topic: str, *extra: str) -> None:
        if self.batched:  # summed in the batch's tally, applied once (flush_tally)
            flow = state.tally.flow
            key = (name, (topic, *extra))
            flow[key] = flow.get(key, 0) + 1
        else:
            state.counters.add(name, (topic, *extra), 1)

    def _tick(self, state: PartitionState, keys: _FlowKeys, topic: str) -> None:
        """``_count`` of a flow counter labelled by topic only, with its key made once."""
        key = keys.get(topic)
        if key is None or not self.batched:
            self._count(state, keys.name, topic)
            return
        flow = state.tally.flow
        flow[key] = flow.get(key, 0) + 1

    def _flush(self, state: PartitionState) -> None:
        """Apply the batch's summed figure updates before anything reads or moves figures."""
        if state.tally:
            flush_tally(state)

    def flush_figures(self) -> None:
        """Apply every partition's summed figure updates now (``finish_batch`` does; call it
        to read the counters or windows in the middle of a batch)."""
        for state in self.states.values():
            if state.tally:
                flush_tally(state)

    def _dead_letter(
        self,
        state: PartitionState,
        rec: Record,
        *,
        stage: str,
        error_class: str,
        reason: str,
    ) -> None:
        self._count(state, fn.EVENTS_DEADLETTERED_TOTAL, rec.topic, error_class)
        letter = DeadLetter.build(
            rec.value or b"",
            error_class=error_class,
            reason=reason,
            stage=stage,
            first_seen=datetime.now(tz=UTC),
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            key=rec.key,
            source_location=f"{rec.topic}[{rec.partition}]@{rec.offset}",
        )
        self.outputs.append(Output(DEADLETTER, rec.key, encode(letter)))

    def _future_dated(self, rec: Record, field: str, at: datetime) -> str | None:
        """The reason to reject an event dated more than ``max_future_us`` after the record's
        Kafka timestamp (deterministic on replay, unlike the wall clock); None if it is not,
        or if the record has no timestamp."""
        if rec.timestamp_ms is None or rec.timestamp_ms < 0:
            return None
        limit_us = rec.timestamp_ms * 1000 + self.max_future_us
        if to_us(at) <= limit_us:
            return None
        stamp = datetime.fromtimestamp(rec.timestamp_ms / 1000, tz=UTC)
        return (
            f"{FUTURE_DATED}: {field}: {at.isoformat()} is more than "
            f"{self.max_future_us // 1_000_000} s after the record's Kafka timestamp "
            f"{stamp.isoformat(timespec='milliseconds')}"
        )

    def _forward(self, rec: Record, home: int, *, late: bool | None = None) -> None:
        """Copy ``rec`` to its home partition, tagged as forwarded and with its origin."""
        headers = [
            (H_FORWARDED, b"1"),
            (H_ORIGIN, f"{rec.topic}:{rec.partition}:{rec.offset}".encode("ascii")),
        ]
        if late is not None:
            headers.append((H_LATE, b"1" if late else b"0"))
        ts = rec.timestamp_ms if rec.timestamp_ms is not None and rec.timestamp_ms >= 0 else None
        self.outputs.append(
            Output(rec.topic, rec.key, rec.value, partition=home, headers=headers, timestamp_ms=ts)
        )

    @staticmethod
    def _take_origin(mem: DedupMemory, origin: str | None) -> None:
        """Remember a forwarded copy's origin as taken (by arrival time, like an event id)."""
        if origin is not None:
            mem.add(id_hash(origin))

    def _begin(self, state: PartitionState, rec: Record) -> bool:
        """Checkpoint check: False if this offset was already applied before a restart."""
        if rec.offset < state.offsets.get(rec.topic, 0):
            return False
        state.offsets[rec.topic] = rec.offset + 1
        mem = state.memory(rec.topic)
        if mem.observe(rec.timestamp_ms):
            self._expire(state, rec.topic, mem)  # a new arrival day: forget before looking up
        self.touched.add(state.partition)
        return True

    def _expire(self, state: PartitionState, topic: str, mem: DedupMemory) -> None:
        for day, seq in mem.expire(self.dedup_retention_days, state.dedup_max_entries):
            state.expired_dedup.append((topic, day, seq))

    # ---- event topics ------------------------------------------------------------------

    def process_batch(self, records: Sequence[Record]) -> None:
        """``process`` each record of an owned partition (others are skipped: a rebalance
        raced the batch). Each value is decoded as its record is processed: decoding a
        batch ahead (``decode_many``) measured slower, the events then outlive the cache."""
        states = self.states
        process = self.process
        for rec in records:
            if rec.partition in states:
                try:
                    process(rec)
                except MemoryError:
                    raise
                except Exception as exc:
                    self._failed(rec, exc)
            else:
                log.debug("skipping a record of unowned partition %s", rec.partition)

    def _failed(self, rec: Record, exc: Exception) -> None:
        """The last resort for a record whose processing raised (a defect, not a verdict of
        the rules above): dead-lettered ``processing_error``, so the batch commits. Raising
        instead would fail every retry of the batch the same way and hold the partitions
        behind it for good. Figures the record updated before the error stay updated."""
        log.error(
            "%s[%d]@%d: processing raised %s; dead-lettered as processing_error",
            rec.topic, rec.partition, rec.offset, type(exc).__name__,
        )  # fmt: skip
        state = self.states[rec.partition]
        state.offsets[rec.topic] = max(state.offsets.get(rec.topic, 0), rec.offset + 1)
        self.touched.add(rec.partition)
        self._dead_letter(
            state, rec, stage="aggregate", error_class=ErrorClass.processing_error,
            reason=f"processing_error: {type(exc).__name__}: {exc}"[:1000],
        )  # fmt: skip

    def process(self, rec: Record) -> None:
        # The hot path: one call per event record. _begin, _count, DedupMemory.observe, the
        # fast path of codec.decode, to_us and id_hash are inlined here: a Python call costs
        # about as much as the little work each of them does.
        topic = rec.topic
        partition = rec.partition
        state = self.states[partition]
        offsets = state.offsets
        offset = rec.offset
        if offset < offsets.get(topic, 0):
            return  # already applied before a restart
        offsets[topic] = offset + 1
        mem = state.dedup.get(topic)
        if mem is None:  # not `or`: a DedupMemory's truth is its __len__, a Python call
            mem = state.memory(topic)
        stamp = rec.timestamp_ms
        if stamp is not None:  # mem.observe(stamp), inlined
            before = mem.clock_ms
            if stamp > before:
                mem.clock_ms = stamp
                # a later arrival day? Not when both lie in the arrival day last computed
                # ([first ms, first ms of the next day), any memory's: a cache of a pure
                # function); else before lies before the first instant of stamp's day
                day = _ARRIVAL_DAY
                if not day[0] <= before or stamp >= day[1]:
                    first = stamp // _DAY_MS * _DAY_MS
                    day[0] = first
                    day[1] = first + _DAY_MS
                    if before < 0 or first > before:
                        self._expire(state, topic, mem)  # a new arrival day: forget first
        touched = self.touched
        if partition not in touched:  # a test, not a method call, for most events
            touched.add(partition)
        if rec.headers:
            headers = dict(rec.headers)
            forwarded = headers.get(H_FORWARDED) == b"1"
        else:
            headers = _NO_HEADERS
            forwarded = False
        batched = self.batched
        if forwarded:
            origin = _origin_key(headers)
            if origin is not None and mem.seen(id_hash(origin)):
                return  # another copy of a record already taken here (a replay forwarded it)
        else:
            origin = None
            key = _RECEIVED.get(topic)
            if batched and key is not None:
                flow = state.tally.flow
                flow[key] = flow.get(key, 0) + 1
            else:
                self._count(state, _RECEIVED.name, topic)
        value = rec.value
        event: Any
        try:
            # the batch path reads a transaction as a msgspec struct (schemas.wire), the
            # per-event reference path as the model; otherwise decode's fast path. Anything
            # they do not take goes to decode, which decides (None raises here too).
            if batched and topic == TRANSACTIONS:
                event = _decode_transaction(value)  # type: ignore[arg-type]
            else:
                event = _validate_wire(value, strict=True)  # type: ignore[arg-type]
        except Exception:
            try:
                if value is None:
                    raise _EMPTY from None
                event = decode(value)
            except SchemaError as exc:
                self._dead_letter(
                    state, rec, stage="ingress", error_class=exc.error_class, reason=str(exc)
                )
                return
        cls = type(event)
        tx: AnyTransaction | None = (
            event if cls is TransactionWire or cls is TransactionEvent else None
        )
        if not (tx is not None if topic == TRANSACTIONS else isinstance(event, LoanEventBase)):
            err = _misplaced(event.kind, topic)
            self._dead_letter(
                state, rec, stage="ingress", error_class=err.error_class, reason=str(err)
            )
            return
        if TYPE_CHECKING:  # checked just above; at run time the union and isinstance cost
            assert isinstance(event, TransactionWire | TransactionEvent | LoanEventBase)
        delta = event.occurred_at - _EPOCH  # to_us, inlined
        ts = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        # a forwarded copy was judged where it landed, against the original's timestamp
        if (
            not forwarded
            and stamp is not None
            and stamp >= 0
            and ts > stamp * 1000 + self.max_future_us
        ):
            future = self._future_dated(rec, "occurred_at", event.occurred_at)
            assert future is not None
            self._dead_letter(state, rec, stage="ingress", error_class=FUTURE_DATED, reason=future)
            return
        uscc = event.enterprise_uscc
        where = _HOMES.get(uscc)
        if where is None:
            where = _home(uscc)
        home = where[0]
        watermarks = state.watermarks
        if home != partition:
            # judged here, where it landed (deterministic: the producer chose this order)
            wm = watermarks.get(topic)
            late = wm is not None and ts < wm - self.grace_us
            if not late:
                watermarks[topic] = max(wm or ts, ts)
            self._forward(rec, home, late=late)
            return
        if origin is not None:
            mem.add(id_hash(origin))  # taken here (by arrival time, like an event id)
        eid = _xxh3(event.event_id.encode())  # id_hash, inlined
        parked = state.fx_book.parked_hashes
        if eid in mem.ids or (parked and (topic, eid) in parked):
            self._count(state, fn.EVENTS_DUPLICATE_TOTAL, topic)
            return
        wm = watermarks.get(topic)
        if forwarded:
            late = headers.get(H_LATE) == b"1"
        else:
            late = wm is not None and ts < wm - self.grace_us
        # FX order independence: an event with no rate in force yet waits in partition state
        # (a CNY transaction never waits: park_if_needed's first test, without the call)
        # waiting: applied when its rate (or its loan's disbursement) is known
        waiting = not (tx is not None and tx.currency == "CNY") and fx_book.park_if_needed(
            state, self.fx, rec, event, eid, ts, late=late, forwarded=forwarded
        )
        if not waiting:
            windowed = not late
            if forwarded and windowed:
                # judged not late where it landed; the home partition may have dropped the
                # window already, and re-creating it would replace the emitted record with a
                # partial one
                windowed = wm is None or wm < ts + self.grace_us + RETAIN_CLOSED_US
            if batched and tx is not None:
                applied = self._count_transaction(
                    state, mem, rec, tx, eid, ts, late, windowed, forwarded, where[1]
                )
            else:
                applied = self._apply(
                    state, rec, event, eid, ts, late=late, windowed=windowed, forwarded=forwarded
                )
            if not applied:
                return
        if not late and not forwarded:
            # the watermark has not moved since it was read above (parking and applying
            # do not move it)
            watermarks[topic] = ts if wm is None or ts > wm else wm

    def _count_transaction(
        self,
        state: PartitionState,
        mem: DedupMemory,
        rec: Record,
        event: AnyTransaction,
        eid: int,
        ts: int,
        late: bool,
        windowed: bool,
        forwarded: bool,
        region: str,
    ) -> bool:
        """``_apply`` of a transaction on the batch path (``batched``; ``_apply`` hands parked
        ones here too), positional and with the figure updates summed in the tally: the hot
        case, kept tight. ``region`` is the enterprise's (``_HOMES``). False if it was
        dead-lettered."""
        partition = state.partition
        uscc = event.enterprise_uscc
        # as_of and canonical (the table's own USCC string: one copy per enterprise) at once
        band, sector, key = self.scores[partition].join(uscc, ts)
        floor = restate.floor_of(state, self.restate_horizon_us)
        topic = rec.topic
        try:
            fen = tally_transaction(
                state, event, band, sector, region, self.fx, topic, ts, windowed
            )  # fmt: skip
        except Rejected as exc:
            self._dead_letter(
                state, rec, stage="aggregate", error_class=exc.error_class, reason=exc.reason
            )
            return False
        it = event.institution_type._value_
        direction = event.direction._value_
        labels = (it, direction, windowed, band, sector)
        restate.record(state, key, ts, labels, fen, floor)
        recent.record(state, key, ts, direction, fen)
        if self.rules is not None and not late and not forwarded:
            # forwarded copies are left out: when one arrives depends on timing
            self.rules.observe(state.rules, event, ts, fen, band)
        currency = event.currency
        if currency != "CNY":
            rate = self.fx.rate_at(currency, event.occurred_at)
            assert rate is not None  # tally_transaction found it
            cm = event.customs_mode
            fx_book.record_counted(
                state, uscc, ts, currency, event.amount, rate, labels,
                None if cm is None else cm._value_, floor,
            )  # fmt: skip
        flow = state.tally.flow
        key_p = _PROCESSED[topic]
        flow[key_p] = flow.get(key_p, 0) + 1
        mem.add(eid)  # the duplicate memory of (topic, partition)
        if late:
            self._count(state, fn.EVENTS_LATE_TOTAL, topic)
            self.outputs.append(Output(LATE, rec.key, rec.value, partition=partition))
        return True

    def _apply(
        self,
        state: PartitionState,
        rec: Record,
        event: AnyTransaction | LoanEventBase,
        eid: int,
        ts: int,
        *,
        late: bool,
        windowed: bool,
        forwarded: bool = False,
    ) -> bool:
        """Join and count one first-seen event; False if it was dead-lettered."""
        if isinstance(event, TransactionWire) or (
            self.batched and isinstance(event, TransactionEvent)
        ):
            uscc = event.enterprise_uscc
            where = _HOMES.get(uscc) or _home(uscc)
            return self._count_transaction(
                state, state.memory(rec.topic), rec, event, eid, ts, late, windowed, forwarded,
                where[1],
            )  # fmt: skip
        table = self.scores[state.partition]
        band, sector = table.as_of(event.enterprise_uscc, ts)
        region = region_of(event.enterprise_uscc)._value_
        floor = restate.floor_of(state, self.restate_horizon_us)
        try:
            if isinstance(event, TransactionEvent):  # the per-event reference path
                join = Join(band=band, sector=sector, region=region)
                fen = apply_transaction(
                    state, event, join, self.fx, topic=rec.topic, windowed=windowed
                )
                direction = event.direction._value_
                labels = (event.institution_type._value_, direction, windowed, band, sector)
                # keyed by the score table's own USCC string: one copy per enterprise
                uscc = table.canonical(event.enterprise_uscc)
                restate.record(state, uscc, ts, labels, fen, floor)
                recent.record(state, uscc, ts, direction, fen)
                if self.rules is not None and not late and not forwarded:
                    # forwarded copies are left out: when one arrives depends on timing
                    self.rules.observe(state.rules, event, ts, fen, band)
                if event.currency != "CNY":
                    rate = self.fx.rate_at(event.currency, event.occurred_at)
                    assert rate is not None  # apply_transaction found it
                    cm = event.customs_mode.value if event.customs_mode is not None else None
                    fx_book.record_counted(
                        state, event.enterprise_uscc, ts, event.currency, event.amount, rate,
                        labels, cm, floor,
                    )  # fmt: skip
            else:
                join = Join(band=band, sector=sector, region=region)
                apply_loan_event(state, event, join, self.fx, topic=rec.topic, windowed=windowed)
                if isinstance(event, LoanDisbursed):
                    fx_book.record_loan(state, event, windowed=windowed)
                kind = event.event_type.value
                if kind in restate.BAND_ONLY_LOAN_EVENTS:
                    labels = (event.institution_type.value, kind, False, band, sector)
                    uscc = table.canonical(event.enterprise_uscc)
                    restate.record(state, uscc, ts, labels, 0, floor)
        except Rejected as exc:
            self._dead_letter(
                state, rec, stage="aggregate", error_class=exc.error_class, reason=exc.reason
            )
            return False
        self._tick(state, _PROCESSED, rec.topic)
        state.memory(rec.topic).add(eid)
        if late:
            self._count(state, fn.EVENTS_LATE_TOTAL, rec.topic)
            self.outputs.append(Output(LATE, rec.key, rec.value, partition=state.partition))
        return True

    # ---- parked events (streams/aggregate/fx_book.py) ----------------------------------

    def apply_parked(self, state: PartitionState, entry: Parked) -> None:
        """Count a parked event now that its rate (or its loan's disbursement) is known. It
        enters its windows only while they are surely still held (watermark before
        occurred_at + grace + RETAIN_CLOSED_US), so a dropped window is never re-created."""
        rec = Record(
            entry.topic, state.partition, entry.offset, entry.key, entry.value,
            timestamp_ms=entry.timestamp_ms,
        )  # fmt: skip
        event = decode(entry.value)
        assert isinstance(event, TransactionEvent | LoanEventBase)
        wm = state.watermarks.get(entry.topic)
        held = wm is None or wm < entry.occurred_us + self.grace_us + RETAIN_CLOSED_US
        windowed = not entry.late and held
        self._apply(
            state, rec, event, entry.event_hash, entry.occurred_us, late=entry.late,
            windowed=windowed, forwarded=entry.forwarded,
        )  # fmt: skip

    def dead_letter_parked(self, state: PartitionState, entry: Parked, reason: str) -> None:
        rec = Record(
            entry.topic, state.partition, entry.offset, entry.key, entry.value,
            timestamp_ms=entry.timestamp_ms,
        )  # fmt: skip
        self._dead_letter(
            state, rec, stage="aggregate", error_class=fx_book.FX_RATE_MISSING, reason=reason
        )

    def restored(self, partition: int) -> None:
        """A restore has rebuilt the partition and its score table: key the restatement store
        by the table's USCC strings, and reconcile with the FX rates read so far (restating or
        applying what rates read meanwhile change)."""
        state = self.states[partition]
        self._flush(state)
        restate.share_keys(state, self.scores[partition])
        wm = state.watermarks.get(TRANSACTIONS)
        if self.rules is not None and wm is not None:
            # the committed batch decided the rules up to its watermark minus the grace; the
            # restored enterprises' decided times can be older (an enterprise is decided only
            # when one of its rules is due), and a parked transaction applied below or later
            # must not be seen if its time was already final (as it would not be without
            # the restore: docs/aml-rules.md, "Order does not matter")
            state.rules.upto = max(state.rules.upto, wm - self.grace_us)
        state.fx_book.ready = True
        fx_book.reconcile(self, state)

    # ---- reference topics --------------------------------------------------------------

    def process_score(self, rec: Record, *, counted: bool) -> None:
        """A record of the scores topic; ``counted`` is False while replaying for a restore."""
        table = self.scores[rec.partition]
        state = self.states[rec.partition]
        headers = dict(rec.headers) if rec.headers else {}
        forwarded = headers.get(H_FORWARDED) == b"1"
        # origins matter only for counting: the silent restore pass dedupes by event id
        origin = _origin_key(headers) if forwarded and counted else None
        if counted:
            if not self._begin(state, rec):
                return
            if origin is not None and state.memory(rec.topic).seen(id_hash(origin)):
                return  # another copy of a record already taken here
            if not forwarded:  # a forwarded copy was counted as received where it landed
                self._count(state, fn.EVENTS_RECEIVED_TOTAL, rec.topic)
        try:
            if rec.value is None:
                raise _EMPTY
            event = decode(rec.value)
            if not isinstance(event, DigitalizationScore):
                raise _misplaced(event.kind, rec.topic)
        except SchemaError as exc:
            if counted:
                self._dead_letter(
                    state, rec, stage="ingress", error_class=exc.error_class, reason=str(exc)
                )
            return
        # decided the same way in the silent restore pass: it depends on the record only
        future = None if forwarded else self._future_dated(rec, "assessed_at", event.assessed_at)
        if future is not None:
            if counted:
                self._dead_letter(
                    state, rec, stage="ingress", error_class=FUTURE_DATED, reason=future
                )
            return
        # each enterprise's score comes about once: a cache of homes would only churn
        home = partition_for(event.enterprise_uscc, cached=False)
        if home != rec.partition:
            if counted:
                self._forward(rec, home)
            return
        self._take_origin(state.memory(rec.topic), origin)
        uscc = event.enterprise_uscc
        score_id = id_hash(event.event_id)  # 64-bit hash: 48 bytes an assessment, not ~80
        if table.has(uscc, score_id):
            if counted:
                self._count(state, fn.EVENTS_DUPLICATE_TOTAL, rec.topic)
            return
        assessed_us = to_us(event.assessed_at)
        pushed_out = table.add(
            uscc,
            ScoreVersion(
                assessed_us=assessed_us,
                event_id=score_id,
                band=event.band.value,
                sector=event.industry_section.value,
            ),
        )
        if counted:
            self._count(state, fn.EVENTS_PROCESSED_TOTAL, rec.topic)
            self._flush(state)  # a restatement moves figures: the batch's sums first
            # the silent restore pass does not restate: the changelog holds restated figures
            floor = restate.floor_of(state, self.restate_horizon_us)
            region = region_of(uscc).value
            # a version pushed out of the kept history no longer joins: the events it
            # joined (from its assessed_at on) are joined again with the kept ones
            restate.restate(
                state, table, uscc, region, assessed_us, floor, self.grace_us, since_us=pushed_out
            )

    def process_ack(self, rec: Record) -> None:
        """A record of dfip.alerts.ack (read like the scores, per owned partition): closes
        the open hit it names, exactly once (its offset is in the partition checkpoint)."""
        state = self.states.get(rec.partition)
        if state is None or rec.offset < state.offsets.get(ALERTS_ACK, 0):
            return
        state.offsets[ALERTS_ACK] = rec.offset + 1
        self.touched.add(rec.partition)
        try:
            ack = AlertAck.model_validate_json(rec.value or b"")
        except ValueError as exc:
            reason = f"{rec.topic}[{rec.partition}]@{rec.offset}: not an AlertAck: {exc}"
            self._dead_letter(
                state, rec, stage="ingress", error_class="invalid_shape", reason=reason
            )
            return
        rule_reports.acknowledge(state.rules, state.counters, ack)

    def process_fx(self, rec: Record) -> None:
        """A record of the FX topic: applied by every worker, accounted by one."""
        state = self.states.get(FX_ACCOUNTING_PARTITION)
        counted = state is not None and rec.offset >= state.offsets.get(rec.topic, 0)
        if state is not None and counted:
            self._begin(state, rec)
            self._count(state, fn.EVENTS_RECEIVED_TOTAL, rec.topic)
        try:
            if rec.value is None:
                raise _EMPTY
            event = decode(rec.value)
            if not isinstance(event, FxRate):
                raise _misplaced(event.kind, rec.topic)
        except SchemaError as exc:
            if state is not None and counted:
                self._dead_letter(
                    state, rec, stage="ingress", error_class=exc.error_class, reason=str(exc)
                )
            return
        rate = (event.currency, event.rate_date, event.rate_to_cny, event.published_at)
        if self.fx.put(*rate, offset=rec.offset):
            self.flush_figures()  # reconciling moves figures: the batches' sums first
            for owned in self.states.values():  # each worker restates the partitions it owns
                fx_book.reconcile(self, owned)
        if state is not None and counted:
            self._count(state, fn.EVENTS_PROCESSED_TOTAL, rec.topic)

    # ---- end of batch ------------------------------------------------------------------

    def finish_batch(self) -> None:
        """Close due windows and expire duplicate memory for every touched partition."""
        # every partition's sums (reconciling can count into one this batch did not touch:
        # its figures then change without a commit, as they do event by event)
        self.flush_figures()
        # an FX rate read during a restore can touch a partition a later rebalance dropped
        self.touched &= self.states.keys()
        for p in sorted(self.touched):
            state = self.states[p]
            fx_book.reconcile(self, state)  # parked events the floor has passed: dead letters
            floor = restate.floor_of(state, self.restate_horizon_us)
            if floor is not None and floor // _DAY_US != state.swept_day:
                # the floor entered a new UTC day: forget contributions it has passed
                state.swept_day = floor // _DAY_US
                restate.sweep(state, floor)
                fx_book.sweep(state, floor)
            if self.rules is not None:
                self._decide_rules(state)
            self._flush(state)  # what reconciling and the rules counted, before the windows close
            for topic in INPUT_TOPICS:
                for key, win in close_due(state, topic, self.grace_us):
                    rkey, value = window_record(p, key, win)
                    self.outputs.append(Output(METRICS, rkey, orjson.dumps(value)))
            for topic, mem in state.dedup.items():
                if len(mem) > state.dedup_max_entries:  # the safety cap (days expire early)
                    log.warning(
                        "%s[%d]: duplicate memory over %d ids; forgetting the oldest days early",
                        topic,
                        p,
                        state.dedup_max_entries,
                    )
                    self._expire(state, topic, mem)

    def _decide_rules(self, state: PartitionState) -> None:
        """Decide the rules up to the final event time; each hit goes out once, in this
        batch's transaction, together with the rule state that decided it."""
        assert self.rules is not None
        wm = state.watermarks.get(TRANSACTIONS)
        if wm is None:
            return
        hits = self.rules.advance(state.rules, wm - self.grace_us)
        if not hits:
            return
        now = datetime.now(tz=UTC)
        for uscc, hit in hits:
            alert = build_alert(self.rules.config, uscc, hit, now)
            labels = (alert.rule.value, alert.region, alert.institution_type, alert.band)
            state.counters.add(fn.ALERTS_TOTAL, labels, 1)
            state.counters.add(fn.ALERT_AMOUNT_YUAN_TOTAL, labels, alert.total_fen)
            rule_reports.open_hit(state.rules, state.counters, alert)
            self.outputs.append(
                Output(ALERTS, uscc.encode(), encode(alert), partition=state.partition)
            )

    def take_outputs(self) -> list[Output]:
        out, self.outputs = self.outputs, []
        return out

    # ---- API used by the engine ----
    # The engine (streams/engine/) owns which partitions are here and when a batch ends; it
    # changes the processor only through these methods, never through its fields.

    @property
    def partitions(self) -> list[int]:
        """The partitions whose state is held here, in order."""
        return sorted(self.states)

    def owns(self, partition: int) -> bool:
        return partition in self.states

    def adopt_partition(self, state: PartitionState, scores: ScoreTable) -> None:
        """Hold a partition restored from its changelog, with the score table to rebuild
        (the restore replays the scores into it, then calls :meth:`restored`)."""
        self.states[state.partition] = state
        self.scores[state.partition] = scores

    def drop_partition(self, partition: int) -> None:
        """Forget a partition that moved to another worker (or is restored anew)."""
        self.states.pop(partition, None)
        self.scores.pop(partition, None)

    def has_changes(self) -> bool:
        """Whether a partition changed since the last :meth:`take_touched`."""
        return bool(self.touched)

    def take_touched(self) -> list[int]:
        """The partitions changed since the last call, in order: what the next commit writes."""
        touched = sorted(self.touched)
        self.touched.clear()
        return touched

    def discard_batch(self) -> None:
        """Forget what a failed batch changed and would have written (its partitions are then
        dropped and restored from the committed changelog)."""
        self.outputs.clear()
        self.touched.clear()
