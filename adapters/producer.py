"""The adapters' Kafka producer: idempotent, keyed by enterprise, every delivery accounted for.

kafka-python reports deliveries on its I/O thread; the producer counts successes and
failures per topic there, and `flush()` raises `DeliveryError` when any record since the
previous flush was not delivered — nothing is ever lost silently.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

from kafka import KafkaAdminClient, KafkaProducer
from kafka.codec import has_lz4
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from dfip.kafka_config import KafkaSettings
from schemas import DeadLetter, Event, encode, message_key, partition_for

__all__ = [
    "DEAD_LETTER_TOPIC",
    "TOPIC_BY_KIND",
    "DeliveryError",
    "DeliveryReport",
    "EventProducer",
    "KafkaUnavailable",
]

TOPIC_BY_KIND: Final[dict[str, str]] = {
    "transaction": "dfip.transactions",
    "loan": "dfip.loans",
    "digitalization_score": "dfip.scores",
    "fx_rate": "dfip.fx",
}
_USCC_KINDS: Final = frozenset({"transaction", "loan", "digitalization_score"})
DEAD_LETTER_TOPIC: Final = "dfip.deadletter"
_MAX_ERRORS_KEPT = 20
BOOTSTRAP_TIMEOUT_MS: Final = 10_000  # how long an unreachable cluster is waited for at start


@dataclass(frozen=True)
class DeliveryReport:
    """Deliveries completed since the previous flush (`by_topic`: delivered per catalog name)."""

    sent: int
    failed: int
    by_topic: dict[str, int] = field(default_factory=dict)


class DeliveryError(RuntimeError):
    """Some records were not delivered; `report` has the counts, `errors` the first causes."""

    def __init__(self, report: DeliveryReport, errors: list[str], pending: int = 0) -> None:
        self.report = report
        self.errors = errors
        self.pending = pending
        what = f"{report.failed} record(s) not delivered"
        if pending:
            what += f", {pending} still in flight at the flush timeout"
        first = f" (first error: {errors[0]})" if errors else ""
        super().__init__(what + first)


class KafkaUnavailable(RuntimeError):
    """The brokers cannot be reached (at start-up)."""


class EventProducer:
    """Sends canonical events to their catalog topic; see the module docstring."""

    def __init__(self, settings: KafkaSettings, *, client_id: str = "dfip-adapter") -> None:
        self._settings = settings
        try:
            self._producer = KafkaProducer(
                **settings.kafka_python_config(),
                client_id=client_id,
                acks="all",
                enable_idempotence=True,  # retries never duplicate or reorder a partition
                retries=2_147_483_647,  # bounded by delivery_timeout_ms instead
                delivery_timeout_ms=120_000,
                max_in_flight_requests_per_connection=5,
                linger_ms=5,
                compression_type="lz4" if has_lz4() else None,
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            )
        except (KafkaTimeoutError, KafkaConnectionError):
            raise KafkaUnavailable(
                f"Kafka is unreachable at {settings.bootstrap_servers}"
            ) from None
        self._lock = threading.Lock()
        self._sent = 0
        self._failed = 0
        self._pending = 0
        self._by_topic: Counter[str] = Counter()
        self._errors: list[str] = []
        self._total_sent = 0
        self._total_failed = 0

    # -- sending -------------------------------------------------------------------------

    def send(self, event: Event) -> None:
        """Encode `event` and send it to its topic, keyed (and partitioned) by the catalog."""
        kind: str = event.kind
        topic = TOPIC_BY_KIND.get(kind)
        if topic is None:
            raise TypeError(f"no topic for {type(event).__name__} (kind {kind!r})")
        key = message_key(event)
        # USCC topics are co-partitioned: the partition is chosen from the USCC itself,
        # also for scores whose key carries the assessment time as well.
        partition = partition_for(event.enterprise_uscc) if kind in _USCC_KINDS else None  # type: ignore[union-attr]
        self._send(topic, encode(event), key.encode("utf-8") if key else None, partition)

    def send_raw(
        self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None
    ) -> None:
        """Send bytes as they are to a catalog topic (prefix applied): deliberate bad input."""
        self._send(topic, value, key, partition)

    def send_dead_letter(self, letter: DeadLetter) -> None:
        self._send(DEAD_LETTER_TOPIC, encode(letter), None, None)

    def _send(self, topic: str, value: bytes, key: bytes | None, partition: int | None) -> None:
        with self._lock:
            self._pending += 1
        try:
            future = self._producer.send(
                self._settings.topic(topic), value=value, key=key, partition=partition
            )
        except (KafkaError, ValueError) as exc:
            # Buffer full past max_block_ms, topic metadata missing, or a partition the
            # topic does not have (kafka-python raises ValueError): a failed delivery.
            self._done(topic, exc)
            return
        future.add_callback(self._delivered, topic)
        future.add_errback(self._undelivered, topic)

    def _delivered(self, topic: str, _metadata: Any) -> None:
        self._done(topic, None)

    def _undelivered(self, topic: str, exc: BaseException) -> None:
        self._done(topic, exc)

    def _done(self, topic: str, exc: BaseException | None) -> None:
        with self._lock:
            self._pending -= 1
            if exc is None:
                self._sent += 1
                self._by_topic[topic] += 1
            else:
                self._failed += 1
                if len(self._errors) < _MAX_ERRORS_KEPT:
                    self._errors.append(f"{topic}: {type(exc).__name__}: {exc}")

    # -- accounting ----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> DeliveryReport:
        """Wait for every record sent so far; report them, or raise `DeliveryError`."""
        with contextlib.suppress(KafkaTimeoutError):  # reported below as still in flight
            self._producer.flush(timeout)
        with self._lock:
            report = DeliveryReport(self._sent, self._failed, dict(self._by_topic))
            errors, pending = self._errors, self._pending
            self._total_sent += self._sent
            self._total_failed += self._failed
            self._sent = self._failed = 0
            self._by_topic = Counter()
            self._errors = []
        if report.failed or pending:
            raise DeliveryError(report, errors, pending)
        return report

    @property
    def bootstrap_servers(self) -> str:
        return self._settings.bootstrap_servers

    @property
    def totals(self) -> tuple[int, int]:
        """(delivered, failed) over the producer's life, as of the last flush."""
        return self._total_sent, self._total_failed

    def missing_topics(self, names: Iterable[str]) -> list[str]:
        """The catalog topics (unprefixed names) that do not exist on the cluster."""
        admin = KafkaAdminClient(
            client_id="dfip-adapter-check", **self._settings.kafka_python_config()
        )
        try:
            existing = set(admin.list_topics())
        finally:
            admin.close()
        return [name for name in names if self._settings.topic(name) not in existing]

    def close(self, timeout: float | None = None) -> None:
        self._producer.close(timeout=timeout)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
