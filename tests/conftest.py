"""Shared fixtures: one real Kafka broker per test session, a fresh topic namespace per test."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from core.kafka_config import KafkaSettings

# No wall-clock limits in tests (the machine is shared and noisy): hypothesis's default
# 200 ms deadline per example, and its "too slow" health check, are both timings.
settings.register_profile("dfip", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("dfip")

# A suite started in the background by a non-interactive shell (`make test &`, nohup) inherits
# SIGINT ignored (POSIX), and so would every child it starts; the tests that stop a child
# with Ctrl-C need it delivered. A handler set here is reset to the default in each child.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = REPO / "deploy" / "kafka" / "kafka.sh"
TEST_PORT = int(os.environ.get("DFIP_TEST_KAFKA_PORT", "19092"))


def pytest_configure(config: pytest.Config) -> None:
    """A compiled hot module built from an older source would be tested instead of the
    source (Python imports the extension first): refuse to start."""
    from dfip.native import stale

    old = stale(REPO)
    if old:
        pytest.exit(
            f"compiled modules older than their sources ({', '.join(old)}): run `make install`",
            returncode=4,
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        if f"{os.sep}integration{os.sep}" in path:
            item.add_marker(pytest.mark.integration)
        elif f"{os.sep}e2e{os.sep}" in path:
            item.add_marker(pytest.mark.e2e)


def _broker_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DFIP_KAFKA_HOME=str(REPO / ".dfip" / "kafka-test"),
        DFIP_KAFKA_PORT=str(TEST_PORT),
        DFIP_KAFKA_CONTROLLER_PORT=str(TEST_PORT + 1),
        DFIP_KAFKA_FRESH="1",
    )
    return env


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Apache Kafka broker (KRaft) for the whole session.

    Uses DFIP_TEST_BOOTSTRAP if set (an already running broker), otherwise starts one with
    deploy/kafka/kafka.sh on a test port with its own data folder, and stops it afterwards.
    """
    external = os.environ.get("DFIP_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    env = _broker_env()
    subprocess.run(["bash", str(KAFKA_SCRIPT), "up"], check=True, env=env, cwd=REPO)
    try:
        yield f"127.0.0.1:{TEST_PORT}"
    finally:
        subprocess.run(["bash", str(KAFKA_SCRIPT), "down"], check=False, env=env, cwd=REPO)


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Settings with a namespace of its own (every topic of the catalog created in it)."""
    from core.kafka_admin import create_topics

    settings = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}-"
    )
    create_topics(settings)
    return settings
