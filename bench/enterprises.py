"""Memory with many scored enterprises in the table, and the restore time of that table.

`--enterprises` DigitalizationScore records (one assessment per enterprise, valid USCCs from
`schemas.uscc.make_uscc`, built from the schema models and encoded with the codec) are
produced to `dfip.scores` of a fresh namespace. Then:

1. ingest: a worker starts on the empty state, reads every score (counted) and commits;
   its RSS (current and peak) is read once `dfip_enterprises_scored` sums to N;
2. restore, `--runs` times: the worker is stopped (SIGTERM) and a new process started for
   the same group; the time from process start to /ready 200 (includes interpreter and Faust
   start-up and the group join) and `dfip_worker_last_restore_seconds` (the partition
   restores alone: changelog replay and the silent rebuild of the score table from
   `dfip.scores`) are read, with the RSS once ready.

The scores are produced with aiokafka's batch builder rather than kafka-python: kafka-python
sent about 1,000–2,000 records/s here (pure-Python CRC32C before crc32c was added, and
per-record Python work), i.e. ten minutes or more for a million records (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from bench.feed import Produced, produce_stream
from bench.pipeline import start_workers, stop_workers
from bench.scrape import Scraper, parse_samples, rss_mb
from core.kafka_config import KafkaSettings
from schemas import (
    DigitalizationScore,
    DimensionScores,
    Sector,
    encode,
    make_event_id,
    make_uscc,
    message_key,
    partition_for,
)
from tests.support.workers import WorkerProcess

__all__ = ["EnterprisesResult", "RestoreRun", "run_enterprises", "score_records"]

SCORES = "dfip.scores"
_SECTORS = tuple(Sector)
_ASSESSED = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)


def score_records(n: int) -> Iterator[Produced]:
    """`n` valid assessments of `n` distinct enterprises across the Zhejiang prefectures."""
    template = DigitalizationScore(
        event_id=make_event_id("bench", "template"),
        source="bench",
        institution_type="bank",
        occurred_at=_ASSESSED,
        enterprise_uscc=make_uscc("330106", "00000000"),
        framework="miit_sme_2022",
        overall_score=Decimal("50.0"),
        dimensions=DimensionScores(
            foundation=Decimal("50"),
            operations=Decimal("50"),
            management=Decimal("50"),
            outcomes=Decimal("50"),
        ),
        level="L2",
        assessed_at=_ASSESSED,
        valid_until=date(2027, 1, 15),
        industry_section=Sector.C,
    )
    for i in range(n):
        uscc = make_uscc(f"33{1 + i % 11:02d}02", f"{i:08d}")
        # model_copy skips validation; every value here is valid by construction
        event = template.model_copy(
            update={
                "event_id": make_event_id("bench", uscc),
                "enterprise_uscc": uscc,
                "overall_score": Decimal(i % 1000) / 10,
                "industry_section": _SECTORS[i % len(_SECTORS)],
            }
        )
        key = message_key(event)
        assert key is not None
        yield Produced(SCORES, partition_for(uscc), key.encode(), encode(event))


@dataclass
class RestoreRun:
    start_to_ready_s: float
    restore_s: float | None  # dfip_worker_last_restore_seconds
    rss_mb: float | None
    peak_rss_mb: float | None
    scored: int


@dataclass
class EnterprisesResult:
    enterprises: int
    produce_s: float  # making the records (models + codec) and producing them
    ingest_s: float | None = None  # first /ready to all scores counted
    ingest_rss_mb: float | None = None
    ingest_peak_rss_mb: float | None = None
    restores: list[RestoreRun] = field(default_factory=list)


def _scored(scraper: Scraper) -> tuple[int, float | None]:
    """(sum of dfip_enterprises_scored, dfip_worker_last_restore_seconds)."""
    s = scraper.metrics()
    if s is None:
        return 0, None
    found = parse_samples(s.text, ("dfip_enterprises_scored", "dfip_worker_last_restore_seconds"))
    scored = int(sum(v for _, v in found.get("dfip_enterprises_scored", [])))
    restore = found.get("dfip_worker_last_restore_seconds")
    return scored, (restore[0][1] if restore else None)


def _wait(predicate_timeout: float, check: object, what: str, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + predicate_timeout
    while time.monotonic() < deadline:
        if not worker.alive:
            raise RuntimeError(f"worker exited while waiting for {what}:\n{worker.tail()}")
        if callable(check) and check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {predicate_timeout:.0f}s waiting for {what}")


def run_enterprises(
    settings: KafkaSettings,
    n: int,
    *,
    runs: int,
    log_dir: Path,
    timeout: float = 900,
    poll: float = 5.0,
) -> EnterprisesResult:
    """Produce `n` scores into `settings`' namespace, ingest them once, restore `runs` times."""
    stats = asyncio.run(produce_stream(settings, score_records(n)))
    result = EnterprisesResult(n, stats.seconds)
    app_id = f"bench-ent-{uuid.uuid4().hex[:6]}"

    # 1. ingest on empty state
    (worker,) = start_workers(settings, 1, log_dir, app_id=app_id)
    scraper = Scraper(worker.port)
    try:
        _wait(300, scraper.ready, "ready", worker)
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not worker.alive:
                raise RuntimeError(f"worker exited during ingest:\n{worker.tail()}")
            if _scored(scraper)[0] >= n:
                result.ingest_s = time.perf_counter() - t0
                break
            time.sleep(poll)
        assert worker.proc is not None
        mem = rss_mb(worker.proc.pid)
        if mem is not None:
            result.ingest_rss_mb, result.ingest_peak_rss_mb = mem
        if result.ingest_s is None:
            return result  # did not finish in time; restores would measure a partial table
    finally:
        stop_workers([worker])

    # 2. restarts: restore from the changelog + rebuild the score table
    for _ in range(runs):
        (worker,) = start_workers(settings, 1, log_dir, app_id=app_id)
        t_start = time.perf_counter()
        scraper = Scraper(worker.port)
        try:
            _wait(timeout, scraper.ready, "ready after restore", worker)
            ready_s = time.perf_counter() - t_start
            assert worker.proc is not None
            mem = rss_mb(worker.proc.pid)
            scored, restore = _scored(scraper)
            result.restores.append(
                RestoreRun(
                    ready_s,
                    restore,
                    mem[0] if mem else None,
                    mem[1] if mem else None,
                    scored,
                )
            )
        finally:
            stop_workers([worker])
    return result
