"""Worker CPU per event for building the changelog's record batches, without a broker.

``python -m bench.commit_batches [--events N] [--batch B] [--repeat R] [--rules]
[--way committer|aiokafka|none]``: runs the simulator feed through the processor as
``bench.hotpath`` does, keeps each commit's changelog rows (``dirty_records`` per touched
partition), then builds them into record batches, as the committer does before
``send_batch`` (records appended, batch built and compressed), best of R in CPU time:

- ``committer``: :func:`streams.engine.committer._changelog_batch` (its ``fill`` loop,
  zstd level 1 on build);
- ``aiokafka``: aiokafka's ``BatchBuilder.append`` per row and its own zstd (level 3), the
  committer's way before.

Reports µs per event, records and bytes per event before and after compression. With
``--way X --repeat 1`` builds once, for counting instructions (``valgrind --tool=callgrind``
minus the same with ``--way none``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from bench.hotpath import ChangelogBytes, feed_records, run
from streams.engine.committer import Row, _changelog_batch
from streams.processor import Processor

__all__ = ["Rows", "build_aiokafka", "build_committer"]

_TS = 1_767_225_600_000
_NO_HEADERS: list[tuple[str, bytes]] = []


class Rows(ChangelogBytes):
    """Keeps every commit's rows of one partition, as the committer gets them."""

    def __init__(self) -> None:
        super().__init__()
        self.commits: list[list[tuple[bytes, bytes | None]]] = []

    def add(self, records: list[tuple[bytes, bytes | None]]) -> None:
        super().add(records)
        self.commits.append(records)


def build_committer(commits: list[list[tuple[bytes, bytes | None]]]) -> int:
    """Bytes built, the committer's way."""
    out = 0
    for rows in commits:
        pending: Iterator[Row] = iter([(_TS, k, v, _NO_HEADERS) for k, v in rows])
        while True:
            batch = _changelog_batch(True)
            left = batch.fill(pending)
            batch._set_producer_state(1, 0, 0)
            out += len(batch._build())
            if left is None:
                break
            pending = iter([left, *pending])
    return out


def build_aiokafka(commits: list[list[tuple[bytes, bytes | None]]]) -> int:
    """Bytes built, one ``BatchBuilder.append`` per row and aiokafka's zstd (level 3)."""
    out = 0
    for rows in commits:
        batch = BatchBuilder(256 * 1024, DefaultRecordBatch.CODEC_ZSTD, is_transactional=True)
        for key, value in rows:
            if batch.append(timestamp=None, key=key, value=value, headers=_NO_HEADERS) is None:
                batch._set_producer_state(1, 0, 0)
                out += len(batch._build())
                batch = BatchBuilder(
                    256 * 1024, DefaultRecordBatch.CODEC_ZSTD, is_transactional=True
                )
                batch.append(timestamp=None, key=key, value=value, headers=_NO_HEADERS)
        batch._set_producer_state(1, 0, 0)
        out += len(batch._build())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rules", action="store_true")
    ap.add_argument("--way", choices=["committer", "aiokafka", "none"])
    args = ap.parse_args()
    rows = Rows()
    n = run(
        feed_records(args.events),
        args.batch,
        process=Processor.process_batch,
        changelog=rows,
        rules=args.rules,
    )[2]
    ways = {"committer": build_committer, "aiokafka": build_aiokafka}
    if args.way is not None:
        if args.way == "none":
            return
        ways = {args.way: ways[args.way]}
    records = sum(len(c) for c in rows.commits)
    print(
        f"{n:,} events, {len(rows.commits):,} partition commits, {records / n:.2f} records "
        f"and {rows.total / n:,.0f} bytes (keys + values) per event"
    )
    best = dict.fromkeys(ways, float("inf"))
    built = dict.fromkeys(ways, 0)
    for _ in range(args.repeat):
        for name, way in ways.items():
            t0 = time.process_time()
            built[name] = way(rows.commits)
            best[name] = min(best[name], time.process_time() - t0)
    for name in ways:
        print(
            f"{name}: {1e6 * best[name] / n:.2f} µs/event CPU, "
            f"{built[name] / n:,.0f} bytes/event built"
        )


if __name__ == "__main__":
    main()
