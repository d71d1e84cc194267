"""The topic catalog: one declarative source for every DFIP topic.

Topic creation, the Faust app and docs/events.md all read `TOPICS` (plus the stream
layer's internal topics, `INTERNAL_TOPICS`, declared below with the same `TopicSpec`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, Literal

from schemas.alerts import Alert, AlertAck
from schemas.events import (
    DeadLetter,
    DigitalizationScore,
    EventEnvelope,
    FxRate,
    LoanEvent,
    TransactionEvent,
)

__all__ = [
    "ALL_TOPICS",
    "DAY_MS",
    "DEADLETTER_MAX_BYTES",
    "INTERNAL_TOPICS",
    "KEEP_FOREVER",
    "STATE_TOPIC",
    "TOPICS",
    "USCC_PARTITIONS",
    "CleanupPolicy",
    "TopicSpec",
    "message_key",
    "partition_for",
    "score_key",
    "topic_by_name",
    "utc_iso",
]

USCC_PARTITIONS: Final = 12
"""Partition count of every USCC-keyed topic. Co-partitioning (the as-of join reads a
score and the events of one enterprise in the same task) depends on every such topic
having exactly this count, so it is a constant, not an environment setting."""

DAY_MS: Final = 24 * 60 * 60 * 1000

DEADLETTER_MAX_BYTES: Final = 4 * 1024 * 1024
"""`max.message.bytes` of `dfip.deadletter`; producers that write dead letters allow requests
this large, and adapters cap the original they keep so that a dead letter always fits."""

KEEP_FOREVER: Final = -1
"""`retention_ms` of a topic whose records the broker must never remove (with `retention.bytes`
-1 too): the reference topics, whose every record can decide a figure (docs/operations.md,
"Reference topics keep every record")."""

CleanupPolicy = Literal["delete", "compact", "compact,delete"]


@dataclass(frozen=True)
class TopicSpec:
    """Everything needed to create, produce to and consume from one topic."""

    name: str
    key: str
    """What the message key is (documentation), e.g. `uscc` or `{currency}:{rate_date}`."""
    value_model: Any
    """Model class or union alias (e.g. `LoanEvent`) of the value; None for raw bytes or
    for records another package defines."""
    partitions: int
    cleanup_policy: CleanupPolicy
    retention_ms: int | None
    """None: broker default (compacted topics keep the latest value per key anyway);
    `KEEP_FOREVER` (-1): never deleted, by age or by size."""
    description: str = ""
    config: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Extra topic-level configs (e.g. `min.compaction.lag.ms`)."""
    uscc_partitioned: bool = False
    """True when records are placed by `partition_for(uscc)`: must have USCC_PARTITIONS."""

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"{self.name}: partitions must be >= 1")
        if self.uscc_partitioned and self.partitions != USCC_PARTITIONS:
            raise ValueError(f"{self.name}: USCC-keyed topics need {USCC_PARTITIONS} partitions")

    def topic_config(self) -> dict[str, str]:
        """Topic-level configs for topic creation (`NewTopic(topic_configs=...)`)."""
        out: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            out["retention.ms"] = str(self.retention_ms)
        if self.retention_ms == KEEP_FOREVER:
            # a broker-wide log.retention.bytes must not delete them by size either
            out["retention.bytes"] = str(KEEP_FOREVER)
        out.update(self.config)
        return out


TRANSACTIONS = TopicSpec(
    "dfip.transactions",
    "uscc",
    TransactionEvent,
    USCC_PARTITIONS,
    "delete",
    7 * DAY_MS,
    "Booked statement entries from bank and fintech adapters.",
    uscc_partitioned=True,
)
LOANS = TopicSpec(
    "dfip.loans",
    "uscc",
    LoanEvent,
    USCC_PARTITIONS,
    "delete",
    30 * DAY_MS,
    "Loan lifecycle events (borrower USCC is the key).",
    uscc_partitioned=True,
)
# The reference topics keep every record, never compacted: which records a restarted worker
# reads back must not depend on whether the log cleaner has run (a compacted FX key loses
# the first publication, whose published_at is when a corrected rate came into force; a
# later invalid record or tombstone under a key would take the valid one with it).
SCORES = TopicSpec(
    "dfip.scores",
    "{uscc}@{assessed_at}",
    DigitalizationScore,
    USCC_PARTITIONS,
    "delete",
    KEEP_FOREVER,
    "Digitalisation assessments; every record is kept forever (never compacted: a worker "
    "rebuilds its as-of join from all of them). Produced to partition_for(uscc) explicitly "
    "so it co-partitions with the event topics.",
    uscc_partitioned=True,
)
FX = TopicSpec(
    "dfip.fx",
    "{currency}:{rate_date}",
    FxRate,
    1,
    "delete",
    KEEP_FOREVER,
    "Reference FX rates to CNY, read completely before events are converted; every "
    "publication is kept forever (never compacted: a corrected rate is in force from its "
    "first publication).",
)
DEADLETTER = TopicSpec(
    "dfip.deadletter",
    "original key or none",
    DeadLetter,
    3,
    "delete",
    30 * DAY_MS,
    "Records that failed at any stage, kept with the reason; never dropped.",
    # a dead letter holds its record in base64 (4/3 of the size): a record at the broker's
    # default 1 MiB limit needs about 1.4 MiB here
    config={"max.message.bytes": str(DEADLETTER_MAX_BYTES)},
)
LATE = TopicSpec(
    "dfip.late",
    "uscc",
    None,
    USCC_PARTITIONS,
    "delete",
    30 * DAY_MS,
    "Events later than the window grace period (original event bytes).",
    uscc_partitioned=True,
)
METRICS = TopicSpec(
    "dfip.metrics",
    "window id",
    None,
    3,
    "compact",
    None,
    "Closed event-time window figures (WindowFigure records defined by streams).",
)

