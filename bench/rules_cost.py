"""Cost of the rules over the transaction stream (streams/rules/): throughput with the rules
on and off, and memory per enterprise.

``python -m bench.rules_cost [--events N] [--runs K] [--enterprises E]`` (no broker):

1. Throughput: the worker's per-record pipeline (``streams.processor.Processor``: decode,
   dedupe, join, aggregate, windows, restatement record, and with the rules on their observe,
   decisions and the ``al:<uscc>`` changelog records) over the same simulator feed, batches of
   2,000 with ``finish_batch`` and the changelog encoding (``dirty_records``) after each, as
   the engine does; rules off and on alternate, best of K each, in the same process.
3. End to end (``--pipeline``, a real broker: ``--bootstrap HOST:PORT`` or ``--start-broker``):
   one ``dfip worker`` process over the same pre-produced simulator feed (``--events`` records,
   seed 7, as ``python -m bench``), ``DFIP_WORKER_RULES=false`` and ``true`` in turn (the order
   alternates by round), each in a fresh namespace; events/s from the commit times of the
   changelog records (bench/pipeline.py). Prints each run and, per round, on / off.
4. Instructions of the rule engine alone (``--replay``, no broker): the rule-engine calls of
   ``bench.hotpath --rules`` over its feed (``--events``, seed 7, batches of 2,000: each
   ``observe``, each ``advance`` with its hits turned into alerts as the processor does, each
   ``changelog_records``) are recorded in the process, then replayed through a fresh
   ``RuleEngine`` and ``RulesState`` per partition. The calls of ``--phase`` (``all``: the
   whole replay) go through ``operator.call``, a C frame that callgrind can toggle on:
   ``PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null
   --collect-atstart=no --toggle-collect=_operator_call python -m bench.rules_cost --replay
   --phase observe`` counts only the observes (divide by the transactions printed).
2. Memory: E enterprises with transactions in the last Beijing day (the rules keep at most
   about a day of them), measured as Python heap (tracemalloc) per enterprise, and the
   ``al:<uscc>`` changelog bytes per enterprise; then the same after the time moved on and the
   state was pruned (an enterprise without recent transactions keeps only its last time).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import operator
import pickle
import time
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from adapters.simulator.feed import Feed, FeedConfig
from adapters.simulator.model import FX, SCORES
from schemas.alerts import load_ruleset
from schemas.codec import encode
from schemas.events import TransactionEvent
from schemas.uscc import make_uscc
from streams.processor import Processor, Record
from streams.reference.scores import ScoreTable
from streams.rules import RuleEngine, RulesState
from streams.state.changelog import dirty_records
from streams.state.partition import PartitionState

_BATCH = 2000


def _records(n: int) -> list[Record]:
    now_ms = int(time.time() * 1000)
    offsets: dict[tuple[str, int], itertools.count[int]] = {}
    out = []
    for r in itertools.islice(Feed(FeedConfig(seed=11, enterprises=2000)), n):
        value = r.raw if r.raw is not None else encode(r.event) if r.event is not None else b""
        offs = offsets.setdefault((r.topic, r.partition), itertools.count())
        out.append(Record(r.topic, r.partition, next(offs), r.key, value, (), now_ms))
    return out


def _one_pass(records: list[Record], rules: bool) -> float:
    proc = Processor(grace_us=600 * 1_000_000, rules=RuleEngine(load_ruleset()) if rules else None)
    for p in range(12):
        proc.states[p] = PartitionState(p)
        proc.scores[p] = ScoreTable()
    gc.collect()
    # CPU time of this process: the machine is shared, wall time swings by 2x between runs
    started = time.process_time()
    for i, rec in enumerate(records):
        if rec.topic == SCORES:
            proc.process_score(rec, counted=True)
        elif rec.topic == FX:
            proc.process_fx(rec)
        else:
            proc.process(rec)
        if (i + 1) % _BATCH == 0 or i + 1 == len(records):
            proc.finish_batch()
            proc.take_outputs()
            for p in sorted(proc.touched):
                dirty_records(proc.states[p])
            proc.touched.clear()
    return time.process_time() - started


def throughput(events: int, runs: int) -> None:
    records = _records(events)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(runs):
        for rules in (False, True):
            best[rules] = min(best[rules], _one_pass(records, rules))
    off, on = len(records) / best[False], len(records) / best[True]
    print(f"records: {len(records):,} (simulator feed, seed 11, 2,000 enterprises)")
    print(f"rules off: {off:,.0f} records/s   rules on: {on:,.0f} records/s")
    print(f"cost of the rules: {100 * (1 - on / off):.1f} % of throughput (best of {runs} each)")


def _tx(uscc: str, i: int, at_us: int) -> TransactionEvent:
    at = datetime.fromtimestamp(at_us / 1e6, tz=UTC)
    return TransactionEvent(
        event_id=f"bench-{uscc}-{i}",
        source="bank-a",
        institution_type="bank",
        occurred_at=at,
        enterprise_uscc=uscc,
        direction="credit" if i % 2 else "debit",
        amount=Decimal("1234.56"),
        currency="CNY",
        booking_date=at.date(),
        value_date=at.date(),
    )


def memory(enterprises: int, per_enterprise: int) -> None:
    engine = RuleEngine(load_ruleset())
    t0 = 1_790_000_000 * 1_000_000
    usccs = [make_uscc("330106", f"{i:08d}") for i in range(enterprises)]
    events = [
        (_tx(u, k, t0 + k * 3_600_000_000), t0 + k * 3_600_000_000)
        for u in usccs
        for k in range(per_enterprise)
    ]
    gc.collect()
    tracemalloc.start()
    rs = RulesState()
    base = tracemalloc.get_traced_memory()[0]
    for ev, ts in events:
        engine.observe(rs, ev, ts, 123456, "l2")
    upto = t0 + per_enterprise * 3_600_000_000
    engine.advance(rs, upto)
    del rs.changelog_records()[:]  # a commit: clears what it keeps for the next records
    held = tracemalloc.get_traced_memory()[0] - base
    changelog = sum(len(u) + 3 + len(orjson.dumps(rs.to_json(u))) for u in usccs)
    rs.dirty.clear()
    engine.advance(rs, upto + 3 * 86_400_000_000)  # three days later: pruned
    del rs.changelog_records()[:]
    pruned = tracemalloc.get_traced_memory()[0] - base
    pruned_log = sum(len(u) + 3 + len(orjson.dumps(rs.to_json(u))) for u in usccs)
    tracemalloc.stop()
    print(f"enterprises: {enterprises:,}, {per_enterprise} transactions each in the last day")
    print(f"heap per enterprise: {held / enterprises:,.0f} bytes while held, "
          f"{pruned / enterprises:,.0f} bytes after pruning")  # fmt: skip
    print(f"al: changelog bytes per enterprise: {changelog / enterprises:,.0f} while held, "
          f"{pruned_log / enterprises:,.0f} after pruning")  # fmt: skip


def pipeline(bootstrap: str, events: int, runs: int, timeout: float) -> None:
    """The worker end to end with the rules off and on, alternating, in the same run."""
    import asyncio
    import statistics
    import tempfile
    from pathlib import Path

    from bench.broker import drop_namespace, namespace
    from bench.feed import capture, produce
    from bench.pipeline import run_pipeline

    feed = capture(events, seed=7)
    print(f"feed: {len(feed.records):,} records ({feed.events:,} events), seed 7")
    log_dir = Path(tempfile.mkdtemp(prefix="dfip-bench-rules-"))
    rates: dict[bool, list[float]] = {False: [], True: []}
    ratios = []
    for i in range(runs):
        got: dict[bool, float] = {}
        for rules in (False, True) if i % 2 == 0 else (True, False):
            settings = namespace(bootstrap, f"rules-{'on' if rules else 'off'}")
            try:
                asyncio.run(produce(settings, feed.records))
                env = {"DFIP_WORKER_RULES": "true" if rules else "false"}
                run = run_pipeline(
                    settings, feed, workers=1, log_dir=log_dir, poll=5.0, timeout=timeout, env=env
                )
            finally:
                drop_namespace(settings)
            state = "complete" if run.complete else "TIME LIMIT"
            print(
                f"round {i + 1}, rules {'on ' if rules else 'off'}: {run.events:,} events in "
                f"{run.seconds:.2f} s = {run.rate:,.0f} events/s ({state}; lost {run.lost})"
            )
            got[rules] = run.rate
            rates[rules].append(run.rate)
        ratios.append(got[True] / got[False])
        print(f"round {i + 1}: rules on / off = {ratios[-1]:.3f}")
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"median rules off: {off:,.0f} events/s   median rules on: {on:,.0f} events/s")
    print(
        f"cost of the rules: {100 * (1 - statistics.median(ratios)):.1f} % of throughput "
        f"(median of the per-round on/off ratios: {', '.join(f'{r:.3f}' for r in ratios)})"
    )


# a recorded rule-engine call: ("o", partition, event, ts, fen, band), ("a", partition, upto)
# or ("c", partition)
Call = tuple[Any, ...]


def record_calls(events: int) -> list[Call]:
    """The rule-engine calls of one ``bench.hotpath --rules`` batch run over its feed."""
    from bench import hotpath
    from streams.rules import engine as rules_engine

    calls: list[Call] = []
    parts: dict[int, int] = {}  # id(RulesState) → partition

    class Recording(RuleEngine):
        def observe(self, rs: RulesState, ev: Any, ts: int, fen: int, band: str) -> None:
            calls.append(("o", parts[id(rs)], ev, ts, fen, band))
            super().observe(rs, ev, ts, fen, band)

        def advance(self, rs: RulesState, upto: int) -> list[tuple[str, Any]]:
            calls.append(("a", parts[id(rs)], upto))
            return super().advance(rs, upto)

    real_records = rules_engine.RulesState.changelog_records

    def changelog_records(rs: RulesState) -> list[tuple[bytes, bytes | None]]:
        calls.append(("c", parts[id(rs)]))
        return real_records(rs)

    real_processor = hotpath._processor

    def processor(rules: bool = False) -> Processor:
        proc = real_processor(rules)
        proc.rules = Recording(load_ruleset())
        for p, state in proc.states.items():
            parts[id(state.rules)] = p
        return proc

    hotpath._processor = processor  # type: ignore[assignment]
    rules_engine.RulesState.changelog_records = changelog_records  # type: ignore[method-assign]
    try:
        batch_path = Processor.process_batch
        hotpath.run(hotpath.feed_records(events), _BATCH, process=batch_path, rules=True)
    finally:
        hotpath._processor = real_processor  # type: ignore[assignment]
        rules_engine.RulesState.changelog_records = real_records  # type: ignore[method-assign]
    return calls


class _Tx:
    """A recorded transaction's fields the rules read (``--save``: a decoded struct does not
    pickle); slots, read as a struct's fields are."""

    __slots__ = (
        "amount", "bank_tx_code", "currency", "direction", "enterprise_uscc", "event_id",
        "institution_type",
    )  # fmt: skip

    def __init__(self, ev: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(ev, name))

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)


