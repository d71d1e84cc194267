"""docker-compose.yml's topology, run without Docker.

Every service is a process in a network namespace of its own on a private bridge (see
tests/support/netns.py), started with the command and environment docker-compose.yml gives
it, in an empty working directory. So, as under `docker compose up --scale worker=2`:

- a worker that listens on loopback only cannot be scraped (the test fails);
- Prometheus (Debian's binary) runs the compose command with the repository's
  deploy/prometheus mounted where the compose file mounts it, and finds both worker replicas
  through `dns_sd_configs` on the service name (a DNS stub plays Docker's embedded DNS);
- the figures read back through Prometheus' HTTP API equal the simulator's oracle exactly.

Kafka runs the project's broker (deploy/kafka/kafka.sh) with the compose file's listeners;
Grafana is not run (its provisioning is validated offline in tests/unit/test_dashboards.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from core.version import __version__
from schemas.figures import FIGURES, FIGURES_BY_NAME, HEALTH_FIGURES
from tests.support import netns
from tests.support.workers import REPO, Figures, oracle_figures, wait_for

COMPOSE = REPO / "docker-compose.yml"
REPLICAS = 2
FEED_EVENTS = 2000
ALL_FIGURES = (*FIGURES, *HEALTH_FIGURES)

pytestmark = [
    pytest.mark.skipif(netns.available() is not None, reason=str(netns.available())),
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not on PATH"),
    pytest.mark.skipif(shutil.which("java") is None, reason="java is missing (Kafka)"),
]


def compose_services() -> dict[str, dict[str, Any]]:
    """The services as written (PyYAML resolves the `<<` merge keys like Compose does)."""
    services: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    # ${VAR:-default} as Compose interpolates it with VAR unset
    return {
        k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items() if v is not None
    }


def base_env(home: Path) -> dict[str, str]:
    """No DFIP_* variable of the test run leaks in: only what compose gives a service."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8"}


def mounted(arg: str, volumes: list[str], named: Path) -> str:
    """`arg` with container paths replaced by what compose mounts there: a bind mount's
    source folder (relative to the compose file) or a folder standing for a named volume."""
    for volume in volumes:
        source, target = volume.split(":")[:2]
        host = (REPO / source).resolve() if source.startswith(".") else named / source
        host.mkdir(parents=True, exist_ok=True)
        arg = re.sub(rf"(?<==){re.escape(target)}(?=/|$)", str(host), arg)
    return arg


class Prometheus:
    def __init__(self, ip: str) -> None:
        self.base = f"http://{ip}:9090"
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def ready(self) -> bool:
        try:
            with self._http.open(f"{self.base}/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with self._http.open(url, timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = json.loads(e.read())
        assert body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def figures_in(prom: Prometheus) -> Figures:
    """Integer figures: max per partition (a partition's previous owner may still be
    exported until its next scrape), scaled back to base units, summed over partitions."""
    out: Figures = {}
    for fig in ALL_FIGURES:
        by = ", ".join(("partition", *fig.labels))
        series: dict[tuple[str, ...], int] = defaultdict(int)
        for row in prom.query(f"max by ({by}) ({fig.name})"):
            labels = tuple(row["metric"].get(k, "") for k in fig.labels)
            series[labels] += round(float(row["value"][1]) * fig.scale)
        out[fig.name] = {k: v for k, v in series.items() if v != 0}
    return out


@dataclass
class Topology:
    net: netns.Network
    prometheus: Prometheus
    oracle: dict[str, Any]
    logs: Path
    workers: list[subprocess.Popen[bytes]]

    def tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-25:])
            for p in sorted(self.logs.glob("*.log"))
        )


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    services = compose_services()
    root = tmp_path_factory.mktemp("compose")
    logs, named = root / "logs", root / "volumes"
    logs.mkdir()
    dfip = str(Path(sys.executable).parent / "dfip")  # the image's ENTRYPOINT ["dfip"]
    net = netns.Network()
    kafka_env: dict[str, str] = {}
    files: list[IO[bytes]] = []

    def log(name: str) -> IO[bytes]:
        files.append((logs / f"{name}.log").open("ab"))
        return files[-1]

    def workdir(name: str) -> Path:  # the image's WORKDIR: an empty folder
        path = root / "work" / name
        path.mkdir(parents=True)
        return path

    try:
        kafka = net.add("kafka")
        topics = net.add("topics")
        workers = [net.add(f"worker-{i}") for i in range(1, REPLICAS + 1)]
        simulator = net.add("simulator")
        prom_host = net.add("prometheus")
        names = {"kafka": [kafka.ip], "worker": [w.ip for w in workers]}
        names["prometheus"] = [prom_host.ip]
        for host in net.hosts.values():
            net.write_etc(host, names)

        # Kafka: the project's broker with the listeners docker-compose.yml configures.
        kenv = service_env(services["kafka"])
        extra = root / "kafka-listeners.properties"
        extra.write_text(
            f"listeners={kenv['KAFKA_LISTENERS']}\n"
            f"advertised.listeners={kenv['KAFKA_ADVERTISED_LISTENERS']}\n"
        )
        port = kenv["KAFKA_ADVERTISED_LISTENERS"].rsplit(":", 1)[1]
        kafka_env = {
            **os.environ,
            "DFIP_KAFKA_HOME": str(root / "kafka"),
            "DFIP_KAFKA_PORT": port,
            "DFIP_KAFKA_FRESH": "1",
            "DFIP_KAFKA_EXTRA_CONFIG": str(extra),
        }
        kafka_up = [*net.exec_prefix(kafka, "kafka"), "bash", "deploy/kafka/kafka.sh", "up"]
        subprocess.run(kafka_up, env=kafka_env, cwd=REPO, check=True, timeout=180)

        def start(
            name: str, host: netns.Host, extra_args: tuple[str, ...] = ()
        ) -> subprocess.Popen[bytes]:
            service = services[name.split("-")[0]]
            env = {**base_env(root), **service_env(service)}
            argv = [dfip, *service["command"], *extra_args]
            return net.spawn(
                host, argv, env=env, cwd=workdir(host.name), log=log(host.name), hostname=host.name
            )

        # topics: one-shot; the others wait for service_completed_successfully
        assert start("topics", topics).wait(timeout=120) == 0, (logs / "topics.log").read_text()

        replicas = [start("worker", host) for host in workers]

        # Prometheus: the compose command, compose's mounts, and a DNS stub for the service
        # names on its own loopback (the only host that resolves by DNS; the others use
        # /etc/hosts).
        stub = [sys.executable, str(REPO / "tests" / "support" / "dns_stub.py"), "127.0.0.1"]
        stub += [f"{n}={','.join(ips)}" for n, ips in names.items()]
        net.spawn(prom_host, stub, env=base_env(root), cwd=REPO, log=log("dns"))
        pservice = services["prometheus"]
        args = [mounted(a, pservice["volumes"], named) for a in pservice["command"]]
        prom_bin = shutil.which("prometheus")
        assert prom_bin
        net.spawn(
            prom_host,
            [prom_bin, *args],
            env=base_env(root),
            cwd=workdir("prometheus"),
            log=log("prometheus"),
        )
        prometheus = Prometheus(prom_host.ip)
        wait_for(prometheus.ready, timeout=60, what="prometheus ready")

        # simulator: the compose command, made finite and told to write its oracle
        oracle_path = root / "oracle.json"
        sim = start(
            "simulator", simulator, ("--events", str(FEED_EVENTS), "--oracle", str(oracle_path))
        )
        assert sim.wait(timeout=300) == 0, (logs / "simulator.log").read_text()[-3000:]
        oracle = json.loads(oracle_path.read_text())
        yield Topology(net, prometheus, oracle, logs, replicas)
    finally:
        net.stop()  # the workers leave their group while the broker still runs
        if kafka_env:
            down = ["bash", "deploy/kafka/kafka.sh", "down"]
            subprocess.run(down, env=kafka_env, cwd=REPO, check=False, timeout=120)
        net.close()
        for f in files:
            f.close()


