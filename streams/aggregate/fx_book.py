"""FX order independence (docs/metrics.md, "FX rate in force"): parked events and restatement.

Per partition, a :class:`FxBook` keeps

* *parked* events: a foreign-currency transaction or ``disbursed`` event with no rate in force
  when it is processed, and every later event of a loan whose disbursement is parked (kept in
  arrival order, so the loan's lifecycle applies in the order it was read). They are applied
  as soon as a rate in force is read, or dead-lettered ``fx_rate_missing`` once the partition's
  restatement floor passes their ``occurred_at``;
* *counted* foreign-currency transactions at or after the restatement floor, with the rate
  each was counted at. When a rate is read that changes the rate in force for one of them (a
  newer ``rate_date`` published by its time, or a correction), its CNY amount moves by the
  difference, in the live figures and in the windows still held.

Both are decided against the current :class:`FxTable`, never against "the rate just read", and
the book records which rate each counted event used, so a partition restored on another
worker (whose table may have read more or fewer rates by then) reconciles to the same figures:
restatement is idempotent. Each worker reads every rate but reconciles only the partitions it
owns; a partition being restored is reconciled once, after its score table is rebuilt.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import orjson

from schemas import figure_names as fn
from schemas.catalog import LOANS, TRANSACTIONS
from schemas.errors import ErrorClass
from schemas.events import LoanDisbursed, LoanEventBase, TransactionEvent
from schemas.money import MAX_COUNTED_FEN, MAX_LOAN_FEN, to_fen
from schemas.uscc import region_of
from schemas.wire import AnyTransaction, TransactionWire
from streams.aggregate import loans as book_keeping
from streams.aggregate import restate
from streams.aggregate.apply import INCLUSIVE_SME_LIMIT_FEN
from streams.aggregate.windows import DISBURSED_FEN, TX_AMOUNT_FEN, amend_windows
from streams.reference.fx import FxTable
from streams.reference.fx_state import Counted, Parked, local_day
from streams.state.partition import PartitionState

__all__ = [
    "FX_RATE_MISSING",
    "PENDING",
    "Parker",
    "dirty_records",
    "finish_restore",
    "from_json",
    "park_if_needed",
    "reconcile",
    "record_counted",
    "record_loan",
    "sweep",
]

TX_TOPIC = TRANSACTIONS.name
LOANS_TOPIC = LOANS.name
_K = TypeVar("_K")
PENDING = fn.FX_PENDING_EVENTS
FX_RATE_MISSING = ErrorClass.fx_rate_missing.value
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _at(occurred_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=occurred_us)


class Parker(Protocol):
    """What the processor offers the book (streams/processor.py)."""

    fx: FxTable
    grace_us: int
    restate_horizon_us: int
    touched: set[int]

    def apply_parked(self, state: PartitionState, entry: Parked) -> None: ...

    def dead_letter_parked(self, state: PartitionState, entry: Parked, reason: str) -> None: ...


def record_counted(
    state: PartitionState,
    uscc: str,
    occurred_us: int,
    currency: str,
    amount: Decimal,
    rate: Decimal,
    labels: tuple[str, str, bool, str, str],
    customs_mode: str | None,
    floor: int | None,
) -> None:
    """Keep a counted foreign-currency transaction (not older than the floor)."""
    if currency == "CNY" or (floor is not None and occurred_us < floor):
        return
    it, direction, windowed, band, sector = labels
    state.fx_book.add_counted(
        Counted(
            uscc, occurred_us, currency, str(amount), str(rate), it, direction, windowed,
            customs_mode, band, sector,
        )
    )  # fmt: skip


def park_if_needed(
    state: PartitionState,
    fx: FxTable,
    rec: Any,
    event: AnyTransaction | LoanEventBase,
    event_hash: int,
    occurred_us: int,
    *,
    late: bool,
    forwarded: bool,
) -> bool:
    """Park the event if it must wait (see the module doc); True if it was parked. ``rec``
    is the processor's Record (topic, offset, key, value, timestamp_ms)."""
    book = state.fx_book
    currency: str | None = None
    loan_id: str | None = None
    if isinstance(event, TransactionEvent | TransactionWire):
        if event.currency == "CNY" or book.full():
            return False
        if fx.rate_at(event.currency, event.occurred_at) is not None:
            return False
        currency = event.currency
    else:
        if event.event_type.value in restate.BAND_ONLY_LOAN_EVENTS:
            return False  # no loan state, no amount: counted at once
        loan_id = event.loan_id
        if isinstance(event, LoanDisbursed) and event.currency != "CNY":
            missing = fx.rate_at(event.currency, event.occurred_at) is None
            if missing and not book.full():
                currency = event.currency
            elif not book.must_wait(loan_id):
                return False
        elif not book.must_wait(loan_id):
            return False
    book.park(
        Parked(
            rec.topic, rec.offset, rec.key, rec.value or b"", rec.timestamp_ms, late, forwarded,
            event_hash, occurred_us, currency, loan_id,
        )
    )  # fmt: skip
    state.counters.add(PENDING, (rec.topic,), 1)
    return True