def replay(calls: list[Call], phase: str) -> tuple[int, int, int, int]:
    """Replay `calls` through a fresh engine, the calls of `phase` through operator.call;
    (transactions, advances, hits, changelog records)."""
    from datetime import datetime as dt

    from schemas import figure_names as fn
    from streams.rules import build_alert
    from streams.rules import overdue as rule_reports

    engine = RuleEngine(load_ruleset())
    states = {p: PartitionState(p) for p in range(12)}
    now = dt(2026, 1, 1, tzinfo=UTC)
    config = engine.config
    observe = engine.observe

    def decide(state: PartitionState, upto: int) -> int:
        # as Processor._decide_rules (without its output list)
        hits = engine.advance(state.rules, upto)
        for uscc, hit in hits:
            alert = build_alert(config, uscc, hit, now)
            labels = (alert.rule.value, alert.region, alert.institution_type, alert.band)
            state.counters.add(fn.ALERTS_TOTAL, labels, 1)
            state.counters.add(fn.ALERT_AMOUNT_YUAN_TOTAL, labels, alert.total_fen)
            rule_reports.open_hit(state.rules, state.counters, alert)
            encode(alert)
        return len(hits)

    def changelog(state: PartitionState) -> int:
        return len(state.rules.changelog_records())

    def run_all() -> tuple[int, int, int, int]:
        counted = [0, 0, 0, 0]
        via = operator.call
        for c in calls:
            kind, state = c[0], states[c[1]]
            if kind == "o":
                if phase == "observe":
                    via(observe, state.rules, c[2], c[3], c[4], c[5])
                else:
                    observe(state.rules, c[2], c[3], c[4], c[5])
                counted[0] += 1
            elif kind == "a":
                counted[1] += 1
                counted[2] += via(decide, state, c[2]) if phase == "decide" else decide(state, c[2])
            else:
                counted[3] += via(changelog, state) if phase == "changelog" else changelog(state)
        return counted[0], counted[1], counted[2], counted[3]

    if phase == "all":
        result: tuple[int, int, int, int] = operator.call(run_all)
        return result
    return run_all()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--enterprises", type=int, default=100_000)
    ap.add_argument("--per-enterprise", type=int, default=5)
    ap.add_argument("--pipeline", action="store_true", help="end to end with a broker (3.)")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--start-broker", action="store_true", help="a private broker (bench.broker)")
    ap.add_argument("--broker-port", type=int, default=39092)
    ap.add_argument("--max-seconds", type=float, default=300.0, help="per pipeline run")
    ap.add_argument("--replay", action="store_true", help="the rule engine's calls alone (4.)")
    ap.add_argument("--save", help="--replay: record the calls into this file and stop")
    ap.add_argument("--load", help="--replay: the calls recorded by --save (faster to count)")
    ap.add_argument("--phase", choices=["all", "observe", "decide", "changelog", "none"])
    args = ap.parse_args()
    if args.replay:
        if args.load:
            with open(args.load, "rb") as f:
                calls = pickle.load(f)
        else:
            calls = record_calls(args.events)
        if args.save:
            with open(args.save, "wb") as f:
                kept = [(c[0], c[1], _Tx(c[2]), *c[3:]) if c[0] == "o" else c for c in calls]
                pickle.dump(kept, f)
            return
        phase = args.phase or "all"
        if phase == "none":
            print(f"recorded {len(calls):,} calls")
            return
        txs, advances, hits, records = replay(calls, phase)
        print(f"phase {phase}: {txs:,} transactions, {advances:,} advances, {hits:,} hits, "
              f"{records:,} al: records")  # fmt: skip
        return
    if args.pipeline:
        from bench.cli import broker

        with broker(args.bootstrap, args.start_broker, args.broker_port) as bootstrap:
            pipeline(bootstrap, args.events, args.runs, args.max_seconds)
        return
    memory(args.enterprises, args.per_enterprise)
    throughput(args.events, args.runs)


if __name__ == "__main__":
    main()
