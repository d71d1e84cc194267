"""``dfip top``: the key figures and worker health in the terminal, read straight from the
workers' ``/metrics`` (for people without Grafana at hand).

Figures are combined over the workers the way the Prometheus recording rules do it: the
maximum per (metric, partition, labels) first — a partition can be exported by two workers for
a moment during a rebalance — then summed. Worker health is shown per URL.
"""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated

import typer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from schemas import figure_names as fn

__all__ = [
    "DEFAULT_URL",
    "Frame",
    "Scrape",
    "WorkerHealth",
    "build_frame",
    "fetch",
    "render",
    "top_command",
]

DEFAULT_URL = "http://127.0.0.1:6066/metrics"
BANDS = ("unscored", "l0", "l1", "l2", "l3", "l4")
NPL_CLASSES = frozenset({"substandard", "doubtful", "loss"})

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Scrape:
    url: str
    text: str | None
    error: str | None = None
    seconds: float = 0.0


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in {"localhost", "::1"} or host.startswith("127.")


#: A worker's /metrics is some hundreds of KiB; anything answering with more is not one (and
#: an endless answer would be read for ever: the timeout bounds each read, not the whole).
MAX_METRICS_BYTES = 64 << 20


def shown_url(url: str) -> str:
    """`url` without a user:password@ part, as printed."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="…@" + parts.netloc.rsplit("@", 1)[1]))


def fetch(url: str, timeout: float = 3.0) -> Scrape:
    """One scrape; errors are returned, never raised (a down worker is a row, not a crash)."""
    # A proxy configured for the outside world must not swallow requests to this machine.
    handlers = [urllib.request.ProxyHandler({})] if _is_loopback(url) else []
    opener = urllib.request.build_opener(*handlers)
    t0 = time.monotonic()
    try:
        with opener.open(url, timeout=timeout) as response:
            body = response.read(MAX_METRICS_BYTES + 1)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Scrape(shown_url(url), None, str(reason), time.monotonic() - t0)
    if len(body) > MAX_METRICS_BYTES:
        error = f"answered more than {MAX_METRICS_BYTES >> 20} MiB: not a worker's /metrics"
        return Scrape(shown_url(url), None, error, time.monotonic() - t0)
    text = body.decode("utf-8", errors="replace")
    return Scrape(shown_url(url), text, None, time.monotonic() - t0)


# ---------------------------------------------------------------------------- parsing


@dataclass
class _Samples:
    """Samples of one worker: name → labels → value (``_created`` samples dropped)."""

    values: dict[str, dict[Labels, float]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> _Samples:
        out = cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                labels = frozenset(sample.labels.items())
                out.values.setdefault(sample.name, {})[labels] = float(sample.value)
        return out

    def get(self, name: str) -> dict[Labels, float]:
        return self.values.get(name, {})

    def total(self, name: str) -> float:
        return sum(self.get(name).values())


def _merge_max(workers: Iterable[_Samples]) -> _Samples:
    """Maximum per (metric, labels incl. partition) over workers: the rebalance overlap."""
    merged = _Samples()
    for w in workers:
        for name, series in w.values.items():
            slot = merged.values.setdefault(name, {})
            for labels, value in series.items():
                slot[labels] = max(slot.get(labels, value), value)
    return merged


def _sum(samples: _Samples, name: str, **match: str | frozenset[str]) -> float:
    total = 0.0
    for labels, value in samples.get(name).items():
        d = dict(labels)
        if all(
            d.get(k) in v if isinstance(v, frozenset) else d.get(k) == v for k, v in match.items()
        ):
            total += value
    return total


def _sum_by(samples: _Samples, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for labels, value in samples.get(name).items():
        out[dict(labels).get(label, "")] += value
    return dict(out)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """histogram_quantile over cumulative buckets {upper bound: count} (same interpolation)."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


# ---------------------------------------------------------------------------- the frame


