"""DFIP stream workers: Faust app, per-partition state, joins, aggregates, Prometheus export."""

__all__: list[str] = []
