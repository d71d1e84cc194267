"""Streamed JSON reading and entry handling for the API formats (PSD2, Open Banking).

A page is read with `ijson` (the yajl2 C backend): only the entry being built is ever in
memory, however large the page (`MAX_PAGE_BYTES` is the documented limit). A page that
stops being valid JSON keeps the entries before the fault; the rest is one dead letter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ijson  # type: ignore[import-untyped]
import orjson

from adapters.base import Parser, ParseResult, Rejected, RejectedEntry
from adapters.parsers._common import ORIGINAL_CAP, amount_or_reject, document_head, empty_file
from schemas.errors import ErrorClass

__all__ = [
    "MAX_PAGE_BYTES",
    "ORIGINAL_CAP",
    "JsonStream",
    "document_head",
    "json_amount",
    "json_entries",
    "json_entry",
    "json_entry_bytes",
    "json_str",
    "load_json_document",
    "mapping_at",
    "shape_rejection",
]

MAX_PAGE_BYTES = 1 << 30  # a bigger page is refused whole: no API pages a gigabyte
# An API page is a few levels deep (OBIE: Data/Transaction/[n]/CreditorAccount/…). ijson
# gives every event its full prefix: 100,000 levels of `[` (200 KB) cost it over 20 GB, so
# the depth is checked as the events come, read in small buffers (`_BUF`).
MAX_JSON_DEPTH = 64
_BUF = 2048
# No field of an entry is longer: ijson re-reads a token that spans its buffers from the
# start each time, so a 300 MB string takes hours. Found by a scan for the longest run of
# bytes without a `"` (a string, or a number, whitespace or junk between strings).
MAX_JSON_TOKEN_BYTES = 4 << 20
_SCAN_CHUNK = 1 << 20


class _TooDeep(ValueError):
    pass


def _longest_unquoted_run(path: Path) -> tuple[int, int]:
    """(offset, length) of the first run of more than MAX_JSON_TOKEN_BYTES bytes without a
    double quote, or (-1, 0). Runs inside one chunk are shorter than a chunk, which is
    smaller than the limit, so only runs across chunk borders are counted."""
    run_start, run = 0, 0
    offset = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_SCAN_CHUNK):
            first = chunk.find(b'"')
            if first < 0:
                run += len(chunk)
            else:
                run += first
                if run > MAX_JSON_TOKEN_BYTES:
                    return run_start, run
                last = chunk.rfind(b'"')
                run_start, run = offset + last + 1, len(chunk) - last - 1
            if run > MAX_JSON_TOKEN_BYTES:
                return run_start, run
            offset += len(chunk)
    return -1, 0


class JsonStream:
    """One pass over a JSON page: the values at `build` prefixes (ijson notation, e.g.
    `transactions.booked.item`) are built and yielded one at a time; the values at `count`
    prefixes are only counted (`counts`); `kinds` records the JSON type first seen at each
    of the `shapes` prefixes (`start_map`, `start_array`, `string`, …).

    Iterating yields `(prefix, value)`, or one `Rejected` for an unreadable rest of file.
    """

    def __init__(
        self,
        parser: Parser,
        path: Path,
        build: frozenset[str],
        count: frozenset[str] = frozenset(),
        shapes: frozenset[str] = frozenset(),
    ) -> None:
        self.parser = parser
        self.path = path
        self.build = build
        self.count = count
        self.shapes = shapes
        self.counts: dict[str, int] = dict.fromkeys(count, 0)
        self.kinds: dict[str, str] = {}
        self.built = 0  # complete values yielded so far (named in a fault's reason)

    def __iter__(self) -> Iterator[tuple[str, Any] | Rejected]:
        display = str(self.path)
        size = self.path.stat().st_size
        if size > MAX_PAGE_BYTES:
            reason = f"page of {size} bytes is over the {MAX_PAGE_BYTES} byte limit"
            yield Rejected(
                f"{display}:1",
                "(document)",
                reason,
                document_head(self.path),
                ErrorClass.invalid_shape,
            )
            return
        with self.path.open("rb") as peek:
            start = peek.read(4096)
        if not start.strip():
            yield empty_file(display)
            return
        at, _ = _longest_unquoted_run(self.path)
        if at >= 0:
            yield Rejected(
                f"{display}:1",
                "(document)",
                f"more than {MAX_JSON_TOKEN_BYTES} bytes without a string delimiter from byte "
                f"{at} on: no field of an API entry is that long (the page was not read)",
                document_head(self.path),
                ErrorClass.invalid_shape,
            )
            return
        with self.parser.open(self.path) as fh:
            if start.startswith(b"\xef\xbb\xbf"):
                fh.read(3)
            try:
                yield from self._events(fh)
            except (ijson.JSONError, ijson.IncompleteJSONError, UnicodeDecodeError) as exc:
                yield self._broken(exc)
            except _TooDeep:
                yield Rejected(
                    f"{display}:1",
                    "(document)",
                    f"JSON nested deeper than {MAX_JSON_DEPTH} levels; nothing after the first "
                    f"{self.built} complete entries was ingested",
                    document_head(self.path),
                    ErrorClass.invalid_shape,
                )

    def _events(self, fh: Any) -> Iterator[tuple[str, Any]]:
        builder: Any = None
        current = ""
        depth = 0
        for prefix, event, value in ijson.parse(fh, buf_size=_BUF, use_float=False):
            if event in ("start_map", "start_array"):
                depth += 1
                if depth > MAX_JSON_DEPTH:
                    raise _TooDeep
            elif event in ("end_map", "end_array"):
                depth -= 1
            if builder is not None:
                builder.event(event, value)
                if prefix == current and event in ("end_map", "end_array"):
                    if current in self.build:
                        self.built += 1
                        yield current, builder.value
                    builder = None
                continue
            if prefix in self.shapes and prefix not in self.kinds:
                self.kinds[prefix] = event
            if event in ("end_map", "end_array", "map_key"):
                continue
            if prefix in self.count:
                self.counts[prefix] += 1
                if event in ("start_map", "start_array"):
                    builder, current = _Skipper(), prefix
            elif prefix in self.build:
                if event in ("start_map", "start_array"):
                    builder, current = ijson.ObjectBuilder(), prefix
                    builder.event(event, value)
                else:
                    yield prefix, value

    def _broken(self, exc: Exception) -> Rejected:
        message = " ".join(str(exc).split())[:200]
        undecodable = isinstance(exc, UnicodeDecodeError) or "utf" in message.lower()
        return Rejected(
            f"{self.path}:1",
            "(document)",
            ("JSON must be UTF-8: " if undecodable else "invalid JSON: ")
            + f"{message}; nothing after the first {self.built} complete entries was ingested",
            document_head(self.path),
            ErrorClass.undecodable if undecodable else ErrorClass.invalid_json,
        )


class _Skipper:
    """Stands in for a builder while a counted-only value streams past."""

    value = None

    def event(self, event: str, value: Any) -> None:
        pass


def load_json_document(parser: Parser, path: Path) -> tuple[Any, Rejected | None]:
    """(document, None) or (None, why it cannot be read at all)."""
    display = str(path)
    with parser.open(path) as fh:
        data = fh.read()
    if not data.strip():
        return None, empty_file(display)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return None, Rejected(
            f"{display}:{line}",
            "(encoding)",
            f"JSON must be UTF-8; byte {exc.start} is not ({exc.reason})",
            data[:ORIGINAL_CAP],
            ErrorClass.undecodable,
        )
    try:
        return orjson.loads(data.removeprefix(b"\xef\xbb\xbf")), None
    except orjson.JSONDecodeError as exc:
        return None, Rejected(
            f"{display}:{exc.lineno}",
            "(document)",
            f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            data[:ORIGINAL_CAP],
            ErrorClass.invalid_json,
        )


def mapping_at(value: Any, *keys: str) -> dict[str, Any]:
    """The object at `value[k1][k2]…`, or {} when any step is missing or not an object."""
    for key in keys:
        if not isinstance(value, dict):
            return {}
        value = value.get(key)
    return value if isinstance(value, dict) else {}


def json_entry_bytes(entry: Any) -> bytes:
    """The entry as JSON bytes (re-serialised: JSON has no byte offsets worth keeping)."""
    return orjson.dumps(entry, default=_number)


def _number(value: Any) -> Any:
    """JSON numbers stream in as exact `Decimal`s; written back as numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def shape_rejection(location: str, field: str, reason: str, value: Any) -> Rejected:
    """The rejection of a document whose `value` at `location` is not what the format needs."""
    return Rejected(location, field, reason, json_entry_bytes(value), ErrorClass.invalid_shape)


