"""End to end: the real broker, a real `dfip worker` fed by the simulator, and a real
Prometheus (Debian's 2.42 package) scraping it with the repository's rules.

Every recording rule and every dashboard panel query is run through Prometheus' HTTP API and
must return data; the business figures read back from Prometheus equal the simulator's oracle
exactly (integer base units after multiplying back by each figure's scale).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.simulator.runner import SimulationConfig, SimulationResult, run_simulation
from core.kafka_config import KafkaSettings
from dfip.top import build_frame, fetch
from schemas.figures import FIGURES, FIGURES_BY_NAME, HEALTH_FIGURES, RATE_SCALE
from tests.support.ports import free_port
from tests.support.workers import (
    REPO,
    Figures,
    WorkerProcess,
    oracle_figures,
    total,
    wait_converged,
    wait_for,
    wait_ready,
)

PROM_DIR = REPO / "deploy" / "prometheus"
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
NPL = ("substandard", "doubtful", "loss")

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="prometheus is not on PATH (make test installs Debian's prometheus package)",
)


# --------------------------------------------------------------------------- prometheus


class Prometheus:
    """A real `prometheus` process on loopback, a free port and a temporary TSDB."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # a proxy configured for the outside world must not see loopback requests
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self) -> Prometheus:
        binary = shutil.which("prometheus")
        assert binary
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, timeout=60, interval=0.2, what="prometheus ready")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log_path.read_text()[-3000:]}")
        try:
            with self._http.open(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with self._http.open(url, timeout=10) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:  # 400/422 carry the PromQL error
            body = json.loads(e.read())
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", expr
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float:
        result = self.query(expr)
        assert len(result) == 1, f"{expr}: {result}"
        return float(result[0]["value"][1])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def e2e_config(worker_port: int) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with the test worker as its target, 1 s intervals and
    the repository's rule files by absolute path."""
    config: dict[str, Any] = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROM_DIR / "rules" / "*.yml")]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "dfip-worker"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{worker_port}"]}]
    config["scrape_configs"] = [job]
    return config


# --------------------------------------------------------------------------- the feed


class _NullSink:
    """The simulator without Kafka: only its oracle is wanted."""

    @dataclass
    class _Report:
        sent: int = 0
        failed: int = 0

    def send(self, event: object) -> None:
        pass

    def send_raw(self, topic: str, value: bytes, **kwargs: object) -> None:
        pass

    def flush(self, timeout: float | None = None) -> _NullSink._Report:
        return self._Report()

    def close(self) -> None:
        pass


def _feed(seed: int, events: int, step: int, month: int) -> SimulationConfig:
    return SimulationConfig(
        seed=seed,
        events=events,
        enterprises=300,
        step_seconds=Decimal(step),  # event time runs fast enough for late events and loans
        loan_month_seconds=month,  # to go past due, turn non-performing and be written off
    )


# Feeds known to fill every figure (checked again below, the simulator may change).
_CANDIDATES = (
    _feed(7, 10_000, 10, 600),
    _feed(20, 6_000, 10, 600),
    *(_feed(seed, 10_000, 10, 600) for seed in range(30, 36)),
)


# The simulator writes every assessment before the events it applies to, so nothing is ever
# restated in its feeds (zero is the exact answer, compared below like every figure);
# tests/integration/test_order_scores.py writes assessments late and fills these.
_ORDER_ONLY = frozenset({"dfip_restated_events_total", "dfip_scores_beyond_restatement_total"})


