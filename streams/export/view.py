"""The committed figures: what the engine publishes after each commit and the exporter shows.

A seam of its own so the exporter does not import the engine (nor the engine the exporter's
Prometheus machinery): the engine writes a :class:`CommittedView`, the collectors read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CommittedView", "Snapshot"]

# figure name → label values → integer value (streams/state/partition.py Counters.snapshot)
Snapshot = dict[str, dict[tuple[str, ...], int]]


@dataclass
class CommittedView:
    """What the exporter may show: per owned partition, the figures as last committed."""

    figures: dict[int, Snapshot] = field(default_factory=dict)
    scored: dict[int, dict[tuple[str, str], int]] = field(default_factory=dict)

    def publish(
        self,
        figures: dict[int, Snapshot],
        scored: dict[int, dict[tuple[str, str], int]],
    ) -> None:
        """Show what a commit made durable (partitions it did not touch keep their values)."""
        self.figures.update(figures)
        self.scored.update(scored)

    def forget(self, partition: int) -> None:
        """Stop showing a partition (it moved away, or is restored anew)."""
        self.figures.pop(partition, None)
        self.scored.pop(partition, None)
