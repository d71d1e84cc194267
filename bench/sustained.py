"""The live sustained maximum, and the latency at a fraction of it (issue 18).

The pipeline phase's maximum (a pre-produced feed read by the worker alone) is not a rate the
live setup sustains on this machine: there the bench's producer, the broker, the worker and
the scraper share the two cores. This module finds the highest offered rate that setup keeps
up with, then measures the latency rounds at ``fraction`` (80 %) of it:

1. one unmeasured round at ``low`` (the broker's JIT warms up on it, bench/latency.py);
2. stepped rates, each a latency round (bench.latency.run_latency: a fresh worker on a fresh
   namespace) of ``warm`` + ``seconds`` seconds, judged by :func:`kept_up`; a rate counts
   as kept up when most of its ``step_rounds`` rounds were (:func:`majority`: one round
   per step let a lucky round set the maximum, and 80 % of it was then not kept up);
   ``low`` first (it must be kept up), then bisection between the highest rate kept up and
   the lowest not kept up (``high`` counts as not kept up until tried) until they are
   ``resolution`` apart;
3. ``rounds`` latency rounds at ``fraction`` × the maximum, reported one by one and as
   medians, with the load average at each round's start and end.

``--rate R`` skips 1-2 and runs the rounds at R (to compare trees at one rate).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import pickle
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.broker import private_broker
from bench.feed import CapturedFeed, capture
from bench.latency import LatencyRun, run_latency

__all__ = ["Judgement", "bisect_rate", "kept_up", "main", "majority"]

# seconds compared at the start (after the warm-up) and at the end of a round
WINDOW = 10
# the produce → figure delay may grow by this much over a round and still count as kept up
GROWTH = 0.5
# the producer may fall this far behind its schedule (s) and the rate still count as offered
PRODUCER_LATE = 0.5


@dataclass(frozen=True)
class Judgement:
    ok: bool
    why: str


def _median(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def kept_up(
    run: LatencyRun,
    *,
    warm: float,
    window: int = WINDOW,
    growth: float = GROWTH,
    producer_late: float = PRODUCER_LATE,
) -> Judgement:
    """Whether one round's worker kept up with the offered rate.

    Kept up = every record visible within the drain time, the producer on its schedule at the
    end (the median of its lateness per second over the last ``window`` seconds at most
    ``producer_late`` s: otherwise the rate was not offered, the producer being starved of
    CPU, which is part of the live setup), and the produce →
    figure delay not growing: the median of the per-second p99 (scrape side, records sent in
    each second) over the round's last ``window`` seconds is at most ``growth`` s above the
    median over the first ``window`` seconds after the warm-up. A worker that falls behind
    at a rate r above its capacity c sees that delay grow by (r − c) / c s per second sent.
    """
    if run.invisible:
        return Judgement(False, f"{run.invisible:,} records not visible after the drain")
    start = math.ceil(warm)
    measured = run.by_second[start:]
    # the last second sent may be a fraction of one: leave it out
    if len(measured) > 2 * window:
        measured = measured[:-1]
    if len(measured) < 2 * window:
        return Judgement(False, f"round too short: {len(measured)} s after the warm-up")
    first = _median(measured[:window])
    last = _median(measured[-window:])
    if first is None or last is None:
        return Judgement(False, "no records in the compared seconds")
    # the producer's lateness over the last seconds, as the delay: a one-off stall of the
    # machine (another process) shows as one late second and is caught up after
    late = _median(run.late_by_second[start:][-window:]) or 0.0
    if late > producer_late:
        return Judgement(False, f"the producer stayed {late:.2f} s behind its schedule")
    if last - first > growth:
        return Judgement(False, f"delay grew: p99 {1000 * first:,.0f} → {1000 * last:,.0f} ms")
    return Judgement(True, f"p99 {1000 * first:,.0f} → {1000 * last:,.0f} ms")


def majority(judge: Callable[[], bool], rounds: int) -> bool:
    """True when most of ``rounds`` calls of ``judge`` are; stops as soon as that is decided
    (3 rounds: two alike end it)."""
    need = rounds // 2 + 1
    yes = no = 0
    while yes < need and no < rounds - need + 1:
        if judge():
            yes += 1
        else:
            no += 1
    return yes >= need


def bisect_rate(
    ok: Callable[[float], bool], low: float, high: float, resolution: float
) -> float | None:
    """The highest rate (a multiple of ``resolution`` between ``low`` and ``high``) for
    which ``ok`` holds, assuming it holds below a rate and not above; ``low`` is tried
    first (None when not even that is kept up), ``high`` only if bisection reaches it."""
    if not ok(low):
        return None
    good, bad = low, high + resolution  # `high` itself is a candidate
    while bad - good > resolution:
        mid = good + resolution * max(1, int((bad - good) / resolution) // 2)
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _feed(records: int, cache: Path | None) -> CapturedFeed:
    """A captured feed of at least ``records`` records (from ``cache`` when it holds one)."""
    if cache is not None and cache.exists():
        feed: CapturedFeed = pickle.loads(cache.read_bytes())
        if len(feed.records) >= records:
            return feed
    feed = capture(records)
    if cache is not None:
        cache.write_bytes(pickle.dumps(feed))
    return feed


def _ms(x: float | None) -> str:
    return "-" if x is None else "inf" if math.isinf(x) else f"{1000 * x:,.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sustained", description=__doc__)
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--start-broker", action="store_true")
    ap.add_argument("--broker-port", type=int, default=39092)
    ap.add_argument("--low", type=float, default=6000, help="records/s, must be kept up")
    ap.add_argument("--high", type=float, default=20000, help="records/s, highest tried")
    ap.add_argument("--resolution", type=float, default=500, help="records/s")
    ap.add_argument("--seconds", type=float, default=60, help="measured seconds per round")
    ap.add_argument("--warm", type=float, default=10, help="seconds before them per round")
    ap.add_argument("--drain", type=float, default=20)
    ap.add_argument(
        "--scrape-interval",
        type=float,
        default=1.0,
        help="seconds between whole /metrics scrapes (deploy/prometheus/prometheus.yml: 5)",
    )
    ap.add_argument("--step-rounds", type=int, default=3, help="rounds per search step")
    ap.add_argument("--rounds", type=int, default=3, help="latency rounds at the fraction")
    ap.add_argument("--fraction", type=float, default=0.8)
    ap.add_argument("--rate", type=float, default=None, help="skip the search: rounds at R")
    ap.add_argument("--no-warm-up", action="store_true", help="no unmeasured first round")
    ap.add_argument("--feed-cache", type=Path, default=None, help="pickle of the captured feed")
    ap.add_argument("--log-dir", type=Path, default=Path("/tmp/dfip-bench-sustained"))
    args = ap.parse_args(argv)
    length = args.warm + args.seconds
    top = args.rate if args.rate is not None else args.high
    feed = _feed(int(top * length) + 1, args.feed_cache)
    ctx = (
        private_broker(args.broker_port)
        if args.start_broker
        else contextlib.nullcontext(args.bootstrap)
    )

    def say(msg: str) -> None:
        print(f"[sustained] {msg}", file=sys.stderr, flush=True)

    def round_at(rate: float, label: str, seconds: float = length) -> LatencyRun:
        return run_latency(
            bootstrap,
            feed,
            rate=rate,
            seconds=seconds,
            log_dir=args.log_dir,
            drain=args.drain,
            scrape_interval=args.scrape_interval,
            label=label,
        )

    steps: list[tuple[float, Judgement, str]] = []
    best: float | None = None
    with ctx as bootstrap:
        if not args.no_warm_up:
            say(f"warm-up round at {args.low:,.0f}/s (not measured)")
            round_at(args.low, "warm-up", seconds=min(length, 20))
        rate = args.rate
        if rate is None:

            def one_round(r: float) -> bool:
                load = _load()
                j = kept_up(round_at(r, f"step {r:,.0f}/s"), warm=args.warm)
                steps.append((r, j, f"{load} → {_load()}"))
                say(f"{r:,.0f}/s: {'kept up' if j.ok else 'NOT kept up'} ({j.why})")
                return j.ok

            def ok(r: float) -> bool:
                return majority(lambda: one_round(r), args.step_rounds)

            best = bisect_rate(ok, args.low, args.high, args.resolution)
            if best is None:
                print(f"not even {args.low:,.0f}/s was kept up")
                return 1
            rate = args.fraction * best
            say(f"sustained maximum {best:,.0f}/s; rounds at {rate:,.0f}/s")
        runs: list[tuple[LatencyRun, str, Judgement]] = []
        for i in range(args.rounds):
            load = _load()
            run = round_at(rate, f"round {i + 1} at {rate:,.0f}/s")
            runs.append((run, f"{load} → {_load()}", kept_up(run, warm=args.warm)))
    print(_report(steps, best, rate, runs, args))
    return 0


def _report(
    steps: Sequence[tuple[float, Judgement, str]],
    best: float | None,
    rate: float,
    runs: Sequence[tuple[LatencyRun, str, Judgement]],
    args: argparse.Namespace,
) -> str:
    out = []
    if steps:
        out += [
            f"Rate search ({args.warm:.0f} + {args.seconds:.0f} s per step):",
            "",
            "| offered, records/s | kept up | why | load average |",
            "|---:|---|---|---|",
        ]
        out += [
            f"| {r:,.0f} | {'yes' if j.ok else 'no'} | {j.why} | {load} |" for r, j, load in steps
        ]
        out += [
            "",
            f"Sustained maximum (kept up in most rounds of its step): {best:,.0f}/s"
            if best
            else "",
            "",
        ]
    out += [
        f"Latency rounds at {rate:,.0f}/s ({args.warm + args.seconds:.0f} s each):",
        "",
        "| round | p50 / p99 scrape side, ms | p50 / p99 worker histogram, ms | queue p99, ms "
        "| mean: fetch_wait / queue / apply / commit_wait / transaction, ms | mean batch "
        "| worker µs/event "
        "| kept up | load average |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, (run, load, j) in enumerate(runs):
        queue = run.stages.get("queue", (0.0, None))[1]
        means = " / ".join(
            _ms(run.stages[s][0]) if s in run.stages else "-"
            for s in ("fetch_wait", "queue", "apply", "commit_wait", "transaction")
        )
        batch = (
            f"{run.batch_records / run.batches:,.0f}" if run.batches and run.batch_records else "-"
        )
        cpu = f"{1e6 * run.worker_cpu / run.events:.1f}" if run.worker_cpu and run.events else "-"
        out.append(
            f"| {i + 1} | {_ms(run.scrape_p50)} / {_ms(run.scrape_p99)} | {_ms(run.worker_p50)} / "
            f"{_ms(run.worker_p99)} | {_ms(queue)} | {means} | {batch} | {cpu} | "
            f"{'yes' if j.ok else 'no'} ({j.why}) | {load} |"
        )
    med = [
        _median([getattr(run, f) for run, _, _ in runs])
        for f in ("scrape_p50", "scrape_p99", "worker_p50", "worker_p99")
    ]
    out.append(
        f"| **median** | {_ms(med[0])} / {_ms(med[1])} | {_ms(med[2])} / {_ms(med[3])} "
        + "| " * 7
        + "|"
    )
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
