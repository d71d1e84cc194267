"""What the engine calls back into its owner (the worker), given at construction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiokafka.structs import OffsetAndMetadata, TopicPartition

from streams.processor import Record

__all__ = ["CommitOffsets", "EngineHooks", "Offsets", "OnCommit", "OnStage"]

Offsets = dict[TopicPartition, OffsetAndMetadata]
# after each published commit: (the batch's records, perf_counter at the batch's start);
# an idle commit (reference topics only) passes no records
OnCommit = Callable[[Sequence[Record], float], None]
# (stage, seconds) of each batch: the latency budget (dfip_worker_stage_seconds)
OnStage = Callable[[str, float], None]
# at_least_once only: commits the group's offsets once a batch's records are written
CommitOffsets = Callable[[Offsets], Awaitable[None]]


def _no_commit(records: Sequence[Record], started: float) -> None:
    pass


def _no_stage(stage: str, seconds: float) -> None:
    pass


@dataclass(frozen=True)
class EngineHooks:
    on_commit: OnCommit = _no_commit
    on_stage: OnStage = _no_stage
    commit_offsets: CommitOffsets | None = None
