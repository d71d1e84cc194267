"""The full pipeline: `dfip worker` processes consuming a pre-produced namespace from the start.

Sustained events/s = events on the event topics / (last commit − first commit). The commit
times are the timestamps of the records the workers wrote to `dfip.state` (each batch's
changelog goes out inside the batch's Kafka transaction, so its CreateTime is the commit
moment to within the transaction's round trips), read back after the run: exact to the
millisecond and free for the worker. Progress and completion come from polling /metrics
every few seconds: a scrape of a busy worker costs it a noticeable share of its CPU (the
exposition is large), so polling fast would lower the figure it measures. When the run
hits its time limit, the rate is taken from the scrapes instead (marked incomplete).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.feed import EVENT_TOPICS, CapturedFeed
from bench.scrape import Scrape, Scraper, parse_samples, process_tree, rss_mb
from core.kafka_config import KafkaSettings
from schemas.catalog import STATE_TOPIC
from tests.support.workers import (
    Figures,
    WorkerProcess,
    oracle_figures,
    parse_figures,
    read_topic,
    total,
    wait_ready,
)

__all__ = [
    "FLOW",
    "PipelineRun",
    "batch_stats",
    "count_events",
    "figure_diff",
    "run_pipeline",
    "start_workers",
    "stop_workers",
]

FLOW = (
    "dfip_events_received_total",
    "dfip_events_processed_total",
    "dfip_events_duplicate_total",
    "dfip_events_deadlettered_total",
    "dfip_fx_pending_events",  # waiting for an FX rate in force (docs/metrics.md): settled too
)


@dataclass
class PipelineRun:
    workers: int
    events: int  # events committed in the measured window
    seconds: float
    complete: bool
    peak_rss_mb: list[float] = field(default_factory=list)
    lost: int | None = None  # oracle's received events minus the workers' (must be 0)
    differing_series: int | None = None  # figures that differ from the oracle
    scrape_rate: float | None = None  # the same rate from /metrics polling, for comparison
    scrape_ms: float | None = None  # mean duration of one /metrics request
    batch_size: float | None = None  # mean records per committed batch
    batch_ms: float | None = None  # mean time to process and commit one batch
    # worker CPU (user + system, all workers) per event between the first progress scrape
    # and completion: start-up and the restore are left out (issue 18)
    cpu_us: float | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def count_events(texts: Sequence[str], topics: Sequence[str] = EVENT_TOPICS) -> dict[str, int]:
    """Flow counters on `topics` over several workers (max per partition, then summed)."""
    per: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for text in texts:
        for name, samples in parse_samples(text, FLOW).items():
            for labels, value in samples:
                if dict(labels).get("topic") not in topics:
                    continue
                key = (name, labels)
                per[key] = max(per.get(key, value), value)
    out = dict.fromkeys(FLOW, 0)
    for (name, _), value in per.items():
        out[name] += int(value)
    return out


def batch_stats(texts: Sequence[str]) -> tuple[float | None, float | None]:
    """(mean records per batch, mean ms per batch) over workers, from their own counters."""
    names = (
        "dfip_worker_batches_total",
        "dfip_worker_records_total",
        "dfip_worker_batch_seconds_sum",
    )
    sums = dict.fromkeys(names, 0.0)
    for text in texts:
        for name, samples in parse_samples(text, names).items():
            sums[name] += sum(v for _, v in samples)
    batches = sums["dfip_worker_batches_total"]
    if batches <= 0:
        return None, None
    return (
        sums["dfip_worker_records_total"] / batches,
        1000 * sums["dfip_worker_batch_seconds_sum"] / batches,
    )


def figure_diff(got: Figures, expected: Figures) -> int:
    """Number of series whose value differs between two figure sets."""
    n = 0
    for name in set(got) | set(expected):
        g, e = got.get(name, {}), expected.get(name, {})
        n += sum(1 for k in set(g) | set(e) if g.get(k) != e.get(k))
    return n


def start_workers(
    settings: KafkaSettings, count: int, log_dir: Path, *, app_id: str, **env: str
) -> list[WorkerProcess]:
    log_dir.mkdir(parents=True, exist_ok=True)
    # the worker as deployed: DFIP_WORKER_PROCESSES as set for the bench, else its default
    processes = os.environ.get("DFIP_WORKER_PROCESSES", "auto")
    return [
        WorkerProcess(
            settings,
            f"{app_id}-w{i}",
            log_dir,
            processes=processes,
            DFIP_WORKER_APP_ID=app_id,
            **env,
        ).start()
        for i in range(count)
    ]


def stop_workers(workers: Sequence[WorkerProcess]) -> None:
    for w in workers:
        w.stop(timeout=60)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds so far of a process and the processes it started (a worker
    of several processes: its supervisor and every process; from /proc; None when gone)."""
    total = 0.0
    for one in process_tree(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            if one == pid:
                return None
            continue
        # fields after the command: state is [0], utime [11], stime [12] (clock ticks)
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _cpu_total(procs: Sequence[WorkerProcess]) -> float | None:
    total = 0.0
    for w in procs:
        cpu = cpu_seconds(w.proc.pid) if w.proc is not None else None
        if cpu is None:
            return None
        total += cpu
    return total


def _commit_span(settings: KafkaSettings) -> tuple[float, float] | None:
    """(first, last) CreateTime in seconds of the committed `dfip.state` records."""
    stamps = [r.timestamp for r in read_topic(settings, STATE_TOPIC.name) if r.timestamp]
    if len(stamps) < 2:
        return None
    return min(stamps) / 1000, max(stamps) / 1000


def run_pipeline(
    settings: KafkaSettings,
    feed: CapturedFeed,
    *,
    workers: int,
    log_dir: Path,
    poll: float = 2.0,
    timeout: float = 600.0,
    on_first_commit: Callable[[Sequence[WorkerProcess]], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> PipelineRun:
    """Start `workers` worker processes on the pre-produced namespace and time them (`env`:
    extra DFIP_WORKER_* settings, e.g. the rules off)."""
    app_id = f"bench-{uuid.uuid4().hex[:6]}"
    procs = start_workers(settings, workers, log_dir, app_id=app_id, **(env or {}))
    scrapers = [Scraper(w.port) for w in procs]
    want = feed.expected_received()
    progress: list[tuple[float, int]] = []
    texts: list[str] = []
    complete = False
    peaks: list[float] = []
    cpu_from: tuple[float, int] | None = None  # (worker CPU s, events) at the first progress
    cpu_us: float | None = None
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(poll)
            for w in procs:
                if not w.alive:
                    raise RuntimeError(f"worker {w.worker_id} exited:\n{w.tail()}")
            scrapes = [s.metrics() for s in scrapers]
            texts = [s.text for s in scrapes if isinstance(s, Scrape)]
            if len(texts) < len(procs):
                continue
            counts = count_events(texts)
            received = counts["dfip_events_received_total"]
            if received > 0:
                at = max(s.at for s in scrapes if s is not None)
                if not progress:
                    cpu = _cpu_total(procs)
                    cpu_from = None if cpu is None else (cpu, received)
                    if on_first_commit is not None:
                        on_first_commit(procs)
                progress.append((at, received))
            settled = received == sum(counts[n] for n in FLOW[1:])
            if received >= want and settled:
                complete = True
                cpu = _cpu_total(procs)
                # only over most of the run: when the first progress scrape came late (a run
                # of ~2 s, polled every 5 s) the few events left carried the last batches'
                # fixed costs (a 60,000-record run once read 84 µs/event, 30 at --poll 0.5)
                if cpu is not None and cpu_from is not None and 2 * cpu_from[1] <= received:
                    cpu_us = 1e6 * (cpu - cpu_from[0]) / (received - cpu_from[1])
                break
        for w in procs:
            assert w.proc is not None
            mem = rss_mb(w.proc.pid)
            if mem is not None:
                peaks.append(mem[1])
        result = _result(settings, feed, procs, scrapers, progress, texts, complete, want)
        result.peak_rss_mb = peaks
        result.cpu_us = cpu_us
        return result
    finally:
        stop_workers(procs)


def _result(
    settings: KafkaSettings,
    feed: CapturedFeed,
    procs: Sequence[WorkerProcess],
    scrapers: Sequence[Scraper],
    progress: list[tuple[float, int]],
    texts: list[str],
    complete: bool,
    want: int,
) -> PipelineRun:
    scrape_rate = None
    if len(progress) >= 2 and progress[-1][0] > progress[0][0]:
        scrape_rate = (progress[-1][1] - progress[0][1]) / (progress[-1][0] - progress[0][0])
    means = [s.mean_seconds for s in scrapers if s.mean_seconds is not None]
    scrape_ms = 1000 * sum(means) / len(means) if means else None
    batch_size, batch_ms = batch_stats(texts)
    lost = diff = None
    if complete:
        # exactness: every figure against the oracle, from a fresh full scrape
        expected = oracle_figures(feed.oracle)
        got: Figures = {}
        for _ in range(10):
            got = parse_figures([s.text for s in (x.metrics() for x in scrapers) if s])
            diff = figure_diff(got, expected)
            if diff == 0:
                break
            time.sleep(2)  # reference topics are caught up by the idle timer
        lost = total(expected, "dfip_events_received_total") - total(
            got, "dfip_events_received_total"
        )
        span = _commit_span(settings)
        if span is not None and span[1] > span[0]:
            return PipelineRun(
                len(procs),
                want,
                span[1] - span[0],
                True,
                [],
                lost,
                diff,
                scrape_rate,
                scrape_ms,
                batch_size,
                batch_ms,
            )
    if len(progress) >= 2:
        events = progress[-1][1] - progress[0][1]
        seconds = progress[-1][0] - progress[0][0]
    else:
        events, seconds = (progress[-1][1] if progress else 0), 0.0
    return PipelineRun(
        len(procs),
        events,
        seconds,
        complete,
        [],
        lost,
        diff,
        scrape_rate,
        scrape_ms,
        batch_size,
        batch_ms,
    )


def wait_all_ready(procs: Sequence[WorkerProcess], timeout: float = 180) -> None:
    for w in procs:
        wait_ready(w, timeout=timeout)
