"""`dfip ingest <format> <path>...`: parse bank files and put their events on Kafka.

Exit codes: 0 all entries ingested, 3 some entries rejected (they are on the dead-letter
topic), 2 usage or configuration error, 1 Kafka unreachable or deliveries failed, 130
interrupted (Ctrl-C). Expected errors are one line on stderr, never a traceback; after a
failure the summary says what was committed, and running the same command again resumes.
"""

from __future__ import annotations

import atexit
import codecs
import hashlib
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer
from kafka.errors import KafkaError
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from adapters.accounts import AccountDirectory, AccountMapError, MissingKeyError, account_hash_key
from adapters.archives import ArchiveError, is_archive, unpack
from adapters.base import ParseContext, Parser, available_formats, get_parser
from adapters.detect import format_mismatch
from adapters.ingest import (
    CHECKPOINT_EVERY,
    MAX_REJECTIONS_KEPT,
    DryRunSink,
    FileSummary,
    IngestAborted,
    IngestSummary,
    KafkaSink,
    ingest_files,
)
from adapters.ledger import LEDGER_TOPIC, Document, LedgerError, read_ledger
from adapters.parsers._common import local_zone
from adapters.parsers.csv_mapping import MappingError
from adapters.producer import (
    DEAD_LETTER_TOPIC,
    DeliveryError,
    EventProducer,
    KafkaUnavailable,
    TransactionError,
)
from core.errors import DfipError
from core.kafka_admin import ClientLog, client_log
from core.kafka_config import KafkaSettings
from core.text import printable
from schemas import InstitutionType

__all__ = ["EXIT_KAFKA", "EXIT_OK", "EXIT_REJECTED", "EXIT_USAGE", "ingest_command"]

EXIT_OK, EXIT_KAFKA, EXIT_USAGE, EXIT_REJECTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
PROGRESS_MIN_BYTES = 8 << 20  # show a progress bar for inputs at least this large
REJECTIONS_SHOWN = 20
_INSTITUTION = re.compile(r"^[A-Za-z0-9][\w.:/\-]{0,63}$")

_err = Console(emoji=False, stderr=True, highlight=False)


#: Unpacked archive folder → the archive as given: messages name a member as
#: `given/archive.zip/member.xml`, not by the temporary folder it was unpacked into.
_UNPACKED: dict[str, str] = {}


def _shown(text: str) -> str:
    """What is printed of a path, message or rejection: archive members named inside the
    archive given, control characters from a hostile file escaped (terminal injection)."""
    for folder, archive in _UNPACKED.items():
        text = text.replace(folder, archive)
    return printable(text)


