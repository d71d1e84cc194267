"""Run the feed into Kafka: rate limiting, stop conditions, flush barriers, the oracle."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from adapters.producer import EventProducer
from adapters.simulator.feed import SECOND_US, Feed, FeedConfig
from adapters.simulator.model import FxFact, Record, ScoreFact
from adapters.simulator.oracle import Oracle
from core.kafka_config import KafkaSettings
from schemas import Event

__all__ = [
    "SimulationConfig",
    "SimulationResult",
    "Sink",
    "TokenBucket",
    "run_simulation",
]


class _Report(Protocol):
    @property
    def sent(self) -> int: ...
    @property
    def failed(self) -> int: ...


class Sink(Protocol):
    """What the simulator needs from `adapters.producer.EventProducer` (fakes in tests)."""

    def send(self, event: Event) -> None: ...
    def send_raw(
        self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None
    ) -> None: ...
    def flush(self, timeout: float | None = None) -> _Report: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    seed: int = 7
    events: int | None = None
    duration: float | None = None  # wall-clock seconds
    rate: float = 0.0  # records per second; 0 = as fast as the broker takes them
    start: datetime = datetime(2025, 3, 3, tzinfo=UTC)
    step_seconds: Decimal = Decimal(1)
    grace_seconds: int = 600
    bad_rate: float = 0.01
    enterprises: int = 2000
    score_round_seconds: int = 6 * 3600
    loan_month_seconds: int = 3600
    dedup_retention_days: int = 45
    aml_permille: int = 1  # suspicious patterns planted for the rules (FeedConfig)

    def feed_config(self) -> FeedConfig:
        return FeedConfig(
            seed=self.seed,
            aml_permille=self.aml_permille,
            start=self.start,
            step_us=int(self.step_seconds * SECOND_US),
            grace_seconds=self.grace_seconds,
            bad_rate=self.bad_rate,
            enterprises=self.enterprises,
            score_round_seconds=self.score_round_seconds,
            loan_month_seconds=self.loan_month_seconds,
        )

    @property
    def endless(self) -> bool:
        """Neither --events nor --duration: run until stopped (as `dfip run` does)."""
        return self.events is None and self.duration is None


@dataclass(frozen=True, slots=True)
class SimulationResult:
    records: int
    by_topic: dict[str, int]
    anomalies: dict[str, int]
    delivered: int
    elapsed_seconds: float
    oracle: dict[str, Any] = field(repr=False)

    @property
    def rate(self) -> float:
        """Records per second, wall clock, including the final flush."""
        return self.records / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


class TokenBucket:
    """Smooth rate limit with a small burst (50 ms worth of tokens)."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate, self._clock, self._sleep = rate, clock, sleep
        self.burst = max(1.0, rate / 20)
        self._tokens = self.burst
        self._last = clock()

    def take(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            wait = (1 - self._tokens) / self.rate
            self._sleep(wait)
            self._last += wait
            self._tokens = 1.0
        self._tokens -= 1


def _event_time(record: Record) -> datetime | None:
    fact = record.fact
    if fact is None:
        return None
    if isinstance(fact, FxFact):
        return fact.published_at
    if isinstance(fact, ScoreFact):
        return fact.assessed_at
    return fact.occurred_at


def _send(sink: Sink, record: Record) -> None:
    if record.raw is not None:
        sink.send_raw(record.topic, record.raw, key=record.key, partition=record.partition)
    else:
        assert record.event is not None
        sink.send(record.event)


def run_simulation(
    settings: KafkaSettings | None,
    config: SimulationConfig,
    *,
    sink: Sink | None = None,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> SimulationResult:
    """Produce the feed for `config` and return counts plus the oracle for what was sent.

    `sink` defaults to an `EventProducer` for `settings`. Score rounds and FX batches are
    flushed before anything later is sent (the stream's ordering contract). Setting `stop`
    ends the run cleanly between two records (a signal handler does that), so the oracle
    always matches exactly what was sent.
    """
    if sink is None:
        if settings is None:
            raise ValueError("settings are required without a sink")
        sink = EventProducer(settings, client_id="dfip-simulator")
    oracle = Oracle(
        grace_seconds=config.grace_seconds, dedup_retention_days=config.dedup_retention_days
    )
    bucket = TokenBucket(config.rate) if config.rate > 0 else None
    limit = config.events
    began = time.monotonic()
    deadline = None if config.duration is None else began + config.duration
    by_topic: Counter[str] = Counter()
    anomalies: Counter[str] = Counter()
    delivered = n = 0
    end: datetime | None = None
    try:
        for record in Feed(config.feed_config()):
            if limit is not None and n >= limit:
                break
            if (stop is not None and stop.is_set()) or (
                deadline is not None and time.monotonic() >= deadline
            ):
                break
            if bucket is not None:
                bucket.take()
            _send(sink, record)
            oracle.observe(record)
            n += 1
            by_topic[record.topic] += 1
            if record.anomaly is not None:
                anomalies[record.anomaly] += 1
            at = _event_time(record)
            if at is not None and (end is None or at > end):
                end = at
            if record.barrier:
                delivered += sink.flush().sent
            elif n % 1000 == 0 and (check := getattr(sink, "raise_if_failed", None)):
                check()  # records already failed (a long outage): stop now, not at a barrier
            if progress is not None and n % 500 == 0:
                progress(n)
        delivered += sink.flush().sent
    finally:
        sink.close()
    elapsed = time.monotonic() - began
    if progress is not None:
        progress(n)
    meta = {
        "seed": config.seed,
        "events": n,
        "start": config.start.astimezone(UTC).isoformat(),
        "end": (end or config.start).astimezone(UTC).isoformat(),
        "step_seconds": str(config.step_seconds),
        "enterprises": config.enterprises,
        "bad_rate": config.bad_rate,
        "topic_prefix": settings.topic_prefix if settings is not None else "",
    }
    return SimulationResult(
        records=n,
        by_topic=dict(by_topic),
        anomalies=dict(anomalies),
        delivered=delivered,
        elapsed_seconds=elapsed,
        oracle=oracle.result(meta),
    )
