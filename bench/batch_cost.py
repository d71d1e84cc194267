"""The engine's cost per batch against a real broker: the fixed part and the part per event.

``python -m bench.batch_cost --start-broker --broker-port P [--sizes 50,200,1000,2000]
[--events N] [--measure M] [--profile SIZE] [--pipelined]``

Live, a worker's batches hold what arrived since the last one (tens to hundreds of records at
a few thousand a second), not the 2,000-6,000 of a pre-produced feed, so whatever a batch
costs regardless of its size is spread over few events (issue 18: ~57-61 µs of worker CPU per
event at 16,400/s against ~30 in the pipeline phase). This drives one :class:`Engine` in this
process (no Faust, no group consumer, no HTTP) over the bench feed, pre-produced into a fresh
namespace per batch size, in batches of each size, and times every stage of the batch cycle
in CPU (this thread's: the engine's clients run on its event loop) and wall time:

- ``reference``: the catch-up of the reference topics before the batch
  (``ReferenceSync.catch_up``; the feed's scores and FX are read once before the first
  measured batch, so each measured catch-up finds what a live one mostly finds: nothing new),
- ``apply``: ``Processor.process_batch``,
- ``prepare``: ``Committer.prepare`` (finish_batch, changelog records, snapshots),
- ``commit``: ``Committer.write`` (the transaction, the local store, the publication).

Stages run one after the other (``Committer.write`` awaited, not overlapped with the next
batch) so each one's CPU is its own; ``--pipelined`` drives ``Engine.process_batch`` as the
worker does instead and reports only the total. A batch is the next ``size`` event records
of the feed in produce order, ordered by topic-partition as a fetch returns them. Per size:
µs per batch of each stage (mean over the measured batches) and µs per event; then a least
squares fit cost = fixed + per_event x size over the sizes, per stage. ``--profile SIZE``
prints cProfile's top functions (cumulative) over the measured batches of that size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import operator
import pickle
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.broker import drop_namespace, namespace, private_broker
from bench.feed import EVENT_TOPICS, CapturedFeed, capture, produce
from core.kafka_config import KafkaSettings
from streams.engine import Engine
from streams.processor import Record
from streams.settings import WorkerSettings

__all__ = ["STAGES", "SizeResult", "event_batches", "fit", "main"]

STAGES = ("reference", "apply", "prepare", "commit")


@dataclass
class SizeResult:
    size: int
    batches: int
    events: int
    cpu: dict[str, float] = field(default_factory=dict)  # stage → CPU seconds, all batches
    wall: dict[str, float] = field(default_factory=dict)  # stage → wall seconds
    total_cpu: float = 0.0  # the whole measured loop (pipelined: the only figure)

    def per_batch_us(self, stage: str) -> float:
        return 1e6 * self.cpu.get(stage, 0.0) / self.batches

    def per_event_us(self) -> float:
        return 1e6 * self.total_cpu / self.events


def event_batches(records: Sequence[Record], size: int) -> Iterator[list[Record]]:
    """Consecutive ``size`` records, each batch ordered by (topic, partition) as one fetch."""
    for start in range(0, len(records), size):
        chunk = records[start : start + size]
        yield sorted(chunk, key=lambda r: (r.topic, r.partition))


def feed_records(feed: CapturedFeed) -> list[Record]:
    """The feed's event-topic records as the worker's consumer hands them over: catalog
    topic, the offset the (idempotent, non-transactional) bench producer gave it, a
    timestamp of now."""
    offsets: dict[tuple[str, int], int] = {}
    now_ms = int(time.time() * 1000)
    out: list[Record] = []
    for p in feed.records:
        tp = (p.topic, p.partition)
        o = offsets.get(tp, 0)
        offsets[tp] = o + 1
        if p.topic in EVENT_TOPICS:
            out.append(Record(p.topic, p.partition, o, p.key, p.value, (), now_ms))
    return out


def fit(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least squares (fixed, per unit) of cost = fixed + per_unit x size."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return my, 0.0
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - slope * mx, slope


def _one_size(
    loop: asyncio.AbstractEventLoop,
    settings: KafkaSettings,
    feed: CapturedFeed,
    size: int,
    *,
    measure: int,
    warm: int,
    pipelined: bool,
    profile: bool,
    count: str | None,
) -> SizeResult:
    run = loop.run_until_complete
    run(produce(settings, feed.records))
    with tempfile.TemporaryDirectory(prefix="dfip-batch-cost-") as data:
        ws = WorkerSettings(
            app_id=f"bench-bc-{uuid.uuid4().hex[:6]}",
            worker_id="batch-cost",
            data_dir=Path(data),
        )
        engine = Engine(settings, ws)
        run(engine.start())
        try:
            run(engine.assign(range(12)))
            owned = engine.partitions
            # the feed's scores and FX, all in the topics already: read them once, unmeasured
            run(engine.references.catch_up(owned))
            batches = list(event_batches(feed_records(feed), size))
            warm_n = max(1, warm // size)
            n = max(1, measure // size)
            if warm_n + n > len(batches):
                n = len(batches) - warm_n
            result = SizeResult(size, n, 0)
            prof = cProfile.Profile() if profile else None
            for i, batch in enumerate(batches[: warm_n + n]):
                measured = i >= warm_n
                if measured and prof is not None and i == warm_n:
                    prof.enable()
                c0, w0 = time.thread_time(), time.perf_counter()
                if pipelined:
                    step = engine.process_batch(batch)
                    if measured and count == "total":
                        operator.call(run, step)
                    else:
                        run(step)
                else:
                    _serial_batch(run, engine, owned, batch, result if measured else None, count)
                if measured:
                    result.total_cpu += time.thread_time() - c0
                    result.wall["total"] = result.wall.get("total", 0.0) + (
                        time.perf_counter() - w0
                    )
                    result.events += len(batch)
            if pipelined:
                run(engine.settle())
            if prof is not None:
                prof.disable()
                stats = pstats.Stats(prof, stream=sys.stderr)
                stats.sort_stats("cumulative").print_stats(70)
                stats.sort_stats("tottime").print_stats(40)
            return result
        finally:
            run(engine.stop())


def _serial_batch(
    run: Callable[[Any], Any],
    engine: Engine,
    owned: list[int],
    batch: list[Record],
    result: SizeResult | None,
    count: str | None,
) -> None:
    """One batch cycle, stage after stage (the commit awaited), each stage timed; the stage
    ``count`` (when measured) is called through ``operator.call`` for callgrind's toggle."""
    proc, committer = engine.processor, engine.committer

    def stages() -> Iterator[tuple[str, Callable[[], Any]]]:
        yield "reference", lambda: run(engine.references.catch_up(owned))
        yield "apply", lambda: proc.process_batch(batch)
        holder: list[Any] = []
        yield "prepare", lambda: holder.append(committer.prepare(proc, batch, time.perf_counter()))
        yield "commit", lambda: run(committer.write(holder[0]))

    for stage, call in stages():
        c0, w0 = time.thread_time(), time.perf_counter()
        if result is not None and count in (stage, "total"):
            operator.call(call)
        else:
            call()
        if result is not None:
            result.cpu[stage] = result.cpu.get(stage, 0.0) + time.thread_time() - c0
            result.wall[stage] = result.wall.get(stage, 0.0) + time.perf_counter() - w0


