"""Prometheus collectors.

Business and flow figures are exported per owned partition with a ``partition`` label, from
the *committed* state only. Summing ``max by (partition, …)`` over all workers is therefore
exact at any quiet moment, also during and after a rebalance: a partition is exported by its
owner, and a new owner starts from exactly the committed value the old one last showed.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from core.version import __version__
from schemas import figure_names as fn
from schemas.figures import FIGURES, HEALTH_FIGURES, Figure
from streams.export.view import CommittedView, Snapshot
from streams.rules.overdue import OPEN, OVERDUE, beijing_today, overdue

__all__ = ["STAGES", "FiguresCollector", "WorkerMetrics"]

# the latency budget of a record, in the order a record meets them
STAGES = (
    "fetch_wait",
    "queue",
    "lock_wait",
    "reference",
    "apply",
    "commit_wait",
    "transaction",
    "export",
)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

_SCORED = next(f for f in FIGURES if f.name == fn.ENTERPRISES_SCORED)
# derived at each scrape from the committed open hits and the Beijing date (issue 15)
_OVERDUE = next(f for f in FIGURES if f.name == OVERDUE)


# prometheus_client's own number format (untyped there), so both renderings agree exactly
_float = cast(Callable[[float], str], floatToGoString)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _header(name: str, kind: str, help_text: str) -> str:
    doc = help_text.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"


class FiguresCollector(Collector):
    """The committed figures, as a collector and as ready-made exposition text.

    :meth:`render` gives the same text as ``generate_latest`` over :meth:`collect` (a unit
    test holds them equal) at a fraction of the cost: the lines of a partition are built once
    per committed snapshot and reused by every scrape until the next commit replaces it.
    Rendering every series through prometheus_client took ~130 ms of the worker's CPU per
    scrape while busy (issue 18).
    """

    def __init__(self, view: CommittedView) -> None:
        self.view = view
        # partition → (the snapshot rendered, figure name → its sample lines)
        self._lines: dict[int, tuple[object, dict[str, str]]] = {}
        self._scored_lines: dict[int, tuple[object, str]] = {}
        self._overdue_lines: dict[int, tuple[object, object, str]] = {}
        self.today = beijing_today  # replaceable in tests
        self._headers = {
            fig.name: _header(fig.name, fig.type, fig.help) for fig in (*FIGURES, *HEALTH_FIGURES)
        }

    def render(self) -> str:
        figures = dict(self.view.figures)
        scored_by_partition = dict(self.view.scored)
        caches: tuple[tuple[dict[int, Any], dict[int, Any]], ...] = (
            (self._lines, figures),
            (self._scored_lines, scored_by_partition),
            (self._overdue_lines, figures),
        )
        for cache, live in caches:
            for p in [p for p in cache if p not in live]:
                del cache[p]
        out: list[str] = []
        parts = sorted(figures)
        today = self.today()
        for fig in (*FIGURES, *HEALTH_FIGURES):
            out.append(self._headers[fig.name])
            if fig is _SCORED:
                out.extend(self._scored(p, s) for p, s in sorted(scored_by_partition.items()))
            elif fig is _OVERDUE:
                out.extend(self._overdue(p, figures[p], today) for p in parts)
            else:
                for p in parts:
                    out.append(self._partition_lines(p, figures[p]).get(fig.name, ""))
        return "".join(out)

    def _partition_lines(self, p: int, snap: Snapshot) -> dict[str, str]:
        cached = self._lines.get(p)
        if cached is not None and cached[0] is snap:
            return cached[1]
        lines: dict[str, str] = {}
        for fig in (*FIGURES, *HEALTH_FIGURES):
            series = snap.get(fig.name)
            if not series or fig is _SCORED:
                continue
            names = [*fig.labels, "partition"]
            order = sorted(range(len(names)), key=names.__getitem__)
            rows = []
            for labels, value in sorted(series.items()):
                values = [*labels, str(p)]
                text = ",".join(f'{names[i]}="{_escape(values[i])}"' for i in order)
                rows.append(f"{fig.name}{{{text}}} {_float(value / fig.scale)}\n")
            lines[fig.name] = "".join(rows)
        self._lines[p] = (snap, lines)
        return lines

    def _scored(self, p: int, scored: dict[tuple[str, str], int]) -> str:
        cached = self._scored_lines.get(p)
        if cached is not None and cached[0] is scored:
            return cached[1]
        names = [*_SCORED.labels, "partition"]
        order = sorted(range(len(names)), key=names.__getitem__)
        rows = []
        for (band, sector), n in sorted(scored.items()):
            values = [band, sector, str(p)]
            text = ",".join(f'{names[i]}="{_escape(values[i])}"' for i in order)
            rows.append(f"{_SCORED.name}{{{text}}} {_float(float(n))}\n")
        self._scored_lines[p] = (scored, "".join(rows))
        return self._scored_lines[p][1]

    def _overdue(self, p: int, snap: Snapshot, today: date) -> str:
        cached = self._overdue_lines.get(p)
        if cached is not None and cached[0] is snap and cached[1] == today:
            return cached[2]
        names = [*_OVERDUE.labels, "partition"]
        order = sorted(range(len(names)), key=names.__getitem__)
        rows = []
        for labels, n in sorted(overdue(snap.get(OPEN, {}), today).items()):
            values = [*labels, str(p)]
            text = ",".join(f'{names[i]}="{_escape(values[i])}"' for i in order)
            rows.append(f"{OVERDUE}{{{text}}} {_float(float(n))}\n")
        self._overdue_lines[p] = (snap, today, "".join(rows))
        return self._overdue_lines[p][2]

    def _family(self, fig: Figure) -> CounterMetricFamily | GaugeMetricFamily:
        labels = [*fig.labels, "partition"]
        if fig.type == "counter":
            return CounterMetricFamily(fig.name.removesuffix("_total"), fig.help, labels=labels)
        return GaugeMetricFamily(fig.name, fig.help, labels=labels)

    def collect(self) -> Iterator[Metric]:
        # /metrics renders in a worker thread while the event loop swaps whole entries:
        # copy the two mappings once (atomic under the GIL), then read only the copies
        figures = dict(self.view.figures)
        scored_by_partition = dict(self.view.scored)
        for fig in (*FIGURES, *HEALTH_FIGURES):
            fam = self._family(fig)
            if fig is _SCORED:
                for p, scored in sorted(scored_by_partition.items()):
                    for (band, sector), n in sorted(scored.items()):
                        fam.add_metric([band, sector, str(p)], float(n))
            elif fig is _OVERDUE:
                today = self.today()
                for p, snap in sorted(figures.items()):
                    for labels, n in sorted(overdue(snap.get(OPEN, {}), today).items()):
                        fam.add_metric([*labels, str(p)], float(n))
            else:
                for p, snap in sorted(figures.items()):
                    for labels, value in sorted(snap.get(fig.name, {}).items()):
                        fam.add_metric([*labels, str(p)], value / fig.scale)
            yield fam


class WorkerMetrics:
    """Worker health: throughput, latency, lag, rebalances (per worker, no business labels)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batches = Counter("dfip_worker_batches", "Batches committed.", registry=registry)
        self.records = Counter(
            "dfip_worker_records", "Records handled in committed batches.", registry=registry
        )
        self.batch_seconds = Histogram(
            "dfip_worker_batch_seconds",
            "Time to process and commit one batch.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.latency = Histogram(
            "dfip_event_latency_seconds",
            "Record timestamp (produce time) to committed figure.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        # where a record's time goes between produce and the committed figure (no identifiers:
        # the stage is the only label); see docs/metrics.md for what each stage covers
        self.stage = Histogram(
            "dfip_worker_stage_seconds",
            "Latency budget by stage: fetch_wait (a fetch returning records), queue (record "
            "CreateTime to its batch reaching the engine, sampled), lock_wait (batch waiting for "
            "idle work), reference (reference topics read before the batch), apply, "
            "commit_wait (previous transaction), transaction (the batch's own), export "
            "(rendering /metrics).",
            labelnames=("stage",),
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.stages = {name: self.stage.labels(name) for name in STAGES}
        self.failures = Counter(
            "dfip_worker_batch_failures",
            "Batches that failed to commit; each is followed by a recovery of the committed "
            "state and a re-read of its records.",
            registry=registry,
        )
        self.rebalances = Counter(
            "dfip_worker_rebalances", "Partition assignments received.", registry=registry
        )
        self.assigned = Gauge(
            "dfip_worker_assigned_partitions", "Input partitions owned.", registry=registry
        )
        self.lag = Gauge(
            "dfip_consumer_lag",
            "Records not yet applied on an owned input partition: records (not transaction "
            "markers) between the committed position and the end offset; 0 when drained. "
            "Counted exactly up to 1,000 offsets behind; beyond, the offset difference (markers "
            "included).",
            labelnames=("topic", "partition"),
            registry=registry,
        )
        self.restore_seconds = Gauge(
            "dfip_worker_last_restore_seconds",
            "Duration of the last state restore.",
            registry=registry,
        )
        self.ready = Gauge(
            "dfip_worker_ready", "1 when every owned partition is restored.", registry=registry
        )
        # which version each replica runs (value 1), e.g. during a rolling upgrade
        self.build = Info("dfip_build", "Version of the running worker.", registry=registry)
        self.build.info({"version": __version__, "python": platform.python_version()})
