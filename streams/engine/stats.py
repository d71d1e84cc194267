"""The engine's own counters, shown on the worker's /state endpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["EngineStats", "StageSeconds"]


@dataclass
class StageSeconds:
    """Cumulative seconds per stage of the batches: where a batch's time goes. ``commit`` is
    only the wait for the previous transaction; the transaction itself overlaps the next
    batch's stages."""

    reference: float = 0.0
    apply: float = 0.0
    commit: float = 0.0


@dataclass
class EngineStats:
    batches: int = 0  # commits published (batches and idle commits)
    rebalances: int = 0
    restores: int = 0  # partitions restored by rebalances
    failures: int = 0  # batches or commits that left the state ahead of the committed one
    recoveries: int = 0
    last_restore_seconds: float | None = None  # None until a rebalance restored a partition
    seconds: StageSeconds | None = None  # None until the first batch

    def stage_seconds(self) -> StageSeconds:
        if self.seconds is None:
            self.seconds = StageSeconds()
        return self.seconds

    def as_dict(self) -> dict[str, Any]:
        """The /state form: what is not known yet is left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}
