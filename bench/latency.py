"""End-to-end latency, produce → figure visible in /metrics, at a fixed offered load.

A worker is started on a fresh namespace and left idle until /ready; then the captured feed
is produced at `rate` records/s for `seconds` (scores and FX included, barriers kept), and
the worker is given `drain` seconds after the last send to show everything. What it measures:

- scrape side (what a reader of /metrics sees): every `poll_interval` seconds (0.05) the bench
  GETs `/metrics?name[]=dfip_events_received_total`, the committed figure that counts the
  records of each input partition the worker has committed, in offset order: the k-th record
  sent to (topic, partition) is visible in the first response whose count is ≥ k. Latency =
  arrival of that response − the record's send time (its CreateTime). It is an upper bound
  by at most one poll interval plus the request's own time (a few ms: the worker renders
  that one family only), so it measures the worker, not the bench's polling period. (Until
  issue 18 it read the whole exposition once a second, which added 0.5 s on average and up
  to 1 s of sampling delay to every figure.) Meanwhile the whole exposition is scraped
  every `scrape_interval` seconds as Prometheus would, so the worker pays for rendering it
  as it does in service ("scrape ms"); those responses are not parsed (that would hold
  the bench's GIL, and with it the producer, for tens of ms).
- offered load: the producer fetches every topic's metadata before its clock starts, then
  sends the records due every 5 ms; a record's send time is when its chunk was handed over.
- worker side: the worker's `dfip_event_latency_seconds` histogram observes, for a sample
  of each committed batch, CreateTime → end of the batch's transaction, which is the moment
  the new figures are visible to the next scrape. p50/p99 are interpolated within its
  buckets (…, 0.25, 0.5, 1, 2.5, 5, 10, 30 s) as Prometheus' histogram_quantile does.

Per round, one line on stderr (:meth:`LatencyRun.timeline`): the p99 of the records sent in
each second, the producer's lateness per second and the CPU seconds the worker and the broker
(found by its listening port) used meanwhile, so that a slow start can be told apart from a
slow steady state, and the worker's work from the broker's (issue 18).

Records not visible when the drain time is over count as infinitely late (p99 = ∞ when more
than 1 % are missing: the pipeline did not keep up with the offered load).
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.broker import _prefixed, drop_namespace, namespace
from bench.feed import (
    EVENT_TOPICS,
    CapturedFeed,
    Produced,
    ProduceStats,
    SentCallback,
    _bulk_producer,
    _send_chunk,
    _split_at_barriers,
)
from bench.pipeline import cpu_seconds, start_workers, stop_workers
from bench.report import percentile
from bench.scrape import Scraper, histogram_quantile, parse_samples
from core.kafka_config import KafkaSettings

__all__ = [
    "LatencyRun",
    "batch_counts",
    "late_by_second",
    "latencies_by_second",
    "listener_pid",
    "prime_partitions",
    "received_by_partition",
    "run_latency",
    "visible_latencies",
]

Counts = dict[tuple[str, int], int]
# seconds between two reads of the one family that shows what the worker has committed
POLL_SECONDS = 0.05
_RECEIVED = ("dfip_events_received_total",)


@dataclass
class LatencyRun:
    offered_rate: float  # records/s actually offered
    events: int  # event-topic records sent
    invisible: int  # not visible when the drain time was over
    scrape_p50: float | None  # seconds
    scrape_p99: float | None
    worker_p50: float | None
    worker_p99: float | None
    scrape_interval: float
    scrape_ms: float | None
    # the longest the producer handed records over after they fell due (s): above ~0.1 s
    # the offered load came in a burst and the run's tail measures it
    producer_late: float | None = None
    # stage → (mean, p99) seconds from the worker's dfip_worker_stage_seconds (the budget)
    stages: dict[str, tuple[float, float | None]] = field(default_factory=dict)
    # p99 (s, scrape side) of the records sent in each second of the run, in order: a slow
    # start (a cold broker, start-up work) shows as high first seconds
    by_second: list[float | None] = field(default_factory=list)
    # CPU seconds the worker (and the broker, when its pid is known) used while records flowed
    worker_cpu: float | None = None
    broker_cpu: float | None = None
    # the producer's lateness (s, the most in each second of the schedule)
    late_by_second: list[float] = field(default_factory=list)
    # event batches the worker committed in the round and the records they held (its
    # dfip_worker_batches_total and dfip_worker_records_total at the end): live batches are
    # what arrived meanwhile, and a batch's fixed costs spread over that many records
    batches: int | None = None
    batch_records: int | None = None

    def timeline(self) -> str:
        """One line: p50/p99, the p99 of each second's records, the producer's lateness per
        second, and the CPU seconds of the worker and the broker meanwhile."""
        cpu = " ".join(
            f"{who} CPU {x:.1f} s"
            for who, x in (("worker", self.worker_cpu), ("broker", self.broker_cpu))
            if x is not None
        )
        if self.worker_cpu is not None and self.events:
            cpu += f" ({1e6 * self.worker_cpu / self.events:.1f} µs of worker CPU per event)"
        if self.batches and self.batch_records is not None:
            cpu += (
                f"; {self.batches:,} batches of {self.batch_records / self.batches:,.0f} "
                "records on average"
            )
        return (
            f"p50/p99 {_ms(self.scrape_p50)}/{_ms(self.scrape_p99)} ms scrape side, "
            f"{_ms(self.worker_p50)}/{_ms(self.worker_p99)} ms worker histogram; p99 by second "
            f"sent: {' '.join(_ms(x) for x in self.by_second)} ms; producer late by second: "
            f"{' '.join(_ms(x) for x in self.late_by_second)} ms; {cpu}"
        )


def _ms(x: float | None) -> str:
    return "-" if x is None else "inf" if math.isinf(x) else f"{1000 * x:,.0f}"


def received_by_partition(text: str) -> Counts:
    out: Counts = {}
    for labels, value in parse_samples(text, ("dfip_events_received_total",)).get(
        "dfip_events_received_total", []
    ):
        d = dict(labels)
        if d.get("topic") in EVENT_TOPICS:
            out[(d["topic"], int(d["partition"]))] = int(value)
    return out


def visible_latencies(
    sends: dict[tuple[str, int], list[float]], observations: Sequence[tuple[float, Counts]]
) -> list[float]:
    """Per sent record: first observation time whose count covers it − send time (inf if none)."""
    out: list[float] = []
    for tp, times in sends.items():
        seen = 0
        for at, counts in observations:
            c = min(counts.get(tp, 0), len(times))
            if c > seen:
                out.extend(at - t for t in times[seen:c])
                seen = c
        out.extend(math.inf for _ in times[seen:])
    return out


def latencies_by_second(
    sends: dict[tuple[str, int], list[float]], observations: Sequence[tuple[float, Counts]]
) -> list[float | None]:
    """p99 of the visible latencies of the records sent in each second after the first send."""
    # visible_latencies gives them per topic-partition in send order, as sends holds them
    sent = [t for times in sends.values() for t in times]
    pairs = list(zip(sent, visible_latencies(sends, observations), strict=True))
    if not pairs:
        return []
    first = min(t for t, _ in pairs)
    buckets: dict[int, list[float]] = defaultdict(list)
    for t, x in pairs:
        buckets[int(t - first)].append(x)
    return [
        percentile(sorted(buckets[i]), 0.99) if buckets.get(i) else None
        for i in range(max(buckets) + 1)
    ]


def _histogram(text: str) -> list[tuple[float, float]]:
    samples = parse_samples(text, ("dfip_event_latency_seconds_bucket",))
    return [
        (float(dict(labels)["le"]), value)
        for labels, value in samples.get("dfip_event_latency_seconds_bucket", [])
    ]


def stage_budget(text: str) -> dict[str, tuple[float, float | None]]:
    """stage → (mean seconds, p99 seconds) of the worker's dfip_worker_stage_seconds."""
    names = (
        "dfip_worker_stage_seconds_bucket",
        "dfip_worker_stage_seconds_sum",
        "dfip_worker_stage_seconds_count",
    )
    samples = parse_samples(text, names)
    sums = {dict(lb)["stage"]: v for lb, v in samples.get(names[1], [])}
    counts = {dict(lb)["stage"]: v for lb, v in samples.get(names[2], [])}
    buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for lb, v in samples.get(names[0], []):
        d = dict(lb)
        buckets[d["stage"]].append((float(d["le"]), v))
    return {
        stage: (sums.get(stage, 0.0) / n, histogram_quantile(buckets[stage], 0.99))
        for stage, n in counts.items()
        if n > 0
    }


