"""Whole-document JSON loading for the API formats (PSD2, Open Banking).

These documents are paginated API responses (one page per file), so reading one whole is
fine; a broken page is rejected as one dead letter with its bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from adapters.base import Parser, Rejected

__all__ = ["ORIGINAL_CAP", "json_entry_bytes", "load_json_document", "mapping_at"]

ORIGINAL_CAP = 4 << 20  # bytes of a broken document kept as the dead letter's original


def load_json_document(parser: Parser, path: Path) -> tuple[Any, Rejected | None]:
    """(document, None) or (None, why it cannot be read at all)."""
    display = str(path)
    with parser.open(path) as fh:
        data = fh.read()
    if not data.strip():
        return None, Rejected(f"{display}:1", "(document)", "empty file", b"", "invalid_shape")
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
