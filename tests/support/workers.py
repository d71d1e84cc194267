"""Real worker processes for integration tests, and exact readings of their /metrics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from core.kafka_config import KafkaSettings
from schemas.figures import FIGURES_BY_NAME
from tests.support.ports import free_port

# a USCC-shaped token (18 characters, check alphabet); not inside a number, so a float such as
# 0.007729180000751512 in a histogram sum is not taken for one
USCC_LIKE = re.compile(
    r"(?<![0-9.])[0-9A-HJ-NP-RTUW-Y]{2}[0-9]{6}[0-9A-HJ-NP-RTUW-Y]{10}(?![0-9A-Z.])"
)

REPO = Path(__file__).resolve().parents[2]

Figures = dict[str, dict[tuple[str, ...], int]]


class WorkerProcess:
    """`dfip worker` in a subprocess, as an operator would run it."""

    def __init__(
        self,
        kafka: KafkaSettings,
        worker_id: str,
        log_dir: Path,
        *,
        processes: str = "1",
        port: int | None = None,
        **env: str,
    ) -> None:
        # one process unless a test is about several (tests/integration/test_processes.py):
        # the suite's many workers would otherwise each start one process per CPU
        self.port = free_port() if port is None else port
        self.worker_id = worker_id
        self.log_path = log_dir / f"{worker_id}.log"
        self.env = {
            **os.environ,
            "DFIP_WORKER_PROCESSES": processes,
            "DFIP_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "DFIP_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "DFIP_WORKER_WORKER_ID": worker_id,
            "DFIP_WORKER_WEB_PORT": str(self.port),
            "DFIP_WORKER_DATA_DIR": str(log_dir / worker_id),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dfip.cli", "worker"],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, timeout: float = 3.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=timeout
            ) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metrics_text(self) -> str | None:
        try:
            status, body = self.get("/metrics")
        except OSError:
            return None
        return body.decode() if status == 200 else None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def parse_figures(texts: Iterable[str]) -> Figures:
    """Integer figures from several workers' expositions: max per partition, summed.

    Values are converted back to their integer base unit with the figure's scale (exact for
    the magnitudes a test feed produces).
    """
    per_partition: dict[str, dict[tuple[tuple[str, ...], str], int]] = defaultdict(dict)
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = sample.name
                if name.endswith("_created"):
                    continue
                fig = FIGURES_BY_NAME.get(name)
                if fig is None:
                    continue
                labels = tuple(sample.labels[k] for k in fig.labels)
                key = (labels, sample.labels["partition"])
                value = round(sample.value * fig.scale)
                slot = per_partition[name]
                slot[key] = max(slot.get(key, value), value)
    out: Figures = {}
    for name, series in per_partition.items():
        summed: dict[tuple[str, ...], int] = defaultdict(int)
        for (labels, _), value in series.items():
            summed[labels] += value
        out[name] = {k: v for k, v in summed.items() if v != 0}
    return out


def oracle_figures(oracle: dict[str, Any]) -> Figures:
    out: Figures = {}
    for name, rows in oracle["figures"].items():
        fig = FIGURES_BY_NAME[name]
        series = {tuple(str(r["labels"][k]) for k in fig.labels): int(r["value"]) for r in rows}
        out[name] = {k: v for k, v in series.items() if v != 0}
    return out


def scrape(workers: Iterable[WorkerProcess]) -> Figures:
    texts = [t for w in workers if w.alive and (t := w.metrics_text()) is not None]
    return parse_figures(texts)


def total(figures: Figures, name: str) -> int:
    return sum(figures.get(name, {}).values())


def wait_for(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.5, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or predicate}")


def wait_ready(worker: WorkerProcess, timeout: float = 120) -> None:
    def ready() -> bool:
        if not worker.alive:
            raise AssertionError(f"worker {worker.worker_id} exited:\n{worker.tail()}")
        try:
            status, _ = worker.get("/ready", timeout=1)
        except OSError:
            return False
        return status == 200

    wait_for(ready, timeout=timeout, what=f"{worker.worker_id} ready")


def wait_converged(
    workers: list[WorkerProcess], expected: Figures, *, timeout: float = 240
) -> Figures:
    """Scrape until the received counts match the oracle's, then until quiet; return figures."""
    want = total(expected, "dfip_events_received_total")
    last: Figures = {}

    def caught_up() -> bool:
        nonlocal last
        for w in workers:
            if w.proc is not None and not w.alive and w.proc.returncode not in (0, -9, -15):
                raise AssertionError(f"worker {w.worker_id} died:\n{w.tail()}")
        last = scrape(workers)
        # forwarded (repartitioned) records are received before they are processed
        settled = total(last, "dfip_events_received_total") == sum(
            total(last, n)
            for n in (
                "dfip_events_processed_total",
                "dfip_events_duplicate_total",
                "dfip_events_deadlettered_total",
                "dfip_fx_pending_events",  # waiting for an FX rate (docs/metrics.md)
            )
        )
        return (
            total(last, "dfip_events_received_total") >= want
            and settled
            and last == scrape(workers)
        )

    try:
        wait_for(caught_up, timeout=timeout, interval=1.0, what="figures to reach the oracle")
    except AssertionError:
        logs = "\n".join(f"--- {w.worker_id}\n{w.tail(30)}" for w in workers)
        raise AssertionError(
            f"received {total(last, 'dfip_events_received_total')} of {want}\n{logs}"
        ) from None
    return last


def read_topic(kafka: KafkaSettings, name: str, *, isolation: str = "read_committed") -> list[Any]:
    """Every record of a topic, read to its end offsets with kafka-python."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(isolation_level=isolation, **kafka.kafka_python_config())
    try:
        topic = kafka.topic(name)
        deadline = time.monotonic() + 60
        # a fresh client may not have the topic's metadata yet: an empty list would be wrong
        while not (partitions := consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no metadata for {topic}")
            time.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end")
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def closed_windows(kafka: KafkaSettings) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """Latest record per window key on dfip.metrics, in the oracle's shape."""
    import orjson

    latest: dict[bytes, Any] = {}
    for r in read_topic(kafka, "dfip.metrics"):
        latest[r.key] = orjson.loads(r.value)
    return {
        (w["size"], w["window_start"], w["topic"], w["partition"]): w["figures"]
        for w in latest.values()
    }


def oracle_windows(oracle: dict[str, Any]) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    out = {}
    for w in oracle["windows"]:
        if not w["closed"]:
            continue
        figures = {
            name: [{"labels": list(row["labels"].values()), "value": row["value"]} for row in rows]
            for name, rows in w["figures"].items()
        }
        out[(w["size"], w["window_start"], w["topic"], w["partition"])] = figures
    return out