INGESTED = TopicSpec(
    "dfip.ingested",
    "{institution}|{document sha256}",
    None,
    1,
    "compact",
    None,
    "Ledger of ingested documents (JSON written by `dfip ingest` in the same transaction as "
    "the document's records): how far each document is committed, so a re-run skips or "
    "resumes it.",
)

ALERTS = TopicSpec(
    "dfip.alerts",
    "uscc",
    Alert,
    USCC_PARTITIONS,
    "delete",
    400 * DAY_MS,
    "Large-value and suspicious-pattern rule hits, each written once by the worker that "
    "decided it. Names enterprises and events: readable by compliance staff only "
    "(docs/aml-rules.md).",
    uscc_partitioned=True,
)
ALERTS_ACK = TopicSpec(
    "dfip.alerts.ack",
    "uscc",
    AlertAck,
    USCC_PARTITIONS,
    "delete",
    400 * DAY_MS,
    "Institutions' acknowledgements that a hit was reported or dismissed (key = the hit's "
    "enterprise, so it co-partitions with dfip.alerts).",
    uscc_partitioned=True,
)

TOPICS: tuple[TopicSpec, ...] = (
    TRANSACTIONS,
    LOANS,
    SCORES,
    FX,
    DEADLETTER,
    LATE,
    METRICS,
    INGESTED,
    ALERTS,
    ALERTS_ACK,
)


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
"""Topics the stream workers own (not part of the public event catalog, not documented as
events); created with the others so that any tool that creates topics creates all of them."""

ALL_TOPICS: tuple[TopicSpec, ...] = (*TOPICS, *INTERNAL_TOPICS)
"""Every topic the platform uses: what `dfip topics create` creates and a worker waits for."""


def topic_by_name(name: str) -> TopicSpec:
    """The catalog entry called `name` (unprefixed); KeyError if there is none."""
    for spec in TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(f"no topic {name!r} in schemas.catalog.TOPICS")


@lru_cache(maxsize=1 << 16)
def _murmur_positive(key: bytes) -> int:
    # kafka-python's murmur2 is pure Python (~2 µs); keys repeat, so cache the hash.
    return _murmur_once(key)


def _murmur_once(key: bytes) -> int:
    # Imported here: importing kafka-python costs ~0.5 s, and most users of `schemas`
    # (aiokafka-based workers, tools) never partition by hand.
    from kafka.partitioner.default import murmur2

    return int(murmur2(key)) & 0x7FFFFFFF


def partition_for(uscc: str, partitions: int = USCC_PARTITIONS, *, cached: bool = True) -> int:
    """Kafka's default partitioner on the UTF-8 key: `(murmur2(key) & 0x7fffffff) % n`.

    Identical to the Java client, kafka-python and aiokafka for a non-null key.
    ``cached=False`` where keys rarely repeat or the caller caches (the worker's score
    records and its own table of homes): the cache would hold ~200 bytes a key for nothing.
    """
    key = uscc.encode("utf-8")
    return (_murmur_positive(key) if cached else _murmur_once(key)) % partitions


def utc_iso(moment: datetime) -> str:
    """ISO-8601 UTC text with `Z`, exactly as the codec writes datetimes."""
    text = moment.isoformat()
    if not text.endswith("+00:00"):
        raise ValueError("expected a UTC datetime")
    return text[: -len("+00:00")] + "Z"


def score_key(score: DigitalizationScore) -> str:
    """`{uscc}@{assessed_at}` — one key per assessment (the topic is not compacted: the key
    names the version for tools, it decides nothing)."""
    return f"{score.enterprise_uscc}@{utc_iso(score.assessed_at)}"


def message_key(record: Any) -> str | None:
    """The message key a record is produced with, per the catalog."""
    if isinstance(record, DigitalizationScore):
        return score_key(record)
    if isinstance(record, EventEnvelope | Alert | AlertAck):
        return record.enterprise_uscc
    if isinstance(record, FxRate):
        return record.key
    if isinstance(record, DeadLetter):
        return None
    raise TypeError(f"no catalog key rule for {type(record).__name__}")
