"""The realistic feed plants suspicious patterns (issue 15): on its own random stream, in
addition to the feed without them, and the rules fire on them (the oracle decides)."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from adapters.simulator.feed import Feed, FeedConfig
from adapters.simulator.model import TRANSACTIONS
from adapters.simulator.runner import SimulationConfig, run_simulation
from tests.e2e.test_prometheus_e2e import _NullSink
from tests.support.workers import oracle_figures

CONFIG = FeedConfig(seed=3, enterprises=200, step_us=10_000_000)


def _id(record: object) -> str | None:
    return getattr(getattr(record, "event", None), "event_id", None)


def test_patterns_are_added_without_changing_the_rest_of_the_feed() -> None:
    plain = list(itertools.islice(Feed(replace(CONFIG, aml_permille=0)), 3000))
    planted = list(itertools.islice(Feed(replace(CONFIG, aml_permille=20)), 3600))
    known = {_id(r) for r in plain}
    cut = next(i for i, r in enumerate(planted) if _id(r) == _id(plain[-1])) + 1
    extra = [r for r in planted[:cut] if _id(r) not in known]
    assert len(extra) > 20, "no pattern planted"
    assert [_id(r) for r in planted[:cut] if _id(r) in known] == [_id(r) for r in plain]
    assert all(r.topic == TRANSACTIONS and r.event.currency == "CNY" for r in extra)
    # each planted event is dated when it is sent: never behind its partition's watermark
    last: dict[int, datetime] = {}
    for r in planted:
        if r.topic == TRANSACTIONS and r.anomaly is None and r.event is not None:
            at = r.event.occurred_at
            if r in extra:
                assert at >= last.get(r.partition, at)
            last[r.partition] = max(last.get(r.partition, at), at)


def test_the_rules_fire_on_the_planted_patterns() -> None:
    config = SimulationConfig(
        seed=3,
        events=20_000,
        enterprises=200,
        step_seconds=Decimal(10),
        start=datetime(2025, 3, 3, tzinfo=UTC),
        aml_permille=5,
    )
    base = replace(config, aml_permille=0)
    fired = Counter[str]()
    for rule, n in oracle_figures(run_simulation(None, config, sink=_NullSink()).oracle)[
        "dfip_alerts_total"
    ].items():
        fired[rule[0]] += n
    plain = Counter[str]()
    for rule, n in oracle_figures(run_simulation(None, base, sink=_NullSink()).oracle)[
        "dfip_alerts_total"
    ].items():
        plain[rule[0]] += n
    for rule in ("cash", "structuring", "velocity", "round_amounts", "large_value_daily"):
        assert fired[rule] > plain[rule], (rule, fired, plain)
