"""The adapters' Kafka producer: idempotent, keyed by enterprise, every delivery accounted for.

kafka-python reports deliveries on its I/O thread; the producer counts successes and
failures per topic there, and `flush()` raises `DeliveryError` when any record since the
previous flush was not delivered — nothing is ever lost silently.

Every wait is bounded by `DFIP_KAFKA_DELIVERY_TIMEOUT_MS` (flush, close and each transaction
step): kafka-python 3.0.12 waits for ever in `flush()`, `close()` and `commit_transaction()`
by default, and after a batch expired mid-retry its sender never obtains a new producer id,
so a producer that saw a long outage is thrown away (`close` forces its I/O thread down)
and, with `renew()`, replaced by a fresh one.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from types import TracebackType
from typing import Any, Final

from kafka import KafkaAdminClient, KafkaProducer
from kafka.codec import has_lz4
from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
)

from core.kafka_admin import accepts_tcp
from core.kafka_config import KafkaSettings
from schemas import DeadLetter, Event, encode, message_key, partition_for
from schemas.catalog import (
    DEADLETTER,
    DEADLETTER_MAX_BYTES,
    FX,
    LOANS,
    SCORES,
    TRANSACTIONS,
    topic_by_name,
)

__all__ = [
    "DEAD_LETTER_TOPIC",
    "TOPIC_BY_KIND",
    "DeliveryError",
    "DeliveryReport",
    "EventProducer",
    "KafkaUnavailable",
    "TransactionError",
    "producer_config",
]

TOPIC_BY_KIND: Final[dict[str, str]] = {
    "transaction": TRANSACTIONS.name,
    "loan": LOANS.name,
    "digitalization_score": SCORES.name,
    "fx_rate": FX.name,
}
_USCC_KINDS: Final = frozenset({"transaction", "loan", "digitalization_score"})
DEAD_LETTER_TOPIC: Final = DEADLETTER.name
_MAX_ERRORS_KEPT = 20
BROKER_MAX_MESSAGE_BYTES: Final = 1_048_588
"""Kafka's default `message.max.bytes`: the limit of a topic that sets no `max.message.bytes`."""
_RECORD_OVERHEAD: Final = 128  # batch and record headers around one value (generous)


@cache  # called for every record sent: the catalog does not change
def _topic_limit(topic: str) -> int:
    """`max.message.bytes` of catalog topic `topic` (unprefixed), else the broker default."""
    try:
        configured = topic_by_name(topic).config.get("max.message.bytes")
    except KeyError:
        configured = None
    return int(configured) if configured else BROKER_MAX_MESSAGE_BYTES


_LINGER_MS: Final = 5
_MAX_TRANSACTION_TIMEOUT_MS: Final = 900_000  # the broker's default transaction.max.timeout.ms


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
        parts = [f"{report.failed} record(s) not delivered"] if report.failed or not pending else []
        if pending:
            parts.append(f"{pending} record(s) not acknowledged within the flush timeout")
        what = ", ".join(parts)
        first = f" (first error: {errors[0]})" if errors else ""
        super().__init__(what + first)


class KafkaUnavailable(RuntimeError):
    """The brokers cannot be reached (at start-up); `reachable`: a bootstrap server takes
    TCP connections but never completed the handshake (a security protocol mismatch?)."""

    def __init__(self, message: str, *, reachable: bool = False) -> None:
        super().__init__(message)
        self.reachable = reachable


