"""The broker's first writes to topics just created, without a worker (issue 18).

``python -m bench.fresh_topics [--start-broker --broker-port P] [--rounds N] [--rate R]``:
on each of N fresh namespaces the captured feed is offered at R records/s for 10 s by the
latency bench's own producer (bench/latency.py ``paced_produce``), then once more on the
same topics; odd rounds prime the namespace first (``prime_partitions``: one aborted record
per partition). Prints, per pass, how far the producer fell behind its schedule in each
second. No worker runs: what it shows is the broker's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from bench.broker import drop_namespace, namespace, private_broker
from bench.feed import capture
from bench.latency import late_by_second, paced_produce, prime_partitions

__all__ = ["main"]


def _passes(bootstrap: str, rounds: int, rate: float) -> None:
    feed = capture(int(rate * 10))
    for i in range(rounds):
        settings = namespace(bootstrap, "fresh")
        primed = i % 2 == 1
        try:
            if primed:
                began = time.perf_counter()
                n = asyncio.run(prime_partitions(settings))
                print(f"  primed {n} partitions in {time.perf_counter() - began:.2f} s")
            for again in ("fresh", "second pass"):
                late: list[tuple[float, float]] = []
                asyncio.run(
                    paced_produce(settings, feed.records, rate=rate, on_sent=_ignore, late=late)
                )
                worst = " ".join(f"{1000 * x:,.0f}" for x in late_by_second(late))
                print(
                    f"namespace {i + 1} ({'primed' if primed else 'not primed'}), {again}, "
                    f"load {os.getloadavg()[0]:.1f}: late by second {worst} ms",
                    flush=True,
                )
        finally:
            drop_namespace(settings)


def _ignore(chunk: object, at: float) -> None:
    return None


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.fresh_topics", description=__doc__)
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--start-broker", action="store_true")
    p.add_argument("--broker-port", type=int, default=39092)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--rate", type=float, default=5000.0)
    a = p.parse_args()
    if a.start_broker:
        with private_broker(a.broker_port) as bootstrap:
            _passes(bootstrap, a.rounds, a.rate)
    else:
        _passes(a.bootstrap, a.rounds, a.rate)


if __name__ == "__main__":
    main()
