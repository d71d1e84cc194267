"""Daily, monthly and quarterly figures from the daily window records of ``dfip.metrics``.

``dfip.metrics`` is compacted and keyed by window (size, start, topic, partition): a window
re-emitted after an amendment (a forwarded event, a restatement) replaces the first record,
so the last record per key is the window's figure (:func:`latest_windows`). A day's figures
are the sum over partitions of its daily (``1d``) windows, by the Beijing date the record
names (``local_date``; records written before it existed: the Asia/Shanghai date of
``window_start``). A month or a quarter is the sum of its days. Pure: no Kafka.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from dfip.report.periods import Period

__all__ = ["COLUMNS", "FIGURES", "Row", "build_rows", "daily_figures", "latest_windows"]

ZONE = "Asia/Shanghai"
# window figure → (report figure, unit, label names)
FIGURES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "tx_count": ("transactions", "count", ("institution_type", "digitalization_band")),
    "tx_amount_fen": ("transaction_amount", "fen", ("institution_type", "digitalization_band")),
    "disbursed_fen": ("loan_disbursed_principal", "fen", ("institution_type",)),
}
_ORDER = {f: i for i, (f, _, _) in enumerate(FIGURES.values())}
_UNITS = {f: unit for f, unit, _ in FIGURES.values()}
# the stated schema of every CSV row (docs/reports.md)
COLUMNS = (
    "period_kind",
    "period",
    "first_date",
    "last_date",
    "zone",
    "figure",
    "institution_type",
    "digitalization_band",
    "value",
    "unit",
    "amount_yuan",
)

Key = tuple[str, str, str]  # (figure, institution_type, digitalization_band or "")


@dataclass(frozen=True, slots=True)
class Row:
    period_kind: str
    period: str
    first_date: date
    last_date: date
    figure: str
    institution_type: str
    digitalization_band: str
    value: int

    @property
    def unit(self) -> str:
        return _UNITS[self.figure]

    def csv(self) -> list[str]:
        amount = _yuan(self.value) if self.unit == "fen" else ""
        return [
            self.period_kind, self.period, self.first_date.isoformat(),
            self.last_date.isoformat(), ZONE, self.figure, self.institution_type,
            self.digitalization_band, str(self.value), self.unit, amount,
        ]  # fmt: skip


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def latest_windows(records: Iterable[tuple[bytes | None, bytes | None]]) -> dict[bytes, Any]:
    """Key → the last record's document, in topic order (a tombstone removes the key)."""
    out: dict[bytes, Any] = {}
    for key, value in records:
        if key is None:
            continue
        if value is None:
            out.pop(key, None)
        else:
            out[key] = orjson.loads(value)
    return out


def _local_date(doc: Mapping[str, Any]) -> date:
    if doc.get("local_date"):
        return date.fromisoformat(doc["local_date"])
    start = datetime.fromisoformat(doc["window_start"])
    return start.astimezone(ZoneInfo(ZONE)).date()


def daily_figures(windows: Iterable[Mapping[str, Any]]) -> dict[date, Counter[Key]]:
    """Beijing date → (figure, institution type, band) → value, from daily window docs."""
    out: dict[date, Counter[Key]] = {}
    for doc in windows:
        if doc.get("kind") not in (None, "window_figures") or doc.get("size") != "1d":
            continue
        day = out.setdefault(_local_date(doc), Counter())
        for name, rows in doc.get("figures", {}).items():
            spec = FIGURES.get(name)
            if spec is None:
                continue
            figure, _, _ = spec
            for row in rows:
                labels = list(row["labels"])
                inst = str(labels[0]) if labels else ""
                band = str(labels[1]) if len(labels) > 1 else ""
                day[(figure, inst, band)] += int(row["value"])
    return out


def _rows(period: Period, values: Counter[Key]) -> list[Row]:
    return [
        Row(period.kind, period.label, period.first, period.last, f, it, band, v)
        for (f, it, band), v in sorted(values.items(), key=lambda kv: (_ORDER[kv[0][0]], kv[0]))
        if v != 0
    ]


def build_rows(daily: Mapping[date, Counter[Key]], period: Period) -> list[Row]:
    """Rows of the period itself, then of its months (a quarter), then of each day."""
    rows: list[Row] = []

    def total(p: Period) -> Counter[Key]:
        acc: Counter[Key] = Counter()
        for d in p.days():
            acc.update(daily.get(d, Counter()))
        return acc

    rows += _rows(period, total(period))
    if period.kind == "quarter":
        for month in period.months():
            rows += _rows(month, total(month))
    if period.kind != "day":
        for d in period.days():
            rows += _rows(Period("day", d.isoformat(), d, d), daily.get(d, Counter()))
    return rows
