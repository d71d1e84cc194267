"""deploy/kafka/kafka.sh fails with one clear line for the expected problems."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ports import free_port_run

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "kafka" / "kafka.sh"
TOOLS = ("bash", "sed", "dirname", "cat", "grep", "sleep", "seq", "rm", "mkdir", "stat", "touch")


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60
    )


def _base_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DFIP_KAFKA_HOME": str(tmp_path / "home"),
        "DFIP_KAFKA_CACHE": str(tmp_path / "cache"),
    }


def test_missing_java_is_one_line(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bindir / tool).symlink_to(found)
    env = {**_base_env(tmp_path), "PATH": str(bindir)}
    proc = _run(env, "up")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "java is missing" in lines[0]


def test_port_taken_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env = {**_base_env(tmp_path), "DFIP_KAFKA_PORT": str(port)}
        proc = _run(env, "up")
    assert proc.returncode != 0
    assert f"port {port}" in proc.stderr
    assert "taken" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_status_of_a_stopped_broker(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", str(SCRIPT), "status"],
        env=_base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 3
    assert proc.stdout.startswith("stopped")


def test_unknown_action_prints_usage(tmp_path: Path) -> None:
    proc = _run(_base_env(tmp_path), "sideways")
    assert proc.returncode == 2
    assert "usage" in proc.stderr


_FAKE_BROKER = """
import os, socket, sys, time

props = dict(
    line.split("=", 1) for line in open(sys.argv[-1]).read().splitlines() if "=" in line
)
port = int(props["listeners"].split(",")[0].rsplit(":", 1)[1])
# the node's own folder (DFIP_KAFKA_HOME itself for a single broker): log.dirs is <node>/data
node_home = os.path.dirname(props["log.dirs"])
# FAKE_KAFKA_BIND_FAILS=n: the first n launches fail as a real broker does when a client's
# outgoing connection holds its port for a moment
tries = os.path.join(node_home, "launches")
launches = int(open(tries).read()) if os.path.exists(tries) else 0
open(tries, "w").write(str(launches + 1))
if launches < int(os.environ.get("FAKE_KAFKA_BIND_FAILS", "0")):
    with open(os.path.join(node_home, "logs", "server.log"), "a") as f:
        f.write(f"Caused by: java.net.BindException: Address already in use ({port})\\n")
    sys.exit(1)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen()
with open(os.path.join(node_home, "logs", "server.log"), "a") as f:
    f.write("[now] INFO Registered kafka:type=kafka.Log4jController MBean\\n")
    if os.environ.get("FAKE_KAFKA_STARTS") == "1":
        f.write("[now] INFO [KafkaRaftServer nodeId=1] Kafka Server started\\n")
