"""Kafka admin for every command: connect with one-line errors, create topics idempotently."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    SaslAuthenticationFailedError,
    TopicAlreadyExistsError,
)
from kafka.net.compat import KafkaNetClient

from core.errors import DfipError
from core.kafka_config import KafkaSettings
from schemas.catalog import ALL_TOPICS, TopicSpec

__all__ = [
    "CONNECT_TIMEOUT",
    "ClientLog",
    "Replication",
    "TopicResult",
    "accepts_tcp",
    "admin_client",
    "client_log",
    "config_drift",
    "create_topics",
    "drift_text",
    "replication_for",
    "topic_drift",
]

#: Seconds a command waits for the cluster before saying it is unreachable: a CLI user wants
#: one line within a few seconds, not half a minute of silence.
CONNECT_TIMEOUT = 5.0

#: Further seconds given to a broker that accepts TCP connections but has not finished the
#: TLS handshake or the SASL login: a loaded broker (a JVM warming up its TLS and SCRAM) is
#: slow, not unreachable, and a refused login must be reported as such, whatever the load.
HANDSHAKE_GRACE = 25.0


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicResult:
    name: str
    partitions: int
    created: bool
    reconfigured: tuple[str, ...] = ()
    """Configs of an existing topic set back to the catalog's, as `key: old → new`."""


@dataclass(frozen=True)
class Replication:
    """Copies and in-sync minimum for the topics created on a cluster of `brokers`."""

    brokers: int
    factor: int
    min_insync: int


#: Production runs three brokers: three copies, two in sync, so one broker may be lost
#: (drained, upgraded, crashed) without stopping acks=all producers or transactions.
PRODUCTION_FACTOR = 3
PRODUCTION_MIN_INSYNC = 2


def replication_for(
    settings: KafkaSettings, brokers: int, *, allow_under_replicated: bool = False
) -> Replication:
    """The replication to create topics with on `brokers` brokers, or a DfipError saying in
    one line why the settings do not fit that cluster."""
    factor = settings.replication_factor or min(PRODUCTION_FACTOR, brokers)
    min_insync = settings.min_insync_replicas or (
        PRODUCTION_MIN_INSYNC if factor >= PRODUCTION_FACTOR else 1
    )
    if factor > brokers:
        raise DfipError(
            f"replication factor {factor} needs {factor} brokers, the cluster at "
            f"{settings.bootstrap_servers} has {brokers}",
            hint="lower DFIP_KAFKA_REPLICATION_FACTOR or start more brokers",
        )
    if min_insync > factor:
        raise DfipError(
            f"min.insync.replicas {min_insync} is above the replication factor {factor}: "
            "every acks=all write would fail",
            hint="lower DFIP_KAFKA_MIN_INSYNC_REPLICAS",
        )
    wanted = min(PRODUCTION_FACTOR, brokers)
    if brokers > 1 and not allow_under_replicated:
        if factor < wanted:
            raise DfipError(
                f"refusing to create topics with replication factor {factor} on a cluster of "
                f"{brokers} brokers: losing one broker would lose data (want {wanted})",
                hint="unset DFIP_KAFKA_REPLICATION_FACTOR, or pass --allow-under-replicated",
            )
        if min_insync < 2 and factor >= PRODUCTION_FACTOR:
            raise DfipError(
                f"refusing to create topics with min.insync.replicas {min_insync} on a cluster "
                f"of {brokers} brokers: an acknowledged write could live on one broker only",
                hint="unset DFIP_KAFKA_MIN_INSYNC_REPLICAS, or pass --allow-under-replicated",
            )
    return Replication(brokers, factor, min_insync)


def _topic_config(spec: TopicSpec, replication: Replication | None = None) -> dict[str, str]:
    cfg = {k: str(v) for k, v in spec.topic_config().items()}
    if replication is not None:
        cfg.setdefault("min.insync.replicas", str(replication.min_insync))
    return cfg


