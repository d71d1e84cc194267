"""`dfip report`: periods, the last record per window wins, figures equal the oracle's by
Beijing date, the CSV schema, the Excel sheets and the Chinese table."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from rich.console import Console

from adapters.simulator.enterprise_oracle import replay
from adapters.simulator.runner import SimulationConfig
from dfip.report.build import COLUMNS, build_rows, daily_figures, latest_windows
from dfip.report.periods import parse_period
from dfip.report.write import render_table, write_csv, write_xlsx

NAMES = {
    "tx_count": "transactions",
    "tx_amount_fen": "transaction_amount",
    "disbursed_fen": "loan_disbursed_principal",
}


def test_periods() -> None:
    q = parse_period(day=None, month=None, quarter="2026-Q4")
    assert (q.first, q.last, q.label) == (date(2026, 10, 1), date(2026, 12, 31), "2026-Q4")
    assert [m.label for m in q.months()] == ["2026-10", "2026-11", "2026-12"]
    m = parse_period(day=None, month="2024-02", quarter=None)
    assert (m.first, m.last, len(m.days())) == (date(2024, 2, 1), date(2024, 2, 29), 29)
    d = parse_period(day="2026-11-30", month=None, quarter=None)
    assert (d.kind, d.first, d.last) == ("day", date(2026, 11, 30), date(2026, 11, 30))
    for bad in ({"month": "2026-13"}, {"quarter": "2026-Q5"}, {}, {"day": "x", "month": "y"}):
        with pytest.raises(ValueError, match="--"):
            parse_period(**{"day": None, "month": None, "quarter": None, **bad})


def _record(w: dict[str, Any]) -> tuple[bytes, bytes]:
    """A window as the worker writes it to dfip.metrics (streams/aggregate/windows.py)."""
    key = f"{w['size']}:{w['window_start']}:{w['topic']}:{w['partition']}".encode()
    figures = {
        name: [{"labels": list(r["labels"].values()), "value": r["value"]} for r in rows]
        for name, rows in w["figures"].items()
    }
    value = {
        "kind": "window_figures",
        "size": w["size"],
        "window_start": w["window_start"],
        "window_end": w["window_end"],
        "zone": "Asia/Shanghai",
        "local_date": w["local_date"],
        "topic": w["topic"],
        "partition": w["partition"],
        "figures": figures,
    }
    return key, orjson.dumps(value)


@pytest.fixture(scope="module")
def oracle_windows() -> list[dict[str, Any]]:
    # two minutes of event time per record: about five and a half Beijing days
    config = SimulationConfig(seed=21, events=4000, enterprises=150, step_seconds=Decimal(120))
    return [w for w in replay(config).windows() if w["closed"]]


def test_a_month_equals_the_oracle_by_beijing_date(oracle_windows: list[dict[str, Any]]) -> None:
    daily = [w for w in oracle_windows if w["size"] == "1d"]
    assert len({w["local_date"] for w in daily}) >= 3, "the feed should close several days"
    records: list[tuple[bytes | None, bytes | None]] = []
    for w in oracle_windows:
        key, value = _record(w)
        # an earlier emission of the same window (before an amendment) comes first
        stale = orjson.loads(value)
        for rows in stale["figures"].values():
            for r in rows:
                r["value"] += 1_000
        records += [(key, orjson.dumps(stale)), (key, value)]
    records += [(b"1d:gone", b'{"size": "1d"}'), (b"1d:gone", None)]  # tombstoned
    rows = build_rows(
        daily_figures(latest_windows(records).values()),
        parse_period(day=None, month="2025-03", quarter=None),
    )
    # the oracle's closed daily windows, summed by Beijing date and over partitions
    want: dict[str, Counter[tuple[str, str, str]]] = {}
    for w in daily:
        acc = want.setdefault(w["local_date"], Counter())
        for name, series in w["figures"].items():
            for r in series:
                labels = list(r["labels"].values())
                band = labels[1] if len(labels) > 1 else ""
                acc[(NAMES[name], labels[0], band)] += r["value"]
    got: dict[str, Counter[tuple[str, str, str]]] = {}
    for r in rows:
        acc = got.setdefault(r.period, Counter())
        acc[(r.figure, r.institution_type, r.digitalization_band)] += r.value
    month = got.pop("2025-03")
    assert got == {d: +c for d, c in want.items()}
    assert month == sum(want.values(), Counter())


def test_files_and_table(oracle_windows: list[dict[str, Any]], tmp_path: Path) -> None:
    records = [_record(w) for w in oracle_windows]
    period = parse_period(day=None, month=None, quarter="2025-Q1")
    rows = build_rows(daily_figures(latest_windows(records).values()), period)
    write_csv(rows, tmp_path / "r.csv")
    with (tmp_path / "r.csv").open(encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == COLUMNS
    assert {row[0] for row in table[1:]} == {"quarter", "month", "day"}
    amounts = [row for row in table[1:] if row[9] == "fen"]
    assert all(Decimal(row[10]) * 100 == int(row[8]) for row in amounts)
    write_xlsx(rows, tmp_path / "r.xlsx", "zh")
    book = load_workbook(tmp_path / "r.xlsx")
    assert book.sheetnames == ["季度", "每月", "每日", "字段说明"]
    assert book["季度"]["B2"].value == "交易笔数"
    console = Console(record=True, width=200)
    render_table(rows, period, console, "zh")
    text = console.export_text()
    assert "交易金额" in text
    assert "万元" in text


def test_a_wrong_out_folder_is_a_usage_error_before_kafka_is_read(tmp_path: Path) -> None:
    # a file there was "dfip: …: File exists", said only after the metrics were read (and
    # without a broker the user heard of Kafka instead)
    from core.errors import DfipError
    from dfip.report.cli import _prepare_out

    a_file = tmp_path / "report.csv"
    a_file.write_text("x")
    for bad, said in ((a_file, "is a file, not a folder"), (a_file / "sub", "cannot create")):
        with pytest.raises(DfipError, match=said) as info:
            _prepare_out(bad)
        assert info.value.exit_code == 2
    _prepare_out(tmp_path / "new" / "folder")
    assert (tmp_path / "new" / "folder").is_dir()


@pytest.mark.parametrize("value", [b"{broken", b"[1]"])
def test_a_record_that_is_no_window_is_one_line_and_no_report(
    value: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a stray record on dfip.metrics was a JSONDecodeError / KeyError traceback
    from core.errors import DfipError
    from dfip.report import cli as report_cli

    monkeypatch.setattr(report_cli, "read_metrics", lambda settings: [(b"k", value)])
    with pytest.raises(DfipError, match="holds a record that is not a closed window"):
        report_cli.report_command(day="2026-12-05", out=tmp_path, lang="en")
    assert list(tmp_path.iterdir()) == []
