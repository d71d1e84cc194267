"""The broker the benchmarks run on, and throw-away topic namespaces on it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from core.errors import DfipError
from core.kafka_admin import admin_client, create_topics
from core.kafka_config import KafkaSettings

__all__ = ["drop_namespace", "namespace", "private_broker"]

REPO = Path(__file__).resolve().parents[1]
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"


@contextlib.contextmanager
def private_broker(port: int) -> Iterator[str]:
    """A broker of our own on `port` (controller on port + 1), stopped and wiped afterwards.

    Other engineers' test runs start and stop the shared broker on 9092; a private one keeps
    a long benchmark independent of them (it still shares the CPUs).
    """
    home = Path(tempfile.mkdtemp(prefix="dfip-bench-kafka-"))
    env = {
        **os.environ,
        "DFIP_KAFKA_PORT": str(port),
        "DFIP_KAFKA_CONTROLLER_PORT": str(port + 1),
        "DFIP_KAFKA_HOME": str(home),
    }
    subprocess.run(["bash", str(KAFKA_SH), "up"], env=env, check=True, cwd=REPO)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", str(KAFKA_SH), "down"], env=env, check=False, cwd=REPO)
        subprocess.run(["rm", "-rf", str(home)], check=False)


def namespace(bootstrap: str, label: str) -> KafkaSettings:
    """Fresh topic prefix with every platform topic created."""
    settings = KafkaSettings(
        bootstrap_servers=bootstrap, topic_prefix=f"bench-{label}-{uuid.uuid4().hex[:8]}-"
    )
    for attempt in range(10):
        try:
            create_topics(settings)
            return settings
        except DfipError:
            # a topic just created may be described with 0 partitions for a moment
            if attempt == 9:
                raise
            time.sleep(1)
    return settings


def _prefixed(settings: KafkaSettings) -> list[str]:
    admin = admin_client(settings)
    try:
        return [t for t in admin.list_topics() if t.startswith(settings.topic_prefix)]
    finally:
        admin.close()


def _delete(settings: KafkaSettings, topics: list[str], *, wait: float) -> None:
    if not topics:
        return
    admin = admin_client(settings)
    try:
        with contextlib.suppress(Exception):
            admin.delete_topics(topics, timeout_ms=30_000)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not set(topics) & set(admin.list_topics()):
                return
            time.sleep(0.5)
    finally:
        admin.close()


def drop_namespace(settings: KafkaSettings) -> None:
    """Delete every topic of the namespace (also the ones Faust created for its app)."""
    with contextlib.suppress(Exception):
        _delete(settings, _prefixed(settings), wait=0)
