"""deploy/prometheus/: configs and rules load in Prometheus 2.42 (promtool), the rule unit tests
pass, every alert is tested and documented, and every rule takes the max per partition over
exactly the labels the workers export (schemas/figures.py) before it sums."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.figures import FIGURES_BY_NAME

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))
CONFIGS = ("prometheus.yml", "prometheus.compose.yml", "prometheus.k8s.yml")
ALERTS_DOC = REPO / "docs" / "alerts.md"

# `max by (labels) (metric` or `max by (labels) (rate(metric[…` / increase(…)
_GUARDED = re.compile(r"max by \(([^)]*)\)\s*\(\s*(?:(?:rate|increase)\(\s*)?(dfip_[a-z0-9_]+)")
_RAW = re.compile(r"(?<![:\w])(dfip_[a-z0-9_]+)")
# a filter on ownership, not a value that is summed (see dfip:consumer_lag:sum)
_OWNERSHIP_FILTER = "and on (instance, partition) dfip_events_received_total"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not on PATH (make test installs Debian's prometheus package)")
    return found


def run(*args: str | Path, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), path
    return doc


def rules() -> list[dict[str, Any]]:
    return [r for path in RULE_FILES for g in load(path)["groups"] for r in g["rules"]]


def normalised(expr: str) -> str:
    return " ".join(expr.split()).replace("( ", "(").replace(" )", ")")


def unguarded_figures(expr: str) -> list[str]:
    """Figure metrics in `expr` that are not read through `max by (partition, <its labels>)`
    (or whose max has the wrong label set)."""
    text = normalised(expr).replace(_OWNERSHIP_FILTER, "")
    problems = []
    guarded = 0
    for labels, name in _GUARDED.findall(text):
        fig = FIGURES_BY_NAME.get(name)
        if fig is None:
            continue
        guarded += 1
        got = {x.strip() for x in labels.split(",") if x.strip()}
        want = {"partition", *fig.labels}
        if got != want:
            problems.append(f"{name}: max by {sorted(got)}, want {sorted(want)}")
    raw = [n for n in _RAW.findall(text) if n in FIGURES_BY_NAME]
    if len(raw) != guarded:
        problems.append(f"{len(raw) - guarded} figure reference(s) outside max by (partition, …)")
    return problems


# --------------------------------------------------------------------------- promtool


def test_rule_files_exist() -> None:
    assert [p.name for p in RULE_FILES] == [
        "10-figures.yml",
        "20-health.yml",
        "50-alerts.yml",
        "60-aml.yml",
    ]
    assert RULE_TESTS


def test_promtool_check_rules() -> None:
    result = run(promtool(), "check", "rules", *RULE_FILES)
    assert result.returncode == 0, describe(result)


def test_promtool_unit_tests_pass() -> None:
    result = run(promtool(), "test", "rules", *RULE_TESTS)
    assert result.returncode == 0, describe(result)
    assert "FAILED" not in result.stdout + result.stderr


def test_promtool_test_rules_can_fail(tmp_path: Path) -> None:
    """Guard against a runner that always says yes."""
    (tmp_path / "bad_test.yml").write_text(
        f"rule_files: [{PROM / 'rules' / '10-figures.yml'}]\n"
        "tests:\n"
        "  - interval: 1m\n"
        "    input_series:\n"
        "      - series: 'dfip_borrowers_active{partition=\"0\"}'\n"
        "        values: '3x5'\n"
        "    promql_expr_test:\n"
        "      - expr: dfip:borrowers_active:sum\n"
        "        eval_time: 1m\n"
        "        exp_samples:\n"
        "          - labels: 'dfip:borrowers_active:sum'\n"
        "            value: 4\n"
    )
    result = run(promtool(), "test", "rules", tmp_path / "bad_test.yml")
    assert result.returncode != 0, describe(result)


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus.compose.yml"])
def test_promtool_check_config(name: str) -> None:
    result = run(promtool(), "check", "config", PROM / name)
    assert result.returncode == 0, describe(result)
    # rule_files resolve next to the config: all three rule files are loaded
    assert result.stdout.count("SUCCESS") >= 1 + len(RULE_FILES), describe(result)


def _promtool_knows_kubernetes_sd(tool: str, tmp_path: Path) -> bool:
    probe = tmp_path / "probe.yml"
    probe.write_text("scrape_configs:\n  - job_name: p\n    kubernetes_sd_configs: []\n")
    return run(tool, "check", "config", probe).returncode == 0


def test_promtool_check_k8s_config(tmp_path: Path) -> None:
    """Debian builds Prometheus without Kubernetes discovery, so its promtool rejects every
    kubernetes_sd_configs block. Then the rest of the file (relabelling, rule files) is
    checked with file_sd in its place, and the discovery block against the documented
    fields; tests/e2e checks the relabelling on a running Prometheus."""
    tool = promtool()
    config = PROM / "prometheus.k8s.yml"
    if _promtool_knows_kubernetes_sd(tool, tmp_path):
        result = run(tool, "check", "config", config)
        assert result.returncode == 0, describe(result)
        return
    doc = load(config)
    (job,) = [j for j in doc["scrape_configs"] if "kubernetes_sd_configs" in j]
    assert job["job_name"] == "dfip-worker"
    for sd in job["kubernetes_sd_configs"]:
        assert sd["role"] == "pod"
        assert set(sd) <= {"role", "namespaces", "selectors", "api_server", "kubeconfig_file"}
    job["file_sd_configs"] = [{"files": ["targets/*.json"]}]
    del job["kubernetes_sd_configs"]
    shutil.copytree(PROM / "rules", tmp_path / "rules")
    (tmp_path / "prometheus.k8s.yml").write_text(yaml.safe_dump(doc))
    result = run(tool, "check", "config", tmp_path / "prometheus.k8s.yml")
    assert result.returncode == 0, describe(result)


def test_configs_scrape_the_worker_job_the_alerts_select() -> None:
    for name in CONFIGS:
        doc = load(PROM / name)
        assert doc["rule_files"] == ["rules/*.yml"], name
        jobs = {j["job_name"] for j in doc["scrape_configs"]}
        assert "dfip-worker" in jobs, name
    alerts = " ".join(r["expr"] for r in rules() if "alert" in r)
    assert 'job="dfip-worker"' in alerts


def test_k8s_config_follows_the_worker_pod_template() -> None:
    """The keep rules match what deploy/k8s puts on worker pods, when that folder exists."""
    template = REPO / "deploy" / "k8s" / "base" / "worker-statefulset.yaml"
    if not template.exists():
        pytest.skip("deploy/k8s/base/worker-statefulset.yaml not present")
    docs = [d for d in yaml.safe_load_all(template.read_text(encoding="utf-8")) if d]
    (sts,) = [d for d in docs if d.get("kind") == "StatefulSet"]
    meta = sts["spec"]["template"]["metadata"]
    text = (PROM / "prometheus.k8s.yml").read_text(encoding="utf-8")
    assert meta["annotations"]["prometheus.io/scrape"] == "true"
    assert "__meta_kubernetes_pod_annotation_prometheus_io_port" in text
    labels = meta["labels"]
    assert (
        f"regex: {labels['app.kubernetes.io/name']};{labels['app.kubernetes.io/component']}" in text
    )


# --------------------------------------------------------------------------- rule content


def test_recording_rule_names_follow_level_metric_operation() -> None:
    names = [r["record"] for r in rules() if "record" in r]
    assert len(names) == len(set(names)), "duplicate recording rule"
    for name in names:
        assert re.fullmatch(r"dfip:[a-z0-9_]+:[a-z0-9_]+", name), name


def test_every_rule_takes_the_max_per_partition_over_the_exported_labels() -> None:
    problems = {}
    for rule in rules():
        found = unguarded_figures(rule["expr"])
        if found:
            problems[rule.get("record") or rule.get("alert")] = found
    assert not problems, problems


def test_the_guard_check_catches_a_plain_sum() -> None:
    assert unguarded_figures("sum by (region) (dfip_transaction_amount_yuan_total)")
    assert unguarded_figures("sum(max by (partition, region) (dfip_transaction_amount_yuan_total))")
    assert not unguarded_figures(
        "sum(max by (partition, institution_type, digitalization_band, region, direction)"
        " (rate(dfip_transaction_amount_yuan_total[5m])))"
    )


def test_the_required_derived_figures_are_recorded() -> None:
    names = {r["record"] for r in rules() if "record" in r}
    for required in (
        "dfip:loan_npl:ratio",
        "dfip:loan_approval:ratio",
        "dfip:loan_rate:weighted_avg",
        "dfip:loan_fintech_share:ratio",
        "dfip:loan_digital_credit_share:ratio",
        "dfip:loan_disbursed_principal_hhi_by_region:ratio",
    ):
        assert required in names


def _alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in rules() if "alert" in r}


def test_every_alert_has_severity_runbook_and_a_firing_unit_test() -> None:
    alerts = _alerts()
    assert {
        "DfipNplRatioHigh",
        "DfipDeadLetters",
        "DfipConsumerLagGrowing",
        "DfipWorkerDown",
        "DfipNoEvents",
        "DfipLateEventsRising",
    } <= set(alerts)
    fired: dict[str, int] = {}
    quiet: dict[str, int] = {}
    for path in RULE_TESTS:
        for test in load(path).get("tests", []):
            for case in test.get("alert_rule_test", []):
                bucket = fired if case.get("exp_alerts") else quiet
                bucket[case["alertname"]] = bucket.get(case["alertname"], 0) + 1
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["runbook"] == f"docs/alerts.md#{name.lower()}", name
        assert fired.get(name), f"{name}: no promtool test where it fires"
        assert quiet.get(name), f"{name}: no promtool test where it stays quiet"


def test_every_alert_is_documented() -> None:
    text = ALERTS_DOC.read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (\w+)$", text, flags=re.MULTILINE))
    assert set(_alerts()) == headings
