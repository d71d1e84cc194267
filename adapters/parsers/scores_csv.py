"""Digitalisation assessments as CSV (one row per assessment) → DigitalizationScore events.

Header names are the event's (uscc, framework, overall_score, …) or the Chinese column
titles assessment agencies use (统一社会信用代码, 总分, …); see docs/adapters.md.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import Parser, ParseResult, Rejected, RejectedEntry, build_model, register
from adapters.parsers._common import (
    csv_records,
    decoded_record,
    empty_file,
    parse_iso_date,
    parse_iso_datetime,
    utc_midnight,
)
from adapters.parsers._lines import DecodedLines
from schemas import DigitalizationScore, make_event_id, utc_iso
from schemas.catalog import SCORES
from schemas.errors import ErrorClass

__all__ = ["ScoresCsvParser"]

COLUMNS = (
    "uscc",
    "framework",
    "overall_score",
    "foundation",
    "operations",
    "management",
    "outcomes",
    "level",
    "assessed_at",
    "valid_until",
    "industry_section",
)
REQUIRED = ("uscc", "framework", "overall_score", "level", "assessed_at", "industry_section")
ALIASES = {
    "统一社会信用代码": "uscc",
    "评估框架": "framework",
    "总分": "overall_score",
    "数字化基础": "foundation",
    "数字化经营": "operations",
    "数字化管理": "management",
    "数字化成效": "outcomes",
    "等级": "level",
    "评估时间": "assessed_at",
    "有效期至": "valid_until",
    "行业门类": "industry_section",
}
_DIMENSIONS = ("foundation", "operations", "management", "outcomes")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@register
class ScoresCsvParser(Parser):
    name: ClassVar[str] = "scores"
    description: ClassVar[str] = "Digitalisation assessments, CSV"
    topics: ClassVar[tuple[str, ...]] = (SCORES.name,)

    def parse(self, path: Path) -> Iterator[ParseResult]:
        display = str(path)
        with self.open(path) as fh:
            lines = DecodedLines(fh, self.context.encoding or "utf-8")
            reader = csv.reader(lines)
            lines.start_record()
            try:
                header_row = next(reader, None)
            except csv.Error as exc:
                yield Rejected(
                    f"{display}:1",
                    "(header)",
                    f"CSV: {exc}",
                    lines.original,
                    ErrorClass.invalid_shape,
                )
                return
            if header_row is None or not any(c.strip() for c in header_row):
                yield empty_file(display)
                return
            if lines.undecodable:
                yield Rejected(
                    f"{display}:1",
                    "(encoding)",
                    f"header is not valid {lines.encoding}",
                    lines.original,
                    ErrorClass.undecodable,
                )
                return
            names = [ALIASES.get(c.strip(), c.strip()) for c in header_row]
            missing = [c for c in REQUIRED if c not in names]
            if missing:
                yield Rejected(
                    f"{display}:1",
                    "(header)",
                    f"missing columns: {', '.join(missing)}",
                    lines.original,
                    ErrorClass.invalid_shape,
                )
                return
            titles = {name: raw.strip() for name, raw in zip(names, header_row, strict=True)}
            index = {name: i for i, name in enumerate(names)}
            undecodable = f"row is not valid {lines.encoding}"
            for start, row in csv_records(lines, reader, display):
                self.stats.entries += 1
                if isinstance(row, Rejected):
                    yield row
                    continue
                build = partial(self._event, row, index, titles)
                yield decoded_record(lines, f"{display}:{start}", undecodable, build)

    def _event(
        self, row: list[str], index: dict[str, int], titles: dict[str, str]
    ) -> DigitalizationScore:
        if len(row) < len(index):
            raise RejectedEntry(
                "(row)",
                f"row has {len(row)} cells, the header {len(index)}",
                ErrorClass.invalid_shape,
            )
        cell = {name: row[i].strip() for name, i in index.items() if name in COLUMNS}
        when = cell["assessed_at"]
        assessed_at = (
            utc_midnight(parse_iso_date(when, titles["assessed_at"]))
            if _DATE_ONLY.match(when)
            else parse_iso_datetime(when, titles["assessed_at"], self.context.timezone)
        )
        valid = cell.get("valid_until", "")
        uscc = cell["uscc"].upper()
        framework = cell["framework"]
        for name, value in (("uscc", uscc), ("framework", framework)):
            # both go into the event id, whose parts are joined with U+001F
            if "\x1f" in value:
                raise RejectedEntry(titles[name], "contains the control character U+001F")
        data: dict[str, Any] = {
            "event_id": make_event_id(
                self.context.institution, uscc, f"{framework}@{utc_iso(assessed_at)}"
            ),
            "source": self.context.institution,
            "institution_type": self.context.institution_type,
            "occurred_at": assessed_at,
            "enterprise_uscc": uscc,
            "framework": framework,
            "overall_score": cell["overall_score"],
            "dimensions": {d: cell[d] for d in _DIMENSIONS if cell.get(d)},
            "level": cell["level"],
            "assessed_at": assessed_at,
            "valid_until": parse_iso_date(valid, titles.get("valid_until", "valid_until"))
            if valid
            else None,
            "industry_section": cell["industry_section"].upper(),
        }
        fields = {"enterprise_uscc": titles["uscc"], "occurred_at": titles["assessed_at"]}
        fields |= {name: titles.get(name, name) for name in COLUMNS if name != "uscc"}
        return build_model(DigitalizationScore, data, fields)