time.sleep(120)
"""


def _fake_kafka_env(tmp_path: Path, *, starts: bool) -> dict[str, str]:
    """kafka.sh with a stand-in `java`: a formatted home, a complete (empty) jar cache, and a
    "broker" that listens on DFIP_KAFKA_PORT and logs "Kafka Server started" only if told."""
    env = _base_env(tmp_path)
    home, cache, bindir = Path(env["DFIP_KAFKA_HOME"]), Path(env["DFIP_KAFKA_CACHE"]), tmp_path
    (home / "data").mkdir(parents=True)
    (home / "data" / "meta.properties").touch()
    cache.mkdir()
    (cache / ".complete").touch()
    (bindir / "fake_broker.py").write_text(_FAKE_BROKER)
    java = bindir / "java"
    java.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{bindir / "fake_broker.py"}" "$@"\n')
    java.chmod(0o755)
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        ports = a.getsockname()[1], b.getsockname()[1]
    return {
        **env,
        "PATH": f"{bindir}{os.pathsep}{env['PATH']}",
        "DFIP_KAFKA_PORT": str(ports[0]),
        "DFIP_KAFKA_CONTROLLER_PORT": str(ports[1]),
        "DFIP_KAFKA_TIMEOUT": "2",
        "FAKE_KAFKA_STARTS": "1" if starts else "0",
    }


def test_up_does_not_read_the_previous_runs_log(tmp_path: Path) -> None:
    env = _fake_kafka_env(tmp_path, starts=False)
    logs = Path(env["DFIP_KAFKA_HOME"]) / "logs"
    logs.mkdir()
    old = "[then] INFO [KafkaRaftServer nodeId=1] Kafka Server started\n"
    (logs / "server.log").write_text(old)
    try:
        proc = _run(env, "up")
    finally:
        _run(env, "down")
    # the previous run's "started" line is in server.log.1, so this broker is not ready
    assert proc.returncode != 0, proc.stderr
    assert "not ready" in proc.stderr
    assert (logs / "server.log.1").read_text() == old
    assert "Kafka Server started" not in (logs / "server.log").read_text(errors="replace")


def test_up_waits_for_this_runs_started_line(tmp_path: Path) -> None:
    env = _fake_kafka_env(tmp_path, starts=True)
    logs = Path(env["DFIP_KAFKA_HOME"]) / "logs"
    try:
        proc = _run(env, "up")
        status = _run(env, "status")
    finally:
        down = _run(env, "down")
    assert proc.returncode == 0, proc.stderr
    assert "ready on 127.0.0.1" in proc.stderr
    assert status.returncode == 0
    assert "stopped" in down.stderr
    assert (logs / "server.log").read_text().count("Kafka Server started") == 1


def test_a_port_taken_for_a_moment_at_start_up_is_tried_again(tmp_path: Path) -> None:
    env = {**_fake_kafka_env(tmp_path, starts=True), "FAKE_KAFKA_BIND_FAILS": "2"}
    try:
        proc = _run(env, "up")
    finally:
        _run(env, "down")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("starting it again") == 2
    assert "ready on 127.0.0.1" in proc.stderr


def test_a_port_taken_at_every_start_up_gives_up(tmp_path: Path) -> None:
    env = {**_fake_kafka_env(tmp_path, starts=True), "FAKE_KAFKA_BIND_FAILS": "9"}
    try:
        proc = _run(env, "up")
    finally:
        _run(env, "down")
    assert proc.returncode != 0
    assert proc.stderr.count("starting it again") == 3
    assert "broker exited during start-up" in proc.stderr.splitlines()[-1]


def test_a_port_that_is_not_a_number_is_one_line(tmp_path: Path) -> None:
    for value in ("abc", "0", "70000"):
        env = {**_base_env(tmp_path), "DFIP_KAFKA_PORT": value}
        proc = _run(env, "up")
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert lines == [f"dfip kafka: DFIP_KAFKA_PORT={value} is not a number from 1 to 65535"]
        assert not (tmp_path / "home").exists()  # nothing formatted or started


def _fake_cluster_env(tmp_path: Path) -> dict[str, str]:
    env = _fake_kafka_env(tmp_path, starts=True)
    home = Path(env["DFIP_KAFKA_HOME"])
    (home / "cluster.id").write_text("fake-cluster-id\n")
    for i in (1, 2, 3):
        (home / f"node{i}" / "data").mkdir(parents=True)
        (home / f"node{i}" / "data" / "meta.properties").touch()
    base = free_port_run(6)  # a fake cluster's listeners
    return {
        **env,
        "DFIP_KAFKA_NODES": "3",
        "DFIP_KAFKA_PORT": str(base),
        "DFIP_KAFKA_CONTROLLER_PORT": str(base + 1),
    }


def _props(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_three_nodes_up_status_node_actions_and_down(tmp_path: Path) -> None:
    env = _fake_cluster_env(tmp_path)
    home, base = Path(env["DFIP_KAFKA_HOME"]), int(env["DFIP_KAFKA_PORT"])
    try:
        up = _run(env, "up")
        assert up.returncode == 0, up.stderr
        assert "cluster of 3 ready" in up.stderr
        status = _run(env, "status")
        assert status.returncode == 0
        assert status.stdout.count("pid=") == 3
        assert f"bootstrap=127.0.0.1:{base},127.0.0.1:{base + 2},127.0.0.1:{base + 4}" in (
            status.stdout
        )
        node2 = _props(home / "node2" / "server.properties")
        assert node2["node.id"] == "2"
        assert node2["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{base + 2},CONTROLLER://127.0.0.1:{base + 3}"
        )
        assert node2["controller.quorum.voters"] == ",".join(
            f"{i}@127.0.0.1:{base + 1 + 2 * (i - 1)}" for i in (1, 2, 3)
        )
        for key in ("default.replication.factor", "offsets.topic.replication.factor"):
            assert node2[key] == "3"
        assert node2["transaction.state.log.replication.factor"] == "3"
        assert node2["min.insync.replicas"] == node2["transaction.state.log.min.isr"] == "2"

        killed = _run(env, "kill-node", "2")
        assert "node 2 killed" in killed.stderr
        degraded = _run(env, "status")
        assert degraded.returncode == 1
        assert degraded.stdout.startswith("degraded 2/3")
        assert "node2=stopped" in degraded.stdout
        again = _run(env, "start-node", "2")
        assert again.returncode == 0, again.stderr
        assert _run(env, "status").returncode == 0

        # without DFIP_KAFKA_NODES the script finds the cluster from its folders
        plain = {k: v for k, v in env.items() if k != "DFIP_KAFKA_NODES"}
        assert _run(plain, "status").stdout.count("pid=") == 3
    finally:
        down = _run(env, "down")
    assert "stopped" in down.stderr
    assert _run(env, "status").returncode == 3


def test_single_broker_keeps_replication_one(tmp_path: Path) -> None:
    env = _fake_kafka_env(tmp_path, starts=True)
    try:
        assert _run(env, "up").returncode == 0
    finally:
        _run(env, "down")
    props = _props(Path(env["DFIP_KAFKA_HOME"]) / "server.properties")
    assert props["controller.quorum.bootstrap.servers"].endswith(env["DFIP_KAFKA_CONTROLLER_PORT"])
    assert props["offsets.topic.replication.factor"] == props["min.insync.replicas"] == "1"


def test_bad_node_settings_are_one_line(tmp_path: Path) -> None:
    cases = [
        ({"DFIP_KAFKA_NODES": "9"}, ("up",), "DFIP_KAFKA_NODES=9"),
        (
            {
                "DFIP_KAFKA_NODES": "3",
                "DFIP_KAFKA_PORT": "9092",
                "DFIP_KAFKA_CONTROLLER_PORT": "9094",
            },
            ("up",),
            "collides",
        ),
        ({"DFIP_KAFKA_NODES": "3"}, ("kill-node", "4"), "node 4 does not exist"),
        ({"DFIP_KAFKA_HEAP": "lots"}, ("up",), "DFIP_KAFKA_HEAP=lots"),
    ]
    for extra, args, text in cases:
        proc = _run({**_base_env(tmp_path), **extra}, *args)
        assert proc.returncode != 0, (extra, args)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, (extra, proc.stderr)
        assert text in lines[0], (extra, proc.stderr)


def test_cli_nodes_option_reaches_the_script(tmp_path: Path) -> None:
    """`dfip kafka up --nodes 3` runs kafka.sh with DFIP_KAFKA_NODES=3 (its refusal of a
    controller port among the three client ports shows it), and refuses more than 5."""
    env = {**_base_env(tmp_path), "DFIP_KAFKA_PORT": "9092", "DFIP_KAFKA_CONTROLLER_PORT": "9094"}
    env.pop("DFIP_KAFKA_NODES", None)
    cli = [sys.executable, "-m", "dfip.cli", "kafka"]
    proc = subprocess.run(
        [*cli, "up", "--nodes", "3"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "collides with a client port of the 3 nodes" in proc.stderr
    single = subprocess.run(
        [*cli, "status"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert single.returncode == 3, single.stderr  # one broker: port 9094 is fine, stopped
    many = subprocess.run(
        [*cli, "up", "--nodes", "9"], env=env, capture_output=True, text=True, timeout=60
    )
    assert many.returncode == 2


@pytest.mark.parametrize(
    ("name", "value"),
    [("DFIP_KAFKA_PORT", "abc"), ("DFIP_KAFKA_HEAP", "lots"), ("DFIP_KAFKA_NODES", "9")],
)
def test_a_bad_setting_exits_2_like_every_dfip_command(tmp_path: Path, name, value) -> None:
    # was exit 1, which dfip's help reserves for Kafka failing
    proc = _run({**_base_env(tmp_path), name: value}, "status")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"dfip kafka: {name}={value}")