@dataclass(frozen=True)
class WorkerHealth:
    url: str
    up: bool
    error: str | None = None
    ready: bool | None = None
    partitions: int | None = None
    records: float = 0.0
    batches: float = 0.0
    rebalances: float = 0.0
    lag: float = 0.0
    latency_p99: float | None = None
    last_restore_seconds: float | None = None


@dataclass(frozen=True)
class Frame:
    """Everything one screen shows; numbers in yuan, counts and fractions."""

    figures: dict[str, float | None]
    by_band: dict[str, dict[str, float | None]]
    workers: list[WorkerHealth]

    @property
    def any_up(self) -> bool:
        return any(w.up for w in self.workers)


def _worker_health(scrape: Scrape, samples: _Samples | None) -> WorkerHealth:
    if samples is None:
        return WorkerHealth(scrape.url, up=False, error=scrape.error)
    # Only partitions this worker still exports figures for: the lag gauge of a partition
    # that moved away keeps its last value.
    owned = {dict(labels).get("partition") for labels in samples.get(fn.EVENTS_RECEIVED_TOTAL)}
    lag = sum(
        v
        for labels, v in samples.get("dfip_consumer_lag").items()
        if dict(labels).get("partition") in owned
    )
    buckets = {
        float(dict(labels)["le"]): v
        for labels, v in samples.get("dfip_event_latency_seconds_bucket").items()
    }
    ready = samples.get("dfip_worker_ready")
    assigned = samples.get("dfip_worker_assigned_partitions")
    restore = samples.get("dfip_worker_last_restore_seconds")
    return WorkerHealth(
        url=scrape.url,
        up=True,
        ready=bool(sum(ready.values())) if ready else None,
        partitions=int(sum(assigned.values())) if assigned else None,
        records=samples.total("dfip_worker_records_total"),
        batches=samples.total("dfip_worker_batches_total"),
        rebalances=samples.total("dfip_worker_rebalances_total"),
        lag=lag,
        latency_p99=_quantile(0.99, buckets),
        last_restore_seconds=sum(restore.values()) if restore else None,
    )


