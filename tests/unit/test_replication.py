"""Replication of the topics `dfip topics create` makes, for the cluster it finds."""

from __future__ import annotations

import pytest

from core.errors import DfipError
from core.kafka_admin import Replication, _topic_config, replication_for
from core.kafka_config import KafkaSettings
from schemas.catalog import TOPICS


def _settings(**kw: int) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers="127.0.0.1:9092", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("brokers", "factor", "min_insync"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)]
)
def test_defaults_follow_the_cluster(brokers: int, factor: int, min_insync: int) -> None:
    assert replication_for(_settings(), brokers) == Replication(brokers, factor, min_insync)


def test_settings_win() -> None:
    got = replication_for(_settings(replication_factor=5, min_insync_replicas=3), 5)
    assert (got.factor, got.min_insync) == (5, 3)


@pytest.mark.parametrize(
    ("kw", "brokers", "text"),
    [
        ({"replication_factor": 1}, 3, "replication factor 1 on a cluster of 3 brokers"),
        ({"replication_factor": 2}, 3, "replication factor 2 on a cluster of 3 brokers"),
        ({"min_insync_replicas": 1}, 3, "min.insync.replicas 1 on a cluster of 3 brokers"),
        ({"replication_factor": 3}, 1, "replication factor 3 needs 3 brokers"),
        ({"min_insync_replicas": 4}, 3, "above the replication factor 3"),
    ],
)
def test_refusals_are_one_line(kw: dict[str, int], brokers: int, text: str) -> None:
    with pytest.raises(DfipError) as err:
        replication_for(_settings(**kw), brokers)
    assert text in str(err.value)
    assert "\n" not in str(err.value)


def test_under_replicated_when_told() -> None:
    got = replication_for(_settings(replication_factor=1), 3, allow_under_replicated=True)
    assert (got.factor, got.min_insync) == (1, 1)
    # what Kafka itself would refuse stays refused
    with pytest.raises(DfipError, match="needs 4 brokers"):
        replication_for(_settings(replication_factor=4), 3, allow_under_replicated=True)


def test_topic_config_carries_min_insync() -> None:
    cfg = _topic_config(TOPICS[0], Replication(3, 3, 2))
    assert cfg["min.insync.replicas"] == "2"
    assert "min.insync.replicas" not in _topic_config(TOPICS[0])


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFIP_KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("DFIP_KAFKA_MIN_INSYNC_REPLICAS", "2")
    s = KafkaSettings()
    assert (s.replication_factor, s.min_insync_replicas) == (3, 2)
