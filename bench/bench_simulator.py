"""Sustained produce rate of `dfip simulate` against a real Kafka broker.

    .venv/bin/python bench/bench_simulator.py [--events 50000] [--runs 3]
        [--bootstrap 127.0.0.1:9092] [--write bench/RESULTS_simulator.md]

Each run produces `--events` records of the default province (2,000 enterprises, 1 % bad
input, 1 simulated second per event) into a fresh topic namespace, as fast as the broker
takes them, and times it up to the final flush (every record acknowledged, acks=all). The
figure reported is the median of `--runs` runs. For context it also times the same feed
without Kafka (generation + oracle only) and the producer alone (pre-built records), so a
reader can see where the time goes. Topics created here are deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.producer import EventProducer
from adapters.simulator.feed import Feed
from adapters.simulator.runner import SimulationConfig, run_simulation
from core.errors import DfipError
from core.kafka_admin import admin_client, create_topics
from core.kafka_config import KafkaSettings
from schemas import Event
from schemas.catalog import ALL_TOPICS


class _NullReport:
    sent = 0
    failed = 0


class _NullSink:
    def send(self, event: Event) -> None:
        pass

    def send_raw(self, topic: str, value: bytes, *, key: Any = None, partition: Any = None) -> None:
        pass

    def flush(self, timeout: float | None = None) -> _NullReport:
        return _NullReport()

    def close(self) -> None:
        pass


def _fresh(bootstrap: str) -> KafkaSettings:
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, topic_prefix=f"bench-sim-{uuid.uuid4().hex[:8]}-"
    )
    for attempt in range(5):
        try:
            create_topics(settings)
            break
        except DfipError:
            # a topic just created may be described with 0 partitions for a moment
            if attempt == 4:
                raise
            time.sleep(1)
    return settings


def _drop(settings: KafkaSettings) -> None:
    admin = admin_client(settings)
    with contextlib.suppress(Exception):
        admin.delete_topics([settings.topic(s.name) for s in ALL_TOPICS])
    admin.close()


def _full(bootstrap: str, config: SimulationConfig) -> float:
    settings = _fresh(bootstrap)
    try:
        result = run_simulation(settings, config)
        assert result.delivered == result.records == config.events
        return result.rate
    finally:
        _drop(settings)


def _generation_only(config: SimulationConfig) -> float:
    result = run_simulation(None, config, sink=_NullSink())
    return result.rate


def _producer_only(bootstrap: str, config: SimulationConfig) -> float:
    assert config.events is not None
    records = list(itertools.islice(Feed(config.feed_config()), config.events))
    settings = _fresh(bootstrap)
    try:
        producer = EventProducer(settings, client_id="bench-simulator")
        began = time.perf_counter()
        for r in records:
            if r.raw is not None:
                producer.send_raw(r.topic, r.raw, key=r.key, partition=r.partition)
            else:
                assert r.event is not None
                producer.send(r.event)
        producer.flush()
        elapsed = time.perf_counter() - began
        producer.close()
        return len(records) / elapsed
    finally:
        _drop(settings)


def _machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    crc = "yes" if importlib.util.find_spec("crc32c") else "no (pure-Python CRC32C)"
    import kafka

    return (
        f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, kafka-python {kafka.__version__}, "
        f"crc32c extension: {crc}, load average at start {load[0]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--write", type=Path, default=None, help="write a markdown report")
    parser.add_argument(
        "--append", action="store_true", help="add a section to --write instead of replacing it"
    )
    args = parser.parse_args()
    config = SimulationConfig(seed=7, events=args.events)
    machine = _machine()
    full = [_full(args.bootstrap, config) for _ in range(args.runs)]
    gen = [_generation_only(config) for _ in range(args.runs)]
    prod = [_producer_only(args.bootstrap, config) for _ in range(args.runs)]
    rows = [
        ("`dfip simulate` to Kafka (feed + oracle + producer)", full),
        ("feed + oracle only (no Kafka)", gen),
        ("producer only (pre-built records)", prod),
    ]
    lines = [
        "| what | records/s (median) | runs |",
        "|---|---:|---|",
        *(
            f"| {name} | {statistics.median(v):,.0f} | {', '.join(f'{x:,.0f}' for x in v)} |"
            for name, v in rows
        ),
    ]
    table = "\n".join(lines)
    print(table)
    if args.write is not None:
        command = "python bench/bench_simulator.py " + " ".join(sys.argv[1:])
        section = (
            f"## {datetime.now(UTC).isoformat(timespec='seconds')}\n\n"
            f"- command: `{command.strip()}`\n"
            f"- machine: {machine}; load average at the end "
            f"{os.getloadavg()[0]:.2f}\n"
            f"- broker: Apache Kafka 4.1.1 (deploy/kafka/kafka.sh, KRaft, single node) at "
            f"{args.bootstrap}\n"
            f"- workload: {args.events:,} records per run, seed 7, 2,000 enterprises, "
            "1 % bad input, acks=all idempotent producer, timed to the final flush\n\n"
            f"{table}\n"
        )
        header = "# Simulator produce rate\n\n"
        if args.append and args.write.exists():
            args.write.write_text(
                args.write.read_text(encoding="utf-8") + "\n" + section, encoding="utf-8"
            )
        else:
            args.write.write_text(header + section, encoding="utf-8")


if __name__ == "__main__":
    main()
