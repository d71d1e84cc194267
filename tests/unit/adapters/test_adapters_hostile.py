"""Hostile text inputs: a line far longer than any record (a file with no line ends, a
runaway field) stops the document at that line with one rejection, after the records before
it, and never reads the line into memory whole (a 300 MB line took 1.3 GB as MT940)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import FIXTURES

from adapters import AccountDirectory, ParseContext, Rejected, get_parser
from adapters.ingest import DryRunSink, ingest_files
from adapters.parsers import _lines
from schemas import InstitutionType

LIMIT = 4096


@pytest.fixture(autouse=True)
def _small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_lines, "MAX_LINE_BYTES", LIMIT)


def _ingest(fmt: str, path: Path, accounts: AccountDirectory, **context: object) -> tuple:
    options: dict = {
        "institution": "TEST-BANK",
        "accounts": accounts,
        "institution_type": InstitutionType.bank,
        **context,
    }
    parser = get_parser(fmt)(ParseContext(**options))
    out = io.BytesIO()
    summary = ingest_files(parser, [path], DryRunSink(out))
    return summary, out.getvalue().splitlines()


def _with_long_line(tmp_path: Path, name: str, lines: list[bytes], at: int) -> Path:
    """`lines` with line `at` (0-based) made longer than the limit."""
    lines = list(lines)
    lines[at] = lines[at].rstrip(b"\r\n") + b"x" * (3 * LIMIT) + b"\n"
    path = tmp_path / name
    path.write_bytes(b"".join(lines))
    return path


CASES = {
    # format: (fixture, line made long (0-based), extra context)
    "csv": ("hk_utf8_statement.csv", 2, {"mapping": Path("hk_utf8_signed")}),
    "loans": ("loans.jsonl", 1, {}),
    "scores": ("scores.csv", 2, {}),
    "fx": ("fx_cfets_central_parity.csv", 2, {}),
    "mt940": ("mt940_ing_swift.sta", 12, {}),
}


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_an_overlong_line_is_one_rejection_naming_the_line(
    fmt: str, tmp_path: Path, accounts: AccountDirectory
) -> None:
    fixture, at, context = CASES[fmt]
    lines = (FIXTURES / fixture).read_bytes().splitlines(keepends=True)
    path = _with_long_line(tmp_path, fixture, lines, at)
    summary, _ = _ingest(fmt, path, accounts, **context)
    long_ones = [r for r in summary.rejections if r.field == "(line)"]
    assert len(long_ones) == 1, summary.rejections
    (rejected,) = long_ones
    assert isinstance(rejected, Rejected)
    assert rejected.location == f"{path}:{at + 1}"
    assert f"longer than {LIMIT} bytes" in rejected.reason
    assert f"nothing from line {at + 1} on was read" in rejected.reason
    assert rejected.original.startswith(lines[at].rstrip(b"\r\n"))
    assert len(rejected.original) <= LIMIT + 1


def test_records_before_the_long_line_are_kept(tmp_path: Path, accounts: AccountDirectory) -> None:
    lines = (FIXTURES / "loans.jsonl").read_bytes().splitlines(keepends=True)
    path = _with_long_line(tmp_path, "loans.jsonl", lines, 2)
    summary, out = _ingest("loans", path, accounts)
    assert len(out) == 2  # lines 1 and 2
    assert summary.rejected == 1


def test_a_file_without_line_ends_is_refused_at_line_one(
    tmp_path: Path, accounts: AccountDirectory
) -> None:
    path = tmp_path / "scores.csv"
    path.write_bytes(b"a," * (4 * LIMIT))
    summary, out = _ingest("scores", path, accounts)
    assert out == []
    (rejected,) = summary.rejections
    assert rejected.location == f"{path}:1"


def test_a_long_line_with_lone_cr_line_ends_is_caught_too(
    tmp_path: Path, accounts: AccountDirectory
) -> None:
    lines = (FIXTURES / "hk_utf8_statement.csv").read_bytes().splitlines()
    path = tmp_path / "mac.csv"
    path.write_bytes(b"\r".join([*lines[:2], b"y" * (3 * LIMIT), *lines[2:]]) + b"\r")
    summary, out = _ingest("csv", path, accounts, mapping=Path("hk_utf8_signed"))
    assert len(out) == 1
    assert [r.location for r in summary.rejections if r.field == "(line)"] == [f"{path}:3"]


# --------------------------------------------------------------------------- JSON pages


def _psd2_with(tmp_path: Path, name: str, extra: str) -> Path:
    """The PSD2 fixture with `extra` (JSON text) as a member of its first booked entry."""
    import json

    doc = json.loads((FIXTURES / "psd2_abn_transactions.json").read_text("utf-8"))
    first = json.dumps(doc["transactions"]["booked"][0])
    text = json.dumps(doc).replace(first, first[:-1] + f', "x": {extra}}}', 1)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("where", ["entry", "top"])
def test_deeply_nested_json_is_one_rejection_in_bounded_memory(
    tmp_path: Path, accounts: AccountDirectory, where: str
) -> None:
    """100,000 levels of `[` (200 KB) took ijson's prefixes past 20 GB before this check."""
    from adapters.parsers import _json

    depth = 100_000
    if where == "entry":
        path = _psd2_with(tmp_path, "deep.json", "[" * depth + "]" * depth)
    else:
        path = tmp_path / "deep.json"
        path.write_text('{"transactions": {"booked": [' + "[" * depth + "]" * depth + "]}}")
    summary, out = _ingest("psd2", path, accounts)
    (rejected,) = [r for r in summary.rejections if r.field == "(document)"]
    assert f"nested deeper than {_json.MAX_JSON_DEPTH} levels" in rejected.reason
    assert out == []  # the entry holding it is not sent; nothing after it was read


