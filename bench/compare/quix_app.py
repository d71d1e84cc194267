"""The comparison job in Quix Streams (exactly-once), run from bench/compare/.venv-quix.

`python -m bench.compare.quix_app BOOTSTRAP SCORES TRANSACTIONS OUTPUT APP_ID`

Standalone (quixstreams and the standard library only): Quix Streams cannot share the main
install (see quix-requirements.txt). The score table is read to its end first (as the Faust
app does, and for the same reason: no order between two topics); each transaction is joined
with it, re-keyed by band (``group_by``: a repartition topic) and reduced in a tumbling day
window on Beijing time (event time = ``occurred_at`` + 8 h, so the epoch-aligned windows are
Beijing days); every update goes to the output topic as ``band|day`` -> ``count,fen``.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

_BEIJING_MS = 8 * 3600 * 1000
_DAY_MS = 24 * 3600 * 1000


def band(score: Decimal | None) -> str:
    """docs/metrics.md: < 20 l0, [20, 40) l1, [40, 60) l2, [60, 80) l3, >= 80 l4."""
    if score is None:
        return "unscored"
    for limit, name in ((20, "l0"), (40, "l1"), (60, "l2"), (80, "l3")):
        if score < limit:
            return name
    return "l4"


def fen(amount: Any) -> int:
    """CNY amount -> integer fen, half to even (schemas.money.to_fen at rate 1)."""
    return int((Decimal(str(amount)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _ms(text: str) -> int:
    return int(_utc(text).timestamp() * 1000)


def load_scores(bootstrap: str, topic: str) -> dict[str, tuple[datetime, str]]:
    """USCC -> (assessed_at, band) of the newest assessment (a tie: the one read last)."""
    import json

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition  # type: ignore[import-not-found]

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    latest: dict[str, tuple[datetime, str]] = {}
    try:
        meta = consumer.list_topics(topic, timeout=30)
        tps = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.topics[topic].partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in tps}
        consumer.assign(tps)
        left = {p for p, end in ends.items() if end > 0}
        while left:
            for m in consumer.consume(10_000, timeout=1.0):
                if m.error():
                    raise RuntimeError(str(m.error()))
                s = json.loads(m.value())
                at = _utc(s["assessed_at"])
                old = latest.get(s["enterprise_uscc"])
                if old is None or at >= old[0]:
                    latest[s["enterprise_uscc"]] = (at, band(Decimal(str(s["overall_score"]))))
                if m.offset() + 1 >= ends[m.partition()]:
                    left.discard(m.partition())
    finally:
        consumer.close()
    return latest


def main(argv: list[str]) -> None:
    from quixstreams import Application  # type: ignore[import-not-found]
    from quixstreams.models import Serializer  # type: ignore[import-not-found]

    class OutputValue(Serializer):  # type: ignore[misc]
        """``count,fen`` of a {"k": key, "v": value} row (the key is serialised apart)."""

        def __call__(self, value: dict[str, str], ctx: Any) -> bytes:
            return value["v"].encode()

    bootstrap, scores, transactions, output, app_id = argv
    table = load_scores(bootstrap, scores)
    app = Application(
        broker_address=bootstrap,
        consumer_group=app_id,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        state_dir=tempfile.mkdtemp(prefix="compare-quix-"),
        loglevel="WARNING",
    )
    tx = app.topic(
        transactions,
        key_deserializer="str",
        value_deserializer="json",
        timestamp_extractor=lambda value, headers, ts, ts_type: (
            _ms(value["occurred_at"]) + _BEIJING_MS
        ),
    )
    out = app.topic(output, key_serializer="str", value_serializer=OutputValue())

    def join(t: dict[str, Any]) -> dict[str, Any]:
        score = table.get(t["enterprise_uscc"])
        return {"band": score[1] if score else "unscored", "fen": fen(t["amount"])}

    sdf = app.dataframe(tx).apply(join).group_by(lambda v: v["band"], name="band")
    sdf = (
        sdf.tumbling_window(timedelta(days=1), grace_ms=timedelta(days=30))
        .reduce(
            reducer=lambda agg, v: [agg[0] + 1, agg[1] + v["fen"]],
            initializer=lambda v: [1, v["fen"]],
        )
        .current()
    )

    def record(w: dict[str, Any]) -> str:
        return f"{w['value'][0]},{w['value'][1]}"

    def day(w: dict[str, Any]) -> str:
        return datetime.fromtimestamp(w["start"] / 1000, UTC).date().isoformat()

    sdf = sdf.apply(
        lambda w, key, ts, headers: {"k": f"{key}|{day(w)}", "v": record(w)}, metadata=True
    )
    sdf.to_topic(out, key=lambda d: d["k"])
    app.run()


if __name__ == "__main__":
    main(sys.argv[1:])
