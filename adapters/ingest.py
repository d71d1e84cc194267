"""Run a parser over files and hand every result to a sink (Kafka, or stdout for dry runs).

Kept apart from the CLI so tests and other callers can ingest without typer or rich.

With a transactional producer, a document's records (events and dead letters) are sent in
Kafka transactions of at most `checkpoint_every` parse results; each transaction also writes
the document's ledger entry (`adapters.ledger`), so what the ledger says is exactly what is
committed. A re-run skips a complete document and resumes a partial one after the last
checkpoint; `force` sends everything again.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final, Protocol

from kafka.errors import KafkaError

from adapters.base import Parser, ParseResult, Rejected
from adapters.ledger import LEDGER_TOPIC, Document, LedgerEntry
from adapters.producer import (
    DeliveryError,
    DeliveryReport,
    EventProducer,
    KafkaUnavailable,
    TransactionError,
)
from schemas import DeadLetter, DeadLetterStage, encode
from schemas.catalog import DEADLETTER_MAX_BYTES

__all__ = [
    "CHECKPOINT_EVERY",
    "MAX_ORIGINAL_KEPT",
    "MAX_REJECTIONS_KEPT",
    "DryRunSink",
    "FileSummary",
    "IngestAborted",
    "IngestSummary",
    "KafkaSink",
    "Resume",
    "Sink",
    "dead_letter",
    "ingest_files",
]

MAX_REJECTIONS_KEPT = 200  # detailed rejections kept for the summary; all are counted
DOCUMENT_RETRIES: Final = 1  # a failed document is retried once with a fresh producer
CHECKPOINT_EVERY: Final = 10_000  # parse results per transaction (and ledger checkpoint)
# The original bytes a dead letter keeps: base64 makes them 4/3 larger, and the rest of the
# record (reason, location, ids) needs far less than the 64 KiB left for it.
MAX_ORIGINAL_KEPT: Final = (DEADLETTER_MAX_BYTES - (64 << 10)) // 4 * 3


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a document starts: `skip` results are already committed; `done`: all are."""

    skip: int = 0
    done: bool = False
    status: str = "new"


class Sink(Protocol):
    def event(self, result: ParseResult) -> None: ...
    def rejected(self, rejected: Rejected, path: Path) -> None: ...
    def open_document(self, path: Path) -> Resume: ...
    def checkpoint(self, results: int, events: int, rejected: int, *, complete: bool) -> None: ...
    def abort(self, timeout: float) -> None: ...
    def restart(self) -> bool: ...


@dataclass
class FileSummary:
    path: str
    entries: int = 0
    events: int = 0
    rejected: int = 0
    not_booked: Counter[str] = field(default_factory=Counter)
    status: str = "new"  # new, already ingested (skipped), resumed after N, forced
    committed: int = 0  # parse results of this document committed so far (ledger's count)
    complete: bool = False


@dataclass
class IngestSummary:
    files: list[FileSummary] = field(default_factory=list)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)  # (class, field) → n
    rejections: list[Rejected] = field(default_factory=list)  # the first MAX_REJECTIONS_KEPT

    @property
    def events(self) -> int:
        return sum(f.events for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)

    @property
    def entries(self) -> int:
        return sum(f.entries for f in self.files)


class IngestAborted(RuntimeError):
    """Kafka failed, a file could no longer be read (OSError) or Ctrl-C, mid-ingest;
    `summary` says what was committed before."""

    def __init__(self, summary: IngestSummary, cause: BaseException) -> None:
        self.summary = summary
        self.cause = cause
        self.interrupted = isinstance(cause, KeyboardInterrupt)
        super().__init__("interrupted" if self.interrupted else str(cause))


def dead_letter(rejected: Rejected, institution: str, path: Path, now: datetime) -> DeadLetter:
    """The dead-letter record of a rejected entry; its id depends on the file name, not path.

    An original over MAX_ORIGINAL_KEPT bytes is cut there, and the reason says so with the
    full length and the SHA-256 of the whole, so the dead letter always fits its topic."""
    stable_location = rejected.location.replace(str(path), path.name, 1)
    original = rejected.original
    reason = f"{rejected.field}: {rejected.reason}"
    if len(original) > MAX_ORIGINAL_KEPT:
        note = (
            f" [original truncated: first {MAX_ORIGINAL_KEPT} of {len(original)} bytes kept, "
            f"sha256 of the whole {hashlib.sha256(original).hexdigest()}]"
        )
        reason = reason[: DeadLetter.MAX_REASON - len(note)] + note
        original = original[:MAX_ORIGINAL_KEPT]
    return DeadLetter.build(
        original,
        error_class=rejected.error_class,
        reason=reason,
        stage=DeadLetterStage.adapter,
        first_seen=now,
        source_location=rejected.location[:1024],
        # the file name, not its folder: the same file re-sent from elsewhere has the same id
        id_location=f"{institution}|{stable_location}|{rejected.field}",
    )