def pick_feed() -> SimulationConfig:
    """The first candidate feed whose oracle has data for every figure, ideally NPL too, so
    that every rule and panel query must return data. The oracle run costs a few seconds."""
    fallback = None
    for config in _CANDIDATES:
        result = run_simulation(None, config, sink=_NullSink())
        figures = oracle_figures(result.oracle)
        wanted = (f for f in (*FIGURES, *HEALTH_FIGURES) if f.name not in _ORDER_ONLY)
        if any(not figures.get(f.name) for f in wanted):
            continue
        outstanding = figures["dfip_loan_outstanding_principal_yuan"]
        if any(k[2] in NPL for k in outstanding):
            return config
        fallback = fallback or config
    if fallback is None:
        pytest.fail("no candidate simulator feed fills every figure; add one to _CANDIDATES")
    return fallback


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    kafka: KafkaSettings
    worker: WorkerProcess
    prometheus: Prometheus
    result: SimulationResult
    expected: Figures


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from core.kafka_admin import create_topics

    workdir = tmp_path_factory.mktemp("prometheus-e2e")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")  # urllib in tests.support.workers
        kafka = KafkaSettings(
            bootstrap_servers=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}-"
        )
        create_topics(kafka)
        # The worker joins its group while the feed is chosen and produced (it reads from
        # the earliest offset), which keeps the whole module near a minute.
        worker = WorkerProcess(kafka, "e2e", workdir).start()
        prometheus = Prometheus(e2e_config(worker.port), workdir)
        try:
            prometheus.start()
            result = run_simulation(kafka, pick_feed())
            wait_ready(worker)
            expected = oracle_figures(result.oracle)
            wait_converged([worker], expected, timeout=120)
            received = total(expected, "dfip_events_received_total")

            def scraped_and_recorded() -> bool:
                # the last scrape and the last rule evaluation both saw the converged figures
                got = prometheus.query("sum(dfip:events_received:sum_by_topic)")
                return bool(got) and float(got[0]["value"][1]) == received

            wait_for(scraped_and_recorded, timeout=60, what="prometheus to see every record")
            time.sleep(2)  # two more scrapes (the worker's lag gauge and rates settle)
            yield Stack(kafka, worker, prometheus, result, expected)
        finally:
            prometheus.stop()
            worker.stop()


# --------------------------------------------------------------------------- rules, panels


def recording_rules() -> list[tuple[str, str]]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [(r["record"], r["expr"]) for r in group["rules"] if "record" in r]
    return out


def alert_rules() -> list[tuple[str, str]]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [(r["alert"], r["expr"]) for r in group["rules"] if "alert" in r]
    return out


