"""deploy/kafka/kafka.sh fails with one clear line for the expected problems."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

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
