"""The realistic simulator: a seeded synthetic province feed and its exact oracle.

`run_simulation` produces the feed to Kafka and returns the oracle (the expected value of
every figure in `schemas.figures`); `dfip simulate` is `cli.simulate_command`.
"""

from adapters.simulator.feed import Feed, FeedConfig
from adapters.simulator.model import Record
from adapters.simulator.oracle import Oracle
from adapters.simulator.province import Province, build_province
from adapters.simulator.runner import (
    SimulationConfig,
    SimulationResult,
    TokenBucket,
    run_simulation,
)

__all__ = [
    "Feed",
    "FeedConfig",
    "Oracle",
    "Province",
    "Record",
    "SimulationConfig",
    "SimulationResult",
    "TokenBucket",
    "build_province",
    "run_simulation",
]