def report(results: Sequence[SizeResult], *, pipelined: bool) -> str:
    lines = []
    if pipelined:
        lines.append(
            "| batch size | batches | events | CPU µs/batch | CPU µs/event | wall ms/batch |"
        )
        lines.append("|---:|---:|---:|---:|---:|---:|")
        for r in results:
            lines.append(
                f"| {r.size} | {r.batches} | {r.events} | {1e6 * r.total_cpu / r.batches:,.0f} "
                f"| {r.per_event_us():.1f} | {1e3 * r.wall['total'] / r.batches:.1f} |"
            )
        fixed, per = fit([(r.size, 1e6 * r.total_cpu / r.batches) for r in results])
        lines.append(f"\nfit: {fixed:,.0f} µs per batch + {per:.1f} µs per event")
        return "\n".join(lines)
    head = " | ".join(f"{s} CPU µs (wall ms)" for s in STAGES)
    lines.append(f"| batch size | batches | {head} | CPU µs/event |")
    lines.append("|---:|---:|" + "---:|" * len(STAGES) + "---:|")
    for r in results:
        cells = " | ".join(
            f"{r.per_batch_us(s):,.0f} ({1e3 * r.wall.get(s, 0.0) / r.batches:.1f})" for s in STAGES
        )
        lines.append(f"| {r.size} | {r.batches} | {cells} | {r.per_event_us():.1f} |")
    lines.append("")
    lines.append("| stage | fixed CPU µs per batch | CPU µs per event |")
    lines.append("|---|---:|---:|")
    for s in (*STAGES, "total"):
        pts = [
            (r.size, 1e6 * r.total_cpu / r.batches if s == "total" else r.per_batch_us(s))
            for r in results
        ]
        fixed, per = fit(pts)
        lines.append(f"| {s} | {fixed:,.0f} | {per:.2f} |")
    return "\n".join(lines)


def _feed(events: int, cache: Path | None) -> CapturedFeed:
    """The captured feed, from ``cache`` when it holds one of this size (capturing under
    valgrind takes minutes)."""
    if cache is not None and cache.exists():
        feed: CapturedFeed = pickle.loads(cache.read_bytes())
        if len(feed.records) == events:
            return feed
    feed = capture(events)
    if cache is not None:
        cache.write_bytes(pickle.dumps(feed))
    return feed


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.batch_cost", description=__doc__)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--start-broker", action="store_true")
    ap.add_argument("--broker-port", type=int, default=39092)
    ap.add_argument("--sizes", default="50,200,1000,2000")
    ap.add_argument("--events", type=int, default=60_000, help="simulator records in the feed")
    ap.add_argument("--feed-cache", type=Path, default=None, help="pickle of the captured feed")
    ap.add_argument("--measure", type=int, default=20_000, help="events measured per size")
    ap.add_argument("--warm", type=int, default=4_000, help="events applied first, unmeasured")
    ap.add_argument("--pipelined", action="store_true")
    ap.add_argument("--profile", type=int, default=0, help="cProfile the batches of this size")
    ap.add_argument(
        "--count",
        choices=(*STAGES, "total"),
        default=None,
        help="call this stage of the measured batches (or all of them) through operator.call",
    )
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    feed = _feed(args.events, args.feed_cache)
    ctx = (
        private_broker(args.broker_port)
        if args.start_broker
        else contextlib.nullcontext(args.bootstrap)
    )
    results = []
    with ctx as bootstrap:
        for size in sizes:
            settings = namespace(bootstrap, "bc")
            loop = asyncio.new_event_loop()
            try:
                r = _one_size(
                    loop,
                    settings,
                    feed,
                    size,
                    measure=args.measure,
                    warm=args.warm,
                    pipelined=args.pipelined,
                    profile=args.profile == size,
                    count=args.count,
                )
            finally:
                loop.close()
                drop_namespace(settings)
            results.append(r)
            print(
                f"[batch_cost] size {size}: {r.batches} batches, {r.events} events, "
                f"{r.per_event_us():.1f} µs/event",
                file=sys.stderr,
                flush=True,
            )
    print(report(results, pipelined=args.pipelined))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
