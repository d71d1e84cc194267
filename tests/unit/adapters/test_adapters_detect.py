"""Format detection (`dfip ingest auto`) and the explicit-format mismatch error."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import typer
from conftest import FIXTURES, KEY
from typer.testing import CliRunner

from adapters.cli import ingest_command
from adapters.detect import format_mismatch, sniff
from schemas import decode

CASES = tomllib.loads((FIXTURES / "expected" / "cases.toml").read_text("utf-8"))["case"]
FAMILY = {"camt.052": "camt", "camt.053": "camt", "camt.054": "camt", "fx": "fx-cfets"}
SKIP = {"empty.xml", "camt053_truncated.xml"}  # no content to tell anything from

app = typer.Typer()
app.command("ingest")(ingest_command)
app.command("noop")(lambda: None)
ENV = {"DFIP_ACCOUNT_HASH_KEY": KEY.decode()}


def run(*args: str):
    return CliRunner().invoke(app, ["ingest", *args], env=ENV)


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_every_fixture_is_recognised(case: dict) -> None:
    if case["file"] in SKIP:
        pytest.skip("nothing to recognise")
    found = sniff(FIXTURES / case["file"])
    assert found.format == FAMILY.get(case["format"], case["format"]), found.looks_like
    if case["format"] == "csv":
        assert found.mapping == Path(case["mapping"]).stem
    assert format_mismatch(case["format"], FIXTURES / case["file"]) is None


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("fx_cfets_central_parity.csv", "fx-cfets"),
        ("fx_cfets_zh_gb18030.csv", "fx-cfets"),
        ("fx_ecb_eurofxref.xml", "fx-ecb"),
    ],
)
def test_fx_files_are_recognised(name: str, fmt: str) -> None:
    assert sniff(FIXTURES / name).format == fmt
    assert format_mismatch("fx", FIXTURES / name) is None
    assert format_mismatch(fmt, FIXTURES / name) is None
    assert format_mismatch("mt940", FIXTURES / name) is not None


def test_camt_versions_and_mt942_are_named() -> None:
    assert "camt.052.001.01" in sniff(FIXTURES / "camt052_v01_report.xml").looks_like
    assert "MT942" in sniff(FIXTURES / "mt942_ing_interim.sta").looks_like


@pytest.mark.parametrize(
    ("fmt", "name", "says"),
    [
        ("mt940", "camt053_v08_ccb_usd.xml", "camt.053.001.08"),
        ("camt", "mt940_ing_swift.sta", "MT940"),
        ("psd2", "obie_transactions.json", "Open Banking"),
        ("loans", "scores.csv", "assessment"),
    ],
)
def test_explicit_format_that_does_not_match_is_a_usage_error(
    fmt: str, name: str, says: str
) -> None:
    result = run(fmt, str(FIXTURES / name), "--dry-run", "-i", "TEST-BANK")
    assert result.exit_code == 2
    assert f"given as {fmt}, but it looks like" in result.stderr
    assert says in result.stderr
    assert result.stdout == ""


def test_random_text_as_mt940_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Dear customer,\nplease find attached your statement.\n", "utf-8")
    result = run("mt940", str(path), "--dry-run", "-i", "TEST-BANK")
    assert result.exit_code == 2
    assert "text that is no known bank format" in result.stderr


def test_auto_ingests_mixed_files() -> None:
    files = [
        "camt053_v02_icbc.xml",
        "mt940_ing_swift.sta",
        "psd2_abn_transactions.json",
        "hk_utf8_statement.csv",
        "fx_ecb_eurofxref.xml",
    ]
    result = run(
        "auto",
        *(str(FIXTURES / name) for name in files),
        "--dry-run",
        "-i",
        "TEST-BANK",
        "--accounts",
        str(FIXTURES / "accounts.toml"),
    )
    assert result.exit_code == 3, result.stderr  # the ICBC fixture holds one reversal
    kinds = {decode(line).kind for line in result.stdout_bytes.splitlines()}
    assert kinds == {"transaction", "fx_rate"}
    assert "reversal" in result.stderr


def test_auto_rejects_what_it_cannot_tell(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"\x00\x01 binary")
    result = run("auto", str(path), "--dry-run", "-i", "TEST-BANK")
    assert result.exit_code == 3
    assert "cannot tell the format" in result.stderr


@pytest.mark.parametrize(
    ("head", "looks_like"),
    [
        (bytes(range(256)) * 64, "binary data"),
        (b"\x1f\x8b\x08\x00" + bytes(200), "a gzip-compressed file (decompress it first)"),
        ("日期,USD/CNY\n".encode("utf-16"), "UTF-16 text"),
        (b"PK\x03\x04" + bytes(200), "a zip archive that cannot be read (damaged or cut short)"),
    ],
    ids=["binary", "gzip", "utf-16", "zip"],
)
def test_binary_compressed_and_utf16_files_are_named_for_what_they_are(
    tmp_path: Path, head: bytes, looks_like: str
) -> None:
    path = tmp_path / "statement.csv"
    path.write_bytes(head)
    found = sniff(path)
    assert found.format is None
    assert looks_like in found.looks_like
    for fmt in ("csv", "mt940", "camt", "fx", "loans"):  # csv too: it is no text table
        problem = format_mismatch(fmt, path)
        assert problem is not None, fmt
        assert looks_like in problem


def test_an_account_map_among_the_statements_is_named(tmp_path: Path) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('[[account]]\naccount = "1"\nuscc = "91330106MA2H3K4P70"\n', encoding="utf-8")
    found = sniff(path)
    assert found.format is None
    assert found.looks_like == "a TOML file (an account map goes to --accounts)"
