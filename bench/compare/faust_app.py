"""The comparison job as a plain Faust agent (faust-streaming, exactly_once).

`python -m bench.compare.faust_app BOOTSTRAP SCORES TRANSACTIONS OUTPUT APP_ID`

The score table is read to its end when the worker starts (a global lookup table, as Kafka
Streams bootstraps a GlobalKTable): Faust gives no order between two topics, so a table fed
by a second agent could be read before its scores arrive. The transactions agent joins each
event with it and sends it re-keyed to ``band|day`` to a topic of the app (the repartition
Kafka Streams' groupBy makes); the aggregating agent adds each re-keyed event to a Faust
table and sends the updated ``count,fen`` of its key to the output topic. Faust commits the
offsets, table changelog and output of each partition in one Kafka transaction.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncIterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer

from bench.compare.job import band
from schemas.money import to_fen

_BEIJING = timedelta(hours=8)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


async def load_scores(bootstrap: str, topic: str) -> dict[str, tuple[datetime, str]]:
    """USCC -> (assessed_at, band) of the newest assessment (a tie: the one read last)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    latest: dict[str, tuple[datetime, str]] = {}
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            await asyncio.sleep(0.1)
            await consumer._client.force_metadata_update()  # first use of the topic
            partitions = consumer.partitions_for_topic(topic)
        from aiokafka import TopicPartition

        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    s = orjson.loads(r.value)
                    at = _utc(s["assessed_at"])
                    old = latest.get(s["enterprise_uscc"])
                    if old is None or at >= old[0]:
                        latest[s["enterprise_uscc"]] = (at, band(Decimal(str(s["overall_score"]))))
    finally:
        await consumer.stop()
    return latest


def build(bootstrap: str, scores: str, transactions: str, output: str, app_id: str) -> faust.App:
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        processing_guarantee="exactly_once",
        store="memory://",
        datadir=tempfile.mkdtemp(prefix="compare-faust-"),
        topic_partitions=12,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_acks=-1,
    )
    tx_topic = app.topic(transactions, key_serializer="raw", value_serializer="raw")
    out_topic = app.topic(output, key_serializer="raw", value_serializer="raw")
    joined = app.topic(
        f"{app_id}-joined",
        key_serializer="raw",
        value_serializer="raw",
        internal=True,
        partitions=12,
    )
    totals = app.Table("totals", default=lambda: "0,0", partitions=12, key_type=bytes)
    table: dict[str, tuple[datetime, str]] = {}
    loaded = asyncio.Event()

    @app.task
    async def bootstrap_scores() -> None:
        table.update(await load_scores(bootstrap, scores))
        loaded.set()

    @app.agent(tx_topic)
    async def join(stream: AsyncIterable[bytes]) -> None:
        await loaded.wait()
        async for value in stream:
            t: Any = orjson.loads(value)
            score = table.get(t["enterprise_uscc"])
            b = score[1] if score else "unscored"
            day = (_utc(t["occurred_at"]) + _BEIJING).date().isoformat()
            fen = to_fen(Decimal(str(t["amount"])))
            await joined.send(key=f"{b}|{day}".encode(), value=str(fen).encode())

    @app.agent(joined)
    async def aggregate(stream: Any) -> None:
        # event by event: a table write goes to the changelog partition of the event being
        # processed, so batching events of several partitions into one write would be wrong
        async for event in stream.events():
            c, f = totals[event.key].split(",")
            new = f"{int(c) + 1},{int(f) + int(event.value)}"
            totals[event.key] = new
            await out_topic.send(key=event.key, value=new.encode())

    return app


def main(argv: list[str]) -> None:
    bootstrap, scores, transactions, output, app_id = argv
    app = build(bootstrap, scores, transactions, output, app_id)
    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


if __name__ == "__main__":
    main(sys.argv[1:])
