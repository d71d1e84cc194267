"""Soak: the simulator feeds one worker at a steady rate for a long time (issue 8).

`run_simulation` (the same code as `dfip simulate --rate R --duration D`, with the
project's kafka-python EventProducer) runs in a thread while the main thread samples the
worker every `--sample-every` seconds: RSS, committed events, consumer progress. When the
feed ends, the worker gets `--drain` seconds to catch up, then every figure in /metrics is
compared with the simulator's oracle. Lost events (oracle received − worker received) must
be 0 and no figure may differ; the command exits 1 otherwise.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from adapters.simulator.runner import SimulationConfig, SimulationResult, run_simulation
from bench.broker import drop_namespace, namespace
from bench.pipeline import FLOW, count_events, figure_diff, start_workers, stop_workers
from bench.report import machine_lines
from bench.scrape import Scraper, rss_mb
from tests.support.workers import oracle_figures, parse_figures, total

__all__ = ["SoakResult", "SoakSample", "render_soak", "run_soak"]

ALL_TOPICS = ("dfip.transactions", "dfip.loans", "dfip.scores", "dfip.fx")


@dataclass(frozen=True)
class SoakSample:
    elapsed: float
    rss_mb: float
    received: int  # committed, all input topics


@dataclass
class SoakResult:
    duration: float
    rate: float
    sent: int = 0
    produce_seconds: float = 0.0
    samples: list[SoakSample] = field(default_factory=list)
    peak_rss_mb: float | None = None
    received: int = 0
    expected: int = 0
    differing_series: int | None = None
    drained: bool = False
    error: str | None = None

    @property
    def lost(self) -> int:
        return self.expected - self.received

    @property
    def ok(self) -> bool:
        return self.error is None and self.lost == 0 and self.differing_series == 0


def run_soak(
    bootstrap: str,
    *,
    duration: float,
    rate: float,
    log_dir: Path,
    sample_every: float = 10.0,
    drain: float = 300.0,
    seed: int = 7,
    keep_topics: bool = False,
) -> SoakResult:
    settings = namespace(bootstrap, "soak")
    result = SoakResult(duration, rate)
    (worker,) = start_workers(settings, 1, log_dir, app_id=f"bench-soak-{uuid.uuid4().hex[:6]}")
    scraper = Scraper(worker.port)
    sim: list[SimulationResult] = []
    errors: list[BaseException] = []

    def feed() -> None:
        try:
            config = SimulationConfig(seed=seed, duration=duration, rate=rate)
            sim.append(run_simulation(settings, config))
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        deadline = time.monotonic() + 300
        while not scraper.ready():
            if not worker.alive or time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready:\n{worker.tail()}")
            time.sleep(0.5)
        began = time.monotonic()
        thread = threading.Thread(target=feed, name="soak-feed", daemon=True)
        thread.start()
        next_sample = began
        drain_until: float | None = None
        while True:
            now = time.monotonic()
            if not worker.alive:
                raise RuntimeError(f"worker exited:\n{worker.tail()}")
            if now >= next_sample:
                next_sample += sample_every
                _sample(result, scraper, worker.proc.pid if worker.proc else 0, now - began)
            if drain_until is None and not thread.is_alive():
                if errors:
                    raise RuntimeError(f"simulator failed: {errors[0]!r}")
                drain_until = now + drain
                result.sent = sim[0].records
                result.produce_seconds = sim[0].elapsed_seconds
                result.expected = total(oracle_figures(sim[0].oracle), FLOW[0])
            if drain_until is not None:
                s = scraper.metrics()
                if s is not None:
                    counts = count_events([s.text], ALL_TOPICS)
                    settled = counts[FLOW[0]] == sum(counts[n] for n in FLOW[1:])
                    if counts[FLOW[0]] >= result.expected and settled:
                        result.drained = True
                        break
                if now >= drain_until:
                    break
                time.sleep(1.0)
            else:
                time.sleep(min(1.0, max(0.0, next_sample - time.monotonic())))
        _sample(result, scraper, worker.proc.pid if worker.proc else 0, time.monotonic() - began)
        expected = oracle_figures(sim[0].oracle)
        for _ in range(10):
            final = scraper.metrics()
            got = parse_figures([final.text]) if final is not None else {}
            result.differing_series = figure_diff(got, expected)
            result.received = total(got, FLOW[0])
            if result.differing_series == 0:
                break
            time.sleep(2)
        if worker.proc is not None and (mem := rss_mb(worker.proc.pid)) is not None:
            result.peak_rss_mb = mem[1]
    except Exception as exc:
        result.error = str(exc)
    finally:
        stop_workers([worker])
        if not keep_topics:
            drop_namespace(settings)
    return result


def _sample(result: SoakResult, scraper: Scraper, pid: int, elapsed: float) -> None:
    mem = rss_mb(pid)
    s = scraper.metrics()
    received = count_events([s.text], ALL_TOPICS)[FLOW[0]] if s is not None else 0
    if mem is not None:
        result.samples.append(SoakSample(elapsed, mem[0], received))


def render_soak(
    result: SoakResult, command: str, info: dict[str, str] | None = None, max_rows: int = 25
) -> str:
    """Markdown summary: throughput, RSS over time, lost events."""
    lines = [f"command: `{command}`", ""]
    if info:
        lines += [machine_lines(info), ""]
    if result.error:
        lines += [f"**error**: {result.error}", ""]
    offered = result.sent / result.produce_seconds if result.produce_seconds else 0.0
    first = result.samples[0] if result.samples else None
    last = result.samples[-1] if result.samples else None
    through = (
        (last.received - first.received) / (last.elapsed - first.elapsed)
        if first and last and last.elapsed > first.elapsed
        else 0.0
    )
    lines += [
        "| figure | value |",
        "|---|---:|",
        f"| duration (feed) | {result.produce_seconds:,.0f} s (asked {result.duration:,.0f} s) |",
        f"| records sent by the simulator | {result.sent:,} |",
        f"| offered rate (asked {result.rate:,.0f}/s) | {offered:,.0f} records/s |",
        f"| worker throughput over the run | {through:,.0f} records/s |",
        f"| RSS first / last / peak | {first.rss_mb if first else 0:,.0f} / "
        f"{last.rss_mb if last else 0:,.0f} / {result.peak_rss_mb or 0:,.0f} MB |",
        f"| received (oracle / worker) | {result.expected:,} / {result.received:,} |",
        f"| **lost events** | **{result.lost:,}** |",
        f"| figures differing from the oracle | {result.differing_series} |",
        f"| caught up within the drain time | {'yes' if result.drained else 'no'} |",
        "",
        "| t (s) | RSS (MB) | committed records |",
        "|---:|---:|---:|",
    ]
    samples = result.samples
    step = max(1, len(samples) // max_rows)
    shown = samples[::step]
    if samples and shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    lines += [f"| {s.elapsed:,.0f} | {s.rss_mb:,.0f} | {s.received:,} |" for s in shown]
    return "\n".join(lines)
