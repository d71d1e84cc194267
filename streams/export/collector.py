"""Prometheus collectors.

Business and flow figures are exported per owned partition with a ``partition`` label, from
the *committed* state only. Summing ``max by (partition, …)`` over all workers is therefore
exact at any quiet moment, also during and after a rebalance: a partition is exported by its
owner, and a new owner starts from exactly the committed value the old one last showed.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dfip import __version__
from schemas.figures import FIGURES, HEALTH_FIGURES, Figure
from streams.engine import CommittedView

__all__ = ["FiguresCollector", "WorkerMetrics"]

_SCORED = next(f for f in FIGURES if f.name == "dfip_enterprises_scored")


class FiguresCollector(Collector):
    def __init__(self, view: CommittedView) -> None:
        self.view = view

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
