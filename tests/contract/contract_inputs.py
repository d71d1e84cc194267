"""Adversarial inputs for the contract tests, written as the wire JSON of docs/events.md,
and a driver that runs one read order through both the worker's ``Processor`` and the
doc oracle (tests/contract/doc_oracle.py)."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from schemas.alerts import load_ruleset
from schemas.uscc import make_uscc
from streams.processor import ALERTS, H_ORIGIN, LATE, METRICS, Processor, Record
from streams.reference.scores import ScoreTable
from streams.rules import RuleEngine
from streams.state.changelog import apply_record, dirty_records, finish_restore
from streams.state.partition import PartitionState
from tests.contract.doc_oracle import FX, LOANS, SCORES, TX, In, Oracle, home_of

# Beijing midnight of 2026-03-03: event times straddle it
BASE = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# enterprises: Hangzhou, Ningbo, and one outside Zhejiang ("other")
ENTERPRISES = [
    make_uscc("330106", "MA2B3C4D"),
    make_uscc("330203", "MA7X8Y9W"),
    make_uscc("110105", "MA0R1T2U"),
]


def shared_partition_pair() -> tuple[str, str]:
    """Two enterprises with the same home partition (loan ids and floors are shared)."""
    first = make_uscc("330302", "MA000001")
    for i in range(2, 500):
        other = make_uscc("330402", f"MA{i:06d}")
        if home_of(other) == home_of(first):
            return first, other
    raise AssertionError("no pair found")


def iso(at: datetime, style: int = 0) -> str:
    """An ISO 8601 time; style 1 writes it at +08:00 (the same instant), style 2 with nine
    fraction digits (the worker keeps six: the rest are dropped, not rounded)."""
    if style == 1:
        return (at + timedelta(hours=8)).replace(tzinfo=None).isoformat() + "+08:00"
    if style == 2:
        return at.replace(tzinfo=None).isoformat(timespec="microseconds") + "987Z"
    return at.replace(tzinfo=None).isoformat() + "Z"


def ms(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class Written:
    """One input record as written: topic, partition, value, Kafka timestamp."""

    topic: str
    partition: int
    value: bytes | None
    timestamp_ms: int | None


def tx_doc(
    eid: str, uscc: str, at: datetime, amount: str, currency: str, *,
    it: str = "bank", direction: str = "credit", customs: str | None = None, style: int = 0,
    code: str | None = None,
) -> bytes:  # fmt: skip
    bj = (at + timedelta(hours=8)).date().isoformat()
    doc: dict[str, Any] = {
        "kind": "transaction", "event_id": eid, "schema_version": 1, "source": "bank-a",
        "institution_type": it, "occurred_at": iso(at, style), "enterprise_uscc": uscc,
        "direction": direction, "amount": amount, "currency": currency,
        "booking_date": bj, "value_date": bj,
    }  # fmt: skip
    if customs is not None:
        doc["customs_mode"] = customs
    if code is not None:
        doc["bank_tx_code"] = code
    if amount.isdigit() and style == 1:
        doc["amount"] = int(amount)  # a JSON integer is a valid amount
    raw = orjson.dumps(doc)
    if style == 2:  # a repeated name: the last value is read
        raw = raw.replace(b'"amount":', b'"amount":"55.55","amount":', 1)
    return raw


def score_doc(eid: str, uscc: str, at: datetime, overall: str, sector: str) -> bytes:
    return orjson.dumps({
        "kind": "digitalization_score", "event_id": eid, "schema_version": 1,
        "source": "assessor", "institution_type": "bank", "occurred_at": iso(at),
        "enterprise_uscc": uscc, "framework": "miit_sme_2022", "overall_score": overall,
        "level": "L2", "assessed_at": iso(at), "industry_section": sector,
    })  # fmt: skip


def fx_doc(eid: str, currency: str, rate_date: date, rate: str, published: datetime) -> bytes:
    return orjson.dumps({
        "kind": "fx_rate", "event_id": eid, "schema_version": 1, "source": "cfets",
        "currency": currency, "rate_date": rate_date.isoformat(), "rate_to_cny": rate,
        "published_at": iso(published),
    })  # fmt: skip


def loan_doc(
    eid: str, uscc: str, at: datetime, event_type: str, loan_id: str, **extra: Any
) -> bytes:
    doc: dict[str, Any] = {
        "kind": "loan", "event_id": eid, "schema_version": 1, "source": "fintech-b",
        "institution_type": extra.pop("it", "fintech"), "occurred_at": iso(at),
        "enterprise_uscc": uscc, "event_type": event_type, "loan_id": loan_id,
        "application_id": f"app-{loan_id}", "lender_id": "fintech-b", "channel": "online",
    }  # fmt: skip
    doc.update(extra)
    return orjson.dumps(doc)


# ---- running one read order -----------------------------------------------------------------


def new_processor() -> Processor:
    proc = Processor(grace_us=600 * 1_000_000)
    for p in range(12):
        proc.states[p] = PartitionState(p)
        proc.scores[p] = ScoreTable()
    return proc


def processor_series(proc: Processor) -> dict[str, dict[tuple[str, ...], int]]:
    proc.flush_figures()
    out: dict[str, dict[tuple[str, ...], int]] = {}
    for p, state in proc.states.items():
        for name, rows in state.counters.values.items():
            for lab, v in rows.items():
                if v != 0:
                    out.setdefault(name, {})[(*lab, str(p))] = v
    for p, table in proc.scores.items():
        for (band, sector), n in table.scored.items():
            if n != 0:
                out.setdefault("dfip_enterprises_scored", {})[(band, sector, str(p))] = n
    return out


def normal_window(doc: dict[str, Any]) -> dict[str, Any]:
    """A window record with its label rows as {labels: value} (row order is not a rule)."""
    figures = {
        name: {tuple(row["labels"]): row["value"] for row in rows}
        for name, rows in doc.get("figures", {}).items()
        # docs/metrics.md is silent on a figure whose rows are all absent (an empty list
        # was seen once from the worker, not reproduced): read both as absent
        if rows
    }
    return {**doc, "figures": figures}


# order-dependent diagnostics docs/metrics.md says to compare with no oracle
DIAGNOSTICS = ("dfip_restated_events_total", "dfip_scores_beyond_restatement_total")


def without(
    series: dict[str, dict[tuple[str, ...], int]], names: tuple[str, ...]
) -> dict[str, dict[tuple[str, ...], int]]:
    return {n: rows for n, rows in series.items() if n not in names}


def assert_same_figures(result: Run, seed: int, crashes: int) -> None:
    """The processor's figures equal the oracle's (diagnostics left out); else an error
    naming every differing series as (processor, oracle)."""
    got = without(result.processor, DIAGNOSTICS)
    want = without(result.oracle, DIAGNOSTICS)
    if got == want:
        return
    diff = {
        name: {
            lab: (got.get(name, {}).get(lab, 0), want.get(name, {}).get(lab, 0))
            for lab in set(got.get(name, {})) | set(want.get(name, {}))
            if got.get(name, {}).get(lab, 0) != want.get(name, {}).get(lab, 0)
        }
        for name in set(got) | set(want)
    }
    diff = {n: d for n, d in diff.items() if d}
    raise AssertionError(f"seed {seed}, {crashes} crashes: (processor, oracle) differ: {diff}")


@dataclass
class Run:
    processor: dict[str, dict[tuple[str, ...], int]]
    oracle: dict[str, dict[tuple[str, ...], int]]
    order: list[In]
    restarts: list[int] = field(default_factory=list)
    # the compacted dfip.metrics (last record per key) of the worker and of the oracle
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    oracle_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    late_copies: list[bytes | None] = field(default_factory=list)  # committed on dfip.late
    alerts: list[dict[str, Any]] = field(default_factory=list)  # committed on dfip.alerts


def run(
    records: list[Written], seed: int, *, batch_max: int = 4, crashes: int = 0,
    workers: int = 1, oracle: Oracle | None = None, rules: bool = False,
) -> Run:  # fmt: skip
    """Read ``records`` (each topic-partition in the order given) in a random interleaving:
    every topic-partition has its own reading speed; reference records are read between
    batches, as a worker reads dfip.scores and dfip.fx before each batch; forwarded copies
    join the end of their home topic-partition. Each batch commits (its changelog records,
    window records, forwarded copies). ``workers`` share the 12 partitions; with
    ``crashes``, a worker is killed (kill -9) that many times at random points, sometimes
    with a batch applied but not committed (its records are read again), and restarts; the
    partitions are then assigned again at random, each one that moves restored from the
    committed changelog as streams/engine/restorer.py does. The oracle reads each record
    once. With ``rules`` the workers run the default rule set (docs/aml-rules.md) and
    the hits they commit are returned."""
    rng = random.Random(seed)

    def worker() -> Processor:
        engine = RuleEngine(load_ruleset()) if rules else None
        return Processor(grace_us=600 * 1_000_000, rules=engine)

    queues: dict[tuple[str, int], deque[In]] = {}
    next_offset: dict[tuple[str, int], int] = {}
    headers: dict[tuple[str, int, int], tuple[tuple[str, bytes], ...]] = {}
    changelog: dict[int, dict[bytes, bytes | None]] = {p: {} for p in range(12)}
    fx_read: list[In] = []
    scores_read: dict[int, list[In]] = {p: [] for p in range(12)}

    def enqueue(
        topic: str, p: int, value: bytes | None, ts: int | None, copy_of: Any = None,
        heads: tuple[tuple[str, bytes], ...] = (),
    ) -> None:  # fmt: skip
        off = next_offset.get((topic, p), 0)
        next_offset[(topic, p)] = off + 1
        headers[(topic, p, off)] = heads
        queues.setdefault((topic, p), deque()).append(In(topic, p, off, value, ts, copy_of))

    for written in records:
        enqueue(written.topic, written.partition, written.value, written.timestamp_ms)
    speed = {tp: rng.choice((1, 1, 3, 10)) for tp in sorted(queues)}
    owner = {p: p % workers for p in range(12)}
    procs: list[Processor] = []
    for w in range(workers):
        proc = worker()
        for p in range(12):
            if owner[p] == w:
                proc.adopt_partition(PartitionState(p), ScoreTable())
        procs.append(proc)
    orc = oracle or Oracle()
    batches: list[list[In]] = [[] for _ in range(workers)]
    order: list[In] = []
    span = range(1, max(len(records), crashes + 1) + 1)
    crash_points = sorted(rng.sample(span, crashes)) if crashes else []
    steps = 0
    restarts: list[int] = []
    metrics: dict[str, dict[str, Any]] = {}
    late_copies: list[bytes | None] = []
    alerts: list[dict[str, Any]] = []

    def as_record(r: In) -> Record:
        heads = headers[(r.topic, r.partition, r.offset)]
        return Record(r.topic, r.partition, r.offset, None, r.value, heads, r.timestamp_ms)

    def commit(w: int) -> None:
        """What the committer's prepare takes out of a worker's processor, made durable; an
        idle tick's commit (no records) ends a batch as well."""
        proc = procs[w]
        proc.finish_batch()
        orc.end_batch(set(proc.states))
        for p in proc.take_touched():
            log = changelog[p]
            for key, value in dirty_records(proc.states[p]):
                log.pop(key, None)  # a compacted topic keeps the last value, at its offset
                log[key] = value
        for out in proc.take_outputs():
            if out.topic == LATE:
                late_copies.append(out.value)
            if out.topic == ALERTS and out.value is not None:
                alerts.append({**orjson.loads(out.value), "partition": out.partition})
            if out.topic == METRICS and out.key is not None and out.value is not None:
                metrics[out.key.decode()] = normal_window(orjson.loads(out.value))
            if out.topic in (TX, LOANS, SCORES) and out.partition is not None:
                topic, part, offset = dict(out.headers)[H_ORIGIN].decode().rsplit(":", 2)
                enqueue(out.topic, out.partition, out.value, out.timestamp_ms,
                        (topic, int(part), int(offset)), tuple(out.headers))  # fmt: skip

    def restore(w: int, moved: list[int]) -> None:
        proc = procs[w]
        for p in moved:
            state = PartitionState(p)
            for key, value in changelog[p].items():
                apply_record(state, key, value)
            finish_restore(state)
            proc.adopt_partition(state, ScoreTable())
            if p == 0:  # the FX accounting partition reads FX again from its checkpoint
                for r in fx_read:
                    if r.offset >= state.offsets.get(FX, 0):
                        proc.process_fx(as_record(r))
            checkpoint = state.offsets.get(SCORES, 0)
            for r in scores_read[p]:
                if r.offset < checkpoint:
                    proc.process_score(as_record(r), counted=False)
            proc.restored(p)
        for p in moved:  # the next catch-up: scores past the checkpoint, counted
            checkpoint = proc.states[p].offsets.get(SCORES, 0)
            for r in scores_read[p]:
                if r.offset >= checkpoint:
                    proc.process_score(as_record(r), counted=True)
        commit(w)

    def kill(w: int) -> None:
        batch = batches[w]
        if batch and rng.random() < 0.5:  # applied, never committed: read again
            procs[w].process_batch([as_record(r) for r in batch])
            procs[w].finish_batch()
            for r in reversed(batch):
                queues[(r.topic, r.partition)].appendleft(r)
                order.remove(r)
            batch.clear()
        else:
            flush_batch(w)
            commit(w)
        fresh = worker()
        for r in fx_read:  # a new process reads every FX record first
            fresh.process_fx(as_record(r))
        procs[w] = fresh
        # every partition is assigned again: the live ones commit and give up those that move
        new_owner = {p: rng.randrange(workers) for p in range(12)}
        lost = [p for p in range(12) if owner[p] == w]
        for v in range(workers):
            if v != w:
                flush_batch(v)
                commit(v)
                for p in range(12):
                    if owner[p] == v and new_owner[p] != v:
                        procs[v].drop_partition(p)
        owner.update(new_owner)
        for v in range(workers):
            moved = [
                p for p in range(12) if owner[p] == v and (p in lost or p not in procs[v].states)
            ]
            restore(v, sorted(moved))

    def flush(w: int) -> None:
        nonlocal steps
        steps += 1
        if crash_points and steps >= crash_points[0]:
            crash_points.pop(0)
            kill(rng.randrange(workers))
            restarts.append(steps)
            return
        flush_batch(w)
        commit(w)

    def flush_batch(w: int) -> None:
        batch = batches[w]
        if not batch:
            return
        procs[w].process_batch([as_record(r) for r in batch])
        for r in batch:
            orc.read(r)
        batch.clear()

    while True:
        live = [tp for tp in sorted(queues) if queues[tp]]
        if not live:
            for w in range(workers):
                flush(w)
            live = [tp for tp in sorted(queues) if queues[tp]]
            if not live:
                break
        tp = rng.choices(live, weights=[speed.get(x, 3) for x in live])[0]
        rec = queues[tp].popleft()
        order.append(rec)
        if rec.topic == FX:  # every worker reads every rate (before its next batch)
            for w in range(workers):
                flush(w)  # (a kill here restarts a worker, which reads FX read so far)
            fx_read.append(rec)
            for proc in procs:
                proc.process_fx(as_record(rec))
            orc.read(rec)
            continue
        if rec.topic == SCORES:
            flush(owner[rec.partition])  # (a kill here can move the partition)
            w = owner[rec.partition]
            scores_read[rec.partition].append(rec)
            procs[w].process_score(as_record(rec), counted=True)
            orc.read(rec)
            if rng.random() < 0.3 and procs[w].has_changes():
                commit(w)  # an idle tick's commit
            continue
        w = owner[rec.partition]
        batches[w].append(rec)
        if len(batches[w]) >= rng.randint(1, batch_max):
            flush(w)
    for w in range(workers):
        commit(w)
    missing = set(orc.forwarded) - {r.copy_of for r in order if r.copy_of is not None}
    assert not missing, f"the doc oracle forwarded {missing}; the processor did not"
    series: dict[str, dict[tuple[str, ...], int]] = {}
    for proc in procs:  # each partition is exported by its one owner
        for name, rows in processor_series(proc).items():
            series.setdefault(name, {}).update(rows)
    return Run(
        series, orc.series(), order, restarts, metrics, orc.metrics_records(), late_copies,
        alerts,
    )  # fmt: skip
