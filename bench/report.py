"""Medians, markdown tables and the machine description for benchmark reports."""

from __future__ import annotations

import math
import os
import platform
import re
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

__all__ = [
    "Measure",
    "fmt",
    "kafka_version",
    "machine",
    "percentile",
    "ratio",
    "ratio_line",
    "table",
]

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Measure:
    """One figure of the report: the values of every run and their median."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float | None:
        finite = [v for v in self.values if not math.isnan(v)]
        return statistics.median(finite) if finite else None

    def add(self, value: float | None) -> None:
        self.values.append(math.nan if value is None else value)


def fmt(value: float | None, unit: str = "") -> str:
    """A figure as a reader wants it: thousands separators for rates, ms for short times."""
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞"
    if unit in ("events/s", "records/s", "scores/s", "count", "records"):
        return f"{value:,.0f}"
    if unit == "MB":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    if unit in ("×", "x"):
        return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"
    if unit == "s":
        return f"{value:.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.3g}"


def table(measures: Iterable[Measure]) -> str:
    """Markdown table: figure, median, unit, the single runs, a note."""
    lines = ["| figure | median | unit | runs | note |", "|---|---:|---|---|---|"]
    for m in measures:
        runs = ", ".join(fmt(v, m.unit) for v in m.values) or "–"
        lines.append(f"| {m.name} | {fmt(m.median, m.unit)} | {m.unit} | {runs} | {m.note} |")
    return "\n".join(lines)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    if math.isnan(numerator) or math.isnan(denominator):
        return None
    return numerator / denominator


def ratio_line(pipeline: float | None, raw: float | None) -> str:
    """The line issue 7 asks for, e.g. ``ratio pipeline/raw: 0.12``."""
    r = ratio(pipeline, raw)
    return f"ratio pipeline/raw: {'n/a' if r is None else f'{r:.2f}'}"


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of an ascending sequence; None if empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def kafka_version() -> str:
    """The broker version deploy/kafka/kafka.sh runs (from its pom)."""
    try:
        pom = (REPO / "deploy" / "kafka" / "pom.xml").read_text(encoding="utf-8")
    except OSError:
        return "?"
    m = re.search(r"<kafka.version>(.*?)</kafka.version>", pom)
    return m.group(1) if m else "?"


def _cmd(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _code() -> str:
    """The commit measured, and whether the stream/schema code differed from it."""
    head = _cmd("git", "-C", str(REPO), "log", "-1", "--format=%h %cI %s")
    dirty = _cmd("git", "-C", str(REPO), "status", "--short", "streams", "schemas", "dfip")
    changed = len([line for line in dirty.splitlines() if line.strip()])
    return f"git {head or '?'}" + (f" (+{changed} uncommitted files)" if changed else "")


def machine() -> dict[str, str]:
    """What a reader needs to compare numbers: date, CPUs, memory, load, versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = _cmd("free", "-h").splitlines()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "date": _cmd("date", "--iso-8601=seconds"),
        "cpu": f"{cpu}, nproc {_cmd('nproc')}",
        "memory": mem[1].split()[1] + " total" if len(mem) > 1 else "?",
        "load average (1/5/15 min)": " / ".join(f"{x:.2f}" for x in load),
        "python": platform.python_version(),
        "kafka broker": f"Apache Kafka {kafka_version()} (deploy/kafka/kafka.sh, KRaft, 1 node)",
        "code": _code(),
        "clients": (
            f"faust-streaming {_version('faust-streaming')}, aiokafka {_version('aiokafka')}, "
            f"kafka-python {_version('kafka-python')}, orjson {_version('orjson')}, "
            f"crc32c {_version('crc32c')}"
        ),
    }


def machine_lines(info: dict[str, str]) -> str:
    return "\n".join(f"- {k}: {v}" for k, v in info.items())