def _fail(code: int, message: str) -> NoReturn:
    _err.print(f"dfip ingest: {_shown(message)}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def ingest_command(
    format: Annotated[
        str,
        typer.Argument(
            help="Input format: camt, camt.052/053/054, mt940, psd2, obie, csv, loans, "
            "scores, fx (fx-cfets, fx-ecb), or auto (each file by its content)."
        ),
    ],
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files to ingest; a folder or a zip archive stands for the files in it.",
            show_default=False,
        ),
    ] = None,
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
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Send documents again that the ledger (dfip.ingested) has as in."
        ),
    ] = False,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            "--checkpoint-every",
            min=1,
            help="Entries per Kafka transaction; a failed run resumes after the last one.",
        ),
    ] = CHECKPOINT_EVERY,
) -> None:
    """Parse bank and fintech files into canonical events and send them to Kafka.

    Each document is committed in transactions with a checkpoint in the ledger topic
    (dfip.ingested): running the same command again skips what is in and resumes the rest.

    Exit codes: 0 all entries ingested; 3 some entries rejected (each on dfip.deadletter with
    its original bytes, the summary names file:line and field); 2 usage or configuration
    error; 1 Kafka unreachable or deliveries failed; 130 interrupted.
    """
    if not paths:
        _no_paths(format)
    paths = _expand_folders(paths)
    parser = _parser(
        format, paths, institution, institution_type, accounts, mapping, encoding, timezone
    )
    with ExitStack() as stack:
        if dry_run:
            sink: DryRunSink | KafkaSink = DryRunSink()
        else:
            # kafka-python logs every refused connection and retry at WARNING/ERROR; what
            # matters is said here in one line, so its records go to a collector instead
            kafka_log = stack.enter_context(client_log())
            documents = {p: Document.of(p, institution) for p in paths}
            producer = stack.enter_context(_producer(institution, documents.values(), kafka_log))
            topics = (*parser.topics, DEAD_LETTER_TOPIC, LEDGER_TOPIC)
            try:
                missing = producer.missing_topics(topics)
            except KafkaError as exc:
                _fail(EXIT_KAFKA, f"cannot list topics on {producer.bootstrap_servers}: {exc}")
            if missing:
                _fail(
                    EXIT_KAFKA,
                    f"topic(s) {', '.join(missing)} do not exist on "
                    f"{producer.bootstrap_servers} (create them with `dfip topics create`)",
                )
            try:
                ledger = read_ledger(producer.settings)
            except (LedgerError, KafkaError) as exc:
                _fail(EXIT_KAFKA, f"cannot read the ledger {LEDGER_TOPIC}: {exc}")
            sink = KafkaSink(
                producer,
                institution,
                ledger=ledger,
                format=parser.name,
                force=force,
                documents=documents,
            )
        stack.enter_context(_terminate_as_interrupt())
        try:
            summary = _run(parser, paths, sink, checkpoint_every)
        except BrokenPipeError:  # `dfip ingest … --dry-run | head`: the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_OK) from None
        except IngestAborted as exc:
            if exc.interrupted and isinstance(sink, KafkaSink):
                sink.producer.close(timeout=0.5)  # the user wants out: do not wait 5 s
            stack.close()  # bounded: the producer is stopped before anything is printed
            _aborted(exc, len(paths))
        if dry_run:
            typer.get_binary_stream("stdout").flush()
    _print_summary(summary, ledger=not dry_run)
    if isinstance(sink, KafkaSink):
        delivered = sink.delivered
        per_topic = ", ".join(f"{t} {n}" for t, n in sorted(delivered.by_topic.items()))
        _err.print(
            f"delivered {delivered.sent} record(s): {per_topic or 'none'}",
            markup=False,
            soft_wrap=True,
        )
    raise typer.Exit(EXIT_REJECTED if summary.rejected else EXIT_OK)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a Kubernetes Job, `kill`) stops the ingest as Ctrl-C does: the open
    transaction is aborted and the summary says what is committed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _aborted(exc: IngestAborted, documents: int) -> NoReturn:
    """The summary, then one line: why, what is committed, what to do."""
    _print_summary(exc.summary)
    complete = [f for f in exc.summary.files if f.complete]
    partial = [f for f in exc.summary.files if not f.complete]
    state = f"{len(complete)} document(s) committed completely"
    if partial:
        f = partial[0]
        state += f"; {Path(f.path).name} committed up to entry {f.committed}, the rest not"
    if (not_started := documents - len(exc.summary.files)) > 0:
        state += f"; {not_started} document(s) not started"
    if exc.interrupted:
        _fail(EXIT_INTERRUPTED, f"interrupted; {state} (run the same command to resume)")
    cause = exc.cause
    if isinstance(cause, OSError):
        where = cause.filename if cause.filename is not None else "an input file"
        _fail(
            EXIT_USAGE,
            f"{where}: cannot be read any more ({cause.strerror or cause}); {state} "
            "(put the file back, or leave it out, and run the same command again)",
        )
    what = (
        f"Kafka delivery failed: {cause}"
        if isinstance(cause, DeliveryError)
        else f"Kafka failed: {cause}"
        if isinstance(cause, TransactionError)
        else f"Kafka failed: {type(cause).__name__}: {cause}"
    )
    _fail(EXIT_KAFKA, f"{what}; {state} (run the same command again once Kafka is back)")