def test_a_giant_json_value_is_refused_before_parsing(
    tmp_path: Path, accounts: AccountDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 300 MB string kept ijson busy for over 5 minutes (it re-reads a long token at every
    buffer); a value longer than MAX_JSON_TOKEN_BYTES cannot be an API entry's field."""
    from adapters.parsers import _json

    monkeypatch.setattr(_json, "MAX_JSON_TOKEN_BYTES", 64 << 10)
    monkeypatch.setattr(_json, "_SCAN_CHUNK", 16 << 10)
    path = _psd2_with(tmp_path, "giant.json", '"' + "y" * (200 << 10) + '"')
    summary, out = _ingest("psd2", path, accounts)
    (rejected,) = summary.rejections
    assert rejected.field == "(document)"
    assert f"more than {64 << 10} bytes without" in rejected.reason
    assert out == []
    fine = _psd2_with(tmp_path, "fine.json", '"' + "y" * (32 << 10) + '"')
    summary, out = _ingest("psd2", fine, accounts)
    assert not [r for r in summary.rejections if r.field == "(document)"]


def test_a_deeply_nested_json_line_is_one_rejection(
    tmp_path: Path, accounts: AccountDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """json.loads recursed out of the stack on 100,000 levels (a RecursionError traceback)."""
    monkeypatch.setattr(_lines, "MAX_LINE_BYTES", 1 << 20)  # the line is 200 KB
    good = (FIXTURES / "loans.jsonl").read_text("utf-8").splitlines(keepends=True)[0]
    path = tmp_path / "loans.jsonl"
    path.write_text(
        good + '{"event_type": "approved", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    )
    summary, out = _ingest("loans", path, accounts)
    assert len(out) == 1
    (rejected,) = summary.rejections
    assert rejected.location == f"{path}:2"
    assert rejected.field == "(line)"
    assert "nested too deeply" in rejected.reason


# --------------------------------------------------------------------------- XML


def test_a_giant_camt_text_node_is_a_rejection_not_gigabytes(
    tmp_path: Path, accounts: AccountDirectory
) -> None:
    """libxml2's text-node limit (10 MB) stays on: a 300 MB Ustrd took 2.2 GB with
    huge_tree. 11 MB here; the entries before the giant one are kept."""
    src = (FIXTURES / "camt053_v02_icbc.xml").read_text("utf-8")
    last = src.rindex("<Ustrd>")
    path = tmp_path / "giant.xml"
    path.write_text(src[:last] + "<Ustrd>" + "z" * (11 << 20) + src[last + 7 :], "utf-8")
    summary, out = _ingest("camt", path, accounts)
    (broken,) = [r for r in summary.rejections if r.field == "(document)"]
    assert "Text node too long" in broken.reason
    assert out  # the entries before it
