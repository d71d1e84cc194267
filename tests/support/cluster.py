"""A local three-node Kafka cluster (deploy/kafka/kafka.sh with DFIP_KAFKA_NODES=3) for
integration tests: start, stop and SIGKILL single nodes, and find which node leads what."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.kafka_admin import admin_client
from core.kafka_config import KafkaSettings

REPO = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO / "deploy" / "kafka" / "kafka.sh"
#: Partitions of Kafka's internal topics (kafka.sh sets both to 12).
INTERNAL_PARTITIONS = 12


def java_string_hash(text: str) -> int:
    """Java's String.hashCode, which Kafka uses to place a group or transactional id."""
    h = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def coordinator_partition(key: str, partitions: int = INTERNAL_PARTITIONS) -> int:
    """The __consumer_offsets / __transaction_state partition whose leader coordinates `key`
    (Kafka: Utils.abs(key.hashCode()) % partitions, Utils.abs being `& 0x7fffffff`)."""
    return (java_string_hash(key) & 0x7FFFFFFF) % partitions


class LocalCluster:
    """Three combined broker/controller nodes of one test module's own, on 127.0.0.1."""

    def __init__(self, home: Path, base_port: int, nodes: int = 3) -> None:
        self.home = home
        self.base_port = base_port
        self.nodes = nodes
        self.env = {
            **os.environ,
            "DFIP_KAFKA_HOME": str(home),
            "DFIP_KAFKA_NODES": str(nodes),
            "DFIP_KAFKA_PORT": str(base_port),
            "DFIP_KAFKA_CONTROLLER_PORT": str(base_port + 1),
            "DFIP_KAFKA_TIMEOUT": "180",  # three JVMs starting on a loaded 2-core machine
        }

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.port_of(i)}" for i in range(1, self.nodes + 1))

    def port_of(self, node: int) -> int:
        return self.base_port + 2 * (node - 1)

    def _script(self, *args: str) -> None:
        subprocess.run(["bash", str(KAFKA_SCRIPT), *args], check=True, env=self.env, cwd=REPO)

    def up(self) -> None:
        self._script("up")

    def down(self) -> None:
        self._script("down")

    def start(self, node: int) -> float:
        """Start one node and wait until it serves; seconds it took."""
        t0 = time.monotonic()
        self._script("start-node", str(node))
        return time.monotonic() - t0

    def stop(self, node: int) -> float:
        """Controlled shutdown of one node (leaders move first); seconds it took."""
        t0 = time.monotonic()
        self._script("stop-node", str(node))
        return time.monotonic() - t0

    def kill(self, node: int) -> None:
        """SIGKILL one node: no controlled shutdown, its leaderships simply vanish."""
        self._script("kill-node", str(node))

    def _admin(self, settings: KafkaSettings | None = None) -> Any:
        return admin_client(settings or KafkaSettings(bootstrap_servers=self.bootstrap))

    def leaders(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        """(topic, partition) → leader node id, for every partition of `topics`."""
        admin = self._admin()
        try:
            out: dict[tuple[str, int], int] = {}
            for desc in admin.describe_topics(list(topics)):
                for p in desc["partitions"]:
                    out[(desc["name"], p["partition_index"])] = p["leader_id"]
            return out
        finally:
            admin.close()

    def busiest_leader(self, topics: Iterable[str]) -> int:
        """The node leading most partitions of `topics`."""
        counts = Counter(self.leaders(topics).values())
        return counts.most_common(1)[0][0]

    def fully_replicated(self, topics: Iterable[str]) -> bool:
        """Every partition of `topics` has a leader and all its replicas in sync."""
        admin = self._admin()
        try:
            for desc in admin.describe_topics(list(topics)):
                for p in desc["partitions"]:
                    if p["leader_id"] < 0 or set(p["isr_nodes"]) != set(p["replica_nodes"]):
                        return False
            return True
        finally:
            admin.close()

    def coordinators(self, group_id: str, transactional_id: str) -> tuple[int, int]:
        """Nodes hosting the group coordinator of `group_id` and the transaction coordinator
        of `transactional_id` (leaders of their internal topics' partitions)."""
        return self._coordinators(self.internal_leaders(), group_id, transactional_id)

    def internal_leaders(self) -> dict[tuple[str, int], int]:
        return self.leaders(["__consumer_offsets", "__transaction_state"])

    @staticmethod
    def _coordinators(
        leaders: dict[tuple[str, int], int], group_id: str, transactional_id: str
    ) -> tuple[int, int]:
        return (
            leaders[("__consumer_offsets", coordinator_partition(group_id))],
            leaders[("__transaction_state", coordinator_partition(transactional_id))],
        )

    def colocated_worker_id(self, group_id: str, stem: str = "coord") -> str:
        """A worker id whose transaction coordinator (transactional id `<group>-<worker>`, as
        streams/engine/engine.py names it) sits on the node of the group's coordinator."""
        leaders = self.internal_leaders()
        for i in range(1000):
            wid = f"{stem}-{i}"
            if len(set(self._coordinators(leaders, group_id, f"{group_id}-{wid}"))) == 1:
                return wid
        raise AssertionError("no worker id puts both coordinators on one node")

    def ensure_internal_topics(self) -> None:
        """Create __consumer_offsets and __transaction_state (Kafka makes them on first use)
        so coordinators can be located before a worker starts."""
        from kafka import KafkaProducer
        from kafka.errors import CoordinatorNotAvailableError

        admin = self._admin()
        try:
            # FindCoordinator creates the offsets topic; "not available" until it has leaders
            deadline = time.monotonic() + 120
            while True:
                try:
                    admin.describe_groups(["dfip-test-probe"])
                    break
                except CoordinatorNotAvailableError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        finally:
            admin.close()
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap.split(","), transactional_id="dfip-test-probe"
        )
        try:
            producer.init_transactions()
        finally:
            producer.close()
        internal = ["__consumer_offsets", "__transaction_state"]
        deadline = time.monotonic() + 120
        while len(self._led(internal)) < 2 * INTERNAL_PARTITIONS:
            if time.monotonic() > deadline:
                raise AssertionError("Kafka's internal topics were not created")
            time.sleep(0.5)

    def _led(self, topics: list[str]) -> dict[tuple[str, int], int]:
        try:
            return {k: v for k, v in self.leaders(topics).items() if v >= 0}
        except Exception:  # not created yet
            return {}

    def log_tail(self, node: int, n: int = 40) -> str:
        path = self.home / f"node{node}" / "logs" / "server.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""
