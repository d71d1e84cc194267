"""In-memory stand-ins for the engine parts' Kafka clients (unit level only: the integration
tests run the same parts against a real broker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition

from streams.state.local import LocalStore


class FakeConsumer:
    """A log per topic-partition, read as aiokafka's consumer reads it: positions, end
    offsets, paused partitions give nothing, at most ``fetch`` records per partition per
    fetch (so chunked reads are exercised)."""

    def __init__(self, fetch: int = 2) -> None:
        # per partition: (key, value, Kafka timestamp in ms)
        self.log: dict[TopicPartition, list[tuple[bytes | None, bytes | None, int]]] = {}
        self.fetch = fetch
        self._assigned: list[TopicPartition] = []
        self._pos: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()

    def append(
        self, tp: TopicPartition, key: bytes | None, value: bytes | None, ts_ms: int | None = None
    ) -> None:
        """Append a record, written now unless ``ts_ms`` says when."""
        ts = int(time.time() * 1000) if ts_ms is None else ts_ms
        self.log.setdefault(tp, []).append((key, value, ts))

    def assign(self, tps: Iterable[TopicPartition]) -> None:
        # as aiokafka: a new assignment starts unpaused at the earliest offset unless sought
        self._assigned = list(tps)
        self._pos = dict.fromkeys(self._assigned, 0)
        self.paused = set()

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._pos[tp] = offset

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    async def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.log.get(tp, [])) for tp in tps}

    async def position(self, tp: TopicPartition) -> int:
        return self._pos[tp]

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        out: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        for tp in tps:
            if tp in self.paused or tp not in self._pos:
                continue
            start = self._pos[tp]
            rows = self.log.get(tp, [])[start : start + self.fetch]
            if rows:
                out[tp] = [
                    ConsumerRecord(tp.topic, tp.partition, start + i, ts, 0, k, v, None, 0, 0, ())
                    for i, (k, v, ts) in enumerate(rows)
                ]
                self._pos[tp] = start + len(rows)
        if not out:
            await asyncio.sleep(0)
        return out


@dataclass
class _Meta:
    offset: int


class FakeProducer:
    """Records the transaction's calls in order; assigns offsets per partition as a broker
    would. ``refuse`` names a topic whose records fail their own future."""

    def __init__(self, refuse: str | None = None) -> None:
        self.calls: list[str] = []
        self.refuse = refuse
        self.sent: list[tuple[str, bytes | None, int | None]] = []
        self.offsets: dict[tuple[str, int], int] = {}

    def _future(self, topic: str, partition: int, n: int) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if topic == self.refuse:
            fut.set_exception(RuntimeError(f"{topic} refused the record"))
            return fut
        first = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = first + n
        fut.set_result(_Meta(first))
        return fut

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def commit_transaction(self) -> None:
        self.calls.append("commit")

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None,
        partition: int | None,
        **kw: Any,
    ) -> asyncio.Future[Any]:
        self.calls.append(f"send {topic}")
        self.sent.append((topic, value, partition))
        return self._future(topic, partition or 0, 1)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        self.calls.append(f"batch {topic}[{partition}]")
        return self._future(topic, partition, batch._relative_offset)

    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None:
        self.calls.append(f"offsets {group_id}")

    async def stop(self) -> None:
        self.calls.append("stop")


class RecordingStore(LocalStore):
    """A local store that keeps what it is given (MemoryStore keeps nothing)."""

    def __init__(self) -> None:
        self.rows: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self.next: dict[int, int] = {}

    def load(self, partition: int) -> tuple[Iterator[tuple[bytes, bytes]], int]:
        latest = dict(self.rows.get(partition, []))  # as compaction keeps them
        live = [(k, v) for k, v in latest.items() if v is not None]
        return iter(live), self.next.get(partition, 0)

    def save(
        self, partition: int, records: Sequence[tuple[bytes, bytes | None]], next_offset: int
    ) -> None:
        self.rows.setdefault(partition, []).extend(records)
        self.next[partition] = next_offset

    def drop(self, partition: int) -> None:
        self.rows.pop(partition, None)
        self.next.pop(partition, None)