def panel_queries() -> list[tuple[str, str]]:
    """Every panel query, with its filter variables set to "All" as Grafana expands them."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        every = {
            v["name"]: v.get("allValue") or ".*"
            for v in board.get("templating", {}).get("list", [])
            if v.get("includeAll")
        }
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in every.items():
                    expr = expr.replace(f"${name}", value)
                out.append((f"{board['title']} / {panel['title']}", expr))
    return out


def test_every_rule_loaded_and_evaluates_without_error(stack: Stack) -> None:
    groups = stack.prometheus.api("rules")["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    want = {name for name, _ in recording_rules()} | {name for name, _ in alert_rules()}
    assert want <= set(loaded)
    broken = {n: r.get("lastError") for n, r in loaded.items() if r["health"] != "ok"}
    assert not broken, broken


def test_every_recording_rule_returns_data(stack: Stack) -> None:
    rules = recording_rules()
    assert len(rules) > 40
    empty = []
    for record, expr in rules:
        if not stack.prometheus.query(expr):
            empty.append(f"expr of {record}")
        if not stack.prometheus.query(record):  # evaluated and stored by the server
            empty.append(record)
    assert not empty, "no data: " + ", ".join(empty)


_OFFSET = re.compile(r"\s+offset\s+\d+[smhdwy]")


def test_every_dashboard_panel_query_returns_data(stack: Stack) -> None:
    queries = panel_queries()
    assert len(queries) > 50
    empty = []
    for where, expr in queries:
        # a panel comparing with last week (`offset 1w`) has no history in a stack minutes
        # old: the same expression at the present must return data, and the offset form
        # must still be valid PromQL (query() asserts success)
        if _OFFSET.search(expr):
            stack.prometheus.query(expr)
            expr = _OFFSET.sub("", expr)
        if not stack.prometheus.query(expr):
            empty.append(f"{where}: {expr}")
    assert not empty, "no data:\n" + "\n".join(empty)


def test_alert_expressions_are_valid_promql(stack: Stack) -> None:
    for _, expr in alert_rules():
        stack.prometheus.query(expr)  # asserts status success
    # the feed carries deliberate bad input, so the dead-letter rule has a series per topic
    # (its value may already be 0: the worker can finish the feed before the second scrape)
    assert stack.prometheus.query("dfip:events_deadlettered:rate5m_by_topic")


# --------------------------------------------------------------------------- exact figures


def _per_partition(prom: Prometheus, name: str) -> dict[tuple[str, ...], int]:
    """Integer figure by its labels: max per partition in Prometheus, each series scaled
    back to its integer base unit, summed here (exact whatever the float magnitudes)."""
    fig = FIGURES_BY_NAME[name]
    by = ", ".join(("partition", *fig.labels))
    out: dict[tuple[str, ...], int] = defaultdict(int)
    for row in prom.query(f"max by ({by}) ({name})"):
        labels = tuple(row["metric"].get(k, "") for k in fig.labels)
        out[labels] += round(float(row["value"][1]) * fig.scale)
    return {k: v for k, v in out.items() if v != 0}


def test_every_figure_in_prometheus_equals_the_oracle(stack: Stack) -> None:
    for fig in (*FIGURES, *HEALTH_FIGURES):
        got = _per_partition(stack.prometheus, fig.name)
        assert got == stack.expected.get(fig.name, {}), fig.name


def _oracle_sum(stack: Stack, name: str, **match: tuple[str, ...]) -> int:
    fig = FIGURES_BY_NAME[name]
    idx = {k: fig.labels.index(k) for k in match}
    return sum(
        v
        for labels, v in stack.expected.get(name, {}).items()
        if all(labels[idx[k]] in allowed for k, allowed in match.items())
    )


def test_recorded_sums_equal_the_oracle_to_the_fen(stack: Stack) -> None:
    prom = stack.prometheus

    def fen(record: str) -> int:
        return round(prom.value(record) * 100)

    assert fen("dfip:transaction_amount_yuan:sum") == _oracle_sum(
        stack, "dfip_transaction_amount_yuan_total"
    )
    assert fen("dfip:loan_disbursed_principal_yuan:sum") == _oracle_sum(
        stack, "dfip_loan_disbursed_principal_yuan_total"
    )
    assert fen("dfip:loan_outstanding_principal_yuan:sum") == _oracle_sum(
        stack, "dfip_loan_outstanding_principal_yuan"
    )
    npl = _oracle_sum(stack, "dfip_loan_outstanding_principal_yuan", risk_class=NPL)
    assert fen("dfip:loan_npl_principal_yuan:sum") == npl
    assert fen("dfip:loan_repaid_principal_yuan:sum") == _oracle_sum(
        stack, "dfip_loan_repaid_principal_yuan_total"
    )
    assert fen("dfip:loan_written_off_principal_yuan:sum") == _oracle_sum(
        stack, "dfip_loan_written_off_principal_yuan_total"
    )
    for row in prom.query("dfip:transaction_amount_yuan:sum_by_digitalization_band"):
        band = row["metric"]["digitalization_band"]
        want = _oracle_sum(stack, "dfip_transaction_amount_yuan_total", digitalization_band=(band,))
        assert round(float(row["value"][1]) * 100) == want, band
    assert prom.value("dfip:transactions:sum") == _oracle_sum(stack, "dfip_transactions_total")
    assert prom.value("dfip:borrowers_active:sum") == _oracle_sum(stack, "dfip_borrowers_active")


def test_derived_figures_match_the_oracle(stack: Stack) -> None:
    prom = stack.prometheus

    def close(record: str, want: float) -> None:
        got = prom.value(record)
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (record, got, want)

    outstanding = _oracle_sum(stack, "dfip_loan_outstanding_principal_yuan")
    npl = _oracle_sum(stack, "dfip_loan_outstanding_principal_yuan", risk_class=NPL)
    close("dfip:loan_npl:ratio", npl / outstanding)
    digital = _oracle_sum(
        stack, "dfip_loan_outstanding_principal_yuan", digitalization_band=("l3", "l4")
    )
    close("dfip:loan_digital_credit_share:ratio", digital / outstanding)

    approved = _oracle_sum(stack, "dfip_loan_decisions_total", decision=("approved",))
    rejected = _oracle_sum(stack, "dfip_loan_decisions_total", decision=("rejected",))
    close("dfip:loan_approval:ratio", approved / (approved + rejected))

    disbursed = _oracle_sum(stack, "dfip_loan_disbursed_principal_yuan_total")
    weighted = _oracle_sum(stack, "dfip_loan_disbursed_rate_weighted_yuan_total")
    # fen x rate units over fen: divide by the rate scale to get the annual rate
    close("dfip:loan_rate:weighted_avg", weighted / disbursed / RATE_SCALE)
    fintech = _oracle_sum(
        stack, "dfip_loan_disbursed_principal_yuan_total", institution_type=("fintech",)
    )
    close("dfip:loan_fintech_share:ratio", fintech / disbursed)

    by_region: dict[str, int] = defaultdict(int)
    region = FIGURES_BY_NAME["dfip_loan_disbursed_principal_yuan_total"].labels.index("region")
    for labels, v in stack.expected["dfip_loan_disbursed_principal_yuan_total"].items():
        by_region[labels[region]] += v
    hhi = sum((v / disbursed) ** 2 for v in by_region.values())
    close("dfip:loan_disbursed_principal_hhi_by_region:ratio", hhi)
    assert 1 / len(by_region) <= hhi <= 1

    assert prom.value("dfip:events_unaccounted:sum") == 0
    # Lag counts records, not transaction markers: a drained input reads 0 on every partition,
    # including those whose last write was a transaction (forwarded records). The exact count
    # is taken once a partition has stood still for one idle tick (streams/app.py), then
    # scraped and recorded: wait for it rather than read the first evaluation.
    wait_for(
        lambda: prom.value("dfip:consumer_lag:sum") == 0,
        timeout=60,
        what="dfip:consumer_lag:sum to read 0 once drained",
    )


def test_dfip_top_reads_the_same_figures(stack: Stack) -> None:
    frame = build_frame([fetch(f"http://127.0.0.1:{stack.worker.port}/metrics")])
    (worker,) = frame.workers
    assert worker.up
    assert worker.ready
    assert worker.partitions == 12
    assert round((frame.figures["payments_yuan"] or 0) * 100) == _oracle_sum(
        stack, "dfip_transaction_amount_yuan_total"
    )
    assert round((frame.figures["outstanding_yuan"] or 0) * 100) == _oracle_sum(
        stack, "dfip_loan_outstanding_principal_yuan"
    )
    assert frame.figures["npl_ratio"] == pytest.approx(
        stack.prometheus.value("dfip:loan_npl:ratio")
    )


# --------------------------------------------------------------------------- kubernetes


def test_k8s_pod_discovery_keeps_only_running_worker_pods(tmp_path: Path) -> None:
    """prometheus.k8s.yml's relabelling on a running Prometheus. Debian's build has no
    Kubernetes discovery, so the same relabel rules get pod metadata from file_sd."""
    config: dict[str, Any] = yaml.safe_load((PROM_DIR / "prometheus.k8s.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "dfip-worker"]
    del job["kubernetes_sd_configs"]
    job["file_sd_configs"] = [{"files": [str(tmp_path / "pods.json")], "refresh_interval": "1s"}]
    config["scrape_configs"] = [job]
    config["rule_files"] = []
    pod = {
        "__meta_kubernetes_namespace": "dfip",
        "__meta_kubernetes_pod_name": "dfip-worker-0",
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "dfip",
        "__meta_kubernetes_pod_label_app_kubernetes_io_component": "worker",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": "6066",
        "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
    }
    groups = [
        # one target per declared container port of the same pod: merged into one
        {"targets": ["10.1.0.5:8080"], "labels": pod},
        {"targets": ["10.1.0.5:9000"], "labels": pod},
        # an annotated pod that is not a DFIP worker
        {
            "targets": ["10.1.0.6:9308"],
            "labels": {
                **pod,
                "__meta_kubernetes_pod_name": "kafka-exporter",
                "__meta_kubernetes_pod_label_app_kubernetes_io_component": "exporter",
            },
        },
        # a worker pod that is not running yet
        {
            "targets": ["10.1.0.7:8080"],
            "labels": {
                **pod,
                "__meta_kubernetes_pod_name": "dfip-worker-1",
                "__meta_kubernetes_pod_phase": "Pending",
            },
        },
        # a worker pod without the scrape annotation
        {
            "targets": ["10.1.0.8:8080"],
            "labels": {
                k: v
                for k, v in {**pod, "__meta_kubernetes_pod_name": "dfip-worker-2"}.items()
                if k != "__meta_kubernetes_pod_annotation_prometheus_io_scrape"
            },
        },
    ]
    (tmp_path / "pods.json").write_text(json.dumps(groups))
    prom = Prometheus(config, tmp_path).start()
    try:
        targets: dict[str, Any] = {}

        def discovered() -> bool:
            targets.update(prom.api("targets"))
            return bool(targets["activeTargets"]) and len(targets["droppedTargets"]) >= 3

        wait_for(discovered, timeout=60, interval=0.5, what="file_sd targets")
        (active,) = targets["activeTargets"]
        assert active["labels"] == {
            "instance": "dfip-worker-0",
            "job": "dfip-worker",
            "namespace": "dfip",
            "pod": "dfip-worker-0",
        }
        assert active["scrapeUrl"] == "http://10.1.0.5:6066/metrics"
        assert len(targets["droppedTargets"]) == 3
    finally:
        prom.stop()