def record_loan(state: PartitionState, event: LoanDisbursed, *, windowed: bool) -> None:
    """Keep what restating a just-disbursed foreign-currency loan's book rate needs."""
    loan = state.loans.get(event.loan_id)
    if loan is None or event.currency == "CNY":
        return
    loan.principal = str(event.principal)
    loan.windowed = windowed
    # the same test apply.py has just made: nothing changed the credit in between
    loan.inclusive_counted = bool(
        event.inclusive_sme and state.borrower_credit.get(loan.uscc, 0) <= INCLUSIVE_SME_LIMIT_FEN
    )
    key = (loan.currency, local_day(loan.disbursed_us))
    state.fx_book.loans_by_day.setdefault(key, set()).add(event.loan_id)


def _affected(
    index: dict[tuple[str, int], set[_K]], fx: FxTable, changes: Iterable[tuple[str, date]]
) -> set[_K]:
    out: set[_K] = set()
    for currency, day in set(changes):
        first = day.toordinal()
        for d in range(first, first + fx.max_age_days + 1):
            out |= index.get((currency, d), set())
    return out


def _restate_loan(proc: Parker, state: PartitionState, loan_id: str, floor: int | None) -> bool:
    """Re-book an active foreign-currency loan at the rate in force at its disbursement."""
    loan = state.loans.get(loan_id)
    if loan is None or not loan.principal or loan.disbursed_us < 0:
        return False
    if floor is not None and loan.disbursed_us < floor:
        return False
    new_rate = proc.fx.rate_at(loan.currency, _at(loan.disbursed_us))
    if new_rate is None or str(new_rate) == loan.book_rate:
        return False
    p0, o0 = loan.principal_fen, loan.outstanding_fen
    p1 = to_fen(Decimal(loan.principal), new_rate)
    if p1 >= MAX_LOAN_FEN:  # the bound a disbursement is held to: keep the loan's book
        return False
    o1 = to_fen(Decimal(loan.outstanding), new_rate)
    c = state.counters
    for name, labels, v in book_keeping.contributions(loan):  # the gauges
        c.add(name, labels, -v)
    loan.book_rate, loan.principal_fen, loan.outstanding_fen = str(new_rate), p1, o1
    for name, labels, v in book_keeping.contributions(loan):
        c.add(name, labels, v)
    state.dirty_loans.add(loan_id)
    dp, dr = p1 - p0, (p1 - o1) - (p0 - o0)
    if dp == 0 and dr == 0:
        return False
    it, band, region = loan.institution_type, loan.band, loan.region
    c.add(fn.LOAN_DISBURSED_PRINCIPAL_YUAN_TOTAL, (it, band, region), dp)
    c.add(fn.LOAN_DISBURSED_RATE_WEIGHTED_YUAN_TOTAL, (it, band), dp * loan.rate_units)
    c.add(fn.LOAN_REPAID_PRINCIPAL_YUAN_TOTAL, (it, band), dr)
    if loan.inclusive_counted:
        c.add(fn.LOAN_INCLUSIVE_SME_DISBURSED_PRINCIPAL_YUAN_TOTAL, (it,), dp)
    credit = state.borrower_credit
    credit[loan.uscc] = credit.get(loan.uscc, 0) + dp
    if loan.windowed:
        amend_windows(
            state, LOANS_TOPIC, proc.grace_us, loan.disbursed_us,
            ((DISBURSED_FEN, (it,), dp),),
        )  # fmt: skip
    c.add(restate.RESTATED, (LOANS_TOPIC,), 1)
    return True


