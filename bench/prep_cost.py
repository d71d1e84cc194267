"""Instructions of the commit prep alone, without Kafka: for callgrind.

``python -m bench.prep_cost [--events N] [--batch B] [--part PART]``: the hotpath feed
(`bench.hotpath.feed_records`, seed 7, the rules on) through a `Processor` in batches of B,
forwarded copies fed back as the next batch's input, as `bench.hotpath` does; after each
batch the prep `Committer.prepare` makes (``finish_batch``, ``dirty_records`` of every
touched partition, the counters' snapshot, the scored copy) is called through
``operator.call``, so that

``PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null
--collect-atstart=no --toggle-collect=_operator_call python -m bench.prep_cost --batch 50``

counts only inside it (divide by the events printed). Unlike ``bench.batch_cost --count
prepare`` no broker, event loop or client runs beside it, so the count does not move with
timing (there, cyclic GC passes landing inside the stage or not move it by a few %).
``--part`` counts one part instead: ``finish`` (``finish_batch``), ``dirty``
(``dirty_records``), ``snapshot``, ``rules`` (the ``al:`` records), ``ctr``, ``rs``.
"""

from __future__ import annotations

import argparse
import operator
from collections.abc import Callable
from typing import Any

from bench.hotpath import _processor, feed_records, replay
from streams.processor import Output, Processor, Record
from streams.rules.engine import RulesState
from streams.state import changelog
from streams.state.partition import Counters

__all__ = ["main", "run"]


def _plain(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def _counted(owner: Any, name: str) -> None:
    """Call ``owner.name`` through operator.call (callgrind's toggle)."""
    fn = getattr(owner, name)

    def counted(*args: Any) -> Any:
        return operator.call(fn, *args)

    setattr(owner, name, counted)


_PARTS: dict[str, tuple[Any, str]] = {
    "finish": (Processor, "finish_batch"),
    "snapshot": (Counters, "snapshot"),
    "rules": (RulesState, "changelog_records"),
    "ctr": (changelog, "_counter_records"),
    "rs": (changelog, "_contribution_records"),
}


def run(records: list[Record], batch: int, part: str | None) -> int:
    """Apply the feed in batches, the prep after each; returns the events applied."""
    proc = _processor(rules=True)
    dirty_records = changelog.dirty_records
    if part == "dirty":
        dirty_records = lambda state: operator.call(changelog.dirty_records, state)  # noqa: E731
    elif part is not None:
        _counted(*_PARTS[part])

    def prep() -> None:
        proc.finish_batch()
        touched = proc.take_touched()
        states, scores = proc.states, proc.scores
        for p in touched:
            dirty_records(states[p])
        for p in touched:
            states[p].counters.snapshot()
            dict(scores[p].scored)

    def step(todo: list[Record]) -> list[Output]:
        proc.process_batch(todo)
        if part is None:
            operator.call(prep)
        else:
            prep()
        return proc.take_outputs()

    return replay(proc, records, batch, step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=6_000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--part", choices=["dirty", *_PARTS], default=None)
    args = ap.parse_args()
    n = run(feed_records(args.events), args.batch, args.part)
    print(f"prep ({args.part or 'all'}): {n:,} events in batches of {args.batch}")


if __name__ == "__main__":
    main()