def batch_counts(text: str) -> tuple[int | None, int | None]:
    """(event batches committed, records they held) from the worker's exposition."""
    names = ("dfip_worker_batches_total", "dfip_worker_records_total")
    samples = parse_samples(text, names)
    found = [samples.get(n) for n in names]
    if not found[0] or not found[1]:
        return None, None
    return int(found[0][0][1]), int(found[1][0][1])


async def paced_produce(
    settings: KafkaSettings,
    records: Sequence[Produced],
    *,
    rate: float,
    on_sent: SentCallback,
    tick: float = 0.005,
    late: list[tuple[float, float]] | None = None,
) -> ProduceStats:
    """bench.feed.produce at `rate`, with the producer's metadata of every topic fetched
    before the clock starts.

    Without it the first send of each topic waited for its partition leaders (1-2 s on a
    fresh namespace of a busy machine) while records fell due, and the schedule then caught
    up in one burst: the worker saw ~12,000 records at once two seconds in, and the run's
    p99 measured that burst, not a steady 5,000/s (issue 18). ``late`` receives, per chunk
    handed over, how many seconds after its first record fell due that was: a loaded
    machine can still hold the producer up (barriers wait for acknowledgements), and a
    run whose producer lagged measured a burst again.
    """
    producer = _bulk_producer(settings)
    await producer.start()
    pending: list[asyncio.Future[Any]] = []
    try:
        for topic in sorted({r.topic for r in records}):
            await producer.partitions_for(settings.topic(topic))
        began = time.perf_counter()
        sent = 0
        while sent < len(records):
            due = min(len(records), int(rate * (time.perf_counter() - began)) + 1)
            if due <= sent:
                await asyncio.sleep(tick)
                continue
            first = sent
            for part in _split_at_barriers(records[sent:due]):
                now = time.time()
                if late is not None:
                    late.append((first / rate, time.perf_counter() - began - first / rate))
                first += len(part)
                pending.extend(await _send_chunk(producer, settings, part))
                on_sent(part, now)
                if part[-1].barrier:  # what follows a barrier may rely on it
                    await asyncio.gather(*pending)
                    pending.clear()
            sent = due
            if len(pending) > 1000:
                for f in [f for f in pending if f.done()]:
                    f.result()  # raises a delivery error
                pending = [f for f in pending if not f.done()]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return ProduceStats(len(records), time.perf_counter() - began)


