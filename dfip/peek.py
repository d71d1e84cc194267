"""Looking inside topics, in the spirit of kcat: end offsets and group lag, the last records
of a topic (optionally following it), and the dead letters with their reasons.

Everything reads committed data only (`read_committed`): what a worker would see, without the
records of aborted transactions; no consumer group is joined and nothing is committed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from core.errors import DfipError
from core.kafka_admin import CONNECT_TIMEOUT, admin_client, client_log
from core.kafka_config import KafkaSettings
from schemas.catalog import ALL_TOPICS

__all__ = [
    "DeadLetterSummary",
    "TopicRow",
    "dead_letters",
    "decode_bytes",
    "format_record",
    "tail",
    "topic_rows",
]


@dataclass(frozen=True)
class TopicRow:
    name: str
    partitions: int
    records: int  # committed records still retained (end - beginning, incl. markers)
    end_offset: int  # sum over partitions
    lag: int | None  # the worker group's lag; None if the group does not read the topic


def _consumer(settings: KafkaSettings) -> KafkaConsumer:
    return KafkaConsumer(
        client_id="dfip-peek",
        isolation_level="read_committed",
        enable_auto_commit=False,
        group_id=None,
        request_timeout_ms=15000,
        **settings.kafka_python_config(),
    )


@contextlib.contextmanager
def _connected(settings: KafkaSettings) -> Iterator[KafkaConsumer]:
    """A consumer on a cluster known to answer (checked first with the admin client's quick
    bootstrap, so an unreachable broker is one line within seconds)."""
    with client_log():
        admin_client(settings, timeout=CONNECT_TIMEOUT).close()
        consumer = _consumer(settings)
        try:
            yield consumer
        except KafkaError as exc:
            raise DfipError(
                f"reading from Kafka at {settings.bootstrap_servers} failed: {exc}",
                hint="check the broker log",
            ) from exc
        finally:
            consumer.close()


def _partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise DfipError(
            f"topic {topic} does not exist on the cluster",
            hint="create the catalog's topics with `dfip topics create`, "
            "or check DFIP_KAFKA_TOPIC_PREFIX",
        )
    return [TopicPartition(topic, p) for p in sorted(parts)]


def _group_offsets(settings: KafkaSettings, group_id: str) -> dict[TopicPartition, int]:
    with client_log():
        admin = admin_client(settings, timeout=CONNECT_TIMEOUT)
        try:
            offsets = admin.list_group_offsets(group_id).get(group_id, {})
        except KafkaError:
            return {}  # no group yet (no worker has ever committed)
        finally:
            admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def topic_rows(settings: KafkaSettings, group_id: str) -> list[TopicRow]:
    """Every platform topic with its committed end offsets and the worker group's lag."""
    committed = _group_offsets(settings, group_id)
    rows = []
    with _connected(settings) as consumer:
        for spec in ALL_TOPICS:
            name = settings.topic(spec.name)
            tps = _partitions(consumer, name)
            ends = consumer.end_offsets(tps)
            begins = consumer.beginning_offsets(tps)
            group = [tp for tp in tps if tp in committed]
            lag = sum(max(ends[tp] - committed[tp], 0) for tp in group) if group else None
            rows.append(
                TopicRow(
                    name=name,
                    partitions=len(tps),
                    records=sum(ends[tp] - begins[tp] for tp in tps),
                    end_offset=sum(ends.values()),
                    lag=lag,
                )
            )
    return rows


# --------------------------------------------------------------------------- records


def decode_bytes(raw: bytes | None) -> str:
    """Bytes as text where they are text (UTF-8, else GB18030, the Chinese bank encoding),
    else hex; JSON is shown compact."""
    if raw is None:
        return "∅"
    for encoding in ("utf-8", "gb18030"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding == "utf-8" and text[:1] in "{[":
            with contextlib.suppress(orjson.JSONDecodeError):
                return orjson.dumps(orjson.loads(raw)).decode()
        if text.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in text):
            return text
    return "hex:" + binascii.hexlify(raw).decode()


def format_record(record: Any) -> str:
    """One line per record: partition@offset, timestamp, key, value (kcat's -f style)."""
    when = datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat(timespec="milliseconds")
    return (
        f"p{record.partition}@{record.offset} {when} "
        f"key={decode_bytes(record.key)} {decode_bytes(record.value)}"
    )


