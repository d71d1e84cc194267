"""Creates the catalog's topics on the cluster, idempotently."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
)

from dfip.errors import DfipError
from dfip.kafka_config import KafkaSettings
from schemas.catalog import TOPICS, TopicSpec

__all__ = ["TopicResult", "all_topics", "create_topics"]


@dataclass(frozen=True)
class TopicResult:
    name: str
    partitions: int
    created: bool


def all_topics() -> tuple[TopicSpec, ...]:
    """Every topic the platform uses: the catalog plus the stream layer's internal topics."""
    from streams.topics import INTERNAL_TOPICS

    return (*TOPICS, *INTERNAL_TOPICS)


def _topic_config(spec: TopicSpec) -> dict[str, str]:
    cfg: dict[str, str] = {"cleanup.policy": spec.cleanup_policy}
    if spec.retention_ms is not None:
        cfg["retention.ms"] = str(spec.retention_ms)
    cfg.update({k: str(v) for k, v in (spec.config or {}).items()})
    return cfg


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


def admin_client(settings: KafkaSettings) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            client_id="dfip-admin", request_timeout_ms=15000, **settings.kafka_python_config()
        )
    except (KafkaConnectionError, KafkaTimeoutError) as exc:
        raise DfipError(
            f"Kafka is unreachable at {settings.bootstrap_servers}",
            hint="start it with `dfip kafka up` or set DFIP_KAFKA_BOOTSTRAP_SERVERS",
        ) from exc


def create_topics(
    settings: KafkaSettings, specs: Iterable[TopicSpec] | None = None
) -> list[TopicResult]:
    """Create missing topics; verify existing ones have the catalog's partition count."""
    specs = tuple(specs if specs is not None else all_topics())
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        wanted = {settings.topic(s.name): s for s in specs}
        missing = [
            NewTopic(
                name=name,
                num_partitions=s.partitions,
                replication_factor=-1,  # broker default: 1 locally, 3 on a real cluster
                topic_configs=_topic_config(s),
            )
            for name, s in wanted.items()
            if name not in existing
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
        return sorted(results, key=lambda r: r.name)
    except KafkaError as exc:
        raise DfipError(f"creating topics failed: {exc}", hint="check the broker log") from exc
    finally:
        admin.close()
