"""Prometheus exposition of the committed figures and of worker health."""

from streams.export.collector import FiguresCollector, WorkerMetrics

__all__ = ["FiguresCollector", "WorkerMetrics"]
