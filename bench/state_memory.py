"""What the worker's state holds per enterprise, by component (no broker).

``python -m bench.state_memory [--enterprises N] [--days D] [--no-rules]``: the records of
bench/worker_memory.py (N scores, then one transaction per enterprise over the last D days)
go through the worker's own ``Processor`` (default settings: rules on, 120-day horizon),
in batches of 2,000 each followed by ``finish_batch`` and the changelog encoding, as the
engine does. Then the bytes each component holds are counted object by object
(``sys.getsizeof``, each object once; shared strings and label tuples counted where first
met, in the order printed), and the process RSS growth is printed for comparison.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.enterprises import score_records
from bench.worker_memory import transaction_records
from schemas.alerts import load_ruleset
from streams.processor import Processor, Record
from streams.reference.fx import FxTable
from streams.reference.scores import ScoreTable
from streams.rules import RuleEngine
from streams.settings import WorkerSettings
from streams.state.changelog import dirty_records
from streams.state.partition import PartitionState

_ATOMIC = (str, bytes, bytearray, int, float, bool, type(None))


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def deep_size(roots: Iterable[Any], seen: set[int]) -> int:
    """Bytes of the objects reachable from ``roots`` not already in ``seen``."""
    total = 0
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, _ATOMIC):
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        else:
            slots = [s for c in type(obj).__mro__ for s in getattr(c, "__slots__", ())]
            stack.extend(getattr(obj, s) for s in slots if hasattr(obj, s))
            d = getattr(obj, "__dict__", None)
            if d is not None:
                stack.append(d)
    return total


def _records(n: int, days: int) -> Iterator[tuple[str, Record]]:
    end = datetime(2026, 12, 1, tzinfo=UTC)
    offsets: dict[tuple[str, int], int] = {}
    for kind, produced in (("score", score_records(n)), ("tx", transaction_records(n, days, end))):
        for p in produced:
            off = offsets.get((p.topic, p.partition), 0)
            offsets[(p.topic, p.partition)] = off + 1
            # the record timestamp: now-ish, after every occurred_at (none is future-dated)
            ts = int((end + timedelta(hours=1)).timestamp() * 1000)
            yield kind, Record(p.topic, p.partition, off, p.key, p.value, (), ts)


def measure(n: int, days: int, rules: bool) -> None:
    d = WorkerSettings()
    proc = Processor(
        grace_us=d.grace_seconds * 1_000_000,
        dedup_retention_days=d.dedup_retention_days,
        max_future_us=d.max_future_seconds * 1_000_000,
        restate_horizon_us=d.restate_horizon_days * 86_400 * 1_000_000,
        fx=FxTable(d.fx_max_age_days),
        rules=RuleEngine(load_ruleset(None)) if rules else None,
    )
    for p in range(12):
        proc.states[p] = PartitionState(p)
        proc.scores[p] = ScoreTable()
    gc.collect()
    rss0 = _rss_mib()
    batch = 0
    for kind, rec in _records(n, days):
        if kind == "score":
            proc.process_score(rec, counted=True)
        else:
            proc.process(rec)
        batch += 1
        if batch == 2000:
            proc.finish_batch()
            proc.take_outputs()
            for state in proc.states.values():
                dirty_records(state)
            batch = 0
    proc.finish_batch()
    proc.take_outputs()
    for state in proc.states.values():
        dirty_records(state)
    gc.collect()
    rss = _rss_mib() - rss0
    states = list(proc.states.values())
    seen: set[int] = set()
    parts: list[tuple[str, list[Any]]] = [
        ("score table", list(proc.scores.values())),
        ("restatement contributions", [s.contributions for s in states]),
        ("recent flows", [s.recent_flows for s in states]),
        ("rules state", [s.rules for s in states]),
        ("duplicate memory", [s.dedup for s in states]),
        ("windows", [s.windows for s in states]),
        ("FX book", [s.fx_book for s in states]),
        ("everything else", states),
    ]
    print(f"{n:,} enterprises, one transaction each over {days} days, rules {rules}")
    total = 0
    for name, roots in parts:
        b = deep_size(roots, seen)
        total += b
        print(f"{name}: {b / 2**20:,.1f} MiB, {b / n:,.0f} bytes per enterprise")
    print(f"all: {total / 2**20:,.1f} MiB; process RSS growth {rss:,.1f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--enterprises", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=119)
    ap.add_argument("--no-rules", action="store_true")
    args = ap.parse_args()
    measure(args.enterprises, args.days, not args.no_rules)


if __name__ == "__main__":
    main()