def _producer(
    institution: str, documents: Iterable[Document], kafka_log: ClientLog
) -> EventProducer:
    try:
        settings = KafkaSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "DFIP_KAFKA_" + ".".join(str(p) for p in first["loc"]).upper()
        value = first.get("input")
        shown = f"{name}={value}" if isinstance(value, str | int | float) else name
        if "PASSWORD" in name or (isinstance(value, str) and "@" in value):
            shown = f"{name}=…"  # a secret, or user:password@host: never echoed
        _fail(EXIT_USAGE, f"{shown}: {str(first['msg']).removeprefix('Value error, ')}")
    except DfipError as exc:
        _fail(exc.exit_code, str(exc))
    try:
        return EventProducer(
            settings, transactional_id=transactional_id(settings, institution, documents)
        )
    except KafkaUnavailable as exc:
        if kafka_log.auth_failure is not None:
            _fail(
                EXIT_KAFKA,
                f"Kafka authentication failed for user {settings.sasl_username} at "
                f"{settings.bootstrap_servers} (check DFIP_KAFKA_SASL_USERNAME and the password)",
            )
        if exc.reachable:
            _fail(EXIT_KAFKA, str(exc))
        _fail(
            EXIT_KAFKA,
            f"{exc} (start it with `dfip kafka up` or set DFIP_KAFKA_BOOTSTRAP_SERVERS)",
        )
    except TransactionError as exc:
        _fail(EXIT_KAFKA, str(exc))


def transactional_id(
    settings: KafkaSettings, institution: str, documents: Iterable[Document]
) -> str:
    """The same for a re-run of the same documents, so that it fences (and aborts the open
    transaction of) a run that was killed; different for other documents, so ingests of
    other files can run at the same time."""
    digest = hashlib.sha256("\n".join(sorted(d.sha256 for d in documents)).encode()).hexdigest()
    return f"{settings.topic_prefix}dfip-ingest-{institution}-{digest[:16]}"


def _expand_folders(paths: list[Path]) -> list[Path]:
    """A folder given on the command line stands for its files, by name, without hidden
    files and without descending: a bank's drop folder is ingested as one command. A zip
    archive (as banks deliver camt) stands for the files in it, unpacked for the run."""
    expanded: list[Path] = []
    for path in paths:
        if not path.is_dir():
            expanded.extend(_unpacked(path) if is_archive(path) else [path])
            continue
        try:
            files = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))
        except OSError as exc:
            _fail(EXIT_USAGE, f"folder {path} cannot be read: {exc.strerror}")
        if not files:
            _fail(EXIT_USAGE, f"folder {path} has no files to ingest (sub-folders are not read)")
        for file in files:  # a bank's drop folder may hold its zipped deliveries
            expanded.extend(_unpacked(file) if is_archive(file) else [file])
    return expanded


