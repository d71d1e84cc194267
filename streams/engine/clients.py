"""Small helpers over the engine's manually assigned aiokafka consumers."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer

from streams.processor import Record

__all__ = ["catalog_name", "hold", "to_record"]


def hold(consumer: AIOKafkaConsumer) -> None:
    """Stop a manually assigned consumer's background fetching until it is read again.

    The reference reader and the restore consumer wait at most 5 ms per fetch (they read to
    a known end); left assigned and unpaused, each sent ~200 empty fetches a second, costing
    the worker's event loop (and the GIL, and the broker) while batches waited (issue 18).
    """
    parts = consumer.assignment()
    if parts:
        consumer.pause(*parts)


def catalog_name(prefix: str, topic: str) -> str:
    """Catalog name of a concrete topic (strip the namespace prefix)."""
    return topic[len(prefix) :] if topic.startswith(prefix) else topic


def to_record(prefix: str, r: Any) -> Record:
    """A consumed aiokafka record as the processor takes it."""
    return Record(
        topic=catalog_name(prefix, r.topic),
        partition=r.partition,
        offset=r.offset,
        key=r.key,
        value=r.value,
        headers=tuple(r.headers or ()),
        timestamp_ms=r.timestamp,
    )