def build_frame(scrapes: Sequence[Scrape]) -> Frame:
    parsed: list[tuple[Scrape, _Samples | None]] = []
    for s in scrapes:
        if s.text is None:
            parsed.append((s, None))
            continue
        try:
            parsed.append((s, _Samples.parse(s.text)))
        except ValueError as exc:  # not a Prometheus exposition (wrong URL?)
            parsed.append((Scrape(s.url, None, f"unparsable /metrics: {exc}"), None))
    m = _merge_max(samples for _, samples in parsed if samples is not None)

    amount = fn.TRANSACTION_AMOUNT_YUAN_TOTAL
    disbursed = fn.LOAN_DISBURSED_PRINCIPAL_YUAN_TOTAL
    outstanding = fn.LOAN_OUTSTANDING_PRINCIPAL_YUAN
    decisions = fn.LOAN_DECISIONS_TOTAL
    digital = frozenset({"l3", "l4"})

    by_region = _sum_by(m, disbursed, "region")
    disbursed_total = sum(by_region.values())
    hhi = sum((v / disbursed_total) ** 2 for v in by_region.values()) if disbursed_total else None
    outstanding_total = _sum(m, outstanding)
    approved = _sum(m, decisions, decision="approved")
    figures: dict[str, float | None] = {
        "transactions": _sum(m, fn.TRANSACTIONS_TOTAL),
        "payments_yuan": _sum(m, amount),
        "payments_digital_share": _ratio(
            _sum(m, amount, digitalization_band=digital), _sum(m, amount)
        ),
        "applications": _sum(m, fn.LOAN_APPLICATIONS_TOTAL),
        "approval_ratio": _ratio(approved, approved + _sum(m, decisions, decision="rejected")),
        "disbursed_yuan": disbursed_total,
        "weighted_rate": _ratio(
            _sum(m, fn.LOAN_DISBURSED_RATE_WEIGHTED_YUAN_TOTAL), disbursed_total
        ),
        "fintech_share": _ratio(_sum(m, disbursed, institution_type="fintech"), disbursed_total),
        "hhi_region": hhi,
        "outstanding_yuan": outstanding_total,
        "npl_ratio": _ratio(_sum(m, outstanding, risk_class=NPL_CLASSES), outstanding_total),
        "digital_credit_share": _ratio(
            _sum(m, outstanding, digitalization_band=digital), outstanding_total
        ),
        "loans_active": _sum(m, fn.LOANS_ACTIVE),
        "borrowers_active": _sum(m, fn.BORROWERS_ACTIVE),
        "received": _sum(m, fn.EVENTS_RECEIVED_TOTAL),
        "processed": _sum(m, fn.EVENTS_PROCESSED_TOTAL),
        "duplicates": _sum(m, fn.EVENTS_DUPLICATE_TOTAL),
        "deadlettered": _sum(m, fn.EVENTS_DEADLETTERED_TOTAL),
        "late": _sum(m, fn.EVENTS_LATE_TOTAL),
    }
    by_band: dict[str, dict[str, float | None]] = {}
    for band in BANDS:
        out_band = _sum(m, outstanding, digitalization_band=band)
        by_band[band] = {
            "payments_yuan": _sum(m, amount, digitalization_band=band),
            "disbursed_yuan": _sum(m, disbursed, digitalization_band=band),
            "outstanding_yuan": out_band,
            "npl_ratio": _ratio(
                _sum(m, outstanding, digitalization_band=band, risk_class=NPL_CLASSES), out_band
            ),
            "enterprises": _sum(m, fn.ENTERPRISES_SCORED, digitalization_band=band),
        }
    workers = [_worker_health(s, samples) for s, samples in parsed]
    return Frame(figures=figures, by_band=by_band, workers=workers)


# ---------------------------------------------------------------------------- rendering


def _yuan(v: float | None) -> str:
    if v is None:
        return "—"
    for unit, scale in (("tn", 1e12), ("bn", 1e9), ("m", 1e6)):
        if abs(v) >= scale:
            return f"¥{v / scale:,.2f} {unit}"
    return f"¥{v:,.2f}"


def _pct(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v * 100:.{digits}f} %"


