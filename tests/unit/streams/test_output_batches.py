"""The batch's outputs: those with a partition go as record batches per topic-partition (every
record once, in order, with its key, value, headers and timestamp); the others via send."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.record.memory_records import MemoryRecords
from hypothesis import given, settings
from hypothesis import strategies as st

from core.kafka_config import KafkaSettings
from streams.engine.committer import _send_outputs
from streams.processor import Output

Row = tuple[str, int | None, bytes | None, bytes | None, tuple[tuple[str, bytes], ...], int | None]


class _Producer:
    """Records what was sent, per concrete topic and partition (None: the partitioner's)."""

    def __init__(self) -> None:
        self.got: list[Row] = []

    def _done(self) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def send(self, topic: str, value: Any, **kw: Any) -> asyncio.Future[Any]:
        assert "partition" not in kw or kw["partition"] is None
        headers = tuple(kw["headers"] or ())
        self.got.append((topic, None, kw["key"], value, headers, kw["timestamp_ms"]))
        return self._done()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        batch._set_producer_state(1, 0, 0)
        records = MemoryRecords(bytes(batch._build()))
        while records.has_next():
            rb = records.next_batch()
            assert rb.compression_type == 0  # outputs stay uncompressed
            for r in rb:
                headers = tuple(r.headers)
                self.got.append((topic, partition, r.key, r.value, headers, r.timestamp))
        return self._done()


_OUT = st.builds(
    Output,
    topic=st.sampled_from(["dfip.alerts", "dfip.late", "dfip.deadletter"]),
    key=st.one_of(st.none(), st.binary(min_size=1, max_size=8)),
    value=st.sampled_from([b"v", b"{}", b"x" * 9_000]),  # two of the large fill a batch
    partition=st.one_of(st.none(), st.integers(0, 2)),
    headers=st.sampled_from([(), (("dfip-late", b"1"),)]),
    timestamp_ms=st.one_of(st.none(), st.integers(1, 2**41)),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_OUT, max_size=25))
def test_every_output_once_in_order_per_partition(outputs: list[Output]) -> None:
    kafka = KafkaSettings(topic_prefix="t.")
    producer = _Producer()
    sent: list[asyncio.Future[Any]] = []

    async def go() -> None:
        await _send_outputs(producer, kafka, outputs, sent, transactional=True)  # type: ignore[arg-type]

    asyncio.run(go())

    def per_partition(rows: list[Row]) -> dict[tuple[str, int | None], list[Row]]:
        out: dict[tuple[str, int | None], list[Row]] = {}
        for row in rows:
            out.setdefault((row[0], row[1]), []).append(row)
        return out

    expected = [
        ("t." + o.topic, o.partition, o.key, o.value, tuple(o.headers), o.timestamp_ms)
        for o in outputs
    ]
    got = per_partition(producer.got)
    want = per_partition(expected)
    # a record without a timestamp gets the producer's clock
    assert got.keys() == want.keys()
    for tp, rows in want.items():
        assert len(got[tp]) == len(rows)
        for g, w in zip(got[tp], rows, strict=True):
            assert g[:5] == w[:5]
            assert w[5] is None or g[5] == w[5]
    assert all(f.done() for f in sent)
