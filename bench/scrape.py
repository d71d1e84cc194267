"""Cheap reads of a worker: selected samples of its /metrics text, and its RSS from /proc.

A full /metrics exposition of a busy worker is hundreds of kilobytes (one series per label
combination of every figure); the prometheus_client parser needs up to a second for it on
this machine. The benchmarks only need a few series while they run, so this module picks
those lines with a regular expression; the full parse (tests.support.workers.parse_figures)
runs once at the end for the exactness check.
"""

from __future__ import annotations

import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Scrape",
    "Scraper",
    "histogram_quantile",
    "parse_samples",
    "process_tree",
    "rss_by_process_mb",
    "rss_mb",
]

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Labels = tuple[tuple[str, str], ...]


def parse_samples(text: str, names: Iterable[str]) -> dict[str, list[tuple[Labels, float]]]:
    """Samples of the metric names in `names` (exact sample names, e.g. ``x_total``)."""
    wanted = tuple(names)
    out: dict[str, list[tuple[Labels, float]]] = defaultdict(list)
    for line in text.splitlines():
        if not line.startswith(wanted):
            continue
        m = _LINE.match(line)
        if m is None or m.group(1) not in wanted:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        out[m.group(1)].append((labels, float(m.group(3))))
    return dict(out)


def histogram_quantile(buckets: Iterable[tuple[float, float]], q: float) -> float | None:
    """Quantile of cumulative (upper bound, count) buckets, interpolated as Prometheus does.

    Returns +inf when the quantile falls into the +Inf bucket, None without observations.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return math.inf
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return math.inf


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, parents before children and siblings in the order they
    were started (a worker of several processes is a supervisor and its processes 0 … N-1:
    what it costs is the sum over them)."""
    out = [pid]
    at = 0
    while at < len(out):
        one = out[at]
        at += 1
        try:
            tasks = os.listdir(f"/proc/{one}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                out.extend(int(c) for c in open(f"/proc/{one}/task/{tid}/children").read().split())  # noqa: SIM115
            except (OSError, ValueError):
                continue
    return out


def _rss_one(pid: int) -> tuple[float, float] | None:
    try:
        text = open(f"/proc/{pid}/status", encoding="ascii").read()  # noqa: SIM115
    except OSError:
        return None
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, rest = line.split(":", 1)
            values[key] = int(rest.split()[0]) / 1024  # kB → MB
    if "VmRSS" not in values or "VmHWM" not in values:
        return None
    return values["VmRSS"], values["VmHWM"]


def rss_mb(pid: int) -> tuple[float, float] | None:
    """(current RSS, peak RSS) in MB (VmRSS, VmHWM) of a process plus its descendants (the
    peak: the sum of each process's own peak, an upper bound), None if it is gone."""
    first = _rss_one(pid)
    if first is None:
        return None
    rss, peak = first
    for child in process_tree(pid)[1:]:
        more = _rss_one(child)
        if more is not None:
            rss, peak = rss + more[0], peak + more[1]
    return rss, peak


def rss_by_process_mb(pid: int) -> list[float]:
    """Current RSS (MB) of `pid` and of each descendant, in that order."""
    return [m[0] for one in process_tree(pid) if (m := _rss_one(one)) is not None]


@dataclass(frozen=True, slots=True)
class Scrape:
    """One /metrics response: when it arrived, how long it took, and its text."""

    at: float  # time.time() when the body was read
    seconds: float
    text: str


class Scraper:
    """GETs a worker's endpoints; keeps the mean /metrics time to show what scraping costs."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.base = f"http://{host}:{port}"
        self.count = 0
        self.total_seconds = 0.0

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes] | None:
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()
        except OSError:
            return None

    def metrics(self, timeout: float = 30.0, names: Iterable[str] = ()) -> Scrape | None:
        """GET /metrics; with ``names`` only those families (``?name[]=…``, which the worker
        renders in a few lines: cheap enough to poll every few tens of milliseconds). Only
        full scrapes count in :attr:`mean_seconds`."""
        query = urllib.parse.urlencode([("name[]", n) for n in names])
        began = time.perf_counter()
        got = self.get(f"/metrics?{query}" if query else "/metrics", timeout=timeout)
        if got is None or got[0] != 200:
            return None
        seconds = time.perf_counter() - began
        if not query:
            self.count += 1
            self.total_seconds += seconds
        return Scrape(time.time(), seconds, got[1].decode())

    def ready(self) -> bool:
        got = self.get("/ready", timeout=2.0)
        return got is not None and got[0] == 200

    @property
    def mean_seconds(self) -> float | None:
        return self.total_seconds / self.count if self.count else None
