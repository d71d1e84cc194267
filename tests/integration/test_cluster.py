"""Faults on a local three-node cluster (replication 3, min.insync.replicas 2), as production
runs Kafka. One cluster is shared by the module, each test has a topic namespace of its own;
each test ends with every figure equal to the simulator's oracle exactly and received =
processed + duplicate + dead-lettered:

- topics created with replication 3 / min ISR 2, and an under-replicated catalog refused;
- the node leading most input partitions SIGKILLed mid-stream, then brought back;
- the node hosting both the group coordinator and the transaction coordinator of a worker
  SIGKILLed mid-batch and kept down for three times the worker's commit timeout, then
  brought back;
- a rolling restart (controlled stop, start, wait for in-sync replicas) of all three nodes
  while the simulator feeds two workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import DfipError
from core.kafka_admin import create_topics
from core.kafka_config import KafkaSettings
from schemas.catalog import ALL_TOPICS, LOANS, SCORES, TRANSACTIONS
from tests.integration.test_faults import Feed, assert_exact_end, owners, received
from tests.support.cluster import LocalCluster
from tests.support.workers import WorkerProcess, wait_for, wait_ready

pytestmark = pytest.mark.cluster

# below the ephemeral port range (see tests/support/ports.py)
BASE_PORT = int(os.environ.get("DFIP_TEST_CLUSTER_PORT", "27092"))
INPUTS = (TRANSACTIONS.name, LOANS.name, SCORES.name)
#: A worker's commit timeout (seconds) far below the time a killed node stays down, so a
#: transaction stuck on the dead coordinator fails and is redone (the default is 60 s).
COMMIT_TIMEOUT = 5


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("cluster"), BASE_PORT)
    c.up()
    try:
        yield c
    finally:
        c.down()


def _namespace(cluster: LocalCluster) -> KafkaSettings:
    settings = KafkaSettings(
        bootstrap_servers=cluster.bootstrap, topic_prefix=f"c{uuid.uuid4().hex[:8]}-"
    )
    create_topics(settings)
    return settings


def _all_back(cluster: LocalCluster, settings: KafkaSettings) -> None:
    names = [settings.topic(t.name) for t in ALL_TOPICS]
    wait_for(
        lambda: cluster.fully_replicated([*names, "__consumer_offsets", "__transaction_state"]),
        timeout=180,
        interval=1,
        what="every replica back in sync",
    )


def test_topics_replicated_three_ways_and_under_replication_refused(
    cluster: LocalCluster,
) -> None:
    settings = _namespace(cluster)
    admin = cluster._admin()
    try:
        described = admin.describe_topics([settings.topic(TRANSACTIONS.name)])
    finally:
        admin.close()
    for p in described[0]["partitions"]:
        assert len(p["replica_nodes"]) == 3
    from kafka.admin import ConfigResource

    admin = cluster._admin()
    try:
        configs = admin.describe_configs(
            [ConfigResource("TOPIC", settings.topic(TRANSACTIONS.name))]
        )
    finally:
        admin.close()
    topic_cfg = next(iter(configs["topic"].values()))
    assert topic_cfg["min.insync.replicas"]["value"] == "2"

    weak = KafkaSettings(
        bootstrap_servers=cluster.bootstrap,
        topic_prefix=f"w{uuid.uuid4().hex[:8]}-",
        replication_factor=1,
    )
    with pytest.raises(DfipError) as err:
        create_topics(weak)
    assert "refusing to create topics with replication factor 1 on a cluster of 3" in str(err.value)
    admin = cluster._admin()
    try:
        assert not [t for t in admin.list_topics() if t.startswith(weak.topic_prefix)]
    finally:
        admin.close()
    made = create_topics(weak, [TRANSACTIONS], allow_under_replicated=True)
    assert made[0].created

    # the command line says it in one line and exits 1; told to, it creates them
    env = {
        **os.environ,
        "DFIP_KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "DFIP_KAFKA_TOPIC_PREFIX": f"v{uuid.uuid4().hex[:8]}-",
        "DFIP_KAFKA_REPLICATION_FACTOR": "2",
        "COLUMNS": "200",
    }
    cmd = [sys.executable, "-m", "dfip.cli", "topics", "create"]
    refused = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "replication factor 2 on a cluster of 3 brokers" in refused.stderr
    assert "--allow-under-replicated" in refused.stderr
    allowed = subprocess.run(
        [*cmd, "--allow-under-replicated"], env=env, capture_output=True, text=True, timeout=120
    )
    assert allowed.returncode == 0, allowed.stderr


def test_leader_of_busiest_inputs_killed_and_back(cluster: LocalCluster, tmp_path: Path) -> None:
    settings = _namespace(cluster)
    worker = WorkerProcess(settings, "leader-kill", tmp_path).start()
    feed: Feed | None = None
    try:
        wait_ready(worker, timeout=180)
        feed = Feed(settings, rate=200)
        wait_for(lambda: received(worker) > 300, timeout=90, what="the feed to reach the worker")
        victim = cluster.busiest_leader(settings.topic(t) for t in INPUTS)
        cluster.kill(victim)
        seen = received(worker)
        wait_for(
            lambda: received(worker) > seen + 300,
            timeout=180,
            what=f"records processed with node {victim} dead",
        )
        back = cluster.start(victim)
        seen = received(worker)
        wait_for(lambda: received(worker) > seen + 200, timeout=120, what="records after it")
        result = feed.end()

        assert worker.alive, f"the worker did not survive:\n{worker.tail()}"
        assert result.delivered == result.records
        assert_exact_end([worker], result)
        _all_back(cluster, settings)
        print(f"\nnode {victim} SIGKILLed and back ({result.records} records), start {back:.0f}s")
    finally:
        if feed is not None:
            feed.abandon()
        worker.stop()


def test_coordinators_node_killed_mid_batch(cluster: LocalCluster, tmp_path: Path) -> None:
    settings = _namespace(cluster)
    cluster.ensure_internal_topics()
    group = f"{settings.topic_prefix}dfip"  # as streams/engine/engine.py names the group
    worker_id = cluster.colocated_worker_id(group)
    worker = WorkerProcess(
        settings, worker_id, tmp_path, DFIP_WORKER_COMMIT_TIMEOUT_SECONDS=str(COMMIT_TIMEOUT)
    ).start()
    feed: Feed | None = None
    try:
        wait_ready(worker, timeout=180)
        feed = Feed(settings, rate=200)
        wait_for(lambda: received(worker) > 300, timeout=90, what="the feed to reach the worker")
        group_node, txn_node = cluster.coordinators(group, f"{group}-{worker_id}")
        assert group_node == txn_node, "the coordinators moved apart before the kill"
        cluster.kill(group_node)
        killed = time.monotonic()
        seen = received(worker)
        # down for several commit timeouts, and until the worker has gone on without it
        wait_for(
            lambda: (
                received(worker) > seen + 300 and time.monotonic() - killed > 3 * COMMIT_TIMEOUT
            ),
            timeout=180,
            what=f"records processed with the coordinators' node {group_node} dead",
        )
        moved = cluster.coordinators(group, f"{group}-{worker_id}")
        cluster.start(group_node)
        result = feed.end()

        assert group_node not in moved
        assert worker.alive, f"the worker did not survive:\n{worker.tail()}"
        assert result.delivered == result.records
        assert_exact_end([worker], result)
        _all_back(cluster, settings)
        print(f"\ncoordinators' node {group_node} SIGKILLed; they moved to {moved}")
    finally:
        if feed is not None:
            feed.abandon()
        worker.stop()


def test_rolling_restart_with_two_workers(cluster: LocalCluster, tmp_path: Path) -> None:
    settings = _namespace(cluster)
    workers = [WorkerProcess(settings, f"rolling-{i}", tmp_path).start() for i in (1, 2)]
    feed: Feed | None = None
    try:
        wait_for(
            lambda: owners(workers) is not None,
            timeout=240,
            interval=0.5,
            what="two workers sharing the partitions",
        )
        feed = Feed(settings, rate=200)
        wait_for(
            lambda: all(received(w) > 0 for w in workers),
            timeout=90,
            what="both workers to process records",
        )
        timings = []
        for node in (1, 2, 3):
            stop = cluster.stop(node)
            start = cluster.start(node)
            # the next node goes only once this one has caught up, as an operator would
            _all_back(cluster, settings)
            timings.append((node, stop, start))
        seen = sum(received(w) for w in workers)
        wait_for(
            lambda: sum(received(w) for w in workers) > seen + 200,
            timeout=120,
            what="records after the rolling restart",
        )
        result = feed.end()

        for w in workers:
            assert w.alive, f"{w.worker_id} did not survive:\n{w.tail()}"
        assert result.delivered == result.records
        assert_exact_end(workers, result)
        steps = ", ".join(f"node {n}: stop {s:.0f}s start {t:.0f}s" for n, s, t in timings)
        print(f"\nrolling restart ({result.records} records): {steps}")
    finally:
        if feed is not None:
            feed.abandon()
        for w in workers:
            w.stop()
