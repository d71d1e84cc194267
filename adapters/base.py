"""The parser contract every input format implements, and the registry of formats by name.

A parser turns one input file into a stream of `ParseResult`s: canonical events for valid
booked entries, `Rejected` records for entries that cannot become events. A bad entry never
stops the file: the parser reports it and carries on with the next one.
"""

from __future__ import annotations

import io
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, TypeAlias, TypeVar

from pydantic import ValidationError

from adapters.accounts import AccountDirectory
from schemas import (
    DigitalizationScore,
    FxRate,
    InstitutionType,
    LoanEvent,
    SchemaError,
    TransactionEvent,
)
from schemas.catalog import TRANSACTIONS
from schemas.errors import ErrorClass, mask_account_numbers

__all__ = [
    "ParseContext",
    "ParseResult",
    "ParseStats",
    "Parser",
    "Rejected",
    "RejectedEntry",
    "available_formats",
    "build_model",
    "get_parser",
    "register",
]


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input entry that did not become an event, with where, which field and why.

    `location` is `file:line`, `file:line#xpath` (XML) or `file#/json/pointer`; `field` is
    named as the sender wrote it; `original` holds the entry's own bytes so the dead-letter
    record can be replayed after a fix; `error_class` is the dead letter's short code.
    """

    location: str
    field: str
    reason: str
    original: bytes
    error_class: ErrorClass = ErrorClass.invalid_field

    def __post_init__(self) -> None:
        # Reasons quote what they read (`not a statement line (got …)`), which may hold an
        # account number; they reach the summary on stderr and the dead letter's text.
        # An enterprise's USCC is quoted as well (`check character does not match (got …)`):
        # its first 8 characters (issuer and region) stay, so the reason still says where.
        reason = _USCC_LIKE.sub(lambda m: m.group(1) + "*" * 10, self.reason)
        object.__setattr__(self, "reason", mask_account_numbers(reason))

    def __str__(self) -> str:
        return f"{self.location}: {self.field}: {self.reason}"


#: 18 characters shaped like a USCC (GB 32100-2015 alphabet, 6-digit region code).
_USCC_LIKE = re.compile(
    r"(?<![0-9A-Za-z])([0-9A-HJ-NPQRTUWXY]{2}[0-9]{6})[0-9A-HJ-NPQRTUWXY]{10}(?![0-9A-Za-z])"
)

ParseResult: TypeAlias = TransactionEvent | LoanEvent | DigitalizationScore | FxRate | Rejected


class RejectedEntry(Exception):
    """Raised inside a parser to turn the current entry into a `Rejected` record."""

    def __init__(
        self, field: str, reason: str, error_class: ErrorClass = ErrorClass.invalid_field
    ) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.error_class = error_class

    def at(self, location: str, original: bytes) -> Rejected:
        return Rejected(location, self.field, self.reason, original, self.error_class)


@dataclass(frozen=True)
class ParseContext:
    """What a parser needs besides the file: who sent it and how to map accounts."""

    institution: str
    accounts: AccountDirectory
    institution_type: InstitutionType = InstitutionType.bank
    mapping: Path | None = None  # CSV column mapping (name of a shipped mapping or a path)
    encoding: str | None = None  # override for text formats without a declared encoding
    timezone: str = "Asia/Shanghai"  # for local date-times that carry no UTC offset


@dataclass
class ParseStats:
    """Counters a parser keeps while it runs (the CLI summary reads them)."""

    entries: int = 0  # source entries read: camt Ntry, :61: line, JSON transaction, row
    not_booked: Counter[str] = field(default_factory=Counter)  # reason → skipped entries
    bytes_read: int = 0


class _CountingReader(io.RawIOBase):
    """A binary file wrapper that counts the bytes read (drives the progress bar)."""

    def __init__(self, raw: BinaryIO, stats: ParseStats) -> None:
        self._raw = raw
        self._stats = stats

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        self._stats.bytes_read += n or 0
        return int(n or 0)

    def close(self) -> None:
        self._raw.close()
        super().close()


class Parser(ABC):
    """One input format. Subclasses set `name`/`description` and implement `parse`."""

    name: ClassVar[str]
    description: ClassVar[str]
    topics: ClassVar[tuple[str, ...]] = (TRANSACTIONS.name,)  # catalog topics it feeds
    reads_accounts: ClassVar[bool] = True  # False: no account to pseudonymise, no key needed

    def __init__(self, context: ParseContext) -> None:
        self.context = context
        self.stats = ParseStats()

    @abstractmethod
    def parse(self, path: Path) -> Iterator[ParseResult]:
        """Yield one result per booked entry (or per transaction of a batched entry)."""

    def results(self, path: Path) -> Iterator[ParseResult]:
        """`parse(path)`, ended by one rejection at a line too long to be a record."""
        from adapters.parsers._common import ORIGINAL_CAP
        from adapters.parsers._lines import MAX_LINE_BYTES, LineTooLong

        try:
            yield from self.parse(path)
        except LineTooLong as exc:
            yield Rejected(
                f"{path}:{exc.lineno}",
                "(line)",
                f"longer than {MAX_LINE_BYTES} bytes, so no record (its first "
                f"{min(len(exc.head), ORIGINAL_CAP)} bytes are the original): "
                f"nothing from line {exc.lineno} on was read",
                exc.head[:ORIGINAL_CAP],
                ErrorClass.invalid_shape,
            )

    def open(self, path: Path) -> BinaryIO:
        """Open `path` for binary reading, counting bytes into `stats.bytes_read`."""
        return io.BufferedReader(_CountingReader(path.open("rb"), self.stats), 1 << 16)  # type: ignore[return-value]

    @property
    def bytes_read(self) -> int:
        return self.stats.bytes_read

    def skip(self, reason: str) -> None:
        """Count an entry that is valid but not booked money (pending, info)."""
        self.stats.not_booked[reason] += 1


M = TypeVar("M")


def build_model(model: Callable[..., M], data: dict[str, Any], fields: Mapping[str, str]) -> M:
    """Construct an event model, turning validation errors into `RejectedEntry`.

    `fields` maps event field names to the source document's field names, so the error
    names the field as the sender wrote it (`Amt/@Ccy`, not `currency`).
    """
    try:
        return model(**data)
    except ValidationError as exc:  # models that do not wrap their errors in SchemaError
        problems = [
            (
                ".".join(str(p) for p in item["loc"]),
                str(item["msg"]).removeprefix("Value error, "),
                "",
            )
            for item in exc.errors(include_url=False)
        ]
        error_class = ErrorClass.invalid_field
    except SchemaError as exc:
        # FieldError values are previews already masked for account numbers.
        problems = [(e.path, e.reason, e.value) for e in exc.errors] or [("", str(exc), "")]
        error_class = ErrorClass(exc.error_class)
    path = problems[0][0]
    source_field = fields.get(path) or fields.get(path.split(".", 1)[0]) or path or "(entry)"
    named = len(problems) > 1  # one problem: the field is named once, as the sender wrote it
    reason = "; ".join(_problem(p, msg, value, named) for p, msg, value in problems)
    raise RejectedEntry(source_field, reason, error_class)


_CHOICES = re.compile(r"^Input should be ('[^']*'(, | or )?){6,}$")


_QUOTED = re.compile(r"""^(['"])(.*)\1$""", re.DOTALL)
_DECIMAL = re.compile(r"""^Decimal\((['"])(.*)\1\)$""")
_DATE = re.compile(r"^datetime\.date\((\d+), (\d+), (\d+)\)$")


def _plain(value: str) -> str:
    """The text a value preview stands for, without Python's repr around it."""
    for pattern in (_QUOTED, _DECIMAL):
        match = pattern.match(value)
        if match:
            return match.group(2)
    match = _DATE.match(value)
    if match:
        year, month, day = (int(part) for part in match.groups())
        return f"{year:04d}-{month:02d}-{day:02d}"
    return value


def _problem(path: str, message: str, value: str, named: bool) -> str:
    if _CHOICES.match(message):  # a long enum list says less than a plain statement
        message = "not a supported currency" if path == "currency" else "not an allowed value"
    text = f"{path}: {message}" if path and named else message
    return f"{text} (got {_plain(value)})" if value else text


_REGISTRY: dict[str, type[Parser]] = {}


P = TypeVar("P", bound="Parser")


def register(cls: type[P]) -> type[P]:
    """Class decorator: make a parser available under its `name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"format {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    # Importing registers the built-in formats: the parsers, FX rates, and `auto`.
    import adapters.auto
    import adapters.parsers  # noqa: F401


def available_formats() -> dict[str, type[Parser]]:
    """Format name → parser class, for every registered format."""
    _load_builtin()
    # `auto` last: the list reads as the formats, then the option to let content decide.
    return dict(sorted(_REGISTRY.items(), key=lambda item: (item[0] == "auto", item[0])))


def get_parser(name: str) -> type[Parser]:
    """The parser class registered as `name`; `KeyError` naming the known formats if none."""
    formats = available_formats()
    try:
        return formats[name]
    except KeyError:
        raise KeyError(f"unknown format {name!r}; known: {', '.join(formats)}") from None
