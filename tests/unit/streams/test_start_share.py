"""A process of a multi-process worker given more than its share while its siblings are
still joining waits for their rebalance before it restores (streams/app.py, gate.py): the
Worker's rebalance hooks, with the engine's side (`_take`) recorded instead of restoring."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from faust.types import TP

from core.kafka_config import KafkaSettings
from streams import app as app_module
from streams.app import Worker, create_app
from streams.settings import WorkerSettings
from streams.supervisor.gate import RELEASE_FD_VARIABLE, RELEASE_SHARE_VARIABLE, ReleaseGate

TX = "dfip.transactions"


def _worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, held: bool) -> tuple[Worker, list]:
    for name in (RELEASE_FD_VARIABLE, RELEASE_SHARE_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    worker = create_app(KafkaSettings(topic_prefix="t."), WorkerSettings(data_dir=tmp_path))
    if held:
        read_fd, _ = os.pipe()
        worker.gate = ReleaseGate({RELEASE_FD_VARIABLE: str(read_fd), RELEASE_SHARE_VARIABLE: "6"})
    taken: list[set[int]] = []

    async def take(mine: set[int]) -> None:
        taken.append(set(mine))

    async def started() -> None:
        return None

    monkeypatch.setattr(worker, "_take", take)
    monkeypatch.setattr(worker, "_ensure_started", started)
    monkeypatch.setattr(app_module, "_DEFER_SECONDS", 0.3)
    return worker, taken


def _tps(parts: range) -> set[TP]:
    return {TP(topic=f"t.{TX}", partition=p) for p in parts}


def test_the_share_comes_from_the_supervisor_and_ends_with_the_hold() -> None:
    assert ReleaseGate({RELEASE_FD_VARIABLE: "9", RELEASE_SHARE_VARIABLE: "6"}).share == 6
    assert ReleaseGate({RELEASE_FD_VARIABLE: "9", RELEASE_SHARE_VARIABLE: "0"}).share is None
    assert ReleaseGate({RELEASE_SHARE_VARIABLE: "6"}).share is None  # not held: ordinary


def test_more_than_the_share_waits_for_the_siblings_rebalance(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    worker, taken = _worker(monkeypatch, tmp_path, held=True)

    async def scenario() -> None:
        app = worker.app
        await app.on_partitions_assigned.send(_tps(range(12)))
        await asyncio.sleep(0.05)
        assert taken == []  # waiting: the siblings are joining
        await app.on_partitions_revoked.send(_tps(range(12)))  # their rebalance
        await app.on_partitions_assigned.send(_tps(range(0, 12, 2)))
        assert taken == [set(range(0, 12, 2))]
        await asyncio.sleep(0.5)  # the dropped wait never restores the twelve
        assert taken == [set(range(0, 12, 2))]

    asyncio.run(scenario())


def test_without_a_rebalance_it_restores_what_it_was_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A sibling that never joins must not leave the partitions unrestored."""
    worker, taken = _worker(monkeypatch, tmp_path, held=True)

    async def scenario() -> None:
        await worker.app.on_partitions_assigned.send(_tps(range(12)))
        await asyncio.sleep(0.6)
        assert taken == [set(range(12))]

    asyncio.run(scenario())


@pytest.mark.parametrize("held", [False, True])
def test_a_share_or_a_single_process_restores_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, held: bool
) -> None:
    worker, taken = _worker(monkeypatch, tmp_path, held=held)
    parts = range(6) if held else range(12)

    async def scenario() -> None:
        await worker.app.on_partitions_assigned.send(_tps(parts))
        assert taken == [set(parts)]

    asyncio.run(scenario())
