"""`dfip ingest <format> <path>...`: parse bank files and put their events on Kafka.

Exit codes: 0 all entries ingested, 3 some entries rejected (they are on the dead-letter
topic), 2 usage or configuration error, 1 Kafka unreachable or deliveries failed.
Expected errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from kafka.errors import KafkaError
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from adapters.accounts import AccountDirectory, AccountMapError, MissingKeyError, account_hash_key
from adapters.base import ParseContext, Parser, available_formats, get_parser
from adapters.detect import format_mismatch
from adapters.ingest import MAX_REJECTIONS_KEPT, DryRunSink, IngestSummary, KafkaSink, ingest_files
from adapters.parsers._common import local_zone
from adapters.parsers.csv_mapping import MappingError
from adapters.producer import (
    DEAD_LETTER_TOPIC,
    DeliveryError,
    EventProducer,
    KafkaUnavailable,
)
from dfip.kafka_config import KafkaSettings
from schemas import InstitutionType

__all__ = ["EXIT_KAFKA", "EXIT_OK", "EXIT_REJECTED", "EXIT_USAGE", "ingest_command"]

EXIT_OK, EXIT_KAFKA, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3
PROGRESS_MIN_BYTES = 8 << 20  # show a progress bar for inputs at least this large
REJECTIONS_SHOWN = 20
_INSTITUTION = re.compile(r"^[A-Za-z0-9][\w.:/\-]{0,63}$")

_err = Console(stderr=True, highlight=False)


def _fail(code: int, message: str) -> NoReturn:
    _err.print(f"dfip ingest: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def ingest_command(
    format: Annotated[
        str,
        typer.Argument(
            help="Input format: camt, camt.052/053/054, mt940, psd2, obie, csv, loans, "
            "scores, fx (fx-cfets, fx-ecb), or auto (each file by its content)."
        ),
    ],
    paths: Annotated[list[Path], typer.Argument(help="Files to ingest.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print events as JSON lines on stdout; no Kafka.")
    ] = False,
    institution: Annotated[
        str,
        typer.Option(
            "--institution",
            "-i",
            envvar="DFIP_INSTITUTION",
            help="Id of the sending bank or fintech.",
        ),
    ] = "",
    institution_type: Annotated[
        InstitutionType, typer.Option("--institution-type", help="bank, fintech or joint.")
    ] = InstitutionType.bank,
    accounts: Annotated[
        Path | None,
        typer.Option("--accounts", help="Account → enterprise (USCC) map, .toml or .csv."),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option("--mapping", help="CSV column mapping: a shipped name or a .toml file."),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option("--encoding", help="Override the text encoding (MT940, CSV, JSONL)."),
    ] = None,
    timezone: Annotated[
        str, typer.Option("--timezone", help="Zone of local times without a UTC offset.")
    ] = "Asia/Shanghai",
) -> None:
    """Parse bank and fintech files into canonical events and send them to Kafka."""
    parser = _parser(
        format, paths, institution, institution_type, accounts, mapping, encoding, timezone
    )
    with ExitStack() as stack:
        if dry_run:
            sink: DryRunSink | KafkaSink = DryRunSink()
            producer = None
        else:
            producer = stack.enter_context(_producer())
            try:
                missing = producer.missing_topics((*parser.topics, DEAD_LETTER_TOPIC))
            except KafkaError as exc:
                _fail(EXIT_KAFKA, f"cannot list topics on {producer.bootstrap_servers}: {exc}")
            if missing:
                _fail(
                    EXIT_KAFKA,
                    f"topic(s) {', '.join(missing)} do not exist on "
                    f"{producer.bootstrap_servers} (create them with `dfip topics create`)",
                )
            sink = KafkaSink(producer, institution)
        try:
            summary = _run(parser, paths, sink)
        except BrokenPipeError:  # `dfip ingest … --dry-run | head`: the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_OK) from None
        delivered = None
        if producer is not None:
            try:
                delivered = producer.flush()
            except DeliveryError as exc:
                _print_summary(summary)
                _fail(EXIT_KAFKA, f"Kafka delivery failed: {exc}")
        if dry_run:
            typer.get_binary_stream("stdout").flush()
    _print_summary(summary)
    if delivered is not None:
        topics = ", ".join(f"{t} {n}" for t, n in sorted(delivered.by_topic.items()))
        _err.print(
            f"delivered {delivered.sent} record(s): {topics or 'none'}",
            markup=False,
            soft_wrap=True,
        )
    raise typer.Exit(EXIT_REJECTED if summary.rejected else EXIT_OK)


def _producer() -> EventProducer:
    try:
        settings = KafkaSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        _fail(EXIT_USAGE, f"Kafka settings (DFIP_KAFKA_*): {where}: {first['msg']}")
    try:
        return EventProducer(settings)
    except KafkaUnavailable as exc:
        _fail(
            EXIT_KAFKA,
            f"{exc} (start it with `dfip kafka up` or set DFIP_KAFKA_BOOTSTRAP_SERVERS)",
        )


def _parser(
    format: str,
    paths: list[Path],
    institution: str,
    institution_type: InstitutionType,
    accounts: Path | None,
    mapping: Path | None,
    encoding: str | None,
    timezone: str,
) -> Parser:
    """Validate the arguments and build the parser; usage errors exit with code 2."""
    try:
        parser_class = get_parser(format)
    except KeyError:
        _fail(EXIT_USAGE, f"unknown format {format!r}; known: {', '.join(available_formats())}")
    if not institution:
        _fail(EXIT_USAGE, "--institution is required (or set DFIP_INSTITUTION)")
    if not _INSTITUTION.match(institution):
        _fail(
            EXIT_USAGE, f"--institution {institution!r}: letters, digits and ._:/- only, at most 64"
        )
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        _fail(EXIT_USAGE, f"no such file: {', '.join(missing)}")
    for path in paths:  # a camt file or random text given as mt940: say what it is
        if problem := format_mismatch(format, path):
            _fail(EXIT_USAGE, problem)
    if encoding is not None:
        try:
            "".encode(encoding)
        except LookupError:
            _fail(EXIT_USAGE, f"--encoding {encoding!r}: unknown encoding")
    try:
        local_zone(timezone)
        key = account_hash_key()
        directory = AccountDirectory.load(accounts, key) if accounts else AccountDirectory(key)
        context = ParseContext(
            institution=institution,
            institution_type=institution_type,
            accounts=directory,
            mapping=mapping,
            encoding=encoding,
            timezone=timezone,
        )
        return parser_class(context)
    except (MissingKeyError, AccountMapError, MappingError, ValueError) as exc:
        _fail(EXIT_USAGE, str(exc))


def _run(parser: Parser, paths: list[Path], sink: DryRunSink | KafkaSink) -> IngestSummary:
    total = sum(p.stat().st_size for p in paths)
    if total < PROGRESS_MIN_BYTES:
        return ingest_files(parser, paths, sink)
    columns = (
        TextColumn("[bold]ingest[/bold]"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_err, transient=True) as bar:
        task = bar.add_task("ingest", total=total)
        return ingest_files(parser, paths, sink, lambda done: bar.update(task, completed=done))


def _print_summary(summary: IngestSummary) -> None:
    table = Table(title="ingest summary", title_justify="left")
    table.add_column("file", overflow="fold")
    for column in ("entries read", "events produced", "not booked", "rejected"):
        table.add_column(column, justify="right")
    for f in summary.files:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(f.not_booked.items())) or "0"
        table.add_row(f.path, str(f.entries), str(f.events), skipped, str(f.rejected))
    if len(summary.files) > 1:
        table.add_row("total", str(summary.entries), str(summary.events), "", str(summary.rejected))
    _err.print(table)
    if not summary.rejected:
        return
    reasons = Table(title="rejected, by reason", title_justify="left")
    reasons.add_column("error class")
    reasons.add_column("field")
    reasons.add_column("count", justify="right")
    for (error_class, field), n in summary.reasons.most_common():
        reasons.add_row(error_class, field, str(n))
    _err.print(reasons)
    for rejected in summary.rejections[:REJECTIONS_SHOWN]:
        _err.print(f"  {rejected}", markup=False, soft_wrap=True)
    hidden = summary.rejected - min(REJECTIONS_SHOWN, len(summary.rejections))
    if hidden > 0:
        kept = (
            "" if summary.rejected <= MAX_REJECTIONS_KEPT else " (all are on the dead-letter topic)"
        )
        _err.print(f"  … and {hidden} more{kept}", markup=False)
