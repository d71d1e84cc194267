"""No raw identifiers leave a worker except in Kafka records: after a simulator feed (with its
deliberate bad input) through a real worker, none of the enterprise USCCs, loan or
application ids, or account identifiers the simulator used appears in the worker's log, its
/metrics exposition, or the bodies of /health, /ready and the token-protected /state.

Identifiers are collected from the feed itself (the feed is a pure function of its config,
so these are exactly the records `simulate` produced), including those inside bad input.
Both log levels an operator would use are checked: info (the default) and debug.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.simulator.feed import Feed
from adapters.simulator.model import LoanFact, TxFact
from adapters.simulator.runner import SimulationConfig
from core.kafka_config import KafkaSettings
from tests.integration.test_stream_exact import simulate
from tests.support.workers import WorkerProcess, oracle_figures, wait_converged, wait_ready

EVENTS = 3000
TOKEN = "test-token-not-an-identifier"
_ID_FIELDS = ("enterprise_uscc", "loan_id", "application_id", "account_ref")


def identifiers(events: int) -> dict[str, set[str]]:
    """Every identifier in the first `events` records of the feed `simulate` sends."""
    found: dict[str, set[str]] = {name: set() for name in (*_ID_FIELDS, "account_number")}
    config = SimulationConfig(seed=11, events=events, enterprises=400).feed_config()
    for n, record in enumerate(Feed(config)):
        if n >= events:
            break
        docs: list[dict[str, Any]] = []
        if record.event is not None:
            docs.append(record.event.model_dump(mode="json"))
        if record.raw is not None:
            try:
                doc = orjson.loads(record.raw)
            except orjson.JSONDecodeError:
                doc = None
            if isinstance(doc, dict):
                docs.append(doc)
        for doc in docs:
            for name in _ID_FIELDS:
                if isinstance(doc.get(name), str):
                    found[name].add(doc[name])
            # the simulator's account numbers are "<institution>:<USCC>" before pseudonymising
            if isinstance(doc.get("enterprise_uscc"), str) and isinstance(doc.get("source"), str):
                found["account_number"].add(f"{doc['source']}:{doc['enterprise_uscc']}")
        fact = record.fact
        if isinstance(fact, TxFact | LoanFact):
            found["enterprise_uscc"].add(fact.uscc)
        if isinstance(fact, LoanFact):
            found["loan_id"].add(fact.loan_id)
    return found


def leaks(text: str, ids: dict[str, set[str]]) -> dict[str, list[str]]:
    return {
        name: sorted(v for v in values if v in text)[:5]
        for name, values in ids.items()
        if any(v in text for v in values)
    }


def get_with_token(worker: WorkerProcess, path: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{worker.port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as r:
        return r.status, r.read()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib must talk to the worker on loopback directly
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.mark.parametrize(
    "log_level",
    [
        pytest.param("info", id="log-level-info"),
        # at debug, DFIP's own loggers debug; aiokafka/kafka-python (which would log every
        # record and fetch response) stay at INFO: dfip/worker_process.py worker_logging_config
        pytest.param("debug", id="log-level-debug"),
    ],
)
def test_no_identifier_in_logs_metrics_or_http_bodies(
    kafka_settings: KafkaSettings, tmp_path: Path, log_level: str
) -> None:
    ids = identifiers(EVENTS)
    assert len(ids["enterprise_uscc"]) > 100
    assert ids["loan_id"]
    assert ids["account_ref"]
    worker = WorkerProcess(
        kafka_settings,
        "privacy",
        tmp_path,
        DFIP_WORKER_API_TOKEN=TOKEN,
        DFIP_WORKER_LOG_LEVEL=log_level,
    ).start()
    try:
        wait_ready(worker)
        result = simulate(kafka_settings, EVENTS)
        assert result.anomalies, "the feed should carry bad input (whose reasons echo values)"
        wait_converged([worker], oracle_figures(result.oracle))
        bodies = {
            "/metrics": worker.metrics_text() or "",
            "/health": worker.get("/health")[1].decode(),
            "/ready": worker.get("/ready")[1].decode(),
        }
        status, state = get_with_token(worker, "/state")
        assert status == 200
        bodies["/state"] = state.decode()
        assert all(bodies.values())
    finally:
        worker.stop()
    bodies["worker log"] = worker.log_path.read_text(errors="replace")
    assert "Traceback" not in bodies["worker log"], worker.tail()
    found = {where: hit for where, text in bodies.items() if (hit := leaks(text, ids))}
    assert not found, f"identifiers leaked: {found}"