async def prime_partitions(settings: KafkaSettings) -> int:
    """Write one record to every partition of the namespace's topics in a transaction that
    is then aborted; returns how many partitions.

    A broker's first write to a partition that was just created is slow: on a fresh
    namespace the bench's producer alone, no worker running, fell 0.6-1.6 s behind its
    schedule in the first second (then ~10-50 ms), and a second pass over the same topics
    ≤ 25 ms (bench/RESULTS.md, issue 18). Every latency round makes a new namespace, so
    every round began with that stall, in the producer and in the worker's first
    transactions (200-500 ms each instead of ~50), which a worker in service never meets.
    Aborted records are invisible to every reader of the worker (it reads committed only)
    and are not counted in its figures.
    """
    producer = AIOKafkaProducer(
        transactional_id=f"{settings.topic_prefix}bench-prime",
        acks="all",
        enable_idempotence=True,
        client_id="dfip-bench-prime",
        **settings.aiokafka_config(),
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        sent = []
        for topic in _prefixed(settings):
            for partition in sorted(await producer.partitions_for(topic)):
                # a key: compacted topics refuse records without one
                sent.append(
                    await producer.send(topic, b"", key=b"bench-prime", partition=partition)
                )
        await asyncio.gather(*sent)
        await producer.abort_transaction()
        return len(sent)
    finally:
        await producer.stop()


def run_latency(
    bootstrap: str,
    feed: CapturedFeed,
    *,
    rate: float,
    seconds: float,
    log_dir: Path,
    scrape_interval: float = 1.0,
    drain: float = 30.0,
    poll_interval: float = POLL_SECONDS,
    label: str = "latency",
    prime: bool = True,
) -> LatencyRun:
    broker_pid = listener_pid(bootstrap)
    settings = namespace(bootstrap, "lat")
    records = feed.records[: max(1, int(rate * seconds))]
    # write to every partition of the round's fresh namespace before its worker starts
    # (prime_partitions); `python -m bench --no-prime` turns it off for a comparison
    if prime:
        asyncio.run(prime_partitions(settings))
    (worker,) = start_workers(settings, 1, log_dir, app_id=f"bench-lat-{uuid.uuid4().hex[:6]}")
    scraper = Scraper(worker.port)
    sends: dict[tuple[str, int], list[float]] = defaultdict(list)
    observations: list[tuple[float, Counts]] = []
    stop = threading.Event()

    def on_sent(chunk: Sequence[Produced], at: float) -> None:
        for r in chunk:
            if r.topic in EVENT_TOPICS:
                sends[(r.topic, r.partition)].append(at)

    def poll(interval: float, names: tuple[str, ...]) -> None:
        while not stop.is_set():
            began = time.perf_counter()
            s = scraper.metrics(names=names)
            # only the short answers are read: parsing a whole exposition here held this
            # process's GIL for tens of ms, and with it the producer's sends
            if s is not None and names:
                observations.append((s.at, received_by_partition(s.text)))
            stop.wait(max(0.0, interval - (time.perf_counter() - began)))

    try:
        deadline = time.monotonic() + 300
        while not scraper.ready():
            if not worker.alive or time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready:\n{worker.tail()}")
            time.sleep(0.5)
        threads = [
            threading.Thread(target=poll, args=(poll_interval, _RECEIVED), daemon=True),
            threading.Thread(target=poll, args=(scrape_interval, ()), daemon=True),
        ]
        for thread in threads:
            thread.start()
        late: list[tuple[float, float]] = []
        cpu0 = _cpu(worker.proc.pid if worker.proc else None), _cpu(broker_pid)
        stats = asyncio.run(paced_produce(settings, records, rate=rate, on_sent=on_sent, late=late))
        worst = max((x for _, x in late), default=0.0)
        if worst > 0.1:
            print(
                f"[bench] latency: the producer fell {worst:.2f} s behind its schedule "
                "(the machine is busy): the offered load came in bursts",
                file=sys.stderr,
                flush=True,
            )
        want = {tp: len(times) for tp, times in sends.items()}
        end = time.monotonic() + drain
        while time.monotonic() < end:
            last = observations[-1][1] if observations else {}
            if all(last.get(tp, 0) >= n for tp, n in want.items()):
                break
            time.sleep(0.2)
        cpu1 = _cpu(worker.proc.pid if worker.proc else None), _cpu(broker_pid)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        final = scraper.metrics()
        counted = received_by_partition(final.text) if final is not None else {}
        extra = sum(max(0, counted.get(tp, 0) - n) for tp, n in want.items())
        if extra:  # e.g. a primed (aborted) record counted: the latencies would be off
            print(f"[bench] {label}: {extra} records counted more than were sent", file=sys.stderr)
        buckets = _histogram(final.text) if final is not None else []
        stages = stage_budget(final.text) if final is not None else {}
        batches, batch_records = batch_counts(final.text) if final is not None else (None, None)
    finally:
        stop.set()
        stop_workers([worker])
        drop_namespace(settings)
    # two threads appended: visible_latencies needs them in time order
    observations.sort(key=lambda o: o[0])
    lat = sorted(visible_latencies(sends, observations))
    run = LatencyRun(
        offered_rate=stats.rate,
        events=len(lat),
        invisible=sum(1 for x in lat if math.isinf(x)),
        scrape_p50=percentile(lat, 0.50),
        scrape_p99=percentile(lat, 0.99),
        worker_p50=histogram_quantile(buckets, 0.50),
        worker_p99=histogram_quantile(buckets, 0.99),
        scrape_interval=scrape_interval,
        scrape_ms=None if scraper.mean_seconds is None else 1000 * scraper.mean_seconds,
        stages=stages,
        producer_late=max(x for _, x in late) if late else None,
        by_second=latencies_by_second(sends, observations),
        late_by_second=late_by_second(late),
        worker_cpu=_delta(cpu0[0], cpu1[0]),
        broker_cpu=_delta(cpu0[1], cpu1[1]),
        batches=batches,
        batch_records=batch_records,
    )
    print(f"[bench] {label}: {run.timeline()}", file=sys.stderr, flush=True)
    return run


def listener_pid(bootstrap: str) -> int | None:
    """The local process listening on the first bootstrap address's port (the broker), from
    /proc; None when it is not on this machine or not visible."""
    try:
        port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            # local address "HEXIP:HEXPORT", state 0A = LISTEN, inode in column 10
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{f[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def late_by_second(late: Sequence[tuple[float, float]]) -> list[float]:
    """(seconds into the schedule, lateness) per chunk → the worst lateness in each second."""
    out: list[float] = []
    for due, x in late:
        i = int(due)
        out.extend(0.0 for _ in range(i + 1 - len(out)))
        out[i] = max(out[i], x)
    return out


def _cpu(pid: int | None) -> float | None:
    return None if pid is None else cpu_seconds(pid)


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a