def _count(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def _seconds(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.1f} s"


def _all_down(frame: Frame) -> str:
    """One line: no worker answered (figures unknown, not zero)."""
    errors = "; ".join(f"{w.url}: {w.error}" for w in frame.workers)
    return f"every worker is down — no /metrics answered ({errors})"


def render(frame: Frame) -> RenderableType:
    if not frame.any_up:
        # no figures at all rather than ¥0.00: zero would be a claim about the province
        stamp = Text(time.strftime("%Y-%m-%d %H:%M:%S"), style="dim")
        hint = "figures unknown until a worker answers (`dfip worker`, `dfip run`, or --url)"
        return Group(stamp, Text(_all_down(frame), style="bold red"), Text(hint, style="dim"))
    f = frame.figures
    key = Table(title="DFIP · key figures", show_header=False, expand=False)
    for _ in range(3):
        key.add_column(style="bold")
        key.add_column(justify="right")
    hhi = f["hhi_region"]
    rows = [
        ("Payments booked", _yuan(f["payments_yuan"]), "Transactions", _count(f["transactions"])),
        (
            "  of it L3/L4",
            _pct(f["payments_digital_share"]),
            "Applications",
            _count(f["applications"]),
        ),
        ("Disbursed", _yuan(f["disbursed_yuan"]), "Approval ratio", _pct(f["approval_ratio"])),
        ("Outstanding", _yuan(f["outstanding_yuan"]), "NPL ratio", _pct(f["npl_ratio"], 2)),
        (
            "Weighted avg rate",
            _pct(f["weighted_rate"], 2),
            "Fintech share",
            _pct(f["fintech_share"]),
        ),
        (
            "Digital-credit share",
            _pct(f["digital_credit_share"]),
            "HHI (region)",
            "—" if hhi is None else f"{hhi * 10_000:,.0f}",
        ),
        (
            "Active loans",
            _count(f["loans_active"]),
            "Active borrowers",
            _count(f["borrowers_active"]),
        ),
    ]
    flow = [
        ("Received", _count(f["received"])),
        ("Processed", _count(f["processed"])),
        ("Duplicates", _count(f["duplicates"])),
        ("Dead-lettered", _count(f["deadlettered"])),
        ("Late", _count(f["late"])),
        ("", ""),
        ("", ""),
    ]
    for (a, av, b, bv), (c, cv) in zip(rows, flow, strict=True):
        key.add_row(a, av, b, bv, c, cv)

    bands = Table(title="By digitalisation band", expand=False)
    for col in ("band", "payments", "disbursed", "outstanding", "NPL ratio", "enterprises"):
        bands.add_column(col, justify="left" if col == "band" else "right")
    for band, v in frame.by_band.items():
        bands.add_row(
            band,
            _yuan(v["payments_yuan"]),
            _yuan(v["disbursed_yuan"]),
            _yuan(v["outstanding_yuan"]),
            _pct(v["npl_ratio"], 2),
            _count(v["enterprises"]),
        )

    workers = Table(title="Workers", expand=False)
    for col in (
        "worker", "state", "partitions", "records", "batches", "lag", "p99 latency*",
        "rebalances", "last restore",
    ):  # fmt: skip
        workers.add_column(col, justify="left" if col in ("worker", "state") else "right")
    for w in frame.workers:
        if not w.up:
            workers.add_row(w.url, Text(f"down: {w.error}", style="red"), *[""] * 7)
            continue
        if w.ready is None:  # an exposition without dfip_worker_ready (not a DFIP worker?)
            state = Text("up")
        elif w.ready:
            state = Text("ready", style="green")
        else:
            state = Text("restoring", style="yellow")
        workers.add_row(
            w.url,
            state,
            _count(w.partitions),
            _count(w.records),
            _count(w.batches),
            _count(w.lag),
            _seconds(w.latency_p99),
            _count(w.rebalances),
            _seconds(w.last_restore_seconds),
        )
    stamp = Text(time.strftime("%Y-%m-%d %H:%M:%S"), style="dim")
    note = Text("* produce time to committed figure, since the worker started", style="dim")
    return Group(stamp, key, bands, workers, note)


def _frame(urls: Sequence[str], fetcher: Callable[[str], Scrape]) -> Frame:
    return build_frame([fetcher(u) for u in urls])


def top_command(
    url: Annotated[
        list[str] | None,
        typer.Option(
            "--url",
            help=f"A worker's /metrics URL; repeat for every worker (default {DEFAULT_URL}).",
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Print one frame and exit (1 if no worker answered).")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.2, help="Seconds between refreshes.")
    ] = 2.0,
) -> None:
    """Key figures and worker health in the terminal, read from the workers' /metrics."""
    urls = url or [DEFAULT_URL]
    console = Console(emoji=False)
    first = _frame(urls, fetch)
    if not first.any_up:
        # one line and exit 1, as any command that finds nothing to talk to; once running,
        # an outage is shown on the screen instead
        Console(emoji=False, stderr=True, soft_wrap=True).print(
            f"[red]dfip:[/] {escape(_all_down(first))} — start one with `dfip worker` or "
            "`dfip run`, or pass --url"
        )
        raise typer.Exit(1)
    if once:
        console.print(render(first))
        return
    try:
        with Live(render(first), console=console, screen=False) as live:
            while True:
                time.sleep(interval)
                live.update(render(_frame(urls, fetch)))
    except KeyboardInterrupt:
        pass
