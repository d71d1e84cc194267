"""The engine's typed counters keep the /state form they had as a dict, and the engine is
read through its public properties (no Kafka client is started here)."""

from __future__ import annotations

from core.kafka_config import KafkaSettings
from schemas.catalog import LOANS, TRANSACTIONS
from streams.engine import Engine, EngineHooks, EngineStats
from streams.reference.scores import ScoreTable
from streams.settings import WorkerSettings
from streams.state.partition import PartitionState


def test_what_is_not_known_yet_is_left_out_of_the_state_form() -> None:
    stats = EngineStats()
    assert stats.as_dict() == {
        "batches": 0,
        "rebalances": 0,
        "restores": 0,
        "failures": 0,
        "recoveries": 0,
    }
    stats.stage_seconds().apply += 0.5
    stats.last_restore_seconds = 1.25
    form = stats.as_dict()
    assert form["seconds"] == {"reference": 0.0, "apply": 0.5, "commit": 0.0}
    assert form["last_restore_seconds"] == 1.25


def test_the_worker_reads_the_engine_through_its_public_side() -> None:
    stages: list[str] = []
    engine = Engine(
        KafkaSettings(topic_prefix="u3."),
        WorkerSettings(),
        EngineHooks(on_stage=lambda stage, s: stages.append(stage)),
    )
    try:
        assert engine.partitions == []
        assert not engine.busy
        assert not engine.is_ready
        engine.processor.adopt_partition(PartitionState(7), ScoreTable())
        engine.processor.adopt_partition(PartitionState(2), ScoreTable())
        assert engine.partitions == [2, 7]
        start = {TRANSACTIONS.name: 0, LOANS.name: 0}
        assert engine.positions() == {7: start, 2: start}
        described = engine.describe()
        assert list(described["partitions"]) == ["2", "7"]
        assert described["stats"]["batches"] == 0
        assert engine.name(f"u3.{LOANS.name}") == LOANS.name
        engine.hooks.on_stage("apply", 0.1)
        assert stages == ["apply"]
    finally:
        engine.store.close()
