"""A small simulated run shared by the simulator's unit tests (no Kafka)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.simulator.feed import Feed, FeedConfig
from adapters.simulator.model import Record
from adapters.simulator.oracle import Oracle

# 20 simulated seconds per spontaneous event: ~4 days, so loans run their whole course
# (a loan month is an hour) and the 5 % bad rate gives every anomaly kind many times.
SMALL = FeedConfig(
    seed=11,
    start=datetime(2025, 3, 3, 9, 30, tzinfo=UTC),
    step_us=20_000_000,
    bad_rate=0.05,
    enterprises=400,
)
SMALL_RECORDS = 25_000


@dataclass(frozen=True)
class Run:
    config: FeedConfig
    records: list[Record]
    oracle: dict[str, Any]

    def values(self, name: str) -> dict[tuple[str, ...], int]:
        return {tuple(s["labels"].values()): s["value"] for s in self.oracle["figures"][name]}

    def total(self, name: str, **match: str) -> int:
        return sum(
            s["value"]
            for s in self.oracle["figures"][name]
            if all(s["labels"][k] == v for k, v in match.items())
        )


def simulate(config: FeedConfig, n: int) -> Run:
    records = list(itertools.islice(Feed(config), n))
    oracle = Oracle(grace_seconds=config.grace_seconds)
    for record in records:
        oracle.observe(record)
    return Run(config, records, oracle.result({"seed": config.seed}))


@pytest.fixture(scope="session")
def small_config() -> FeedConfig:
    return SMALL


@pytest.fixture(scope="session")
def small_run() -> Run:
    return simulate(SMALL, SMALL_RECORDS)
