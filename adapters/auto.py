"""`dfip ingest auto`: each file read by the parser its content calls for (adapters.detect)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from adapters.base import Parser, ParseResult, Rejected, get_parser, register
from adapters.detect import sniff
from adapters.parsers._common import document_head
from schemas.catalog import FX, LOANS, SCORES, TRANSACTIONS
from schemas.errors import ErrorClass

__all__ = ["AutoParser"]


@register
class AutoParser(Parser):
    name: ClassVar[str] = "auto"
    description: ClassVar[str] = "any of the formats, told apart by content (CSV: shipped mappings)"
    topics: ClassVar[tuple[str, ...]] = (TRANSACTIONS.name, LOANS.name, SCORES.name, FX.name)

    def parse(self, path: Path) -> Iterator[ParseResult]:
        found = sniff(path)
        if found.format is None:
            yield Rejected(
                f"{path}:1",
                "(document)",
                f"cannot tell the format: it looks like {found.looks_like}",
                document_head(path),
                ErrorClass.invalid_shape,
            )
            return
        context = self.context
        if found.mapping is not None and context.mapping is None:
            context = replace(context, mapping=Path(found.mapping))
        inner = get_parser(found.format)(context)
        inner.stats = self.stats  # one set of counters for the summary
        yield from inner.parse(path)
