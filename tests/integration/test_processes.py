"""A worker of several processes (streams/supervisor/) on the real broker: its figures equal
the simulator's oracle exactly, through a SIGKILL of the whole worker mid-stream; its port
answers for all its processes; SIGTERM stops them all; a process that dies takes the worker
down (the service manager restarts it), and no process outlives its supervisor."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson
import pytest

from adapters.simulator.runner import SimulationResult
from bench.scrape import process_tree
from core.kafka_config import KafkaSettings
from tests.integration.test_stream_exact import (
    assert_exact,
    assert_flow_identity,
    in_background,
    join_ok,
    simulate,
)
from tests.support.ports import free_port_run
from tests.support.workers import (
    WorkerProcess,
    oracle_figures,
    parse_figures,
    wait_converged,
    wait_for,
    wait_ready,
)

# a short session timeout: the processes of a SIGKILLed worker leave the group in seconds
FAST_FAILOVER = {"BROKER_SESSION_TIMEOUT": "10"}


def _children(worker: WorkerProcess) -> list[int]:
    """The worker's processes, in their order (process 0 first)."""
    assert worker.proc is not None
    return process_tree(worker.proc.pid)[1:]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited, not yet reaped


def _ready_body(worker: WorkerProcess) -> dict[str, object]:
    status, body = worker.get("/ready")
    doc: dict[str, object] = orjson.loads(body)
    doc["status"] = status
    return doc


def test_two_processes_match_the_oracle_through_a_sigkill(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    holder: dict[str, SimulationResult] = {}
    first = WorkerProcess(kafka_settings, "duo", tmp_path, processes="2", **FAST_FAILOVER)
    first.start()
    try:
        wait_ready(first)
        ready = _ready_body(first)
        parts = ready["processes"]
        assert isinstance(parts, list)
        assert len(parts) == 2
        # both processes are members with their own share (the start-up hold waited for both)
        shares = [set(p["partitions"]) for p in parts]
        assert all(shares), shares
        assert shares[0].isdisjoint(shares[1])
        assert shares[0] | shares[1] == set(range(12))
        children = _children(first)
        assert len(children) == 2
        feed = in_background(lambda: holder.setdefault("r", simulate(kafka_settings, 6000, 1500)))
        time.sleep(2.0)
        first.kill()  # SIGKILL of the supervisor: its processes die with it, nothing committed
        wait_for(lambda: all(_gone(c) for c in children), timeout=10, what="processes gone")
        second = WorkerProcess(kafka_settings, "duo", tmp_path, processes="2", **FAST_FAILOVER)
        second.start()
        try:
            join_ok(feed)
            expected = oracle_figures(holder["r"].oracle)
            got = wait_converged([second], expected)
            assert_exact(got, expected)
            assert_flow_identity(got)
            # the merged exposition equals the processes' own, read directly
            direct = [t for port in _ports(second) if (t := _metrics(port)) is not None]
            assert len(direct) == 2
            merged = second.metrics_text()
            assert merged is not None
            assert parse_figures([merged]) == parse_figures(direct) == got
        finally:
            second.stop()
    finally:
        first.stop()


def _ports(worker: WorkerProcess) -> list[int]:
    """The processes' own ports, as /ready lists them."""
    parts = _ready_body(worker)["processes"]
    assert isinstance(parts, list)
    return [int(p["port"]) for p in parts]


def _metrics(port: int) -> str | None:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        body: bytes = r.read()
    return body.decode()


def test_the_port_answers_for_every_process_and_sigterm_stops_them_all(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    worker = WorkerProcess(kafka_settings, "front", tmp_path, processes="2").start()
    try:
        wait_ready(worker)
        status, body = worker.get("/health")
        assert status == 200
        assert orjson.loads(body) == {"status": "alive", "worker": "front", "processes": 2}
        # the ready gauge follows /ready by a moment (set once the seek after the restore
        # is done); the merged gauge is the smallest of the processes'
        wait_for(
            lambda: "\ndfip_worker_ready 1.0\n" in (worker.metrics_text() or ""),
            timeout=30,
            what="dfip_worker_ready 1 on the merged /metrics",
        )
        text = worker.metrics_text()
        assert text is not None
        assert "\ndfip_worker_assigned_partitions 12.0\n" in text
        assert text.count("# TYPE dfip_worker_ready gauge") == 1
        assert worker.get("/state")[0] == 401  # the processes' token check, passed on
        # the processes' own ports answer too (Prometheus needs only the worker's)
        ports = _ports(worker)
        assert len(ports) == 2
        assert worker.port not in ports
        for port in ports:
            assert "dfip_worker_ready 1.0" in (_metrics(port) or "")
        # ready everywhere, so the supervisor releases them (it polls /ready every 0.2 s)
        wait_for(
            lambda: "records flow" in worker.log_path.read_text(),
            timeout=30,
            what="the processes released",
        )
        children = _children(worker)
        assert worker.stop(signal.SIGTERM) == 0
        assert all(_gone(c) for c in children)
    finally:
        worker.stop()


def test_a_process_that_dies_takes_the_worker_down(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    worker = WorkerProcess(kafka_settings, "fragile", tmp_path, processes="2").start()
    try:
        wait_ready(worker)
        children = _children(worker)
        assert len(children) == 2
        import os

        os.kill(children[1], signal.SIGKILL)
        assert worker.proc is not None
        code = worker.proc.wait(timeout=90)
        assert code != 0  # exits, so the service manager restarts the whole worker
        assert all(_gone(c) for c in children)
        assert "worker process 1 exited" in worker.log_path.read_text()
    finally:
        worker.stop()


def test_two_workers_on_neighbouring_ports(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    """Operators number workers' ports 6066, 6067, …: a worker's processes take free ports,
    not the next ones, so two such workers of two processes each both start."""
    base = free_port_run(2)
    workers = []
    for i, name in enumerate(("left", "right")):
        w = WorkerProcess(
            kafka_settings,
            name,
            tmp_path,
            processes="2",
            port=base + i,
            DFIP_WORKER_APP_ID="pair",
        )
        workers.append(w.start())
    try:
        for w in workers:
            wait_ready(w)

        def four_members_own_all() -> bool:
            shares = [
                set(p["partitions"])
                for w in workers
                for p in _ready_body(w)["processes"]  # type: ignore[union-attr]
            ]
            union = set().union(*shares)
            return len(shares) == 4 and all(shares) and union == set(range(12))

        wait_for(four_members_own_all, timeout=90, what="4 members sharing the 12 partitions")
    finally:
        for w in workers:
            w.stop()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