def _unpacked(archive: Path) -> list[Path]:
    """The files of a zip archive, unpacked into a temporary folder removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="dfip-unzip-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _UNPACKED[str(folder / archive.name)] = str(archive)
    try:
        files = unpack(archive, folder / archive.name)
    except ArchiveError as exc:
        _fail(EXIT_USAGE, str(exc))
    if not files:
        _fail(EXIT_USAGE, f"{archive}: the zip archive holds no files to ingest")
    return files


def _no_paths(format: str) -> NoReturn:
    """One argument only: most often a file given without its format (`dfip ingest x.sta`)."""
    known = available_formats()
    if format in known:
        _fail(EXIT_USAGE, f"no file given: dfip ingest {format} PATH...")
    if Path(format).exists() or "/" in format or Path(format).suffix:
        _fail(
            EXIT_USAGE,
            f"{format!r} looks like a file, not a format: name the format first, "
            f"e.g. `dfip ingest auto {format}` (formats: {', '.join(known)})",
        )
    _fail(EXIT_USAGE, f"unknown format {format!r} and no file given; known: {', '.join(known)}")


def _check_encoding(encoding: str) -> None:
    """A text encoding the readers can decode with errors="replace": base64 or rot13 are
    not text encodings, idna and punycode refuse the handler (each was a traceback)."""
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        _fail(EXIT_USAGE, f"--encoding {encoding!r}: unknown encoding")
    try:
        if not codec._is_text_encoding:  # type: ignore[attr-defined]
            raise LookupError
        b"ab\xff\r\n".decode(encoding, errors="replace")
    except (LookupError, UnicodeError):
        _fail(
            EXIT_USAGE,
            f"--encoding {encoding!r}: not a text encoding for files (e.g. utf-8, gb18030, cp1252)",
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
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        _fail(EXIT_USAGE, f"no such file: {', '.join(missing)}")
    special = [str(p) for p in paths if not p.is_file()]
    if special:  # a device or a pipe (/dev/zero would be read forever)
        _fail(EXIT_USAGE, f"not a regular file: {', '.join(special)}")
    for path in paths:  # a camt file or random text given as mt940: say what it is
        if problem := format_mismatch(format, path):
            _fail(EXIT_USAGE, problem)
    if encoding is not None:
        _check_encoding(encoding)
    try:
        local_zone(timezone)
        # rate tables name no account: they need no pseudonymisation key
        key = account_hash_key() if parser_class.reads_accounts else os.urandom(32)
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
    except AccountMapError as exc:
        _fail(EXIT_USAGE, f"--accounts {exc}")
    except MappingError as exc:
        _fail(EXIT_USAGE, str(exc) if "--mapping" in str(exc) else f"--mapping {exc}")
    except (MissingKeyError, ValueError) as exc:
        _fail(EXIT_USAGE, str(exc))


def _run(
    parser: Parser, paths: list[Path], sink: DryRunSink | KafkaSink, checkpoint_every: int
) -> IngestSummary:
    total = sum(p.stat().st_size for p in paths)
    if total < PROGRESS_MIN_BYTES:
        return ingest_files(parser, paths, sink, checkpoint_every=checkpoint_every)
    columns = (
        TextColumn("[bold]ingest[/bold]"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_err, transient=True) as bar:
        task = bar.add_task("ingest", total=total)
        return ingest_files(
            parser,
            paths,
            sink,
            lambda done: bar.update(task, completed=done),
            checkpoint_every=checkpoint_every,
        )


def _ledger_state(f: FileSummary) -> str:
    done = "complete" if f.complete else f"committed up to entry {f.committed}"
    return done if f.status == "new" else f"{f.status}; {done}"


def _print_summary(summary: IngestSummary, *, ledger: bool = True) -> None:
    table = Table(title="ingest summary", title_justify="left")
    table.add_column("file", overflow="fold")
    for column in ("entries read", "events produced", "not booked", "rejected"):
        table.add_column(column, justify="right")
    for f in summary.files:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(f.not_booked.items())) or "0"
        table.add_row(_shown(f.path), str(f.entries), str(f.events), skipped, str(f.rejected))
    if len(summary.files) > 1:
        table.add_row("total", str(summary.entries), str(summary.events), "", str(summary.rejected))
    _err.print(table)
    if ledger:  # what dfip.ingested now says of each document
        for f in summary.files:
            _err.print(
                f"ledger: {Path(f.path).name} {_ledger_state(f)}", markup=False, soft_wrap=True
            )
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
        _err.print(f"  {_shown(str(rejected))}", markup=False, soft_wrap=True)
    hidden = summary.rejected - min(REJECTIONS_SHOWN, len(summary.rejections))
    if hidden > 0:
        kept = (
            "" if summary.rejected <= MAX_REJECTIONS_KEPT else " (all are on the dead-letter topic)"
        )
        _err.print(f"  … and {hidden} more{kept}", markup=False)
