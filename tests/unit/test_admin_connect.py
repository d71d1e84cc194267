"""How `admin_client` names a failed connection: refused, slow handshake, refused login."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from core.errors import DfipError
from core.kafka_admin import accepts_tcp, admin_client
from core.kafka_config import KafkaSettings


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP and never answers: a broker too busy to finish a handshake."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_accepts_tcp_tells_a_listener_from_a_closed_port(silent_listener: int) -> None:
    assert accepts_tcp(f"127.0.0.1:{silent_listener}")
    assert accepts_tcp(f"127.0.0.1:{_closed_port()},127.0.0.1:{silent_listener}")
    assert not accepts_tcp(f"127.0.0.1:{_closed_port()}")
    assert not accepts_tcp("no-port-here")


def test_a_silent_listener_is_not_called_unreachable(silent_listener: int) -> None:
    settings = KafkaSettings(bootstrap_servers=f"127.0.0.1:{silent_listener}")
    with pytest.raises(DfipError) as failed:
        admin_client(settings, timeout=0.5, grace=1.0)
    message = str(failed.value)
    assert "unreachable" not in message
    assert "accepts connections but did not complete the PLAINTEXT handshake" in message


def test_a_closed_port_is_unreachable_without_grace() -> None:
    settings = KafkaSettings(bootstrap_servers=f"127.0.0.1:{_closed_port()}")
    with pytest.raises(DfipError, match="Kafka is unreachable"):
        admin_client(settings, timeout=0.5, grace=60.0)
