"""Worker CPU per event on the bench feed, without Kafka: the processor and the commit prep.

``python -m bench.hotpath [--events N] [--batch B] [--repeat R] [--profile] [--only PATH]
[--rules]`` (``--rules``: the rule engine on, as the worker runs it by default):
captures the
simulator feed (seed 7), assigns offsets and record timestamps as a broker would, and runs
it through :class:`streams.processor.Processor` the way the engine does: scores and FX as
they come, events in batches of B, then per batch ``finish_batch``, the changelog records
(``dirty_records``) and the committed snapshot. Forwarded copies are fed back as input of
the next batch. Reports CPU µs per event (process time, best of R) split into the batch
pass and the commit prep, and the changelog bytes per event (keys + uncompressed values,
with the share of the ``rs:`` and ``al:`` records). No broker, no Faust: what the worker's
own Python costs.

``--decode`` times decoding the feed's event values instead (CPU µs per value, best of R,
alternating): the models' own validators, ``decode`` one by one (the compiled stand-ins),
``decode_many`` in chunks of 256 (their events alive until the chunk is done), and the
worker's way (transactions through ``schemas.wire``, the rest through ``decode``).

``--only none|per-event|batch --repeat 1`` runs one path once (``none``: only the feed), for
counting instructions, which a shared machine's load does not change:
``valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.hotpath --events
10000 --only per-event --repeat 1`` minus the same with ``--only none``, over the events.
The batch pass alone (no feed, no commit prep): the pass is called through
``operator.call``, so ``valgrind --tool=callgrind --callgrind-out-file=/dev/null
--collect-atstart=no --toggle-collect=_operator_call python -m bench.hotpath --events 10000
--only batch --repeat 1 --rules`` counts only inside it (divide by the events printed).
"""

from __future__ import annotations

import argparse
import cProfile
import operator
import pstats
import time
from collections import defaultdict
from collections.abc import Callable

from bench.feed import EVENT_TOPICS, capture
from schemas.alerts import load_ruleset
from streams.processor import FX, SCORES, Output, Processor, Record
from streams.reference.fx import FxTable
from streams.reference.scores import ScoreTable
from streams.rules import RuleEngine
from streams.state.changelog import dirty_records
from streams.state.partition import PartitionState

__all__ = ["ChangelogBytes", "feed_records", "run"]

_BASE_MS = 1_767_225_600_000  # 2026-01-01, as record timestamps (arrival)


def feed_records(events: int, seed: int = 7) -> list[Record]:
    """The captured feed as consumed records: offsets per topic-partition, a timestamp each."""
    feed = capture(events, seed=seed)
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    out: list[Record] = []
    for i, p in enumerate(feed.records):
        o = offsets[(p.topic, p.partition)]
        offsets[(p.topic, p.partition)] = o + 1
        out.append(Record(p.topic, p.partition, o, p.key, p.value, (), _BASE_MS + i))
    return out


class ChangelogBytes:
    """Changelog bytes (key + value, before compression) in total and by key prefix."""

    def __init__(self) -> None:
        self.total = 0
        self.by_prefix: dict[str, int] = defaultdict(int)

    def add(self, records: list[tuple[bytes, bytes | None]]) -> None:
        for key, value in records:
            n = len(key) + (len(value) if value is not None else 0)
            self.total += n
            self.by_prefix[key.split(b":", 1)[0].decode()] += n


def _processor(rules: bool = False) -> Processor:
    engine = RuleEngine(load_ruleset()) if rules else None
    proc = Processor(grace_us=600 * 1_000_000, fx=FxTable(10), rules=engine)
    for p in range(12):
        proc.states[p] = PartitionState(p)
        proc.scores[p] = ScoreTable(8)
    return proc


def replay(
    proc: Processor,
    records: list[Record],
    batch: int,
    step: Callable[[list[Record]], list[Output]],
) -> int:
    """Feed ``records`` to ``proc`` as the engine does: scores and FX as they come, the event
    records in batches of ``batch`` handed to ``step`` (the batch's work; it returns the
    processor's outputs), each with the offsets the broker gives, and the forwarded copies
    among the outputs fed back as the next batch's input. Returns the events applied."""
    events = 0
    pending: list[Record] = []
    forwarded: list[Record] = []
    offsets: dict[tuple[str, int], int] = defaultdict(int)

    def flush() -> None:
        nonlocal events, pending, forwarded
        todo, pending = forwarded + pending, []
        forwarded = []
        for rec in todo:  # offsets as the broker gives them, forwarded copies interleaved
            key = (rec.topic, rec.partition)
            rec.offset = offsets[key]
            offsets[key] += 1
        outs = step(todo)
        events += len(todo)
        for o in outs:
            if o.topic in EVENT_TOPICS and o.partition is not None:
                key = (o.topic, o.partition)
                offsets[key] += 1
                forwarded.append(
                    Record(
                        o.topic,
                        o.partition,
                        offsets[key],
                        o.key,
                        o.value,
                        o.headers,
                        o.timestamp_ms,
                    )
                )

    for rec in records:
        if rec.topic == SCORES:
            proc.process_score(rec, counted=True)
        elif rec.topic == FX:
            proc.process_fx(rec)
        else:
            pending.append(rec)
            if len(pending) >= batch:
                flush()
    while pending or forwarded:
        flush()
    return events


