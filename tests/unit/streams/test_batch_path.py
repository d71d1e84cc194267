"""The batch hot path (issue 18) against the per-event reference path.

The processor sums order-independent figure updates per group in the batch's tally and applies
them once (``Processor.batched``, streams/aggregate/apply.py ``tally_transaction`` /
``flush_tally``). The per-event path (``apply_transaction``, counters updated at once) stays as
the reference: these tests hold the two to identical figures, windows and outputs.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.feed import EVENT_TOPICS
from bench.hotpath import feed_records
from schemas.enums import CustomsMode, Direction, InstitutionType
from streams.aggregate.apply import (
    Join,
    Rejected,
    apply_transaction,
    flush_tally,
    tally_transaction,
)
from streams.aggregate.windows import to_us
from streams.processor import DEADLETTER, FX, SCORES, TRANSACTIONS, Output, Processor, Record
from streams.reference.fx import FxTable
from streams.reference.scores import ScoreTable
from streams.state.changelog import dirty_records
from streams.state.partition import PartitionState
from tests.unit.streams.helpers import feed, t, tx, value

_BASE = datetime(2026, 3, 1, tzinfo=UTC)


class _Rates:
    max_age_days = 10

    def rate_at(self, currency: str, at: datetime) -> Decimal | None:
        return {"USD": Decimal("7.12345678"), "JPY": Decimal("0.0471")}.get(currency)


_events = st.builds(
    lambda minutes, amount, currency, it, direction, cm: tx(
        _BASE + timedelta(minutes=minutes, microseconds=minutes % 7),
        amount,
        currency=currency,
        institution_type=it,
        direction=direction,
        customs_mode=cm,
    ),
    st.integers(0, 4 * 24 * 60),
    st.one_of(
        st.decimals(min_value=0, max_value=10**13, places=2, allow_nan=False),
        st.decimals(min_value=0, max_value=10**6, places=8, allow_nan=False),  # rounds to fen
    ).map(str),
    st.sampled_from(["CNY", "CNY", "USD", "JPY"]),
    st.sampled_from(list(InstitutionType)),
    st.sampled_from(list(Direction)),
    st.none() | st.sampled_from(list(CustomsMode)),
)
_joins = st.tuples(
    st.sampled_from(["unscored", "low", "high"]),
    st.sampled_from(["C", "F", "unknown"]),
    st.sampled_from(["hangzhou", "other"]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_events, _joins, st.booleans()), max_size=60), st.integers(1, 20))
@example(  # above the largest counted amount once in CNY, between two counted ones
    [
        (tx(_BASE, "5.00"), ("low", "C", "hangzhou"), True),
        (tx(_BASE, "10000000000000.00", currency="USD"), ("low", "C", "hangzhou"), True),
        (tx(_BASE, "7.00"), ("low", "C", "hangzhou"), True),
    ],
    1,
)
def test_summed_updates_equal_the_per_event_decimal_path(
    rows: list[tuple[Any, tuple[str, str, str], bool]], flush_every: int
) -> None:
    """Integer-fen sums per group, flushed at any points, give exactly the counters and
    windows of applying each event through the Decimal path in turn."""
    ref, fast = PartitionState(0), PartitionState(0)
    rates = _Rates()
    for i, (ev, (band, sector, region), windowed) in enumerate(rows):
        join = Join(band=band, sector=sector, region=region)
        # an amount at or above the largest counted (10 万亿元 once in CNY) is refused by
        # both paths alike, with the same message, and changes no figure
        try:
            fen_ref: int | str = apply_transaction(
                ref, ev, join, rates, topic="t", windowed=windowed
            )
        except Rejected as exc:
            fen_ref = str(exc)
        try:
            fen: int | str = tally_transaction(
                fast, ev, band, sector, region, rates,
                topic="t", ts_us=to_us(ev.occurred_at), windowed=windowed,
            )  # fmt: skip
        except Rejected as exc:
            fen = str(exc)
        assert fen == fen_ref
        if i % flush_every == 0:
            flush_tally(fast)
    flush_tally(fast)
    assert not fast.tally
    assert fast.counters.values == ref.counters.values
    assert fast.windows.keys() == ref.windows.keys()
    for key, win in ref.windows.items():
        assert fast.windows[key].counters.values == win.counters.values
        assert (fast.windows[key].closed, fast.windows[key].amended) == (win.closed, win.amended)
    assert fast.dirty_windows == ref.dirty_windows


def _processor(batched: bool) -> Processor:
    proc = Processor(grace_us=600 * 1_000_000, fx=FxTable(10), batched=batched)
    for p in range(12):
        proc.states[p] = PartitionState(p)
        proc.scores[p] = ScoreTable(8)
    return proc


def _comparable(out: Output) -> tuple[Any, ...]:
    value: Any = out.value
    if out.topic == DEADLETTER and value is not None:
        doc = orjson.loads(value)
        doc.pop("first_seen")  # the wall clock
        value = doc
    return (out.topic, out.key, value, out.partition, tuple(out.headers), out.timestamp_ms)


def _counters(rows: list[Any]) -> dict[str, dict[tuple[Any, ...], int]]:
    return {name: {tuple(labels): v for labels, v in items} for name, items in rows}


def _changelog(records: list[tuple[bytes, bytes | None]]) -> dict[bytes, Any]:
    # by key, parsed: the order of series inside a counters record is not a figure
    out: dict[bytes, Any] = {}
    for key, raw in records:
        if key == b"ctr" or key.startswith(b"ctr:"):
            # the counters are compared as the snapshot next to these records; which series
            # a ctr:<seq> delta lists is not a figure (one event's +1 and another's -1 on a
            # series list it; summed per batch they do not), nor is when the whole comes
            continue
        try:
            doc = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            doc = raw  # packed binary
        if key.startswith(b"win:") and doc is not None:
            doc = {**doc, "c": _counters(doc["c"])}
        out[key] = doc
    return out


def _run(records: list[Record], batched: bool, batch: int) -> tuple[Processor, list[Any]]:
    """The feed through a processor as bench/hotpath.py drives it; every batch's outputs
    and changelog records, in order."""
    proc = _processor(batched)
    trace: list[Any] = []
    pending: list[Record] = []
    forwarded: list[Record] = []
    offsets: dict[tuple[str, int], int] = defaultdict(int)

    def flush() -> None:
        nonlocal pending, forwarded
        todo, pending, forwarded = forwarded + pending, [], []
        for rec in todo:
            key = (rec.topic, rec.partition)
            rec.offset = offsets[key]
            offsets[key] += 1
            if not batched:
                proc.process(rec)
        if batched:  # the engine's entry point
            proc.process_batch(todo)
        proc.finish_batch()
        for p in sorted(proc.touched):
            trace.append((p, _changelog(dirty_records(proc.states[p]))))
            trace.append((p, proc.states[p].counters.snapshot()))
        proc.touched.clear()
        outs = proc.take_outputs()
        trace.append([_comparable(o) for o in outs])
        for o in outs:
            if o.topic in EVENT_TOPICS and o.partition is not None:
                forwarded.append(
                    Record(o.topic, o.partition, 0, o.key, o.value, o.headers, o.timestamp_ms)
                )

    for rec in records:
        copy = Record(rec.topic, rec.partition, rec.offset, rec.key, rec.value, rec.headers,
                      rec.timestamp_ms)  # fmt: skip
        if rec.topic == SCORES:
            proc.process_score(copy, counted=True)
        elif rec.topic == FX:
            proc.process_fx(copy)
        else:
            pending.append(copy)
            if len(pending) >= batch:
                flush()
    while pending or forwarded:
        flush()
    return proc, trace


def test_the_batched_processor_equals_the_per_event_reference_on_the_simulator_feed() -> None:
    """The simulator feed (duplicates, bad records, a forwarded copy, closed windows, FX,
    loans, scores between batches): every batch's changelog, figures and outputs are
    identical, with batches of two sizes."""
    records = feed_records(8000, seed=11)
    for batch in (97, 500):
        ref, ref_trace = _run(records, batched=False, batch=batch)
        fast, fast_trace = _run(records, batched=True, batch=batch)
        assert fast_trace == ref_trace
        for p, state in ref.states.items():
            other = fast.states[p]
            assert other.counters.values == state.counters.values
            assert {k: w.counters.values for k, w in other.windows.items()} == {
                k: w.counters.values for k, w in state.windows.items()
            }
            assert other.offsets == state.offsets
            assert other.watermarks == state.watermarks
            assert not other.tally


_mutations = st.lists(
    st.tuples(
        st.integers(0, 10**6),
        st.sampled_from(
            # the last four: forms schemas.wire (the batch path's transaction decode) leaves
            # to the models, or takes as they do
            [
                *["none", "empty", "garbage", "lower", "cut", "amount", "float", "tz"],
                *["fraction", "zeros", "integer", "duplicate"],
            ]
        ),
    ),
    max_size=40,
)


def _mutate(raw: bytes | None, how: str) -> bytes | None:
    if how == "none":
        return None
    if how == "empty":
        return b""
    if how == "garbage":
        return b"\xff{not json"
    if raw is None:
        return raw
    if how == "cut":
        return raw[: len(raw) // 2]
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw  # already broken by an earlier mutation
    if not isinstance(doc, dict):
        return raw
    if how == "lower" and "enterprise_uscc" in doc:
        doc["enterprise_uscc"] = doc["enterprise_uscc"].lower()
    elif how == "amount" and "amount" in doc:
        doc["amount"] = "-1.00"
    elif how == "float" and "amount" in doc:
        doc["amount"] = 12.5
    elif how == "tz" and "occurred_at" in doc:
        doc["occurred_at"] = doc["occurred_at"].replace("Z", "+08:00")
    elif how == "fraction" and "occurred_at" in doc:
        doc["occurred_at"] = doc["occurred_at"][:19] + ".9999999Z"  # pydantic truncates
    elif how == "zeros" and isinstance(doc.get("amount"), str):
        doc["amount"] = "00" + doc["amount"]
    elif how == "integer" and isinstance(doc.get("amount"), str):
        doc["amount"] = int(Decimal(doc["amount"]))
    elif how == "duplicate" and "amount" in doc:
        return b'{"amount": "1.00", ' + orjson.dumps(doc)[1:]  # the last one counts
    return orjson.dumps(doc)


_FEED = feed_records(3000, seed=5)


@settings(max_examples=15, deadline=None)
@given(_mutations, st.integers(1, 700))
def test_the_batch_path_equals_the_per_event_reference_with_bad_records(
    mutations: list[tuple[int, str]], batch: int
) -> None:
    """``process_batch`` of the batched processor (the fast wire decode, the tally) against
    the per-event reference, on a feed with bad records anywhere: the same dead letters
    (class, reason, original bytes), changelog, figures and outputs, batch by batch."""
    records = list(_FEED)
    events = [i for i, r in enumerate(records) if r.topic in EVENT_TOPICS]
    for position, how in mutations:
        i = events[position % len(events)]
        r = records[i]
        records[i] = Record(r.topic, r.partition, r.offset, r.key, _mutate(r.value, how),
                            r.headers, r.timestamp_ms)  # fmt: skip
    _, ref_trace = _run(records, batched=False, batch=batch)
    _, fast_trace = _run(records, batched=True, batch=batch)
    assert fast_trace == ref_trace


def test_figures_read_mid_batch_see_the_tally() -> None:
    proc = _processor(batched=True)
    feed(proc, TRANSACTIONS, tx(t("10:00")), tx(t("10:05"), "1.01"))
    assert any(s.tally for s in proc.states.values())
    assert value(proc, "dfip_transaction_amount_yuan_total") == 10_101
    assert not any(s.tally for s in proc.states.values())