def _restate_one(proc: Parker, state: PartitionState, seq: int, entry: Counted) -> bool:
    new_rate = proc.fx.rate_at(entry.currency, _at(entry.occurred_us))
    if new_rate is None or str(new_rate) == entry.rate:
        return False
    amount = Decimal(entry.amount)
    fen = to_fen(amount, new_rate)
    if fen >= MAX_COUNTED_FEN:  # the bound a transaction is held to: keep its CNY value
        return False
    delta = fen - to_fen(amount, Decimal(entry.rate))
    entry.rate = str(new_rate)
    state.fx_book.dirty.add(seq)
    if delta == 0:
        return False
    it, direction = entry.institution_type, entry.direction
    found = restate.adjust_fen(
        state, entry.uscc, entry.occurred_us, (it, direction, entry.windowed), delta
    )
    band, sector = found if found is not None else (entry.band, entry.sector)
    entry.band, entry.sector = band, sector
    c = state.counters
    region = region_of(entry.uscc).value
    c.add(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, (it, band, region, direction), delta)
    if entry.customs_mode is not None:
        c.add(fn.CROSSBORDER_ECOMMERCE_AMOUNT_YUAN_TOTAL, (entry.customs_mode, it), delta)
    if entry.windowed:
        amend_windows(
            state, TX_TOPIC, proc.grace_us, entry.occurred_us,
            ((TX_AMOUNT_FEN, (it, band), delta),),
        )  # fmt: skip
    c.add(restate.RESTATED, (TX_TOPIC,), 1)
    return True


def reconcile(proc: Parker, state: PartitionState) -> None:
    """Bring one partition in line with the FX table: restate counted transactions whose rate
    in force changed, apply parked events that now have a rate (in arrival order), and
    dead-letter parked events older than the restatement floor."""
    book = state.fx_book
    if not book.ready:
        return
    fx = proc.fx
    floor = restate.floor_of(state, proc.restate_horizon_us)
    changed = False
    rates_changed = book.fx_version != fx.version
    if rates_changed:
        if book.fx_version < 0:
            seqs: Iterable[int] = list(book.counted)
            loan_ids: Iterable[str] = [i for ids in book.loans_by_day.values() for i in ids]
        else:
            seqs = _affected(book.by_day, fx, fx.changes[book.fx_version :])
            loan_ids = _affected(book.loans_by_day, fx, fx.changes[book.fx_version :])
        for seq in sorted(seqs):
            entry = book.counted.get(seq)
            if entry is None or (floor is not None and entry.occurred_us < floor):
                continue
            changed |= _restate_one(proc, state, seq, entry)
        for loan_id in sorted(loan_ids):
            changed |= _restate_loan(proc, state, loan_id, floor)
        book.fx_version = fx.version
    # without a new rate, a parked event can only have been passed by the floor
    if book.parked and (
        rates_changed
        or (floor is not None and any(p.occurred_us < floor for p in book.parked.values()))
    ):
        changed |= _drain(proc, state, floor)
    if changed or book.dirty:
        proc.touched.add(state.partition)


