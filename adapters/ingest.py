"""Run a parser over files and hand every result to a sink (Kafka, or stdout for dry runs).

Kept apart from the CLI so tests and other callers can ingest without typer or rich.
"""

from __future__ import annotations

import base64
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from adapters.base import Parser, ParseResult, Rejected
from adapters.producer import EventProducer
from schemas import DeadLetter, DeadLetterStage, dead_letter_id, encode

__all__ = [
    "MAX_REJECTIONS_KEPT",
    "DryRunSink",
    "FileSummary",
    "IngestSummary",
    "KafkaSink",
    "Sink",
    "dead_letter",
    "ingest_files",
]

MAX_REJECTIONS_KEPT = 200  # detailed rejections kept for the summary; all are counted


class Sink(Protocol):
    def event(self, result: ParseResult) -> None: ...
    def rejected(self, rejected: Rejected, path: Path) -> None: ...


@dataclass
class FileSummary:
    path: str
    entries: int = 0
    events: int = 0
    rejected: int = 0
    not_booked: Counter[str] = field(default_factory=Counter)


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


def dead_letter(rejected: Rejected, institution: str, path: Path, now: datetime) -> DeadLetter:
    """The dead-letter record of a rejected entry; its id depends on the file name, not path."""
    stable_location = rejected.location.replace(str(path), path.name, 1)
    return DeadLetter(
        event_id=dead_letter_id(
            source_location=f"{institution}|{stable_location}|{rejected.field}"
        ),
        original_b64=base64.b64encode(rejected.original).decode("ascii"),
        source_location=rejected.location[:1024],
        stage=DeadLetterStage.adapter,
        error_class=rejected.error_class,
        reason=f"{rejected.field}: {rejected.reason}"[: DeadLetter.MAX_REASON],
        first_seen=now,
    )


class KafkaSink:
    """Events to their topics, rejections to the dead-letter topic."""

    def __init__(self, producer: EventProducer, institution: str) -> None:
        self.producer = producer
        self.institution = institution

    def event(self, result: ParseResult) -> None:
        assert not isinstance(result, Rejected)
        self.producer.send(result)

    def rejected(self, rejected: Rejected, path: Path) -> None:
        now = datetime.now(UTC)
        self.producer.send_dead_letter(dead_letter(rejected, self.institution, path, now))


class DryRunSink:
    """Events as JSON lines on stdout (exactly the bytes Kafka would get); nothing else."""

    def __init__(self, out: BinaryIO | None = None) -> None:
        self.out = out if out is not None else sys.stdout.buffer

    def event(self, result: ParseResult) -> None:
        assert not isinstance(result, Rejected)
        self.out.write(encode(result) + b"\n")

    def rejected(self, rejected: Rejected, path: Path) -> None:
        pass  # reported in the summary


def ingest_files(
    parser: Parser,
    paths: Iterable[Path],
    sink: Sink,
    progress: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Parse every file with `parser` and feed the sink; `progress(bytes)` as files are read."""
    summary = IngestSummary()
    done = 0
    for path in paths:
        before_entries = parser.stats.entries
        before_skips = Counter(parser.stats.not_booked)
        parser.stats.bytes_read = 0
        file = FileSummary(str(path))
        summary.files.append(file)
        for n, result in enumerate(parser.parse(path)):
            if isinstance(result, Rejected):
                file.rejected += 1
                summary.reasons[(result.error_class, result.field)] += 1
                if len(summary.rejections) < MAX_REJECTIONS_KEPT:
                    summary.rejections.append(result)
                sink.rejected(result, path)
            else:
                file.events += 1
                sink.event(result)
            if progress is not None and n % 512 == 0:
                progress(done + parser.bytes_read)
        done += parser.bytes_read
        if progress is not None:
            progress(done)
        file.entries = parser.stats.entries - before_entries
        file.not_booked = parser.stats.not_booked - before_skips
    return summary
