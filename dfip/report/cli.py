"""``dfip report --month 2026-11`` (or ``--day`` / ``--quarter``): read ``dfip.metrics``, print
the period's figures and write them as CSV and Excel (docs/reports.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from core.errors import DfipError
from core.kafka_config import KafkaSettings
from core.text import printable
from dfip.i18n import LANG_HELP, parse_lang
from dfip.report.build import build_rows, daily_figures, latest_windows
from dfip.report.periods import parse_period
from dfip.report.write import render_table, write_csv, write_xlsx

__all__ = ["read_metrics", "report_command"]


def read_metrics(settings: KafkaSettings) -> list[Any]:
    """Every committed record of dfip.metrics, as (key, value) in topic order per partition."""
    from dfip.peek import _connected, _partitions, _read

    records: list[tuple[bytes | None, bytes | None]] = []
    with _connected(settings) as consumer:
        tps = _partitions(consumer, settings.topic("dfip.metrics"))
        begins = consumer.beginning_offsets(tps)
        _read(consumer, tps, begins, follow=False, emit=lambda r: records.append((r.key, r.value)))
    return records


def _prepare_out(out: Path) -> None:
    """The --out folder, created; a file there or an unwritable place is a usage error
    (was "dfip: …: File exists", and only once the metrics had been read)."""
    if out.exists() and not out.is_dir():
        raise DfipError(f"--out {out} is a file, not a folder", hint="give a folder", exit_code=2)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DfipError(
            f"--out {out}: cannot create the folder: {exc.strerror or exc}",
            hint="give a writable folder",
            exit_code=2,
        ) from None


def report_command(
    day: Annotated[str | None, typer.Option(help="A Beijing date, YYYY-MM-DD.")] = None,
    month: Annotated[str | None, typer.Option(help="A month, YYYY-MM.")] = None,
    quarter: Annotated[str | None, typer.Option(help="A quarter, YYYY-Qn.")] = None,
    out: Annotated[
        Path, typer.Option(help="Folder for dfip-report-<period>.csv and .xlsx.")
    ] = Path("."),
    lang: Annotated[str, typer.Option(help=LANG_HELP)] = "zh",
) -> None:
    """Daily, monthly or quarterly figures by Beijing date from the closed windows."""
    language = parse_lang(lang)
    try:
        period = parse_period(day=day, month=month, quarter=quarter)
    except ValueError as exc:
        raise DfipError(str(exc), exit_code=2) from None
    _prepare_out(out)  # before Kafka is read: a wrong --out is said first, and at once
    # compacted topic: the last record per window key is the (possibly amended) window
    settings = KafkaSettings()
    try:
        windows = latest_windows(read_metrics(settings))
        rows = build_rows(daily_figures(windows.values()), period)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # a record no worker wrote (a stray producer, a damaged topic): the figures cannot
        # be exact, so none are written (was a JSONDecodeError or KeyError traceback)
        raise DfipError(
            f"{settings.topic('dfip.metrics')} holds a record that is not a closed window "
            f"({type(exc).__name__}: {printable(str(exc))[:200]})",
            hint="`dfip topics tail dfip.metrics` shows the records; no report written",
        ) from None
    stem = out / f"dfip-report-{period.label}"
    write_csv(rows, stem.with_suffix(".csv"))
    write_xlsx(rows, stem.with_suffix(".xlsx"), language)
    console = Console(emoji=False, soft_wrap=True)
    render_table(rows, period, console, language)
    console.print(f"{stem.with_suffix('.csv')}  {stem.with_suffix('.xlsx')}")