class KafkaSink:
    """Events to their topics, rejections to the dead-letter topic.

    With a transactional producer (and `ledger`, the entries read by
    `adapters.ledger.read_ledger`), documents are committed in checkpointed transactions and
    recorded in the ledger; otherwise records are just sent (the caller flushes).
    """

    def __init__(
        self,
        producer: EventProducer,
        institution: str,
        *,
        ledger: dict[str, LedgerEntry] | None = None,
        format: str = "",
        force: bool = False,
        documents: Mapping[Path, Document] | None = None,
    ) -> None:
        self.producer = producer
        self.institution = institution
        self.ledger = ledger
        self.format = format
        self.force = force
        self._documents = dict(documents or {})
        self._doc: Document | None = None
        self._base = (0, 0)  # events, rejected committed by earlier runs (resume)
        self._in_transaction = False
        self.delivered = DeliveryReport(0, 0, {})

    @property
    def transactional(self) -> bool:
        return self.ledger is not None and self.producer.transactional

    def event(self, result: ParseResult) -> None:
        assert not isinstance(result, Rejected)
        self.producer.send(result)

    def rejected(self, rejected: Rejected, path: Path) -> None:
        now = datetime.now(UTC)
        self.producer.send_dead_letter(dead_letter(rejected, self.institution, path, now))

    def open_document(self, path: Path) -> Resume:
        if not self.transactional:
            return Resume()
        assert self.ledger is not None
        doc = self._documents.get(path) or Document.of(path, self.institution)
        self._doc = doc
        entry = self.ledger.get(doc.key)
        self._base = (0, 0)
        if entry is not None and self.force:
            resume = Resume(status="forced")
        elif entry is not None and entry.complete:
            return Resume(
                skip=entry.results,
                done=True,
                status=f"already ingested {entry.committed_at} (skipped)",
            )
        elif entry is not None:
            self._base = (entry.events, entry.rejected)
            resume = Resume(skip=entry.results, status=f"resumed after {entry.results}")
        else:
            resume = Resume()
        self.producer.begin()
        self._in_transaction = True
        return resume

    def checkpoint(self, results: int, events: int, rejected: int, *, complete: bool) -> None:
        """Commit what was sent for the current document, with its ledger entry."""
        if not self.transactional:
            return
        assert self._doc is not None
        assert self.ledger is not None
        entry = LedgerEntry.for_document(
            self._doc,
            self.format,
            results=results,
            events=self._base[0] + events,
            rejected=self._base[1] + rejected,
            complete=complete,
        )
        self.producer.send_raw(LEDGER_TOPIC, entry.encode(), key=entry.key.encode(), partition=0)
        report = self.producer.commit()
        self._in_transaction = False
        self.ledger[entry.key] = entry
        self.delivered = _add(self.delivered, report)
        if not complete:
            self.producer.begin()
            self._in_transaction = True

    def abort(self, timeout: float) -> None:
        if self._in_transaction:
            self._in_transaction = False
            self.producer.abort(timeout)

    def restart(self) -> bool:
        """After a failed transaction: abort it and start over with a fresh producer (the
        same transactional id fences the old one). False without transactions."""
        if not self.transactional:
            return False
        self.abort(5.0)
        self.producer.renew()
        return True


def _add(a: DeliveryReport, b: DeliveryReport) -> DeliveryReport:
    topics = Counter(a.by_topic)
    topics.update(b.by_topic)
    return DeliveryReport(a.sent + b.sent, a.failed + b.failed, dict(topics))


class DryRunSink:
    """Events as JSON lines on stdout (exactly the bytes Kafka would get); nothing else."""

    def __init__(self, out: BinaryIO | None = None) -> None:
        self.out = out if out is not None else sys.stdout.buffer

    def event(self, result: ParseResult) -> None:
        assert not isinstance(result, Rejected)
        self.out.write(encode(result) + b"\n")

    def rejected(self, rejected: Rejected, path: Path) -> None:
        pass  # reported in the summary

    def open_document(self, path: Path) -> Resume:
        return Resume()

    def checkpoint(self, results: int, events: int, rejected: int, *, complete: bool) -> None:
        pass

    def abort(self, timeout: float) -> None:
        pass

    def restart(self) -> bool:
        return False


