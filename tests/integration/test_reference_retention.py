"""FX publications survive the broker's log cleaner (docs/operations.md, Reference topics keep
every record): an existing compacted dfip.fx is set back to the catalog by `create_topics`, and
once the cleaner has compacted a topic with the old settings (the control), a worker's reader
still finds the first publication of a corrected rate on dfip.fx, so a restart converts an
event between publication and correction at the same rate as the live worker did."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from core.kafka_admin import admin_client, create_topics
from core.kafka_config import KafkaSettings
from schemas.catalog import FX
from schemas.codec import decode, encode
from schemas.events import FxRate
from streams.reference.fx import FxTable
from streams.reference.reader import ReferenceReader
from tests.support.workers import read_topic, wait_for

# what dfip.fx was before, with a cleaner that acts within seconds: every segment older than
# 100 ms rolls on the next append, and any superseded record makes a segment cleanable
OLD_FX = {"cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01"}
CONTROL = "fx-compacted"


def _at(day: int, hh: int) -> datetime:
    return datetime(2026, 2, day, hh, tzinfo=UTC)


def _rate(day: int, rate: str, published: datetime, currency: str = "USD") -> FxRate:
    return FxRate(
        event_id=f"fx-{currency}-{day}-{rate}",
        source="cfets",
        currency=currency,
        rate_date=date(2026, 2, day),
        rate_to_cny=Decimal(rate),
        published_at=published,
    )


THU = _rate(12, "6.9000", _at(12, 1))
FRI = _rate(13, "7.0000", _at(13, 1))  # 09:15 Beijing
FRI_CORRECTED = _rate(13, "7.0500", _at(13, 8))  # 16:00 Beijing: in force from 09:15 still
BETWEEN = _at(13, 3)  # an event at 11:00 Beijing


def _table(settings: KafkaSettings, topic: str) -> FxTable:
    """The FX table a (re)starting worker builds: its reader, from offset 0 to the end."""

    async def read() -> FxTable:
        reader = ReferenceReader(settings, scores_topic="unused", fx_topic=topic)
        await reader.start()
        table = FxTable()
        try:
            async for _, records in reader.catch_up([]):
                for r in records:
                    ev = decode(r.value)
                    assert isinstance(ev, FxRate)
                    table.put(ev.currency, ev.rate_date, ev.rate_to_cny, ev.published_at, r.offset)
        finally:
            await reader.stop()
        return table

    return asyncio.run(read())


def test_fx_keeps_the_first_publication_where_compaction_would_lose_it(
    kafka_bootstrap: str,
) -> None:
    settings = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}-"
    )
    fx, control = settings.topic(FX.name), settings.topic(CONTROL)
    admin = admin_client(settings)
    try:
        admin.create_topics([NewTopic(t, 1, 1, topic_configs=OLD_FX) for t in (fx, control)])
    finally:
        admin.close()

    # an existing dfip.fx as the catalog used to make it: set back, and said so
    (result,) = create_topics(settings, [FX])
    assert not result.created
    assert "cleanup.policy: compact → delete" in result.reconfigured
    # (the broker's default retention before: 7 days on deploy/kafka's broker)
    assert any(c.startswith("retention.ms: ") and c.endswith(" → -1") for c in result.reconfigured)
    admin = admin_client(settings)
    try:
        got = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, fx, list(FX.topic_config()))],
            config_filter="all",
        )["topic"][fx]
    finally:
        admin.close()
    assert {k: v["value"] for k, v in got.items()} == FX.topic_config()
    assert create_topics(settings, [FX])[0].reconfigured == ()  # nothing left to change

    producer = KafkaProducer(acks="all", **settings.kafka_python_config())
    try:

        def send(rate: FxRate) -> None:
            for topic in (fx, control):
                producer.send(topic, encode(rate), key=rate.key.encode(), partition=0)
            producer.flush(timeout=30)

        for rate in (THU, FRI, FRI_CORRECTED):
            send(rate)
        fillers = iter(range(1, 10_000))

        def compacted() -> bool:
            # each append rolls the segment before it (older than segment.ms): cleanable
            send(_rate(2, f"8.{next(fillers):04d}", _at(2, 1), currency="EUR"))
            return all(r.value != encode(FRI) for r in read_topic(settings, CONTROL))

        started = time.monotonic()
        wait_for(compacted, timeout=120, interval=1.0, what="the log cleaner on the control")
        print(f"control compacted after {time.monotonic() - started:.1f} s")
    finally:
        producer.close()

    # with the old settings a restarting worker finds only the correction, in force from
    # 16:00, and converts the 11:00 event at Thursday's rate: not what the live worker did
    assert _table(settings, control).rate_at("USD", BETWEEN) == Decimal("6.9000")
    # dfip.fx rolled the same segments and kept every publication: the live rate
    kept = [decode(r.value) for r in read_topic(settings, FX.name)]
    assert kept[:3] == [THU, FRI, FRI_CORRECTED]
    assert _table(settings, fx).rate_at("USD", BETWEEN) == Decimal("7.0500")
