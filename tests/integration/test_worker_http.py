"""The worker's HTTP surface: open health/readiness/metrics, token-guarded rest, no ids leak."""

from __future__ import annotations

from pathlib import Path

import orjson

from adapters.simulator.runner import SimulationConfig, run_simulation
from core.kafka_config import KafkaSettings
from tests.support.workers import (
    USCC_LIKE,
    WorkerProcess,
    oracle_figures,
    wait_converged,
    wait_ready,
)


def test_endpoints_and_token(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    result = run_simulation(kafka_settings, SimulationConfig(seed=3, events=800, enterprises=100))
    worker = WorkerProcess(
        kafka_settings, "http", tmp_path, DFIP_WORKER_API_TOKEN="s3cret-token"
    ).start()
    try:
        wait_ready(worker)
        wait_converged([worker], oracle_figures(result.oracle))
        assert worker.get("/health")[0] == 200
        status, body = worker.get("/ready")
        assert status == 200
        assert orjson.loads(body)["partitions"] == list(range(12))
        status, body = worker.get("/metrics")
        assert status == 200
        assert b"dfip_transactions_total" in body
        assert worker.get("/state")[0] == 401
        for faust_page in ("/router/", "/table/", "/graph/", "/stats/"):
            assert worker.get(faust_page)[0] == 404, faust_page
        # the token opens /state; a wrong one does not
        import urllib.request

        def state(token: str) -> int:
            req = urllib.request.Request(
                f"http://127.0.0.1:{worker.port}/state",
                headers={"Authorization": f"Bearer {token}"},
            )
            try:
                with urllib.request.urlopen(req, timeout=3) as r:
                    return int(r.status)
            except urllib.error.HTTPError as e:
                return int(e.code)

        assert state("wrong") == 401
        assert state("s3cret-token") == 200
        # neither the exposition nor the worker log carries an enterprise id
        assert not USCC_LIKE.search(body.decode())
    finally:
        worker.stop()
    assert not USCC_LIKE.search(worker.log_path.read_text(errors="replace"))