def ingest_files(
    parser: Parser,
    paths: Iterable[Path],
    sink: Sink,
    progress: Callable[[int], None] | None = None,
    *,
    checkpoint_every: int = CHECKPOINT_EVERY,
    abort_timeout: float = 5.0,
) -> IngestSummary:
    """Parse every file with `parser` and feed the sink; `progress(bytes)` as files are read.

    Raises `IngestAborted` (with the summary so far) when Kafka fails or on Ctrl-C; the open
    transaction is aborted first (within `abort_timeout`)."""
    summary = IngestSummary()
    try:
        _ingest(parser, paths, sink, progress, summary, checkpoint_every)
    except (DeliveryError, TransactionError, KafkaError, KeyboardInterrupt) as exc:
        sink.abort(1.0 if isinstance(exc, KeyboardInterrupt) else abort_timeout)
        raise IngestAborted(summary, exc) from exc
    except BrokenPipeError:  # stdout of a dry run closed by its reader: the CLI's to handle
        raise
    except OSError as exc:
        # a file removed, made unreadable or a disk failing mid-run: the open transaction is
        # aborted and the summary says what is in, as after a Kafka failure
        sink.abort(abort_timeout)
        raise IngestAborted(summary, exc) from exc
    return summary


def _ingest(
    parser: Parser,
    paths: Iterable[Path],
    sink: Sink,
    progress: Callable[[int], None] | None,
    summary: IngestSummary,
    checkpoint_every: int,
) -> None:
    done = 0
    for path in paths:
        file = FileSummary(str(path))
        summary.files.append(file)
        resume = sink.open_document(path)
        file.status = resume.status
        if resume.done:
            file.committed, file.complete = resume.skip, True
            done += path.stat().st_size
            if progress is not None:
                progress(done)
            continue
        retries = DOCUMENT_RETRIES
        while True:
            before_entries = parser.stats.entries
            before_skips = Counter(parser.stats.not_booked)
            parser.stats.bytes_read = 0
            file.committed = resume.skip
            mark = _Mark.of(summary, file)
            try:
                _document(
                    parser,
                    path,
                    sink,
                    progress,
                    summary,
                    file,
                    resume,
                    checkpoint_every,
                    done,
                    mark,
                )
                break
            except (DeliveryError, TransactionError) as exc:
                if retries == 0:
                    raise
                retries -= 1
                # kafka-python cannot recover a producer whose batch expired mid-retry: a
                # fresh one, then on from the last checkpoint (the ledger entry just written)
                try:
                    restarted = sink.restart()
                except (KafkaUnavailable, TransactionError, KafkaError):
                    raise exc from None
                if not restarted:
                    raise
                mark.restore(summary, file)
                resume = sink.open_document(path)
                file.status += " (retried with a fresh producer)"
            finally:
                # each attempt parses the whole document: its counts are the document's
                file.entries = parser.stats.entries - before_entries
                file.not_booked = parser.stats.not_booked - before_skips
        done += parser.bytes_read
        if progress is not None:
            progress(done)


@dataclass
class _Mark:
    """The summary's counts at a document's last checkpoint (restored before a retry)."""

    events: int
    rejected: int
    reasons: Counter[tuple[str, str]]
    rejections: int

    @classmethod
    def of(cls, summary: IngestSummary, file: FileSummary) -> _Mark:
        mark = cls(0, 0, Counter(), 0)
        mark.take(summary, file)
        return mark

    def take(self, summary: IngestSummary, file: FileSummary) -> None:
        self.events, self.rejected = file.events, file.rejected
        self.reasons = Counter(summary.reasons)
        self.rejections = len(summary.rejections)

    def restore(self, summary: IngestSummary, file: FileSummary) -> None:
        file.events, file.rejected = self.events, self.rejected
        summary.reasons = Counter(self.reasons)
        del summary.rejections[self.rejections :]


def _document(
    parser: Parser,
    path: Path,
    sink: Sink,
    progress: Callable[[int], None] | None,
    summary: IngestSummary,
    file: FileSummary,
    resume: Resume,
    checkpoint_every: int,
    done: int,
    mark: _Mark,
) -> None:
    n = resume.skip
    sent_events = sent_rejected = 0  # since the document was opened in this run
    for n, result in enumerate(parser.results(path), start=1):
        if n <= resume.skip:
            continue  # committed by an earlier run: parsed again only to find the place
        if n > resume.skip + 1 and (n - 1 - resume.skip) % checkpoint_every == 0:
            # a full chunk is out and more follows (the last chunk commits as complete)
            sink.checkpoint(n - 1, sent_events, sent_rejected, complete=False)
            file.committed = n - 1
            mark.take(summary, file)
        if isinstance(result, Rejected):
            file.rejected += 1
            sent_rejected += 1
            summary.reasons[(result.error_class, result.field)] += 1
            if len(summary.rejections) < MAX_REJECTIONS_KEPT:
                summary.rejections.append(result)
            sink.rejected(result, path)
        else:
            file.events += 1
            sent_events += 1
            sink.event(result)
        if progress is not None and n % 512 == 0:
            progress(done + parser.bytes_read)
    n = max(n, resume.skip)
    sink.checkpoint(n, sent_events, sent_rejected, complete=True)
    file.committed, file.complete = n, True