def test_prometheus_finds_every_replica_and_scrapes_it(topology: Topology) -> None:
    def every_replica_up() -> bool:
        for proc in topology.workers:
            assert proc.poll() is None, f"a worker exited:\n{topology.tail()}"
        up = topology.prometheus.query('up{job="dfip-worker"}')
        return len(up) == REPLICAS and all(row["value"][1] == "1" for row in up)

    try:
        wait_for(every_replica_up, timeout=180, interval=1, what="every worker replica up")
    except AssertionError:
        targets = topology.prometheus.query('up{job="dfip-worker"}')
        raise AssertionError(f"targets: {targets}\n{topology.tail()}") from None
    builds = topology.prometheus.query('dfip_build_info{job="dfip-worker"}')
    assert {row["metric"]["version"] for row in builds} == {__version__}
    assert len(builds) == REPLICAS
    instances = {row["metric"]["instance"] for row in topology.prometheus.query("up")}
    for host in topology.net.hosts.values():
        if host.name.startswith("worker-"):
            assert f"{host.ip}:6066" in instances


def test_figures_through_promql_equal_the_oracle(topology: Topology) -> None:
    expected = oracle_figures(topology.oracle)
    last: Figures = {}

    def converged() -> bool:
        nonlocal last
        last = figures_in(topology.prometheus)
        return all(last.get(f.name, {}) == expected.get(f.name, {}) for f in ALL_FIGURES)

    try:
        wait_for(converged, timeout=240, interval=2, what="Prometheus figures = oracle")
    except AssertionError:
        wrong = [
            f"{f.name}: got {sum(last.get(f.name, {}).values())}, "
            f"want {sum(expected.get(f.name, {}).values())}"
            for f in ALL_FIGURES
            if last.get(f.name, {}) != expected.get(f.name, {})
        ]
        raise AssertionError("\n".join(wrong) + "\n" + topology.tail()) from None
    received = FIGURES_BY_NAME["dfip_events_received_total"].name
    assert sum(last[received].values()) >= FEED_EVENTS


#: How Faust/mode and the CLI mark a record at WARNING or above (the workers log at INFO).
NOISY = re.compile(r"\[(WARNING|ERROR|CRITICAL)\]|Traceback|^dfip: ")


def test_a_fresh_broker_gives_a_quiet_first_start(topology: Topology) -> None:
    """The broker of this module is fresh (formatted for it): the workers' first minute, up
    to having processed the feed, logs nothing at WARNING or above (no coordinator errors,
    no retries on freshly created topics)."""
    test_figures_through_promql_equal_the_oracle(topology)  # processed the whole feed
    noisy = [
        f"{path.name}: {line}"
        for path in sorted(topology.logs.glob("worker-*.log"))
        for line in path.read_text(errors="replace").splitlines()
        if NOISY.search(line)
    ]
    assert not noisy, "\n".join(noisy[:40])
