"""The ledger of ingested documents: compacted `dfip.ingested`, one record per document.

Keyed `{institution}|{sha256 of the document}` and written by `dfip ingest` inside the same
Kafka transaction as the document's records, so it never claims more than is committed:
`results` parse results (events and rejections, in parse order) of the document are in.
A re-run skips a complete document and resumes a partial one after its last checkpoint.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import orjson
from kafka import KafkaConsumer, TopicPartition

from core.kafka_config import KafkaSettings
from schemas.catalog import INGESTED

__all__ = [
    "LEDGER_TOPIC",
    "Document",
    "LedgerEntry",
    "LedgerError",
    "read_ledger",
]

LEDGER_TOPIC: Final = INGESTED.name
_HASH_BLOCK = 1 << 20


class LedgerError(RuntimeError):
    """The ledger topic could not be read within the delivery timeout."""


@dataclass(frozen=True, slots=True)
class Document:
    """One input file, identified by its content: the same bytes under another name or
    path are the same document."""

    institution: str
    sha256: str
    name: str
    size: int

    @classmethod
    def of(cls, path: Path, institution: str) -> Document:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(_HASH_BLOCK):
                digest.update(block)
        return cls(institution, digest.hexdigest(), path.name, path.stat().st_size)

    @property
    def key(self) -> str:
        return f"{self.institution}|{self.sha256}"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """How much of a document is committed."""

    institution: str
    sha256: str
    name: str
    size: int
    format: str
    results: int  # parse results committed, counted from the start of the document
    events: int
    rejected: int
    complete: bool
    committed_at: str  # ISO-8601 UTC

    @classmethod
    def for_document(
        cls,
        doc: Document,
        format: str,
        *,
        results: int,
        events: int,
        rejected: int,
        complete: bool,
        now: datetime | None = None,
    ) -> LedgerEntry:
        moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        return cls(
            doc.institution,
            doc.sha256,
            doc.name,
            doc.size,
            format,
            results,
            events,
            rejected,
            complete,
            moment.isoformat().replace("+00:00", "Z"),
        )

    @property
    def key(self) -> str:
        return f"{self.institution}|{self.sha256}"

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, value: bytes) -> LedgerEntry:
        return cls(**orjson.loads(value))


def read_ledger(settings: KafkaSettings, *, timeout: float | None = None) -> dict[str, LedgerEntry]:
    """Every document's latest committed entry, by key (read_committed, to the end now)."""
    wait = settings.delivery_timeout_ms / 1000 if timeout is None else timeout
    topic = settings.topic(LEDGER_TOPIC)
    consumer = KafkaConsumer(
        enable_auto_commit=False,
        isolation_level="read_committed",
        request_timeout_ms=max(settings.request_timeout_ms, 1_000),
        bootstrap_timeout_ms=settings.connect_timeout_ms,
        **settings.kafka_python_config(),
    )
    deadline = time.monotonic() + wait
    entries: dict[str, LedgerEntry] = {}
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if time.monotonic() > deadline:
                raise LedgerError(f"no metadata for {topic} within {wait:g} s")
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        end = consumer.end_offsets(assigned)  # the last stable offset under read_committed
        while any(consumer.position(tp) < end[tp] for tp in assigned):
            if time.monotonic() > deadline:
                raise LedgerError(f"could not read {topic} to its end within {wait:g} s")
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    if record.key is None:
                        continue
                    if record.value is None:  # a tombstone: the document was forgotten
                        entries.pop(record.key.decode(), None)
                    else:
                        entry = LedgerEntry.decode(record.value)
                        entries[entry.key] = entry
    finally:
        consumer.close()
    return entries