def _read(
    consumer: KafkaConsumer,
    tps: list[TopicPartition],
    start: dict[TopicPartition, int],
    *,
    follow: bool,
    emit: Callable[[Any], None],
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Emit records from `start` to the end offsets at call time (or on and on if
    `follow`), each partition in offset order, partitions merged by timestamp per poll."""
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, start[tp])
    ends = consumer.end_offsets(tps)
    while not stop():
        if not follow and all(consumer.position(tp) >= ends[tp] for tp in tps):
            return
        batch = [r for records in consumer.poll(timeout_ms=500).values() for r in records]
        for record in sorted(batch, key=lambda r: (r.timestamp, r.partition, r.offset)):
            if follow or record.offset < ends[TopicPartition(record.topic, record.partition)]:
                emit(record)


def _last_records(
    consumer: KafkaConsumer, tp: TopicPartition, begin: int, end: int, count: int
) -> list[Any]:
    """The last `count` committed records of one partition. Offsets of aborted records and
    transaction markers hold no record, so the window grows until it has enough."""
    window = count
    while True:
        start = max(begin, end - window)
        got: list[Any] = []
        _read(consumer, [tp], {tp: start}, follow=False, emit=got.append)
        if len(got) >= count or start == begin:
            return got[-count:] if count else []
        window *= 4


def tail(
    settings: KafkaSettings,
    topic: str,
    *,
    count: int,
    follow: bool,
    emit: Callable[[Any], None],
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """The last `count` committed records of every partition of `topic` (merged by
    timestamp), then (with `follow`) the new ones as they arrive."""
    with _connected(settings) as consumer:
        tps = _partitions(consumer, topic)
        ends, begins = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
        last = [r for tp in tps for r in _last_records(consumer, tp, begins[tp], ends[tp], count)]
        for record in sorted(last, key=lambda r: (r.timestamp, r.partition, r.offset)):
            emit(record)
        if follow:
            _read(consumer, tps, dict(ends), follow=True, emit=emit, stop=stop)


# --------------------------------------------------------------------------- dead letters


@dataclass
class DeadLetterSummary:
    total: int
    by_reason: Counter[tuple[str, str]]  # (stage, error_class) -> count
    last: list[dict[str, Any]]  # the newest, decoded, oldest first


def _dead_letter(record: Any) -> dict[str, Any]:
    try:
        data = orjson.loads(record.value) if record.value is not None else None
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):  # not a dead letter at all (was an AttributeError for [])
        reason = decode_bytes(record.value)
        reason = reason if len(reason) <= 400 else reason[:400] + "…"
        return {"stage": "?", "error_class": "unreadable", "reason": reason, "_at": _at(record)}
    original = data.get("original_b64")
    if isinstance(original, str):
        with contextlib.suppress(binascii.Error, ValueError):
            data["original"] = decode_bytes(base64.b64decode(original, validate=True))
    data["_at"] = _at(record)
    return data


def _at(record: Any) -> str:
    return f"p{record.partition}@{record.offset}"


def dead_letters(settings: KafkaSettings, *, last: int) -> DeadLetterSummary:
    """Counts by stage and error class over the whole retained topic, and the last entries."""
    topic = settings.topic("dfip.deadletter")
    counts: Counter[tuple[str, str]] = Counter()
    newest: list[tuple[int, int, int, dict[str, Any]]] = []

    def take(record: Any) -> None:
        entry = _dead_letter(record)
        counts[(str(entry.get("stage", "?")), str(entry.get("error_class", "?")))] += 1
        newest.append((record.timestamp, record.partition, record.offset, entry))
        if len(newest) > 4 * max(last, 1):  # bounded memory; sorted and cut below
            newest.sort(key=lambda t: t[:3])
            del newest[: len(newest) - last]

    with _connected(settings) as consumer:
        tps = _partitions(consumer, topic)
        begins = consumer.beginning_offsets(tps)
        _read(consumer, tps, dict(begins), follow=False, emit=take)
    newest.sort(key=lambda t: t[:3])
    shown = [entry for *_, entry in newest[-last:]] if last else []
    return DeadLetterSummary(sum(counts.values()), counts, shown)
