"""Encode and decode+validate rates of the schema codec, per event type.

    .venv/bin/python bench/bench_schemas.py [--events 20000] [--runs 5]

For each example event type (schemas.examples) it encodes N distinct events (N different
event ids and USCCs, so caches see a realistic key mix) and decodes them back, timing
`schemas.encode` and `schemas.decode` (full validation). Work is done in batches of
`--batch` records whose results are dropped after each batch, as a batching stream
worker does (keeping all N results alive would mostly measure the garbage collector).
Each rate is the median of `--runs` runs (the best run is shown too). Prints a markdown
table.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schemas import DeadLetter, decode, decode_as, encode, make_uscc
from schemas.examples import example_events

_ENTERPRISES = 5000  # distinct USCCs cycled through (the stream sees a bounded set too)


def _variants(template: Any, count: int) -> list[Any]:
    usccs = [make_uscc("3301" + f"{i % 100:02d}", f"{i:08d}") for i in range(_ENTERPRISES)]
    out = []
    for i in range(count):
        update: dict[str, Any] = {"event_id": f"{template.event_id[:24]}-{i:012d}"}
        if hasattr(template, "enterprise_uscc"):
            update["enterprise_uscc"] = usccs[i % _ENTERPRISES]
        # model_copy skips validation; the values above are valid by construction.
        out.append(template.model_copy(update=update))
    return out


def _label(event: Any) -> str:
    event_type = getattr(event, "event_type", None)
    return f"{type(event).__name__}" + (f" ({event_type})" if event_type else "")


def _rate(work: Callable[[], object], count: int, runs: int) -> tuple[float, float]:
    """Events/s over `runs` runs: (median, best).

    The median is the headline figure; the best run shows what the code does when other
    processes leave the CPU alone (on a shared 2-core machine the two differ a lot).
    """
    rates = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        work()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates), max(rates)


def _batched(fn: Callable[[Any], object], items: list[Any], size: int) -> Callable[[], None]:
    def run() -> None:
        for start in range(0, len(items), size):
            results = [fn(item) for item in items[start : start + size]]
            del results

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="schemas codec benchmark")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    n, runs, batch = args.events, args.runs, args.batch

    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, python {platform.python_version()}, ", end="")
    print(f"nproc {os.cpu_count()}, {platform.machine()}, load {os.getloadavg()[0]:.2f}, ", end="")
    print(f"{n} events in batches of {batch}, median of {runs} runs")
    print()
    print(
        "| event type | bytes | encode events/s (median) | decode+validate events/s (median) "
        "| encode (best run) | decode+validate (best run) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for template in example_events():
        events = _variants(template, n)
        payloads = [encode(e) for e in events]
        reader: Callable[[bytes], object] = (
            (lambda raw: decode_as(raw, DeadLetter)) if isinstance(template, DeadLetter) else decode
        )
        assert reader(payloads[0]) == events[0]  # the benchmark measures a correct path
        enc = _rate(_batched(encode, events, batch), n, runs)
        dec = _rate(_batched(reader, payloads, batch), n, runs)
        size = len(payloads[0])
        print(
            f"| {_label(template)} | {size} | {enc[0]:,.0f} | {dec[0]:,.0f} "
            f"| {enc[1]:,.0f} | {dec[1]:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
