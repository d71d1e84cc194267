"""The pipeline suite: every measurement of issue 7 in one run, printed as a markdown report.

Order (each round uses fresh namespaces, so runs never see each other's topics or state):

    capture the simulator feed once (N records + oracle, no Kafka)
    for each of --runs rounds:
        namespace A: produce the feed; raw baseline; one worker      (same topic, same round)
        namespace B: produce the feed; two workers
    for each of --runs rounds: latency at the offered load (own namespace)
    one namespace: N scored enterprises; ingest once; restore --runs times

Raw and pipeline runs alternate, so slow and fast moments of the shared machine fall on
both; the ratio is the median pipeline rate over the median raw rate of the same run.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench.broker import drop_namespace, namespace
from bench.cli import SuiteOptions
from bench.enterprises import EnterprisesResult, run_enterprises
from bench.feed import EVENT_TOPICS, CapturedFeed, capture, produce
from bench.pipeline import PipelineRun, run_pipeline
from bench.profile import Profile, finish_profile, start_profile
from bench.report import Measure, machine, machine_lines, ratio, ratio_line, table
from tests.support.workers import WorkerProcess

__all__ = ["SuiteReport", "run_suite"]


def _say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


class _Measures:
    """The figures of the report, in report order."""

    def __init__(self, o: SuiteOptions) -> None:
        n = f"{o.events:,} simulator records"
        self.generate = Measure("feed generation (simulator + oracle, no Kafka)", "records/s")
        self.produce = Measure("feed produce (aiokafka batches, acks=all)", "records/s")
        self.raw = Measure(f"raw baseline: aiokafka + orjson → dict ({n})", "events/s")
        self.one = Measure(f"pipeline, 1 worker process ({n})", "events/s")
        self.ratio_runs = Measure("pipeline / raw, per round", "×")
        self.cpu = Measure("worker CPU per event after its first commit, 1 worker", "µs")
        self.rss = Measure("peak RSS of the worker (VmHWM), 1 worker", "MB")
        self.scrape = Measure("one /metrics request while busy (1 worker)", "ms")
        self.batch_size = Measure("mean batch size, 1 worker", "records")
        self.batch_ms = Measure("mean batch time (process + commit), 1 worker", "ms")
        self.two = Measure("pipeline, 2 worker processes", "events/s")
        self.two_ratio = Measure("2 workers / 1 worker, per round", "×")
        self.lost = Measure("lost events (oracle − committed), all pipeline runs", "count")
        self.diff = Measure("figures differing from the oracle, all pipeline runs", "count")
        self.offered = Measure(f"latency: offered load (asked {o.rate:,.0f}/s)", "records/s")
        self.scrape_p50 = Measure("latency p50, scrape side (upper bound)", "ms")
        self.scrape_p99 = Measure("latency p99, scrape side (upper bound)", "ms")
        self.worker_p50 = Measure("latency p50, worker histogram (to commit)", "ms")
        self.worker_p99 = Measure("latency p99, worker histogram (to commit)", "ms")
        self.invisible = Measure(f"latency: events not visible {o.drain:.0f} s after", "count")
        self.stages: dict[str, Measure] = {}
        e = f"{o.enterprises:,}"
        self.ent_produce = Measure(f"{e} scores: make (models + codec) and produce", "records/s")
        self.ent_ingest = Measure(f"{e} scores: worker ingest on empty state", "scores/s")
        self.ent_rss = Measure(f"RSS with {e} scored enterprises (after ingest)", "MB")
        self.ent_peak = Measure("peak RSS during that ingest (VmHWM)", "MB")
        self.restore_ready = Measure(f"restore of {e}: process start → /ready", "s")
        self.restore = Measure(f"restore of {e}: dfip_worker_last_restore_seconds", "s")
        self.restore_rss = Measure(f"RSS after restore of {e}", "MB")
        self.restore_peak = Measure("peak RSS during that restore (VmHWM)", "MB")

    def stage(self, name: str, run: int) -> Measure:
        """A figure of the latency budget (one per stage, made when first seen)."""
        if name not in self.stages:
            self.stages[name] = Measure(name, "ms", [math.nan] * run)
        return self.stages[name]

    def all(self) -> list[Measure]:
        found = [m for m in vars(self).values() if isinstance(m, Measure) and m.values]
        return found + [m for m in self.stages.values() if m.values]


def _pipeline_round(
    o: SuiteOptions,
    feed: CapturedFeed,
    m: _Measures,
    log_dir: Path,
    workers: int,
    profile_out: Path | None,
) -> tuple[PipelineRun | None, float | None, Profile | None]:
    """One namespace: produce, raw baseline (with 1 worker), pipeline. (run, raw rate, profile)"""
    settings = namespace(o.bootstrap, f"pipe{workers}")
    profile: Profile | None = None
    try:
        stats = asyncio.run(produce(settings, feed.records))
        m.produce.add(stats.rate)
        raw_rate = None
        if workers == 1 and o.runs_phase("raw"):
            from bench.raw import raw_baseline

            raw = asyncio.run(raw_baseline(settings, EVENT_TOPICS))
            raw_rate = raw.rate
            m.raw.add(raw.rate)
            _say(
                f"raw baseline: {raw.records:,} records ({raw.passes} passes) in "
                f"{raw.seconds:.2f}s = {raw.rate:,.0f}/s"
            )
        wanted = "pipeline" if workers == 1 else "two-workers"
        if not o.runs_phase(wanted):
            return None, raw_rate, None
        spy: list[tuple[subprocess.Popen[bytes], float]] = []

        def on_first_commit(procs: Sequence[WorkerProcess]) -> None:
            if profile_out is not None and procs[0].proc is not None:
                p = start_profile(procs[0].proc.pid, o.profile, profile_out)
                if p is None:
                    _say("py-spy is not installed: no profile (pip install py-spy)")
                else:
                    spy.append((p, time.monotonic()))

        run = run_pipeline(
            settings,
            feed,
            workers=workers,
            log_dir=log_dir,
            poll=o.poll,
            timeout=o.max_seconds,
            on_first_commit=on_first_commit if profile_out is not None else None,
        )
        if spy and profile_out is not None:
            proc, started = spy[0]
            ran = min(o.profile, time.monotonic() - started)
            profile = finish_profile(proc, profile_out, ran)
        _say(
            f"{workers} worker(s): {run.events:,} events in {run.seconds:.2f}s = {run.rate:,.0f}/s"
            f" ({'complete' if run.complete else 'TIME LIMIT'}; scrape-based"
            f" {run.scrape_rate or 0:,.0f}/s; lost {run.lost}; differing {run.differing_series})"
        )
        return run, raw_rate, profile
    finally:
        drop_namespace(settings)


FAILED = "FAILED:"
T = TypeVar("T")


@dataclass(frozen=True)
class SuiteReport:
    text: str
    ok: bool  # no run failed, no event lost, no figure different from the oracle


def _guard(
    notes: list[str], what: str, fn: Callable[..., T], *args: Any, **kwargs: Any
) -> T | None:
    """Run one measurement; a failure is noted in the report and the suite goes on."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        _say(f"{what} failed: {exc!r}")
        notes.append(f"{FAILED} {what}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        return None


def run_suite(o: SuiteOptions, command: str, log_dir: Path) -> SuiteReport:
    info = machine()
    m = _Measures(o)
    notes: list[str] = []
    profile: Profile | None = None
    began = time.monotonic()
    needs_feed = any(o.runs_phase(p) for p in ("raw", "pipeline", "two-workers", "latency"))
    feed: CapturedFeed | None = None
    if needs_feed:
        _say(f"capturing {o.events:,} simulator records (seed {o.seed})")
        feed = capture(o.events, seed=o.seed)
        m.generate.add(len(feed.records) / feed.seconds)
        _say(f"feed: {len(feed.records):,} records ({feed.events:,} events) in {feed.seconds:.1f}s")

    one_rates: list[float] = []
    if feed is not None and any(o.runs_phase(p) for p in ("raw", "pipeline", "two-workers")):
        for i in range(o.runs):
            _say(f"round {i + 1}/{o.runs}")
            if o.runs_phase("raw") or o.runs_phase("pipeline"):
                out = log_dir / "profile.raw.txt" if (i == 0 and o.profile > 0) else None
                got = _guard(
                    notes,
                    f"round {i + 1}, one worker",
                    _pipeline_round,
                    o,
                    feed,
                    m,
                    log_dir,
                    1,
                    out,
                )
                run, raw_rate, prof = got if got is not None else (None, None, None)
                profile = profile or prof
                if run is not None:
                    _record(m, run, notes, m.one)
                    m.rss.add(max(run.peak_rss_mb) if run.peak_rss_mb else None)
                    m.scrape.add(run.scrape_ms)
                    m.batch_size.add(run.batch_size)
                    m.batch_ms.add(run.batch_ms)
                    m.ratio_runs.add(ratio(run.rate, raw_rate))
                    one_rates.append(run.rate)
            if o.runs_phase("two-workers"):
                got2 = _guard(
                    notes,
                    f"round {i + 1}, two workers",
                    _pipeline_round,
                    o,
                    feed,
                    m,
                    log_dir,
                    2,
                    None,
                )
                run2 = got2[0] if got2 is not None else None
                if run2 is not None:
                    _record(m, run2, notes, m.two)
                    if one_rates:
                        m.two_ratio.add(ratio(run2.rate, one_rates[-1]))

    if feed is not None and o.runs_phase("latency"):
        from bench.latency import run_latency

        lat_feed: CapturedFeed | None = feed
        needed = int(o.rate * o.latency_seconds)
        if needed > len(feed.records):
            _say(f"capturing {needed:,} records for {o.latency_seconds:.0f}s at {o.rate:,.0f}/s")
            lat_feed = capture(needed, seed=o.seed)
        for i in range(o.runs):
            _say(f"latency {i + 1}/{o.runs}: {o.rate:,.0f} records/s for {o.latency_seconds:.0f}s")
            assert lat_feed is not None
            lat = _guard(
                notes,
                f"latency run {i + 1}",
                run_latency,
                o.bootstrap,
                lat_feed,
                log_dir=log_dir,
                **o.latency_round(),
            )
            if lat is None:
                continue
            m.offered.add(lat.offered_rate)
            m.scrape_p50.add(_ms(lat.scrape_p50))
            m.scrape_p99.add(_ms(lat.scrape_p99))
            m.worker_p50.add(_ms(lat.worker_p50))
            m.worker_p99.add(_ms(lat.worker_p99))
            m.invisible.add(lat.invisible)
            m.invisible.note = f"of {lat.events:,} events sent per run"
            for stage, (mean, p99) in lat.stages.items():
                m.stage(f"latency budget: {stage}, mean", i).add(1000 * mean)
                m.stage(f"latency budget: {stage}, p99", i).add(_ms(p99))
            _say(
                f"latency: offered {lat.offered_rate:,.0f}/s, scrape p50/p99 "
                f"{lat.scrape_p50}/{lat.scrape_p99} s, worker {lat.worker_p50}/{lat.worker_p99}"
                f" s, not visible {lat.invisible:,} of {lat.events:,}"
            )
        lat_feed = None
    feed = None  # free the memory before the enterprises phase

    if o.runs_phase("enterprises"):
        _say(f"{o.enterprises:,} scored enterprises")
        settings = namespace(o.bootstrap, "ent")
        try:
            ent = _guard(
                notes,
                "enterprises",
                run_enterprises,
                settings,
                o.enterprises,
                runs=o.runs,
                log_dir=log_dir,
                timeout=max(900, o.max_seconds),
            )
        finally:
            drop_namespace(settings)
        if ent is not None:
            _enterprise_measures(m, ent, notes)

    text = _render(o, command, info, m, notes, profile, time.monotonic() - began)
    failed = any(n.startswith(FAILED) for n in notes)
    lost = any(v > 0 for v in (*m.lost.values, *m.diff.values) if not math.isnan(v))
    return SuiteReport(text, ok=not (failed or lost))


def _enterprise_measures(m: _Measures, ent: EnterprisesResult, notes: list[str]) -> None:
    m.ent_produce.add(ent.enterprises / ent.produce_s)
    m.ent_ingest.add(ent.enterprises / ent.ingest_s if ent.ingest_s else None)
    m.ent_rss.add(ent.ingest_rss_mb)
    m.ent_peak.add(ent.ingest_peak_rss_mb)
    if ent.ingest_s is None:
        notes.append("enterprises: the ingest did not finish in time; no restore measured")
    for r in ent.restores:
        m.restore_ready.add(r.start_to_ready_s)
        m.restore.add(r.restore_s)
        m.restore_rss.add(r.rss_mb)
        m.restore_peak.add(r.peak_rss_mb)
        if r.scored != ent.enterprises:
            notes.append(f"restore showed {r.scored:,} scored enterprises, not {ent.enterprises:,}")
    _say(f"enterprises: {ent}")


def _record(m: _Measures, run: PipelineRun, notes: list[str], into: Measure) -> None:
    into.add(run.rate)
    if into is m.one and run.cpu_us is not None:
        m.cpu.add(run.cpu_us)
    if run.complete:
        m.lost.add(run.lost)
        m.diff.add(run.differing_series)
    else:
        notes.append(
            f"{into.name}: a run hit --max-seconds; its rate is from /metrics scrapes over the "
            "time it ran, and exactness was not checked"
        )


def _render(
    o: SuiteOptions,
    command: str,
    info: dict[str, str],
    m: _Measures,
    notes: list[str],
    profile: Profile | None,
    seconds: float,
) -> str:
    lines = [
        f"command: `{command}` ({seconds / 60:.1f} min)",
        "",
        machine_lines(info),
        "",
        table(m.all()),
        "",
    ]
    if m.one.values and m.raw.values:
        lines += [ratio_line(m.one.median, m.raw.median), ""]
    two = ratio(m.two.median, m.one.median)
    if two is not None:
        lines += [f"ratio two workers/one worker: {two:.2f}", ""]
    if any(not math.isnan(v) and v > 0 for v in m.lost.values):
        notes.append("EVENTS WERE LOST in a pipeline run (see the lost events row)")
    if notes:
        lines += ["Notes:", *(f"- {n}" for n in dict.fromkeys(notes)), ""]
    if profile is not None:
        lines += [f"Profile of the first one-worker run ({o.profile:.0f} s):", "", profile.render()]
    return "\n".join(lines).rstrip()
