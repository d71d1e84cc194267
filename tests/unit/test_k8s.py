"""Offline checks of the Kubernetes manifests in deploy/k8s/.

Every overlay is rendered with the real kustomize (`kubectl kustomize`, or a standalone
`kustomize build`), with and without the KEDA component, and every rendered object is
validated against the Kubernetes OpenAPI schemas shipped by kubernetes-validate (strict:
unknown fields are errors). The prometheus-operator and KEDA kinds are custom resources
with no schema there; they are validated against the minimal schemas below, which cover
the fields these manifests use.

The rest ties the manifests to the code: probes and ports to what the worker serves, every
DFIP_* variable to a real settings field (and every value to a valid one), the container
arguments to real `dfip` subcommands, the autoscaler's ceiling to the partition count.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from core.kafka_config import KafkaSettings
from schemas.catalog import USCC_PARTITIONS
from streams.settings import WorkerSettings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KEDA = K8S / "components" / "keda"
MONITORING = K8S / "components" / "monitoring"
DOCKERFILE = REPO / "Dockerfile"
# the oldest Kubernetes minor these manifests promise to work on (PDB
# unhealthyPodEvictionPolicy and StatefulSet PVC retention are GA/beta-on there) and the
# newest schema kubernetes-validate ships
K8S_VERSIONS = ("1.30.0", "1.37.0")

Obj = dict[str, Any]


# --------------------------------------------------------------------------- rendering


def kustomize_command() -> list[str]:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if os.environ.get("CI"):
        pytest.fail("neither kubectl nor kustomize is installed (Debian: apt-get install kubectl)")
    pytest.skip("neither kubectl nor kustomize is installed (Debian: apt-get install kubectl)")


def kustomize(path: Path) -> list[Obj]:
    proc = subprocess.run(
        [*kustomize_command(), str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"kustomize {path} failed:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@dataclass(frozen=True)
class Case:
    name: str
    overlay: str
    keda: bool
    monitoring: bool = False


CASES = [
    Case("dev", "dev", keda=False),
    Case("dev+keda", "dev", keda=True),
    Case("dev+monitoring", "dev", keda=False, monitoring=True),
    Case("prod", "prod", keda=False),
    Case("prod+keda", "prod", keda=True),
    Case("prod-keda", "prod-keda", keda=True),  # the committed overlay that does the same
    Case("prod-keda+monitoring", "prod-keda", keda=True, monitoring=True),
]
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())


@cache
def render(case: Case) -> tuple[Obj, ...]:
    overlay = K8S / "overlays" / case.overlay
    components = [KEDA] if case.keda and case.overlay != "prod-keda" else []
    components += [MONITORING] if case.monitoring else []
    if not components:
        return tuple(kustomize(overlay))
    # components on top of a finished overlay, as components/keda and /monitoring document it
    # (kustomize refuses absolute paths, so the wrapper refers to both relatively)
    namespace = next(o for o in kustomize(overlay) if o["kind"] == "Namespace")["metadata"]
    tag = case.name.replace("+", "-")
    wrapper = Path(os.environ.get("TMPDIR", "/tmp")) / f"dfip-k8s-{os.getpid()}-{tag}"
    wrapper.mkdir(parents=True, exist_ok=True)
    doc = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace["name"],
        "resources": [os.path.relpath(overlay, wrapper)],
        "components": [os.path.relpath(c, wrapper) for c in components],
    }
    (wrapper / "kustomization.yaml").write_text(yaml.safe_dump(doc))
    try:
        return tuple(kustomize(wrapper))
    finally:
        shutil.rmtree(wrapper, ignore_errors=True)


def of_kind(objs: tuple[Obj, ...], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: tuple[Obj, ...], kind: str, name: str | None = None) -> Obj:
    found = [o for o in of_kind(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def worker_sts(objs: tuple[Obj, ...]) -> Obj:
    return one(objs, "StatefulSet", "dfip-worker")


def container(pod_spec: Obj, name: str) -> Obj:
    found: list[Obj] = [c for c in pod_spec["containers"] if c["name"] == name]
    assert len(found) == 1, name
    return found[0]


def workloads(objs: tuple[Obj, ...]) -> Iterator[tuple[Obj, Obj]]:
    """(object, pod spec) of every object that runs pods."""
    for o in objs:
        if o["kind"] in ("StatefulSet", "Deployment", "Job", "DaemonSet"):
            yield o, o["spec"]["template"]["spec"]


def resolved_env(objs: tuple[Obj, ...], pod: Obj, c: Obj) -> dict[str, str]:
    """The environment a container gets: envFrom ConfigMaps/Secrets, then env entries."""
    env: dict[str, str] = {}
    for src in c.get("envFrom", []):
        if "configMapRef" in src:
            cm = one(objs, "ConfigMap", src["configMapRef"]["name"])
            env.update(cm.get("data", {}))
        else:
            raise AssertionError(f"unexpected envFrom source {src}")
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "fieldRef" in e["valueFrom"]:
            assert e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            env[e["name"]] = "dfip-worker-0"
        elif "secretKeyRef" in e["valueFrom"]:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secret_data(objs, ref["name"]).get(ref["key"], "from-secret")
        else:
            raise AssertionError(f"unexpected env source {e}")
    return env


# The Secret is a template in base; prod deletes it (created out of band, same keys).
EXTERNAL_SECRETS = {"dfip-kafka-credentials"}


@cache
def template_secret() -> Obj:
    doc = yaml.safe_load((K8S / "base" / "kafka-credentials.yaml").read_text())
    assert doc["kind"] == "Secret"
    return dict(doc)


def secret_data(objs: tuple[Obj, ...], name: str) -> dict[str, str]:
    found = [o for o in of_kind(objs, "Secret") if o["metadata"]["name"] == name]
    if not found:
        assert name in EXTERNAL_SECRETS, f"Secret {name} is neither rendered nor external"
        found = [template_secret()]
    secret = found[0]
    assert "data" not in secret, "the template uses stringData only"
    return {k: str(v) for k, v in secret.get("stringData", {}).items()}


# --------------------------------------------------------------------------- CRD schemas

_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": _LABELS,
        "annotations": _LABELS,
    },
    "additionalProperties": False,
}
_SELECTOR = {
    "type": "object",
    "properties": {"matchLabels": _LABELS},
    "required": ["matchLabels"],
    "additionalProperties": False,
}
_DURATION = {"type": "string", "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?)$"}
_STR_INT = {"type": "string", "pattern": "^[0-9]+$"}


def _crd(api: str, kind: str, spec: Obj) -> Obj:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


# Subsets of monitoring.coreos.com/v1 PodMonitor and keda.sh/v1alpha1 ScaledObject /
# TriggerAuthentication (field names and types as in their CRDs).
_RULE = {
    "type": "object",
    "properties": {
        "record": {"type": "string", "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
        "alert": {"type": "string", "minLength": 1},
        "expr": {"type": "string", "minLength": 1},
        "for": _DURATION,
        "keep_firing_for": _DURATION,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["expr"],
    "oneOf": [{"required": ["record"]}, {"required": ["alert"]}],
    "additionalProperties": False,
}

CRD_SCHEMAS: dict[tuple[str, str], Obj] = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): _crd(
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        {
            "type": "object",
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "limit": {"type": "integer"},
                            "rules": {"type": "array", "items": _RULE},
                        },
                        "additionalProperties": False,
                    },
                }
            },
            "additionalProperties": False,
        },
    ),
    ("monitoring.coreos.com/v1", "PodMonitor"): _crd(
        "monitoring.coreos.com/v1",
        "PodMonitor",
        {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "selector": _SELECTOR,
                "jobLabel": {"type": "string"},
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "relabelings": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "action": {
                                            "enum": [
                                                "replace",
                                                "keep",
                                                "drop",
                                                "labelmap",
                                                "labeldrop",
                                                "labelkeep",
                                            ]
                                        },
                                        "sourceLabels": {
                                            "type": "array",
                                            "items": {"type": "string"},
                                        },
                                        "targetLabel": {"type": "string"},
                                        "replacement": {"type": "string"},
                                        "regex": {"type": "string"},
                                    },
                                    "additionalProperties": False,
                                },
                            },
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    ),
    ("keda.sh/v1alpha1", "ScaledObject"): _crd(
        "keda.sh/v1alpha1",
        "ScaledObject",
        {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "advanced": {
                    "type": "object",
                    "properties": {
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "properties": {"behavior": {"type": "object"}},
                            "additionalProperties": False,
                        }
                    },
                    "additionalProperties": False,
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "kind": {
                                        "enum": [
                                            "TriggerAuthentication",
                                            "ClusterTriggerAuthentication",
                                        ]
                                    },
                                },
                                "additionalProperties": False,
                            },
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    ),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _crd(
        "keda.sh/v1alpha1",
        "TriggerAuthentication",
        {
            "type": "object",
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["parameter", "name", "key"],
                        "properties": {
                            "parameter": {"type": "string"},
                            "name": {"type": "string"},
                            "key": {"type": "string"},
                        },
                        "additionalProperties": False,
                    },
                }
            },
            "additionalProperties": False,
        },
    ),
}

# HPA scaling behaviour as in autoscaling/v2 (KEDA passes it through to the HPA).
_HPA_RULES = {
    "type": "object",
    "properties": {
        "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "policies": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "value", "periodSeconds"],
                "properties": {
                    "type": {"enum": ["Pods", "Percent"]},
                    "value": {"type": "integer", "minimum": 1},
                    "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
_HPA_BEHAVIOR = {
    "type": "object",
    "properties": {"scaleUp": _HPA_RULES, "scaleDown": _HPA_RULES},
    "additionalProperties": False,
}
# KEDA Kafka scaler trigger metadata (keda.sh docs, scalers/apache-kafka)
KAFKA_TRIGGER_KEYS = {
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "scaleToZeroOnInvalidOffset",
    "excludePersistentLag",
    "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions",
    "version",
    "partitionLimitation",
    "sasl",
    "tls",
    "unsafeSsl",
}


def validate_crd(obj: Obj) -> None:
    schema = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    assert schema is not None, f"no schema for {obj['apiVersion']} {obj['kind']}"
    jsonschema.validate(obj, schema)
    if obj["kind"] == "ScaledObject":
        hpa = obj["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
        jsonschema.validate(hpa.get("behavior", {}), _HPA_BEHAVIOR)
        for trig in obj["spec"]["triggers"]:
            assert trig["type"] == "kafka"
            meta = trig["metadata"]
            assert set(meta) <= KAFKA_TRIGGER_KEYS, set(meta) - KAFKA_TRIGGER_KEYS
            for key in ("lagThreshold", "activationLagThreshold"):
                jsonschema.validate(meta.get(key, "0"), _STR_INT)
            assert meta.get("offsetResetPolicy", "latest") in ("latest", "earliest")
            assert meta.get("sasl", "none") in (
                "none",
                "plaintext",
                "scram_sha256",
                "scram_sha512",
            )
            assert meta.get("tls", "disable") in ("enable", "disable")


# --------------------------------------------------------------------------- tests


def test_every_overlay_is_covered() -> None:
    assert {c.overlay for c in CASES} == set(OVERLAYS)
    assert {c.overlay for c in CASES if c.keda and c.overlay != "prod-keda"} == {
        o for o in OVERLAYS if o != "prod-keda"
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_objects_validate_against_the_kubernetes_schemas(case: Case, version: str) -> None:
    import kubernetes_validate

    objs = render(case)
    assert objs
    kinds = set()
    errors: list[str] = []
    for obj in objs:
        kinds.add(obj["kind"])
        where = f"{case.name}: {obj['kind']}/{obj['metadata']['name']}"
        if (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS:
            try:
                validate_crd(obj)
            except jsonschema.ValidationError as exc:
                errors.append(f"{where}: {exc.message} at {list(exc.absolute_path)}")
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{where} (Kubernetes {version}): {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)
    expected = {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
        "Job",
    }
    if case.keda:
        expected |= {"ScaledObject", "TriggerAuthentication"}
    if case.monitoring:
        expected |= {"PodMonitor", "PrometheusRule"}
    else:  # without the component nothing needs prometheus-operator's CRDs
        assert not kinds & {"PodMonitor", "PrometheusRule"}
    assert expected <= kinds, expected - kinds


def test_the_committed_keda_overlay_equals_prod_plus_the_component() -> None:
    assert render(Case("prod-keda", "prod-keda", True)) == render(Case("prod+keda", "prod", True))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_one_namespace_and_every_reference_resolves(case: Case) -> None:
    objs = render(case)
    (ns,) = of_kind(objs, "Namespace")
    namespaced = [o for o in objs if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in namespaced} == {ns["metadata"]["name"]}
    sts = worker_sts(objs)
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items())

    assert selects(sts["spec"]["selector"]["matchLabels"])
    headless = one(objs, "Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    for svc in of_kind(objs, "Service"):
        assert selects(svc["spec"]["selector"]), svc["metadata"]["name"]
    assert selects(one(objs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    if case.monitoring:
        assert selects(one(objs, "PodMonitor")["spec"]["selector"]["matchLabels"])
    for obj, pod in workloads(objs):
        assert one(objs, "ServiceAccount", pod["serviceAccountName"])
        for vol in pod.get("volumes", []):
            if "secret" in vol:
                keys = secret_data(objs, vol["secret"]["secretName"])
                assert {"sasl-password", "ca.crt"} <= set(keys), obj["metadata"]["name"]
        for c in pod["containers"]:
            resolved_env(objs, pod, c)  # every ConfigMap/Secret key it names exists


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_probes_and_ports_match_what_the_worker_serves(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.app import create_app

    objs = render(case)
    sts = worker_sts(objs)
    pod = sts["spec"]["template"]["spec"]
    c = container(pod, "worker")
    env = resolved_env(objs, pod, c)
    kafka, settings = settings_from_env(env, objs, tmp_path, monkeypatch)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}

    def port_of(probe: Obj) -> int:
        port = probe["httpGet"]["port"]
        return int(ports[port] if isinstance(port, str) else port)

    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in ("livenessProbe", "startupProbe", "readinessProbe"):
        assert port_of(c[probe]) == settings.web_port, probe
    # reachable from the kubelet and Prometheus: bound to every interface of the pod
    assert settings.web_host == "0.0.0.0"
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == settings.web_port
    assert annotations["prometheus.io/path"] == "/metrics"
    if case.monitoring:
        (endpoint,) = one(objs, "PodMonitor")["spec"]["podMetricsEndpoints"]
        assert ports[endpoint["port"]] == settings.web_port
        assert endpoint["path"] == "/metrics"
    for svc in of_kind(objs, "Service"):
        for p in svc["spec"]["ports"]:
            assert ports[p["targetPort"]] == settings.web_port
    # …and the worker built from exactly this configuration serves those paths on that port
    # (plaintext: a TLS context needs a real CA file, which the template Secret has not)
    kafka = kafka.model_copy(update={"security_protocol": "PLAINTEXT"})
    worker = create_app(kafka, settings)
    web: Any = worker.app.web  # the aiohttp driver
    routes = {r.canonical for r in web.web_app.router.resources()}
    assert {"/health", "/ready", "/metrics"} <= routes
    assert worker.app.conf.web_port == settings.web_port
    assert worker.app.conf.web_bind == "0.0.0.0"


def settings_from_env(
    env: dict[str, str], objs: tuple[Obj, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[KafkaSettings, WorkerSettings]:
    """Load both settings classes from exactly the environment a container gets.

    Files the variables point into (mounted Secret volumes) are laid out under tmp_path
    from the Secret's keys, so that e.g. DFIP_KAFKA_SASL_PASSWORD_FILE is really read.
    """
    for key in list(os.environ):
        if key.startswith("DFIP_"):
            monkeypatch.delenv(key)
    secret = secret_data(objs, "dfip-kafka-credentials")
    mount = "/etc/dfip/kafka/"
    for key, value in env.items():
        if value.startswith(mount):
            name = value.removeprefix(mount)
            assert name in secret, f"{key} names {name}, which the Secret does not have"
            local = tmp_path / name
            local.write_text(secret[name])
            value = str(local)
        monkeypatch.setenv(key, value)
    return KafkaSettings(_env_file=None), WorkerSettings(_env_file=None)  # type: ignore[call-arg]


ENV_FIELDS = {
    **{f"DFIP_KAFKA_{n.upper()}": n for n in KafkaSettings.model_fields},
    **{f"DFIP_WORKER_{n.upper()}": n for n in WorkerSettings.model_fields},
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_dfip_variable_is_a_real_setting_with_a_valid_value(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = render(case)
    for obj, pod in workloads(objs):
        for c in pod["containers"]:
            env = resolved_env(objs, pod, c)
            names = {k for k in env if k.startswith("DFIP_")}
            assert names, f"{obj['metadata']['name']}/{c['name']} gets no DFIP_* settings"
            unknown = sorted(names - set(ENV_FIELDS))
            assert not unknown, f"{obj['metadata']['name']}/{c['name']}: {unknown}"
            assert names == set(env), "only DFIP_* variables are set"
            # the secret is given as a file, never as a value in the manifests
            assert "DFIP_KAFKA_SASL_PASSWORD" not in env
            kafka, _worker = settings_from_env(env, objs, tmp_path, monkeypatch)
            if kafka.uses_sasl:
                assert kafka.sasl_password is not None
                assert kafka.sasl_username
    for cm in of_kind(objs, "ConfigMap"):
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            continue  # a dashboard for Grafana's sidecar, not settings
        unknown = sorted(set(cm.get("data", {})) - set(ENV_FIELDS))
        assert not unknown, f"ConfigMap {cm['metadata']['name']}: {unknown}"


def dockerfile_entrypoint() -> list[str]:
    import json

    (line,) = [x for x in DOCKERFILE.read_text().splitlines() if x.startswith("ENTRYPOINT")]
    return list(json.loads(line.removeprefix("ENTRYPOINT").strip()))


def test_the_image_entrypoint_is_dfip() -> None:
    assert dockerfile_entrypoint() == ["dfip"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_container_arguments_are_real_dfip_subcommands(case: Case) -> None:
    import typer.main

    from dfip import cli

    if "simulate" not in {c.name for c in cli.app.registered_commands}:
        cli._register_optional()
    root = typer.main.get_command(cli.app)
    objs = render(case)
    seen = set()
    for _obj, pod in workloads(objs):
        for c in pod["containers"]:
            assert "command" not in c, "keep the image's entrypoint (`dfip`)"
            args = list(c["args"])
            # typer ships its own click: a group is a command with subcommands
            cmd: Any = root
            path: list[str] = []
            while hasattr(cmd, "commands") and args and not args[0].startswith("-"):
                name = args.pop(0)
                sub = cmd.commands.get(name)
                assert sub is not None, f"`dfip {' '.join([*path, name])}` is no command"
                path.append(name)
                cmd = sub
            assert not hasattr(cmd, "commands"), f"`dfip {' '.join(path)}` needs a command"
            cmd.make_context(" ".join(["dfip", *path]), args)  # options parse
            seen.add(" ".join(path))
    assert seen == {"worker", "topics create"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_pods_run_unprivileged_with_a_read_only_root(case: Case) -> None:
    objs = render(case)
    uid = next(
        int(m.group(1))
        for m in [re.match(r"USER (\d+)", x) for x in DOCKERFILE.read_text().splitlines()]
        if m
    )
    for _obj, pod in workloads(objs):
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True
        assert ctx["runAsUser"] == uid
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts
            res = c["resources"]
            assert res["requests"]["cpu"]
            assert res["requests"]["memory"]
            assert res["limits"]["memory"]
    sts = worker_sts(objs)
    pod = sts["spec"]["template"]["spec"]
    c = container(pod, "worker")
    env = resolved_env(objs, pod, c)
    data_dir = env["DFIP_WORKER_DATA_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert data_dir in mounts, "the state folder must be a writable volume"
    claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
    volumes = {v["name"] for v in pod["volumes"]}
    assert mounts[data_dir] in claims | volumes
    assert not claims & volumes, "a volume and a claim template of the same name"


def pre_stop_seconds(c: Obj) -> float:
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    m = re.fullmatch(r"sleep (\d+)", command[-1])
    assert m, command
    return float(m.group(1))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_graceful_shutdown_and_disruption_budget(case: Case) -> None:
    objs = render(case)
    sts = worker_sts(objs)
    pod = sts["spec"]["template"]["spec"]
    c = container(pod, "worker")
    # the preStop pause comes out of the grace period; the rest is the worker's to commit
    # and leave the group (measured by tests/integration/test_sigterm.py, which reads the
    # same two numbers from base/worker-statefulset.yaml)
    assert pod["terminationGracePeriodSeconds"] - pre_stop_seconds(c) >= 30
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert sts["spec"]["podManagementPolicy"] == "Parallel"


def test_dev_overlay_runs_one_worker_in_memory() -> None:
    objs = render(Case("dev", "dev", False))
    sts = worker_sts(objs)
    pod = sts["spec"]["template"]["spec"]
    env = resolved_env(objs, pod, container(pod, "worker"))
    assert sts["spec"]["replicas"] == 1
    assert env["DFIP_WORKER_STORE"] == "memory://"
    assert "volumeClaimTemplates" not in sts["spec"]


def quantity(value: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "m": 1e-3}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


@pytest.mark.parametrize("name", ["prod", "prod-keda"])
def test_prod_overlay_runs_several_exactly_once_workers_on_volumes(name: str) -> None:
    objs = render(Case(name, name, name == "prod-keda"))
    sts = worker_sts(objs)
    pod = sts["spec"]["template"]["spec"]
    c = container(pod, "worker")
    env = resolved_env(objs, pod, c)
    assert env["DFIP_WORKER_STORE"] == "rocksdb://"
    assert env["DFIP_WORKER_PROCESSING_GUARANTEE"] == "exactly_once"
    assert env["DFIP_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    if name == "prod":
        replicas = sts["spec"]["replicas"]
        assert replicas > 1
        assert USCC_PARTITIONS % replicas == 0, "an uneven split loads some workers more"
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == env["DFIP_WORKER_DATA_DIR"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    res = c["resources"]
    for kind in ("cpu", "memory"):
        assert quantity(res["requests"][kind]) <= quantity(res["limits"][kind])
    assert quantity(res["requests"]["cpu"]) >= 1, "the hot path is one busy Python thread"
    # the placeholder Secret is not rendered: applying prod never overwrites the real one
    assert not of_kind(objs, "Secret")


@pytest.mark.parametrize("case", [c for c in CASES if c.keda], ids=lambda c: c.name)
def test_keda_scales_the_workers_on_their_consumer_group(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = render(case)
    sts = worker_sts(objs)
    so = one(objs, "ScaledObject")
    target = so["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "StatefulSet",
        sts["metadata"]["name"],
    )
    # more workers than partitions would sit idle
    assert so["spec"]["maxReplicaCount"] == USCC_PARTITIONS
    assert 1 <= so["spec"]["minReplicaCount"] <= USCC_PARTITIONS
    # KEDA's HPA owns the replica count
    assert "replicas" not in sts["spec"]
    pod = sts["spec"]["template"]["spec"]
    env = resolved_env(objs, pod, container(pod, "worker"))
    kafka, worker = settings_from_env(env, objs, tmp_path, monkeypatch)
    (trigger,) = so["spec"]["triggers"]
    meta = trigger["metadata"]
    assert meta["bootstrapServers"] == kafka.bootstrap_servers
    # the Faust app id, namespaced like every topic, is the consumer group id (streams/app.py)
    assert meta["consumerGroup"] == f"{kafka.topic_prefix}{worker.app_id}"
    assert int(meta["lagThreshold"]) > 0
    assert meta["allowIdleConsumers"] == "false"
    auth = one(objs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    keys = secret_data(objs, "dfip-kafka-credentials")
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["name"] == "dfip-kafka-credentials"
        assert ref["key"] in keys
    if kafka.security_protocol == "SASL_SSL":
        mechanism = (kafka.sasl_mechanism or "SCRAM-SHA-512").lower().replace("-", "_")
        assert meta["sasl"] == mechanism.replace("scram_sha_", "scram_sha")
        assert meta["tls"] == "enable"
    else:
        # the component is written for the base/prod connection; dev's plaintext broker
        # would need sasl/tls changed (components/keda/kustomization.yaml says so)
        assert kafka.security_protocol == "PLAINTEXT"


# --------------------------------------------------------------------------- monitoring


def test_the_monitoring_component_is_generated_from_rules_and_dashboards() -> None:
    from deploy.k8s.monitoring_gen import main

    assert main(["--check"]) == 0, "run `python -m deploy.k8s.monitoring_gen`"


def test_monitoring_carries_every_rule_and_every_dashboard_for_the_sidecar() -> None:
    objs = render(Case("prod-keda+monitoring", "prod-keda", keda=True, monitoring=True))
    rule = one(objs, "PrometheusRule")
    groups = []
    for path in sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml")):
        groups += yaml.safe_load(path.read_text())["groups"]
    assert rule["spec"]["groups"] == groups
    boards = {
        name: text
        for cm in of_kind(objs, "ConfigMap")
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
        for name, text in cm["data"].items()
    }
    files = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert boards == {p.name: p.read_text() for p in files}
    for name, text in boards.items():
        # kubectl apply keeps a copy in an annotation limited to 256 KiB
        assert len(text.encode()) < 200_000, name
