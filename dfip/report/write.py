"""A report as CSV (the stated schema, language-independent), as Excel (headers and labels
in the chosen language, amounts also in 万元 for Chinese) and as a rich table."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook  # type: ignore[import-untyped]
from rich.console import Console
from rich.table import Table

from dfip.i18n import Lang, amount, label
from dfip.report.build import COLUMNS, ZONE, Row
from dfip.report.periods import Period

__all__ = ["render_table", "write_csv", "write_xlsx"]

_SHEETS = {"day": ("每日", "daily"), "month": ("每月", "monthly"), "quarter": ("季度", "quarterly")}
_SCHEMA_HELP = {
    "period_kind": "day | month | quarter",
    "period": "YYYY-MM-DD | YYYY-MM | YYYY-Qn (Beijing dates)",
    "first_date": "first Beijing date of the period",
    "last_date": "last Beijing date of the period (inclusive)",
    "zone": "Asia/Shanghai",
    "figure": "transactions | transaction_amount | loan_disbursed_principal",
    "institution_type": "bank | fintech | joint",
    "digitalization_band": "unscored | l0..l4 (empty for loan_disbursed_principal)",
    "value": "integer: a count, or CNY fen",
    "unit": "count | fen",
    "amount_yuan": "value in yuan, exact decimal (fen figures only)",
}


def write_csv(rows: Sequence[Row], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        out.writerows(r.csv() for r in rows)


def _display(row: Row, lang: Lang) -> str:
    return amount(row.value, lang) if row.unit == "fen" else f"{row.value:,}"


def write_xlsx(rows: Sequence[Row], path: Path, lang: Lang) -> None:
    """One sheet per granularity present, plus a sheet stating the schema."""
    wb = Workbook()
    wb.remove(wb.active)  # type: ignore[arg-type]
    zh = lang == "zh"
    headers = [
        label("period", lang), label("figure", lang), label("institution_type", lang),
        label("digitalization_band", lang), label("value", lang),
        "单位" if zh else "unit", "万元" if zh else "yuan",
    ]  # fmt: skip
    for kind in ("quarter", "month", "day"):
        chosen = [r for r in rows if r.period_kind == kind]
        if not chosen:
            continue
        ws = wb.create_sheet(_SHEETS[kind][0 if zh else 1])
        ws.append(headers)
        for r in chosen:
            if r.unit == "fen":
                scaled = Decimal(r.value) / (Decimal(1_000_000) if zh else Decimal(100))
            ws.append(
                [
                    r.period, label(r.figure, lang), label(r.institution_type, lang),
                    label(r.digitalization_band, lang) if r.digitalization_band else "",
                    r.value, "分" if zh and r.unit == "fen" else ("笔" if zh else r.unit),
                    float(scaled) if r.unit == "fen" else None,
                ]
            )  # fmt: skip
    schema = wb.create_sheet("字段说明" if zh else "schema")
    schema.append(["column", "meaning"])
    for col in COLUMNS:
        schema.append([col, _SCHEMA_HELP[col]])
    schema.append(["", f"zone {ZONE}; CSV: {path.with_suffix('.csv').name}"])
    wb.save(path)


def render_table(rows: Sequence[Row], period: Period, console: Console, lang: Lang) -> None:
    """The period's own rows (not the days inside it) as a table."""
    title = f"{label('report_title', lang)} {period.label} ({label('beijing_dates', lang)})"
    table = Table(title=title)
    for col in ("figure", "institution_type", "digitalization_band", "value"):
        table.add_column(label(col, lang), justify="right" if col == "value" else "left")
    for r in rows:
        if r.period_kind != period.kind or r.period != period.label:
            continue
        band = label(r.digitalization_band, lang) if r.digitalization_band else ""
        table.add_row(
            label(r.figure, lang), label(r.institution_type, lang), band, _display(r, lang)
        )
    console.print(table)
