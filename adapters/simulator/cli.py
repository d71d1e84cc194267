"""`dfip simulate`: produce the synthetic province feed and write its oracle."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from adapters.producer import DeliveryError, KafkaUnavailable
from adapters.simulator.runner import SimulationConfig, SimulationResult, run_simulation
from core.errors import DfipError
from core.kafka_admin import create_topics
from core.kafka_config import KafkaSettings

__all__ = ["MAX_ENTERPRISES", "check_time_range", "parse_start", "simulate_command", "write_oracle"]

MAX_ENTERPRISES = 1_000_000
#: Where the simulated feed may start and end: late and corrected events reach back up to
#: about two years, and the schemas refuse times before 1970; datetime ends at year 9999.
FEED_LIMITS = (datetime(2000, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC))


def parse_start(text: str) -> datetime:
    """`now` (this second, UTC) or an ISO-8601 time; a time without offset is UTC."""
    if text.strip().lower() == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not an ISO-8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _step(value: float) -> Decimal:
    try:
        step = Decimal(str(value))
    except InvalidOperation:
        raise typer.BadParameter("step must be a number of seconds") from None
    if not step.is_finite():  # nan would make the comparison below raise, inf never steps
        raise typer.BadParameter("step must be a finite number of seconds")
    if step * 1_000_000 < 1:
        raise typer.BadParameter("step must be at least one microsecond")
    return step


def write_oracle(path: Path, oracle: dict[str, object]) -> None:
    # stdlib json: sums of fen x 1e6 can outgrow 64-bit integers on long runs.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(oracle, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def _seconds(span: Decimal) -> timedelta:
    """--step-seconds × --events as a timedelta, refused when longer than the feed may run."""
    limit = FEED_LIMITS[1] - FEED_LIMITS[0]
    if span >= Decimal(limit.days) * 86_400:
        raise DfipError(
            f"--step-seconds × --events is {span:.3g} s, more than the {limit.days // 365} "
            "years a simulated feed may span",
            hint="fewer --events or a shorter --step-seconds",
            exit_code=2,
        )
    return timedelta(seconds=float(span))


def check_time_range(moment: datetime, span: Decimal) -> None:
    """The simulated feed (from `moment`, `span` seconds long when --events bounds it)
    lies in the years events can have: before 1970 the schemas refuse it, past year 9999
    datetime cannot count (each was a traceback)."""
    if moment < FEED_LIMITS[0]:
        problem = f"--start {moment.isoformat()} is before {FEED_LIMITS[0].date()}"
    elif _seconds(span) >= FEED_LIMITS[1] - moment:
        problem = (
            f"the simulated feed from {moment.isoformat()} would run past {FEED_LIMITS[1].year}"
        )
    else:
        return
    raise DfipError(
        problem,
        hint="choose another --start (or fewer --events, a shorter --step-seconds)",
        exit_code=2,
    )


def check_oracle_path(path: Path) -> None:
    """The oracle can be written there, checked before the feed is sent: afterwards the
    feed is in Kafka and an oracle that cannot be written is lost."""
    if path.is_dir():
        raise DfipError(f"--oracle {path} is a folder", hint="give a file path", exit_code=2)
    probe = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise DfipError(
            f"--oracle {path}: cannot write there: {exc.strerror}",
            hint="give a writable path",
            exit_code=2,
        ) from None


def _summary(console: Console, result: SimulationResult, oracle_path: Path | None) -> None:
    table = Table(title="dfip simulate", show_header=True)
    table.add_column("topic")
    table.add_column("records", justify="right")
    for topic, count in sorted(result.by_topic.items()):
        table.add_row(topic, f"{count:,}")
    table.add_row("[bold]total[/]", f"[bold]{result.records:,}[/]")
    console.print(table)
    if result.anomalies:
        mix = ", ".join(f"{k} {v}" for k, v in sorted(result.anomalies.items()))
        console.print(f"deliberate anomalies: {mix}")
    meta = result.oracle["meta"]
    console.print(
        f"delivered {result.delivered:,} in {result.elapsed_seconds:.1f} s "
        f"({result.rate:,.0f} records/s); simulated time {meta['start']} → {meta['end']}"
    )
    if oracle_path is not None:
        console.print(f"oracle written to {oracle_path}")


def simulate_command(
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same feed.")] = 7,
    events: Annotated[int | None, typer.Option(min=0, help="Stop after this many records.")] = None,
    duration: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many wall-clock seconds.")
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0, help="Records per second (0 = as fast as possible).")
    ] = 0,
    start: Annotated[
        str,
        typer.Option(
            help="Simulated start time: 'now' or ISO-8601 (UTC if no offset). With --rate 0 "
            "and --events, 'now' means: early enough that the feed ends about now."
        ),
    ] = "now",
    step_seconds: Annotated[
        float | None,
        typer.Option(
            help="Simulated seconds between spontaneous events (default: 1/rate, so event "
            "time keeps pace with the wall clock; 1 with --rate 0)."
        ),
    ] = None,
    grace_seconds: Annotated[
        int, typer.Option(min=0, help="Grace period the stream workers use (for the oracle).")
    ] = 600,
    bad_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Share of deliberately bad or unusual input.")
    ] = 0.01,
    oracle: Annotated[
        Path | None, typer.Option(help="Write the oracle (expected figures) JSON here.")
    ] = None,
    enterprises: Annotated[
        int,
        # bounded: the province is built up front (10^5 take ~3 s; 10^8 never finished)
        typer.Option(min=1, max=MAX_ENTERPRISES, help="Enterprises in the province."),
    ] = 2000,
    aml_permille: Annotated[
        int,
        typer.Option(
            min=0,
            max=1000,
            help="Per mille of ticks that start a suspicious pattern for the rules (cash, "
            "structuring, velocity, round amounts, a per-day large-value total; "
            "docs/aml-rules.md); 0: none.",
        ),
    ] = 1,
) -> None:
    """Produce a realistic synthetic province feed to Kafka, with its exact oracle.

    Without --events or --duration it runs until Ctrl-C (or SIGTERM), then flushes,
    writes the oracle and prints the summary.
    """
    # Workers refuse events dated far beyond the time they were produced (a sign of a broken
    # clock or date field), so a feed's event time must not run far ahead of the wall clock.
    step = _step(step_seconds if step_seconds is not None else (1 / rate if rate else 1.0))
    moment = parse_start(start)
    if oracle is not None:
        check_oracle_path(oracle)
    span = step * events if events else Decimal(0)
    if start.strip().lower() == "now" and not rate and events:
        moment -= _seconds(span)
    check_time_range(moment, span)
    config = SimulationConfig(
        seed=seed,
        events=events,
        duration=duration,
        rate=rate,
        start=moment,
        step_seconds=step,
        grace_seconds=grace_seconds,
        bad_rate=bad_rate,
        enterprises=enterprises,
        aml_permille=aml_permille,
    )
    settings = KafkaSettings()
    create_topics(settings)  # idempotent; also checks the co-partitioned partition counts
    console = Console(emoji=False, stderr=True)
    columns = [TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as bar, _stop_on_signal() as stop:
        progress = _progress_callback(bar, config)
        try:
            result = run_simulation(settings, config, progress=progress, stop=stop)
        except KafkaUnavailable as exc:
            raise DfipError(str(exc), hint="start it with `dfip kafka up`") from exc
        except DeliveryError as exc:
            raise DfipError(str(exc), hint="the oracle would not match: run again") from exc
    if oracle is not None:
        write_oracle(oracle, result.oracle)
    _summary(console, result, oracle)


def _progress_callback(bar: Progress, config: SimulationConfig) -> Callable[[int], None]:
    if config.events is not None:
        task = bar.add_task("records", total=config.events)
        return lambda n: bar.update(task, completed=n)
    if config.duration is not None:
        total, began = config.duration, time.monotonic()
        task = bar.add_task("seconds", total=total)
        return lambda n: bar.update(task, completed=min(time.monotonic() - began, total))
    task = bar.add_task("records", total=None)  # endless: until Ctrl-C or SIGTERM
    return lambda n: bar.update(task, completed=n)


@contextmanager
def _stop_on_signal() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM end the run between two records (so the oracle stays exact);
    a second signal aborts at once."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be installed from the main thread
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
