"""Graceful shutdown on the real broker, as Kubernetes does it: a worker stopped with SIGTERM
mid-stream commits, leaves the consumer group and exits 0 within the grace period the
manifests give it; the surviving worker takes over all partitions and every figure still
equals the simulator's oracle exactly (nothing lost, nothing counted twice).

The test also measures what a rebalance costs in both directions and prints it
(`pytest -s` shows it; docs/scaling.md quotes the figures):
- scale-out: a second worker process is started → the partitions are split between the two
  and both are ready (includes the new process's start-up);
- scale-in: SIGTERM → the survivor owns all partitions and is ready again (its restore of the
  partitions it takes over from the dfip.state changelog included).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from adapters.simulator.runner import SimulationResult
from core.kafka_config import KafkaSettings
from schemas.catalog import USCC_PARTITIONS
from tests.integration.test_stream_exact import (
    assert_exact,
    assert_flow_identity,
    in_background,
    join_ok,
    simulate,
)
from tests.support.workers import (
    WorkerProcess,
    closed_windows,
    oracle_figures,
    oracle_windows,
    read_topic,
    scrape,
    total,
    wait_converged,
    wait_for,
    wait_ready,
)

REPO = Path(__file__).resolve().parents[2]
STATEFULSET = REPO / "deploy" / "k8s" / "base" / "worker-statefulset.yaml"

# Slow enough that the feed is still running when the worker is stopped (the simulator
# produces about 700 records/s on the 2-core test machine, bench/RESULTS_simulator.md).
FEED_EVENTS = 9000
FEED_RATE = 400.0
ALL_PARTITIONS = set(range(USCC_PARTITIONS))


def shutdown_budget() -> float:
    """Seconds the worker process has between SIGTERM and SIGKILL in the StatefulSet.

    Kubernetes runs the preStop hook first and sends SIGTERM after it; both come out of
    terminationGracePeriodSeconds, so the process gets the remainder.
    """
    doc = yaml.safe_load(STATEFULSET.read_text())
    pod = doc["spec"]["template"]["spec"]
    grace = float(pod["terminationGracePeriodSeconds"])
    (worker,) = [c for c in pod["containers"] if c["name"] == "worker"]
    command = worker["lifecycle"]["preStop"]["exec"]["command"]
    pre_stop = float(command[-1].split("sleep", 1)[1].split()[0]) if "sleep" in command[-1] else 0
    return grace - pre_stop


def partitions_of(worker: WorkerProcess) -> set[int] | None:
    """Partitions the worker owns when it is ready (its /ready JSON), else None."""
    try:
        status, body = worker.get("/ready", timeout=1)
    except OSError:
        return None
    return set(orjson.loads(body)["partitions"]) if status == 200 else None


def received(worker: WorkerProcess) -> int:
    return total(scrape([worker]), "dfip_events_received_total")


def rss_mib(worker: WorkerProcess) -> float:
    """Resident memory of the worker process (Linux /proc)."""
    assert worker.proc is not None
    status = Path(f"/proc/{worker.proc.pid}/status").read_text()
    (line,) = [x for x in status.splitlines() if x.startswith("VmRSS:")]
    return int(line.split()[1]) / 1024


def last_restore_seconds(worker: WorkerProcess) -> float | None:
    for line in (worker.metrics_text() or "").splitlines():
        if line.startswith("dfip_worker_last_restore_seconds "):
            return float(line.split()[1])
    return None


def state_size(kafka: KafkaSettings) -> tuple[int, int]:
    """(live keys, bytes of their latest values) in the dfip.state changelog: what a restore
    of all partitions reads after compaction."""
    latest: dict[tuple[int, bytes], int] = {}
    for r in read_topic(kafka, "dfip.state"):
        key = (r.partition, r.key or b"")
        if r.value is None:
            latest.pop(key, None)
        else:
            latest[key] = len(r.key or b"") + len(r.value)
    return len(latest), sum(latest.values())


@pytest.mark.parametrize(
    "stopped",
    [
        # the survivor gets back the partitions it owned before worker 1 joined
        pytest.param("joiner", id="survivor-takes-back-its-earlier-partitions"),
        # the survivor gets partitions it never owned
        pytest.param("first", id="survivor-takes-new-partitions"),
    ],
)
def test_sigterm_mid_stream_leaves_the_group_and_loses_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path, stopped: str
) -> None:
    budget = shutdown_budget()
    assert budget >= 10, "the manifests leave the worker too little time after SIGTERM"
    # pod names of a StatefulSet: the stable identity that names the transactional producer
    first = WorkerProcess(kafka_settings, "dfip-worker-0", tmp_path).start()
    joiner = WorkerProcess(kafka_settings, "dfip-worker-1", tmp_path)
    a, b = first, joiner  # a keeps running, b gets SIGTERM (assigned once both run)
    holder: dict[str, SimulationResult] = {}
    timings: dict[str, Any] = {}
    try:
        wait_ready(first)
        feed = in_background(
            lambda: holder.setdefault("r", simulate(kafka_settings, FEED_EVENTS, FEED_RATE))
        )
        wait_for(lambda: received(first) > 0, timeout=60, what="the feed to reach worker 0")

        # scale-out: a second worker joins mid-stream
        t_join = time.monotonic()
        joiner.start()

        def split() -> bool:
            pa, pb = partitions_of(a), partitions_of(b)
            return bool(pa and pb and pa.isdisjoint(pb) and pa | pb == ALL_PARTITIONS)

        wait_for(split, timeout=120, interval=0.1, what="the partitions to be split")
        timings["scale_out_s"] = time.monotonic() - t_join
        owned_by_joiner = partitions_of(joiner) or set()
        if stopped == "first":
            a, b = joiner, first
        wait_for(lambda: received(b) > 0, timeout=60, what=f"{b.worker_id} to process records")

        # scale-in: SIGTERM while the feed is still producing
        assert feed.is_alive(), "the feed ended before SIGTERM; slow it down (FEED_RATE)"
        assert b.proc is not None
        t_term = time.monotonic()
        b.proc.send_signal(signal.SIGTERM)
        rc = b.proc.wait(timeout=budget + 30)
        timings["exit_s"] = time.monotonic() - t_term
        assert rc == 0, f"{b.worker_id} exited {rc} after SIGTERM:\n{b.tail()}"
        assert timings["exit_s"] < budget, (
            f"{b.worker_id} needed {timings['exit_s']:.1f}s to stop; the pod gets {budget:.0f}s"
        )
        # it left the group: the survivor gets everything long before a session timeout
        wait_for(
            lambda: partitions_of(a) == ALL_PARTITIONS,
            timeout=budget,
            interval=0.1,
            what=f"{a.worker_id} to own every partition",
        )
        timings["scale_in_s"] = time.monotonic() - t_term
        timings["feed_alive_at_takeover"] = feed.is_alive()
        timings["restore_s"] = last_restore_seconds(a)

        join_ok(feed)
        result = holder["r"]
        expected = oracle_figures(result.oracle)
        got = wait_converged([a], expected)
        assert_exact(got, expected)
        assert_flow_identity(got)
        assert closed_windows(kafka_settings) == oracle_windows(result.oracle)

        keys, size = state_size(kafka_settings)
        rss = rss_mib(a)
        print(
            f"\nrebalance on the real broker ({result.records} records, "
            f"{result.records / max(result.elapsed_seconds, 1e-9):.0f}/s feed):\n"
            f"  scale-out (start {joiner.worker_id} -> split {len(owned_by_joiner)}/"
            f"{USCC_PARTITIONS} partitions, both ready): {timings['scale_out_s']:.2f}s\n"
            f"  SIGTERM -> {b.worker_id} exited 0: {timings['exit_s']:.2f}s "
            f"(budget {budget:.0f}s)\n"
            f"  SIGTERM -> {a.worker_id} owns all {USCC_PARTITIONS} partitions and is ready: "
            f"{timings['scale_in_s']:.2f}s "
            f"(feed still producing: {timings['feed_alive_at_takeover']})\n"
            f"  of which restoring the taken-over partitions: {timings['restore_s']}s\n"
            f"  dfip.state: {keys} live keys, {size / 1024:.0f} KiB; "
            f"survivor RSS with all partitions: {rss:.0f} MiB"
        )
    finally:
        first.stop()
        joiner.stop()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib must talk to the worker on loopback directly
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
