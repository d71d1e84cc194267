"""Topics the stream layer owns in addition to the public catalog (schemas.catalog)."""

from __future__ import annotations

from schemas.catalog import USCC_PARTITIONS, TopicSpec

__all__ = ["INTERNAL_TOPICS", "STATE_TOPIC"]

STATE_TOPIC = TopicSpec(
    name="dfip.state",
    key=(
        "state key within the partition (ck, ctr, loan:<id>, rs:<uscc>, al:<uscc>, dd:<…>, win:<…>)"
    ),
    value_model=None,
    partitions=USCC_PARTITIONS,
    cleanup_policy="compact",
    retention_ms=None,
    description=(
        "Changelog of the workers' per-partition state; partition p holds the state of input "
        "partition p. Written transactionally with each batch; read on restore."
    ),
    config={"min.compaction.lag.ms": "60000"},
)

INTERNAL_TOPICS: tuple[TopicSpec, ...] = (STATE_TOPIC,)
