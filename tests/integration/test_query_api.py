"""The exposure query API on two real workers: every simulated enterprise asked through the
worker that does NOT own it (forwarded to the owner) equals the oracle's view exactly; during
a rebalance every answer is exact or 503 with Retry-After; no token → 401, a wrong one → 403,
a bad check character → 400; no identifier in the logs; `dfip report`'s reader of
dfip.metrics gives the oracle's closed windows. (~18 s on the session broker.)"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from pathlib import Path

import orjson

from adapters.simulator.enterprise_oracle import enterprise_view, province_usccs, replay
from adapters.simulator.runner import SimulationConfig, run_simulation
from core.kafka_config import KafkaSettings
from dfip.report.build import latest_windows
from dfip.report.cli import read_metrics
from schemas.catalog import partition_for
from tests.support.workers import (
    USCC_LIKE,
    WorkerProcess,
    oracle_figures,
    oracle_windows,
    wait_converged,
    wait_for,
    wait_ready,
)

TOKEN = "query-token-0123456789"


def ask(worker: WorkerProcess, uscc: str, token: str | None = TOKEN) -> tuple[int, dict]:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    req = urllib.request.Request(
        f"http://127.0.0.1:{worker.port}/v1/enterprises/{uscc}", headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return int(r.status), orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        status, body, retry = int(e.code), orjson.loads(e.read()), e.headers.get("Retry-After")
    assert status != 503 or retry, "a 503 says when to ask again"
    return status, body


def owned(worker: WorkerProcess) -> set[int]:
    status, body = worker.get("/ready", timeout=2)
    return set(orjson.loads(body)["partitions"]) if status == 200 else set()


def test_every_enterprise_through_the_other_worker(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    # fast loan months and score rounds: repayments and re-assessments within the feed
    config = SimulationConfig(
        seed=5, events=1500, enterprises=60, loan_month_seconds=60, score_round_seconds=400
    )
    result = run_simulation(kafka_settings, config)
    env = {"DFIP_WORKER_API_TOKEN": TOKEN, "DFIP_WORKER_AUDIT_KEY": "audit-key-0123456789"}
    workers = [WorkerProcess(kafka_settings, f"q{i}", tmp_path, **env).start() for i in (1, 2)]
    try:
        for w in workers:
            wait_ready(w)
        # both members of the group, each with its share of the 12 partitions
        wait_for(
            lambda: (
                all(owned(w) for w in workers)
                and owned(workers[0]) | owned(workers[1]) == set(range(12))
                and not owned(workers[0]) & owned(workers[1])
            ),
            timeout=120,
            what="two workers sharing the partitions",
        )
        wait_converged(workers, oracle_figures(result.oracle))
        oracle = replay(config)
        parts = [owned(w) for w in workers]
        answered = repaid = reassessed = 0
        for uscc in province_usccs(config):
            home = partition_for(uscc)
            other = workers[1] if home in parts[0] else workers[0]
            status, body = ask(other, uscc)
            expected = enterprise_view(oracle, uscc)
            if expected is None:
                assert status == 404, (status, body)
                continue
            assert status == 200, (status, body)
            owner = workers[0] if other is workers[1] else workers[1]
            assert body.pop("served_by") == owner.worker_id  # forwarded to the owner
            assert body == expected, uscc
            answered += 1
            repaid += sum(x["outstanding_fen"] != x["principal_fen"] for x in body["loans"])
            reassessed += len(body["scores"]) > 1
        # the feed exercises what the answer shows: loans part repaid, several versions
        assert answered >= 30
        assert repaid
        assert reassessed

        some = province_usccs(config)[0]
        assert ask(workers[0], some, token=None)[0] == 401
        assert ask(workers[0], some, token="wrong")[0] == 403
        bad = some[:-1] + ("0" if some[-1] != "0" else "1")  # the check character broken
        status, body = ask(workers[0], bad)
        assert status == 400
        assert "check character" in body["error"]
        # a rebalance (the second worker leaves) while asking the first without pause: each
        # answer is the exact one or a 503, never a partial or stale one
        views = {u: enterprise_view(oracle, u) for u in province_usccs(config)[:20]}
        views = {u: v for u, v in views.items() if v is not None}
        seen: list[int] = []
        stopper = threading.Thread(target=workers[1].stop, daemon=True)
        stopper.start()
        while stopper.is_alive() or len(seen) < 2 * len(views):
            for uscc, want in views.items():
                status, body = ask(workers[0], uscc)
                assert status in (200, 503), (status, body)
                if status == 200:
                    body.pop("served_by")
                    assert body == want, uscc
                seen.append(status)
        wait_for(
            lambda: all(ask(workers[0], u)[0] == 200 for u in views),
            timeout=120,
            what="the remaining worker to own every partition",
        )

        # `dfip report` reads the closed windows from the broker: the oracle's, exactly
        latest = latest_windows(read_metrics(kafka_settings)).values()
        got = {(w["size"], w["window_start"], w["topic"], w["partition"]): w for w in latest}
        assert {k: w["figures"] for k, w in got.items()} == oracle_windows(result.oracle)
        status, spec = workers[0].get("/v1/openapi.json")
        assert status == 200
        assert b"/v1/enterprises/{uscc}" in spec
    finally:
        for w in workers:
            w.stop()
    for w in workers:
        text = w.log_path.read_text(errors="replace")
        assert not USCC_LIKE.search(text), w.worker_id
        assert "enterprise query ent_" in text  # every access audit-logged, pseudonymised