def _normal(key: str, value: str | None) -> str | None:
    if value is not None and key == "cleanup.policy":  # a list: "delete,compact" = "compact,delete"
        return ",".join(sorted(v.strip() for v in value.split(",")))
    return value


def config_drift(
    wanted: Mapping[str, str], actual: Mapping[str, str | None]
) -> dict[str, tuple[str | None, str]]:
    """``key → (actual, wanted)`` for every config the catalog declares (``wanted``) whose
    effective value on the broker (``actual``, None if not reported) differs."""
    return {
        key: (actual.get(key), value)
        for key, value in wanted.items()
        if _normal(key, actual.get(key)) != _normal(key, value)
    }


def drift_text(name: str, drift: Mapping[str, tuple[str | None, str]]) -> str:
    """``topic NAME has k=found, the catalog says k=declared`` for a ``config_drift``."""
    found = ", ".join(f"{k}={old}" for k, (old, _) in sorted(drift.items()))
    declared = ", ".join(f"{k}={new}" for k, (_, new) in sorted(drift.items()))
    return f"topic {name} has {found}, the catalog says {declared}"


def _drift_note(name: str, drift: Mapping[str, tuple[str | None, str]]) -> str:
    changes = ", ".join(f"{k} {old} → {new}" for k, (old, new) in sorted(drift.items()))
    note = f"topic {name}: set {changes} (as schemas/catalog.py declares)"
    old_policy = drift.get("cleanup.policy", (None, ""))[0] or ""
    if "compact" in old_policy and "compact" not in drift["cleanup.policy"][1]:
        note += (
            "; it was compacted: records the log cleaner already removed are not restored "
            "(docs/operations.md, Reference topics keep every record)"
        )
    return note


def topic_drift(
    admin: KafkaAdminClient, wanted: Mapping[str, TopicSpec]
) -> dict[str, dict[str, tuple[str | None, str]]]:
    """``name → config_drift`` of each existing topic in ``wanted`` (prefixed name → spec)
    whose configs differ from the catalog's (``min.insync.replicas`` is not compared)."""
    if not wanted:
        return {}
    configs = {name: _topic_config(spec) for name, spec in wanted.items()}
    described = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n, list(c)) for n, c in configs.items()],
        config_filter="all",
    ).get("topic", {})
    drifts: dict[str, dict[str, tuple[str | None, str]]] = {}
    for name, config in configs.items():
        actual = {k: v.get("value") for k, v in described.get(name, {}).items()}
        if not actual:  # the broker answered with an error (kafka-python drops its code)
            log.warning(
                "cannot read the configs of topic %s (is DescribeConfigs allowed to this "
                "principal?): not compared with the catalog",
                name,
            )
            continue
        drift = config_drift(config, actual)
        if drift:
            drifts[name] = drift
    return drifts


def _reconcile(
    admin: KafkaAdminClient, wanted: Mapping[str, TopicSpec], names: Iterable[str]
) -> dict[str, tuple[str, ...]]:
    """Set every config the catalog declares back on existing topics whose value differs
    (topic creation applies them only to a new topic); ``name → "key: old → new"`` lines."""
    drifts = topic_drift(admin, {name: wanted[name] for name in names})
    if not drifts:
        return {}
    results = admin.alter_configs(
        [
            ConfigResource(
                ConfigResourceType.TOPIC, n, configs={k: new for k, (_, new) in d.items()}
            )
            for n, d in drifts.items()
        ]
    ).get("topic", {})
    out: dict[str, tuple[str, ...]] = {}
    for name, drift in drifts.items():
        if results.get(name) != "OK":
            raise DfipError(
                f"{drift_text(name, drift)}, and the broker refused to change it: "
                f"{results.get(name)}",
                hint="change it with kafka-configs.sh --alter, or fix the catalog",
            )
        log.warning("%s", _drift_note(name, drift))
        out[name] = tuple(f"{k}: {old} → {new}" for k, (old, new) in sorted(drift.items()))
    return out


