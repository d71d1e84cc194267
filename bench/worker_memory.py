"""RSS of a real worker with N scored enterprises that each transacted inside the horizon.

``python -m bench.worker_memory --bootstrap HOST:PORT [--enterprises N] [--days D]
[--prefix P] [--skip-produce] [--runs R]``:

1. produce (unless ``--skip-produce`` with the ``--prefix`` of an earlier run): N
   DigitalizationScore records (bench/enterprises.py: one assessment per enterprise,
   assessed 2025-01-15) and one CNY transaction per enterprise, their occurred_at spread
   evenly over the last D days (default 119: inside the default 120-day restatement
   horizon, so every enterprise keeps one restatement entry; about 30/D of them also keep
   recent flows, streams/query/recent.py). The transactions are produced in event-time
   order, so none is late.
2. ingest: one worker (default settings: rules on, 120-day horizon) on empty state reads
   everything; once ``dfip_enterprises_scored`` sums to N and ``dfip_transactions_total``
   to N, and a few seconds later (the commit), its RSS (VmRSS) and peak (VmHWM) are read.
3. restore, R times: the worker is stopped (SIGTERM) and a new process started for the
   same group; RSS once /ready (changelog replay plus the rebuild of the score table).

The namespace is kept (printed) so that another revision of the worker can be measured on
the same records: run again with ``--skip-produce --prefix P`` from that revision's tree.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bench.broker import namespace
from bench.enterprises import score_records
from bench.feed import Produced, capture, produce, produce_stream
from bench.pipeline import start_workers, stop_workers
from bench.scrape import Scraper, parse_samples, rss_by_process_mb, rss_mb
from core.kafka_config import KafkaSettings
from schemas import (
    Direction,
    InstitutionType,
    TransactionEvent,
    encode,
    make_event_id,
    make_uscc,
    partition_for,
)
from tests.support.workers import WorkerProcess

TRANSACTIONS = "dfip.transactions"


def transaction_records(n: int, days: int, end: datetime) -> Iterator[Produced]:
    """One CNY transaction for each of the `n` enterprises of `score_records(n)`, their
    occurred_at evenly spread over the `days` days before `end`, in time order."""
    start = end - timedelta(days=days)
    step = timedelta(days=days) / n
    template = TransactionEvent(
        event_id=make_event_id("bench", "template"),
        source="bench",
        institution_type=InstitutionType.bank,
        occurred_at=start,
        enterprise_uscc=make_uscc("330106", "00000000"),
        direction=Direction.credit,
        amount=Decimal("1234.56"),
        currency="CNY",
        booking_date=start.date(),
        value_date=start.date(),
    )
    for i in range(n):
        uscc = make_uscc(f"33{1 + i % 11:02d}02", f"{i:08d}")  # as score_records
        at = start + step * i
        event = template.model_copy(
            update={
                "event_id": make_event_id("bench", "tx", uscc),
                "enterprise_uscc": uscc,
                "occurred_at": at,
                "booking_date": at.date(),
                "value_date": at.date(),
                "direction": Direction.credit if i % 2 else Direction.debit,
            }
        )
        yield Produced(TRANSACTIONS, partition_for(uscc), uscc.encode(), encode(event))


def _sums(scraper: Scraper) -> tuple[int, int]:
    """(Σ dfip_enterprises_scored, Σ dfip_events_received_total of the event topics)."""
    s = scraper.metrics()
    if s is None:
        return 0, 0
    found = parse_samples(s.text, ("dfip_enterprises_scored", "dfip_events_received_total"))
    received = found.get("dfip_events_received_total", [])
    return (
        int(sum(v for _, v in found.get("dfip_enterprises_scored", []))),
        int(sum(v for labels, v in received if ("topic", "dfip.scores") not in labels)),
    )


def _by_process(pid: int) -> list[int]:
    return [round(mb) for mb in rss_by_process_mb(pid)]


def _wait_ready(scraper: Scraper, worker: WorkerProcess, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not worker.alive:
            raise RuntimeError(f"worker exited:\n{worker.tail()}")
        if scraper.ready():
            return time.monotonic() - t0
        time.sleep(0.5)
    raise TimeoutError("worker not ready")


def run(
    settings: KafkaSettings,
    scored_want: int,
    received_want: int,
    runs: int,
    log_dir: Path,
    timeout: float,
    settle: float,
) -> None:
    app_id = f"bench-mem-{uuid.uuid4().hex[:6]}"
    (worker,) = start_workers(settings, 1, log_dir, app_id=app_id)
    scraper = Scraper(worker.port)
    try:
        _wait_ready(scraper, worker, 600)
        assert worker.proc is not None
        print(f"ingest: ready, RSS {rss_mb(worker.proc.pid)}", flush=True)
        t0 = time.monotonic()
        while True:
            if not worker.alive:
                raise RuntimeError(f"worker exited:\n{worker.tail()}")
            scored, counted = _sums(scraper)
            if scored >= scored_want and counted >= received_want:
                break
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"ingest: {scored:,} scored, {counted:,} counted")
            time.sleep(5)
        print(f"ingest: {scored:,} scored, {counted:,} received in {time.monotonic() - t0:.0f}s")
        time.sleep(settle)  # the last batch's commit
        print(
            f"ingest: RSS, peak (MB): {rss_mb(worker.proc.pid)}; RSS by process (supervisor "
            f"first when several): {_by_process(worker.proc.pid)}",
            flush=True,
        )
    finally:
        stop_workers([worker])
    for _ in range(runs):
        (worker,) = start_workers(settings, 1, log_dir, app_id=app_id)
        scraper = Scraper(worker.port)
        try:
            took = _wait_ready(scraper, worker, timeout)
            assert worker.proc is not None
            mem = rss_mb(worker.proc.pid)
            scored, counted = _sums(scraper)
            print(
                f"restore: ready after {took:.0f}s, {scored:,} scored, {counted:,} received, "
                f"RSS, peak (MB): {mem}",
                flush=True,
            )
            time.sleep(settle)
            print(
                f"restore: {settle:.0f}s later RSS, peak (MB): {rss_mb(worker.proc.pid)}; "
                f"RSS by process: {_by_process(worker.proc.pid)}"
            )
        finally:
            stop_workers([worker])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--enterprises", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=119)
    ap.add_argument(
        "--feed",
        type=int,
        default=0,
        help="instead of a transaction per enterprise: this many simulator records (seed 7)",
    )
    ap.add_argument("--prefix", help="topic prefix of an earlier run (with --skip-produce)")
    ap.add_argument("--skip-produce", action="store_true")
    ap.add_argument("--runs", type=int, default=1, help="restores")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--settle", type=float, default=10)
    ap.add_argument("--log-dir", type=Path, default=Path("/tmp/dfip-bench-worker-memory"))
    args = ap.parse_args()
    if args.prefix:
        settings = KafkaSettings(bootstrap_servers=args.bootstrap, topic_prefix=args.prefix)
    else:
        settings = namespace(args.bootstrap, "mem")
    print(f"namespace: {settings.topic_prefix}", flush=True)
    n = args.enterprises
    scored_want, received_want = n, n
    if args.feed:
        feed = capture(args.feed, seed=7)
        received_want = feed.expected_received()
        rows = feed.oracle["figures"].get("dfip_enterprises_scored", [])
        scored_want = n + sum(int(r["value"]) for r in rows)
    if not args.skip_produce:
        stats = asyncio.run(produce_stream(settings, score_records(n)))
        print(f"produced {stats.records:,} scores in {stats.seconds:.0f}s", flush=True)
        if args.feed:
            stats = asyncio.run(produce(settings, feed.records))
            print(f"produced {stats.records:,} simulator records in {stats.seconds:.0f}s")
        else:
            end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
            stats = asyncio.run(produce_stream(settings, transaction_records(n, args.days, end)))
            print(f"produced {stats.records:,} transactions in {stats.seconds:.0f}s", flush=True)
    run(settings, scored_want, received_want, args.runs, args.log_dir, args.timeout, args.settle)


if __name__ == "__main__":
    main()
