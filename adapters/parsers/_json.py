"""Whole-document JSON loading and entry handling for the API formats (PSD2, Open Banking).

These documents are paginated API responses (one page per file), so reading one whole is
fine; a broken page is rejected as one dead letter with its bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from adapters.base import Parser, ParseResult, Rejected, RejectedEntry
from adapters.parsers._common import amount_or_reject, empty_file

__all__ = [
    "ORIGINAL_CAP",
    "json_amount",
    "json_entries",
    "json_entry_bytes",
    "json_str",
    "load_json_document",
    "mapping_at",
    "shape_rejection",
]

ORIGINAL_CAP = 4 << 20  # bytes of a broken document kept as the dead letter's original


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
            "undecodable",
        )
    try:
        return orjson.loads(data.removeprefix(b"\xef\xbb\xbf")), None
    except orjson.JSONDecodeError as exc:
        return None, Rejected(
            f"{display}:{exc.lineno}",
            "(document)",
            f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            data[:ORIGINAL_CAP],
            "invalid_json",
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
    return orjson.dumps(entry)


def shape_rejection(location: str, field: str, reason: str, value: Any) -> Rejected:
    """The rejection of a document whose `value` at `location` is not what the format needs."""
    return Rejected(location, field, reason, json_entry_bytes(value), "invalid_shape")


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