def _drain(proc: Parker, state: PartitionState, floor: int | None) -> bool:
    book = state.fx_book
    fx = proc.fx
    blocked: set[str] = set()
    done = False
    for seq in list(book.parked):
        entry = book.parked[seq]
        if entry.loan_id is not None and entry.loan_id in blocked:
            continue
        cur = entry.currency
        waiting = cur is not None and fx.rate_at(cur, _at(entry.occurred_us)) is None
        if waiting and (floor is None or entry.occurred_us >= floor):
            if entry.loan_id is not None:
                blocked.add(entry.loan_id)
            continue
        del book.parked[seq]
        book.dirty.add(seq)
        state.counters.add(PENDING, (entry.topic,), -1)
        if waiting:
            proc.dead_letter_parked(
                state,
                entry,
                f"{FX_RATE_MISSING}: no {entry.currency}/CNY rate in force at "
                f"{_at(entry.occurred_us).isoformat()} was read before the restatement floor "
                "passed it",
            )
        else:
            proc.apply_parked(state, entry)
        done = True
    book._reindex_parked()
    return done


def sweep(state: PartitionState, floor: int | None) -> None:
    """Forget counted transactions older than the floor (they are no longer restated)."""
    if floor is None:
        return
    book = state.fx_book
    for seq in [s for s, e in book.counted.items() if e.occurred_us < floor]:
        book.drop_counted(seq)
    for key, ids in list(book.loans_by_day.items()):
        ids.intersection_update(state.loans)  # ended loans are not restated
        if not ids:
            del book.loans_by_day[key]


# ---- changelog (``fx:<seq>`` records of dfip.state) ---------------------------------------


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def to_json(state: PartitionState, seq: int) -> dict[str, Any] | None:
    book = state.fx_book
    c = book.counted.get(seq)
    if c is not None:
        return {"c": [
            c.uscc, c.occurred_us, c.currency, c.amount, c.rate, c.institution_type,
            c.direction, c.windowed, c.customs_mode, c.band, c.sector,
        ]}  # fmt: skip
    p = book.parked.get(seq)
    if p is not None:
        return {"p": [
            p.topic, p.offset, _b64(p.key), _b64(p.value), p.timestamp_ms, p.late, p.forwarded,
            p.event_hash, p.occurred_us, p.currency, p.loan_id,
        ]}  # fmt: skip
    return None


def dirty_records(state: PartitionState) -> list[tuple[bytes, bytes | None]]:
    book = state.fx_book
    out: list[tuple[bytes, bytes | None]] = []
    for seq in sorted(book.dirty):
        doc = to_json(state, seq)
        out.append((f"fx:{seq}".encode(), None if doc is None else orjson.dumps(doc)))
    book.dirty.clear()
    return out


def from_json(state: PartitionState, seq: int, doc: dict[str, Any] | None) -> None:
    book = state.fx_book
    book.next_seq = max(book.next_seq, seq + 1)
    book.counted.pop(seq, None)
    book.parked.pop(seq, None)
    if doc is None:
        return
    if "c" in doc:
        u, occ, cur, amount, rate, it, direction, windowed, cm, band, sector = doc["c"]
        book.counted[seq] = Counted(
            u, int(occ), cur, amount, rate, it, direction, bool(windowed), cm, band, sector
        )
    elif "p" in doc:
        topic, offset, key, value, ts, late, fw, eh, occ, cur, loan_id = doc["p"]
        book.parked[seq] = Parked(
            topic, int(offset), _unb64(key), _unb64(value) or b"", ts, bool(late), bool(fw),
            int(eh), int(occ), cur, loan_id,
        )  # fmt: skip


def finish_restore(state: PartitionState) -> None:
    """Rebuild the indexes; the partition is reconciled after its score table is read."""
    book = state.fx_book
    book.parked = dict(sorted(book.parked.items()))
    book.loans_by_day.clear()
    for loan_id, loan in state.loans.items():
        if loan.principal and loan.disbursed_us >= 0:
            key = (loan.currency, local_day(loan.disbursed_us))
            book.loans_by_day.setdefault(key, set()).add(loan_id)
    book.by_day.clear()
    for seq, entry in book.counted.items():
        book.by_day.setdefault((entry.currency, local_day(entry.occurred_us)), set()).add(seq)
    book._reindex_parked()
    book.dirty.clear()
    book.fx_version = -1
    book.ready = False