def _describe_settled(
    admin: KafkaAdminClient, names: list[str], timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Describe topics, waiting until freshly created ones show their partitions (metadata
    reaches the broker's cache a moment after CreateTopics returns)."""
    deadline = time.monotonic() + timeout
    while True:
        described: list[dict[str, Any]] = admin.describe_topics(names)
        if all(d["partitions"] for d in described) or time.monotonic() > deadline:
            return described
        time.sleep(0.2)


# kafka-python 3 raises (and logs) SaslAuthenticationFailedError for a refused SASL login;
# the texts catch the same failure logged without the exception object.
_AUTH_ERRORS: tuple[type[BaseException], ...] = (SaslAuthenticationFailedError,)
_AUTH_TEXT = ("saslauthenticationfailed", "authentication failed")


class ClientLog(logging.Handler):
    """Takes kafka-python's log records while an admin client works, instead of stderr.

    A refused login is not raised by kafka-python's bootstrap: it logs the error and retries
    until the bootstrap timeout. This handler notices it in those records."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.auth_failure: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.auth_failure is not None:
            return
        args = record.args if isinstance(record.args, tuple) else ()
        exc = record.exc_info[1] if record.exc_info else None
        if any(isinstance(a, _AUTH_ERRORS) for a in (*args, exc)):
            self.auth_failure = record.getMessage()
            return
        with contextlib.suppress(Exception):  # a record whose arguments do not format
            message = record.getMessage()
            if any(t in message.lower() for t in _AUTH_TEXT):
                self.auth_failure = message


@contextlib.contextmanager
def client_log() -> Iterator[ClientLog]:
    """kafka-python's WARNING/ERROR records go to a `ClientLog`, not to the root handlers
    (a CLI user gets one line saying what failed, not dozens of retry messages)."""
    logger = logging.getLogger("kafka")
    handler = ClientLog()
    propagate, level = logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(min(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        logger.setLevel(level)


def _auth_error(settings: KafkaSettings) -> DfipError:
    mechanism = settings.sasl_mechanism or "SCRAM-SHA-512"
    return DfipError(
        f"Kafka authentication failed for user {settings.sasl_username} via {mechanism} "
        f"at {settings.bootstrap_servers}",
        hint="check DFIP_KAFKA_SASL_USERNAME and the password "
        "(DFIP_KAFKA_SASL_PASSWORD_FILE or DFIP_KAFKA_SASL_PASSWORD)",
    )


def _unreachable(settings: KafkaSettings) -> DfipError:
    return DfipError(
        f"Kafka is unreachable at {settings.bootstrap_servers}",
        hint="start it with `dfip kafka up` or set DFIP_KAFKA_BOOTSTRAP_SERVERS",
    )


def _no_handshake(settings: KafkaSettings, waited: float) -> DfipError:
    return DfipError(
        f"Kafka at {settings.bootstrap_servers} accepts connections but did not complete "
        f"the {settings.security_protocol} handshake within {waited:.0f} s",
        hint="is this a Kafka listener for DFIP_KAFKA_SECURITY_PROTOCOL? see the broker log",
    )


def accepts_tcp(bootstrap_servers: str, timeout: float = 1.0) -> bool:
    """Some bootstrap server accepts a TCP connection (so the broker is there, maybe slow)."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
        except (OSError, ValueError):
            continue
        return True
    return False


def admin_client(
    settings: KafkaSettings,
    *,
    timeout: float = CONNECT_TIMEOUT,
    grace: float = HANDSHAKE_GRACE,
) -> KafkaAdminClient:
    """A connected admin client, or a DfipError saying why not.

    kafka-python's bootstrap retries a refused login like an unreachable broker, until its
    bootstrap timeout; so the bootstrap runs in attempts of 2 s, 4 s, 8 s… up to `timeout`,
    and a refused login (seen in the client's log) ends it after the first attempt. A broker
    that accepts TCP but has not answered by then gets `grace` more seconds: under
    load its TLS/SASL handshake alone can outlast `timeout`."""
    with client_log() as log:
        started = time.monotonic()
        deadline = started + timeout
        attempt = 2.0
        graced = False
        while True:
            try:
                return _admin_attempt(settings, attempt)
            except (*_AUTH_ERRORS, KafkaConnectionError, KafkaTimeoutError) as exc:
                if isinstance(exc, _AUTH_ERRORS) or (log.auth_failure and settings.uses_sasl):
                    raise _auth_error(settings) from exc
                left = deadline - time.monotonic()
                if left <= 0 and not graced and accepts_tcp(settings.bootstrap_servers):
                    graced = True
                    deadline += grace
                    left = grace
                if left <= 0:
                    if graced:
                        raise _no_handshake(settings, time.monotonic() - started) from exc
                    raise _unreachable(settings) from exc
                attempt = min(attempt * 2, max(left, 0.5))


def _admin_attempt(settings: KafkaSettings, bootstrap_timeout: float) -> KafkaAdminClient:
    """One KafkaAdminClient(); if it fails, stops the IO thread it leaves running."""
    clients: list[KafkaNetClient] = []

    def client(**config: Any) -> KafkaNetClient:
        clients.append(KafkaNetClient(**config))
        return clients[-1]

    try:
        return KafkaAdminClient(
            client_id="dfip-admin",
            request_timeout_ms=15000,
            bootstrap_timeout_ms=int(bootstrap_timeout * 1000),
            kafka_client=client,
            **settings.kafka_python_config(),
        )
    except BaseException:
        for c in clients:
            with contextlib.suppress(Exception):
                c.close()
            with contextlib.suppress(Exception):
                c._net.stop(timeout_ms=5000)
        raise


def create_topics(
    settings: KafkaSettings,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    allow_under_replicated: bool = False,
) -> list[TopicResult]:
    """Create missing topics (by default every topic of the platform, `ALL_TOPICS`) with the
    cluster's replication (`replication_for`); verify existing ones have the catalog's
    partition count and set their configs back to the catalog's where they differ (each
    change is logged and listed in `TopicResult.reconfigured`)."""
    with client_log():
        return _create(settings, tuple(specs), connect_timeout, allow_under_replicated)


def _broker_count(admin: KafkaAdminClient) -> int:
    return len(admin.describe_cluster()["brokers"])


def _create(
    settings: KafkaSettings,
    specs: tuple[TopicSpec, ...],
    connect_timeout: float,
    allow_under_replicated: bool,
) -> list[TopicResult]:
    admin = admin_client(settings, timeout=connect_timeout)
    try:
        existing = set(admin.list_topics())
        wanted = {settings.topic(s.name): s for s in specs}
        absent = [name for name in wanted if name not in existing]
        replication = (
            replication_for(
                settings, _broker_count(admin), allow_under_replicated=allow_under_replicated
            )
            if absent
            else None
        )
        missing = [
            NewTopic(
                name=name,
                num_partitions=wanted[name].partitions,
                replication_factor=replication.factor,
                topic_configs=_topic_config(wanted[name], replication),
            )
            for name in absent
            if replication is not None
        ]
        if missing:
            # a concurrent creator may win; partition counts are checked below either way
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing, timeout_ms=30000)
        described = _describe_settled(admin, list(wanted))
        results: list[TopicResult] = []
        created = {t.name for t in missing}
        for desc in described:
            name = desc["name"]
            partitions = len(desc["partitions"])
            spec = wanted[name]
            if partitions != spec.partitions:
                raise DfipError(
                    f"topic {name} has {partitions} partitions, the catalog says {spec.partitions}",
                    hint="co-partitioning depends on it: recreate the topic or fix the catalog",
                )
            results.append(TopicResult(name, partitions, name in created))
        # only once every partition count is right: a topic to recreate is left as it is
        reconfigured = _reconcile(admin, wanted, [r.name for r in results if not r.created])
        results = [replace(r, reconfigured=reconfigured.get(r.name, ())) for r in results]
        return sorted(results, key=lambda r: r.name)
    except KafkaError as exc:
        raise DfipError(f"creating topics failed: {exc}", hint="check the broker log") from exc
    finally:
        admin.close()