def json_entry(
    parser: Parser,
    entry: Any,
    index: int,
    pointer: str,
    build: Callable[[Any, int], ParseResult | None],
) -> ParseResult | None:
    """`build(entry, index)` for one streamed entry of the array at `pointer`, counted."""
    parser.stats.entries += 1
    try:
        return build(entry, index)
    except RejectedEntry as rej:
        return rej.at(f"{pointer}/{index}", json_entry_bytes(entry))


def json_entries(
    parser: Parser,
    entries: list[Any],
    pointer: str,
    build: Callable[[Any, int], ParseResult | None],
) -> Iterator[ParseResult]:
    """`build(entry, index)` for each entry of the array at `pointer` (`file#/json/pointer`).

    Each entry counts in `parser.stats`; None (an entry only counted) yields nothing, and a
    `RejectedEntry` rejects the entry at `pointer/index` with its JSON bytes.
    """
    for i, entry in enumerate(entries):
        parser.stats.entries += 1
        try:
            result = build(entry, i)
        except RejectedEntry as rej:
            yield rej.at(f"{pointer}/{i}", json_entry_bytes(entry))
            continue
        if result is not None:
            yield result


def json_str(value: Any) -> str | None:
    """A JSON string without surrounding blanks; None for a blank one or any other value."""
    return value.strip() or None if isinstance(value, str) else None


def json_amount(value: Any, field: str) -> Decimal:
    """An amount, which the APIs send as a decimal string (never a JSON number)."""
    if not isinstance(value, str):
        raise RejectedEntry(field, "must be a decimal string")
    return amount_or_reject(value, field)
