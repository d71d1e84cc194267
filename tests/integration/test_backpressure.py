"""Back-pressure on the real broker: a burst far above the sustained rate leaves the worker's
memory bounded and loses nothing.

50,000 small valid transactions are produced as fast as the client allows (aiokafka: 2 s
here, 30,000-50,000/s, against a sustained simulator feed of a few hundred per second)
before the worker starts; then the worker works the backlog off at full speed. It must
not buffer the backlog in memory: Faust's flow control and the batch size
(DFIP_WORKER_BATCH_SIZE) bound what is in flight, so its peak resident memory (VmHWM in
/proc/<pid>/status) must stay under MEMORY_BOUND_MIB, a generous bound — a memory bound, not
a wall-clock one — about four times the measured peak (docs/operations.md records it; a
100,000-record burst peaked at about the same figure, so memory does not grow with the
backlog). Every figure must equal the exact expectation computed here from what was sent
(the simulator's independent oracle applied to these records), and so must the closed
event-time windows on dfip.metrics.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from stdnum.cn import uscc as stdnum_uscc

from adapters.simulator.model import Record, TxFact
from adapters.simulator.oracle import Oracle
from core.kafka_config import KafkaSettings
from schemas.catalog import USCC_PARTITIONS, partition_for
from schemas.codec import decode
from tests.integration.test_stream_exact import assert_exact, assert_flow_identity
from tests.support.workers import (
    WorkerProcess,
    closed_windows,
    oracle_figures,
    oracle_windows,
    wait_converged,
)

BURST = 50_000
MEMORY_BOUND_MIB = 600
TX = "dfip.transactions"
START = datetime(2025, 3, 3, tzinfo=UTC)
STEP = timedelta(milliseconds=100)  # 50,000 events span 83 minutes of event time
# Division codes of a few Zhejiang prefectures and one outside Zhejiang ("other").
DIVISIONS = ("330102", "330203", "330304", "330402", "330502", "330602", "110105")
SOURCES = (("icbc", "bank"), ("alipay", "fintech"), ("webank", "joint"))


def enterprises(n: int) -> list[str]:
    """`n` valid USCCs (check character computed by python-stdnum) across the divisions."""
    out = []
    for i in range(n):
        body = f"91{DIVISIONS[i % len(DIVISIONS)]}MA{i:07d}"
        out.append(body + stdnum_uscc.calc_check_digit(body))
    return out


def burst() -> tuple[list[tuple[int, bytes, bytes]], Oracle]:
    """(partition, key, value) of every record, and the oracle fed with the same facts."""
    ents = enterprises(300)
    oracle = Oracle(grace_seconds=600)
    records = []
    for i in range(BURST):
        uscc = ents[i % len(ents)]
        source, inst = SOURCES[i % len(SOURCES)]
        direction = "credit" if i % 3 else "debit"
        amount = Decimal(f"{1 + i % 99_991}.{i % 100:02d}")
        at = START + i * STEP
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        day = at.date().isoformat()
        event_id = f"burst-{i:06d}"
        value = (
            f'{{"kind":"transaction","event_id":"{event_id}","schema_version":1,'
            f'"source":"{source}","institution_type":"{inst}","occurred_at":"{stamp}",'
            f'"enterprise_uscc":"{uscc}","direction":"{direction}","amount":"{amount}",'
            f'"currency":"CNY","booking_date":"{day}","value_date":"{day}"}}'
        ).encode()
        part = partition_for(uscc)
        records.append((part, uscc.encode(), value))
        fact = TxFact(event_id, uscc, at, inst, direction, amount, "CNY", None)
        oracle.observe(Record(TX, part, part, fact))
    return records, oracle


async def produce_fast(settings: KafkaSettings, records: list[tuple[int, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
        **settings.aiokafka_config(),
    )
    await producer.start()
    try:
        topic = settings.topic(TX)
        futures = [
            await producer.send(topic, value, key=key, partition=part)
            for part, key, value in records
        ]
        await producer.flush()
        for f in futures:
            f.result()  # raises if any record was not delivered
    finally:
        await producer.stop()


def peak_rss_mib(worker: WorkerProcess) -> float:
    """Peak resident memory of the worker process so far (VmHWM)."""
    assert worker.proc is not None
    status = Path(f"/proc/{worker.proc.pid}/status").read_text()
    (line,) = [x for x in status.splitlines() if x.startswith("VmHWM:")]
    return int(line.split()[1]) / 1024


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib must talk to the worker on loopback directly
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def test_a_burst_leaves_memory_bounded_and_loses_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    records, oracle = burst()
    assert decode(records[0][2]).event_id == "burst-000000"  # the template is a valid event
    assert len({p for p, _, _ in records}) == USCC_PARTITIONS  # every partition gets load
    result = oracle.result({})
    expected = oracle_figures(result)

    t0 = time.monotonic()
    asyncio.run(produce_fast(kafka_settings, records))
    produce_s = time.monotonic() - t0

    worker = WorkerProcess(kafka_settings, "burst", tmp_path).start()
    try:
        t0 = time.monotonic()
        got = wait_converged([worker], expected, timeout=300)
        drain_s = time.monotonic() - t0  # includes the worker's start-up
        peak = peak_rss_mib(worker)

        assert worker.alive
        assert_exact(got, expected)
        assert_flow_identity(got)
        assert closed_windows(kafka_settings) == oracle_windows(result)
        print(
            f"\nburst of {BURST:,} records produced in {produce_s:.1f}s "
            f"({BURST / produce_s:,.0f}/s); worked off in {drain_s:.1f}s "
            f"({BURST / drain_s:,.0f}/s incl. start-up); peak RSS {peak:.0f} MiB "
            f"(bound {MEMORY_BOUND_MIB} MiB)"
        )
        assert peak < MEMORY_BOUND_MIB, f"peak RSS {peak:.0f} MiB"
    finally:
        worker.stop()