def run(
    records: list[Record],
    batch: int,
    *,
    process: Callable[[Processor, list[Record]], None],
    changelog: ChangelogBytes | None = None,
    rules: bool = False,
) -> tuple[float, float, int]:
    """(CPU seconds in the batch pass, CPU seconds in the commit prep, events)."""
    proc = _processor(rules)
    apply_s = prep_s = 0.0

    def step(todo: list[Record]) -> list[Output]:
        nonlocal apply_s, prep_s
        t0 = time.process_time()
        operator.call(process, proc, todo)  # a C frame callgrind can toggle on (see above)
        t1 = time.process_time()
        proc.finish_batch()
        for p in sorted(proc.touched):
            recs = dirty_records(proc.states[p])
            if changelog is not None:
                changelog.add(recs)
            proc.states[p].counters.snapshot()
        proc.touched.clear()
        outs = proc.take_outputs()
        t2 = time.process_time()
        apply_s += t1 - t0
        prep_s += t2 - t1
        return outs

    events = replay(proc, records, batch, step)
    return apply_s, prep_s, events


def per_event(proc: Processor, records: list[Record]) -> None:
    process = proc.process
    for rec in records:
        process(rec)


def decode_only(values: list[bytes], repeat: int, topics: list[str] | None = None) -> None:
    from schemas import codec
    from schemas.errors import SchemaError
    from schemas.wire import decode_transaction as wire

    chunk = 256

    def reference() -> None:
        for raw in values:
            try:
                codec._EVENT_VALIDATOR.validate_json(raw, strict=True)
            except Exception:  # the same diagnosis as decode's
                try:  # noqa: SIM105 - no context manager in the timed loop
                    codec._slow_decode(raw, None)
                except SchemaError:
                    pass

    def one_by_one() -> None:
        for raw in values:
            try:  # noqa: SIM105 - no context manager in the timed loop
                codec.decode(raw)
            except SchemaError:
                pass

    def many() -> None:
        for start in range(0, len(values), chunk):
            codec.decode_many(values[start : start + chunk])

    def worker() -> None:
        # what the worker's batch path does: transactions through schemas.wire, the rest
        # (and whatever it does not take) through decode
        assert topics is not None
        for topic, raw in zip(topics, values, strict=True):
            try:
                if topic == "dfip.transactions":
                    wire(raw)
                    continue
            except Exception:  # decided by decode, as in the worker
                pass
            try:  # noqa: SIM105 - no context manager in the timed loop
                codec.decode(raw)
            except SchemaError:
                pass

    ways = {"models' validators": reference, "decode": one_by_one, "decode_many": many}
    if topics is not None:
        ways["worker (schemas.wire for transactions)"] = worker
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(repeat):
        for name, way in ways.items():
            t0 = time.process_time()
            way()
            best[name] = min(best[name], time.process_time() - t0)
    for name, seconds in best.items():
        print(f"{name}: {1e6 * seconds / len(values):.2f} µs/value ({len(values):,} values)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--only", choices=["none", "per-event", "batch"])
    ap.add_argument("--decode", action="store_true")
    ap.add_argument(
        "--rules", action="store_true", help="the rules on, as the worker runs by default"
    )
    args = ap.parse_args()
    records = feed_records(args.events)
    if args.decode:
        kept = [r for r in records if r.topic in EVENT_TOPICS and r.value is not None]
        values = [r.value for r in kept if r.value is not None]
        decode_only(values, args.repeat, [r.topic for r in kept])
        return
    paths: dict[str, Callable[[Processor, list[Record]], None]] = {"per-event": per_event}
    batch_path = getattr(Processor, "process_batch", None)
    if batch_path is not None:
        paths["batch"] = batch_path
    if args.only is not None:
        if args.only == "none":
            return
        paths = {args.only: paths[args.only]}
        if args.repeat == 1:
            n = run(records, args.batch, process=paths[args.only], rules=args.rules)[2]
            print(f"{args.only}: {n:,} events")
            return
    for name, fn in paths.items():
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            run(records, args.batch, process=fn, rules=args.rules)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        best: tuple[float, float, int] | None = None
        for _ in range(args.repeat):
            res = run(records, args.batch, process=fn, rules=args.rules)
            if best is None or sum(res[:2]) < sum(best[:2]):
                best = res
        assert best is not None
        apply_s, prep_s, n = best
        log = ChangelogBytes()
        run(records, args.batch, process=fn, changelog=log, rules=args.rules)
        shares = ", ".join(
            f"{p}: {100 * log.by_prefix[p] / log.total:.0f} %" for p in ("rs", "al", "ctr")
        )
        print(f"{name}: changelog {log.total / n:,.0f} bytes/event ({shares})")
        print(
            f"{name}: {n:,} events, {1e6 * (apply_s + prep_s) / n:.1f} µs/event CPU "
            f"(batch pass {1e6 * apply_s / n:.1f}, commit prep {1e6 * prep_s / n:.1f}); "
            f"{n / (apply_s + prep_s):,.0f} events/s"
        )


if __name__ == "__main__":
    main()