class TransactionError(RuntimeError):
    """A transaction step failed or did not finish within the delivery timeout."""


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python producer settings: idempotent, acks=all, every wait bounded by settings.

    `max_request_size` is `dfip.deadletter`'s `max.message.bytes` (the catalog): the largest
    record an adapter sends is a dead letter, and it must not be refused by the client.
    """
    delivery = settings.delivery_timeout_ms
    return {
        **settings.kafka_python_config(),
        "acks": "all",
        "enable_idempotence": True,  # retries never duplicate or reorder a partition
        "retries": 2_147_483_647,  # bounded by delivery_timeout_ms instead
        "delivery_timeout_ms": delivery,
        # the client requires delivery >= linger + request timeout
        "request_timeout_ms": max(100, min(settings.request_timeout_ms, delivery - _LINGER_MS)),
        "max_block_ms": delivery,  # send() on a full buffer or missing metadata
        "max_in_flight_requests_per_connection": 5,
        "linger_ms": _LINGER_MS,
        "compression_type": "lz4" if has_lz4() else None,
        "max_request_size": DEADLETTER_MAX_BYTES,
        "bootstrap_timeout_ms": settings.connect_timeout_ms,
        "reconnect_backoff_max_ms": 1_000,  # back quickly once the broker is
    }


class EventProducer:
    """Sends canonical events to their catalog topic; see the module docstring.

    With `transactional_id`, records are sent inside transactions (`begin()`, `commit()`,
    `abort()`); a fresh producer with the same id fences and aborts a predecessor's open
    transaction at once.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        client_id: str = "dfip-adapter",
        transactional_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._client_id = client_id
        self._transactional_id = transactional_id
        self._timeout_s = settings.delivery_timeout_ms / 1000
        self._lock = threading.Lock()
        self._sent = 0
        self._failed = 0
        self._pending = 0
        self._by_topic: Counter[str] = Counter()
        self._errors: list[str] = []
        self._total_sent = 0
        self._total_failed = 0
        self._generation = 0
        self._producer = self._connect()

    def _connect(self) -> KafkaProducer:
        config = producer_config(self._settings)
        if self._transactional_id is not None:
            config["transactional_id"] = self._transactional_id
            config["transaction_timeout_ms"] = min(
                self._settings.delivery_timeout_ms + 60_000, _MAX_TRANSACTION_TIMEOUT_MS
            )
        try:
            producer = KafkaProducer(**config, client_id=self._client_id)
        except (KafkaTimeoutError, KafkaConnectionError):
            servers = self._settings.bootstrap_servers
            if accepts_tcp(servers):
                raise KafkaUnavailable(
                    f"Kafka at {servers} accepts connections but did not complete the "
                    f"{self._settings.security_protocol} handshake within "
                    f"{self._settings.connect_timeout_ms / 1000:g} s (is it a Kafka listener "
                    "for DFIP_KAFKA_SECURITY_PROTOCOL? see the broker log)",
                    reachable=True,
                ) from None
            raise KafkaUnavailable(f"Kafka is unreachable at {servers}") from None
        if self._transactional_id is not None:
            try:
                producer.init_transactions()  # bounded by max_block_ms
            except KafkaError as exc:
                _close_bounded(producer, 1.0)
                raise TransactionError(
                    f"cannot start transactions as {self._transactional_id}: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
        return producer

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
        limit = _topic_limit(topic)
        if len(value) + len(key or b"") + _RECORD_OVERHEAD > limit:
            # The client allows requests as large as a dead letter may be; a record over its
            # own topic's limit would be refused by the broker, and kafka-python treats that
            # refusal as fatal for every batch in flight. Refuse it here, as one failure.
            self._done(topic, MessageSizeTooLargeError(f"record over {topic}'s {limit} bytes"))
            return
        try:
            future = self._producer.send(
                self._settings.topic(topic), value=value, key=key, partition=partition
            )
        except (KafkaError, ValueError) as exc:
            # Buffer full past max_block_ms, topic metadata missing, a record over
            # max_request_size, or a partition the topic does not have (kafka-python raises
            # ValueError): a failed delivery.
            self._done(topic, exc)
            return
        future.add_callback(self._delivered, topic, self._generation)
        future.add_errback(self._undelivered, topic, self._generation)

    def _delivered(self, topic: str, generation: int, _metadata: Any) -> None:
        self._done(topic, None, generation)

    def _undelivered(self, topic: str, generation: int, exc: BaseException) -> None:
        self._done(topic, exc, generation)

    def _done(self, topic: str, exc: BaseException | None, generation: int | None = None) -> None:
        with self._lock:
            if generation is not None and generation != self._generation:
                return  # a record of a client replaced by renew(): already written off
            self._pending -= 1
            if exc is None:
                self._sent += 1
                self._by_topic[topic] += 1
            else:
                self._failed += 1
                if len(self._errors) < _MAX_ERRORS_KEPT:
                    self._errors.append(f"{topic}: {type(exc).__name__}: {exc}")

    # -- transactions --------------------------------------------------------------------

    @property
    def transactional(self) -> bool:
        return self._transactional_id is not None

    def begin(self) -> None:
        try:
            self._producer.begin_transaction()
        except KafkaError as exc:
            raise TransactionError(f"cannot begin a transaction: {_describe(exc)}") from None

    def commit(self) -> DeliveryReport:
        """Flush (raises `DeliveryError`), then commit; both bounded by the delivery timeout."""
        report = self.flush()
        self._finish("commit", lambda tm: tm.begin_commit(), self._timeout_s)
        return report

    def abort(self, timeout: float | None = None) -> bool:
        """Abort the open transaction; False if that failed or timed out (the broker then
        aborts it after the transaction timeout, or when the next run fences it)."""
        wait = self._timeout_s if timeout is None else timeout
        try:
            self._finish("abort", lambda tm: tm.begin_abort(), wait)
        except TransactionError:
            return False
        return True

    def _finish(self, what: str, start: Callable[[Any], Any], timeout: float) -> None:
        # commit_transaction()/abort_transaction() wait without a bound in kafka-python
        # 3.0.12; the same steps with a bounded wait (private API, pinned client version)
        try:
            result = start(self._producer._transaction_manager)
            self._producer._sender.wakeup()
            done = result.wait(timeout_ms=timeout * 1000)
        except KafkaError as exc:
            raise TransactionError(f"transaction {what} failed: {_describe(exc)}") from None
        if not done:
            raise TransactionError(f"transaction {what} did not finish within {timeout:g} s")

    def renew(self) -> None:
        """Replace the client by a fresh one (same transactional id: it fences the old one).

        kafka-python cannot recover a producer whose batch expired during retries; this is
        the way back after a fatal transaction or delivery error."""
        with self._lock:
            # the old client's records belong to the aborted transaction, already reported
            # by the flush or commit that failed: its late callbacks are ignored
            self._generation += 1
            self._pending = self._sent = self._failed = 0
            self._by_topic, self._errors = Counter(), []
        _close_bounded(self._producer, 0.5)
        self._producer = self._connect()

    # -- accounting ----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> DeliveryReport:
        """Wait for every record sent so far (at most `timeout`, default the delivery
        timeout plus a margin); report them, or raise `DeliveryError`."""
        wait = self._timeout_s + 5 if timeout is None else timeout
        with contextlib.suppress(KafkaTimeoutError):  # reported below as still in flight
            self._producer.flush(wait)
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

    def raise_if_failed(self) -> None:
        """Raise `DeliveryError` now if a record since the last flush already failed (a
        long-running producer notices an outage without waiting for its next flush)."""
        with self._lock:
            failed = self._failed
        if failed:
            self.flush(timeout=0)

    @property
    def bootstrap_servers(self) -> str:
        return self._settings.bootstrap_servers

    @property
    def settings(self) -> KafkaSettings:
        return self._settings

    @property
    def totals(self) -> tuple[int, int]:
        """(delivered, failed) over the producer's life, as of the last flush."""
        return self._total_sent, self._total_failed

    def missing_topics(self, names: Iterable[str]) -> list[str]:
        """The catalog topics (unprefixed names) that do not exist on the cluster."""
        admin = KafkaAdminClient(
            client_id="dfip-adapter-check",
            request_timeout_ms=self._settings.request_timeout_ms,
            bootstrap_timeout_ms=self._settings.connect_timeout_ms,
            **self._settings.kafka_python_config(),
        )
        try:
            existing = set(admin.list_topics())
        finally:
            admin.close()
        return [name for name in names if self._settings.topic(name) not in existing]

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is pending within `timeout` (default 5 s), then stop for sure."""
        _close_bounded(self._producer, 5.0 if timeout is None else timeout)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _close_bounded(producer: Any, timeout: float) -> None:
    """`KafkaProducer.close(timeout)` raises at its flush when records are still pending and
    leaves its (non-daemon) I/O thread running, which keeps the process alive: force it."""
    try:
        producer.close(timeout=timeout)
        return
    except KafkaError:
        pass
    sender = getattr(producer, "_sender", None)
    if sender is not None and sender.is_alive():
        sender.force_close()  # fails what is left; the futures report it
        sender.join(max(timeout, 1.0))
    with contextlib.suppress(KafkaError):
        producer.close(timeout=0)
