"""Zip archives given to `dfip ingest`: unpacked for the run, each file a document."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import typer
from conftest import FIXTURES
from typer.testing import CliRunner

from adapters import archives
from adapters.archives import ArchiveError, is_archive, unpack
from adapters.cli import ingest_command
from schemas import decode

app = typer.Typer()
app.command("ingest")(ingest_command)
app.command("noop")(lambda: None)  # two commands, so `ingest` is a sub-command as in dfip

REAL = FIXTURES / "realbank"


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def run(*args: str):
    return CliRunner().invoke(app, ["ingest", *args])


def test_statements_in_a_zip_are_ingested_as_their_files(tmp_path: Path) -> None:
    sta = (REAL / "mt940_danske_fi_account_in_86.sta").read_bytes()
    xml = (REAL / "camt052_v06_zero_tx_amounts.xml").read_bytes()
    xml = xml.replace(b"<Sts>PDNG</Sts>", b"<Sts>BOOK</Sts>")
    archive = _zip(
        tmp_path / "download.zip",
        {
            "2009/10/danske.sta": sta,
            "camt052.xml": xml,
            "__MACOSX/._danske.sta": b"\x00\x05\x16\x07",
            ".DS_Store": b"\x00\x00\x00\x01Bud1",
            "empty/": b"",
        },
    )
    accounts = str(REAL / "accounts.toml")
    zipped = run("auto", str(archive), "--dry-run", "-i", "BANK", "--accounts", accounts)
    assert zipped.exit_code == 0, zipped.output
    (tmp_path / "danske.sta").write_bytes(sta)
    (tmp_path / "camt052.xml").write_bytes(xml)
    plain = run(
        "auto",
        str(tmp_path / "danske.sta"),  # member-name order: `2009/10/danske.sta` first
        str(tmp_path / "camt052.xml"),
        "--dry-run",
        "-i",
        "BANK",
        "--accounts",
        accounts,
    )
    ids = [decode(line).event_id for line in zipped.stdout_bytes.splitlines()]
    assert ids == [decode(line).event_id for line in plain.stdout_bytes.splitlines()]
    assert len(ids) == 7  # 6 MT940 entries, 1 camt entry; the metadata files are not read
    assert "download.zip" in zipped.stderr.replace("\n", "")


def test_unpack_flattens_members_and_keeps_them_inside(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "a.zip",
        {"b/stmt.sta": b"1", "a/stmt.sta": b"2", "../../escape.sta": b"3", "x.xml": b"4"},
    )
    files = unpack(archive, tmp_path / "out")
    assert [f.relative_to(tmp_path / "out").as_posix() for f in files] == [
        "escape.sta",  # `../../escape.sta`: the base name only, inside the folder
        "stmt.sta",  # `a/stmt.sta` (member-name order)
        "2-stmt.sta",  # `b/stmt.sta`: same base name, numbered
        "x.xml",
    ]
    assert [f.read_bytes() for f in files] == [b"3", b"2", b"1", b"4"]
    assert not (tmp_path / "escape.sta").exists()


def test_a_zip_bomb_stops_at_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archives, "MAX_UNPACKED_BYTES", 1 << 20)
    archive = _zip(tmp_path / "bomb.zip", {"a.xml": bytes(3 << 20)})  # 3 MiB of zeros
    with pytest.raises(ArchiveError, match="unpacks to more than"):
        unpack(archive, tmp_path / "out")
    result = run("auto", str(archive), "--dry-run", "-i", "BANK")
    assert result.exit_code == 2
    assert "bomb.zip: unpacks to more than" in result.stderr


def test_workbooks_and_damaged_zips_are_not_unpacked(tmp_path: Path) -> None:
    workbook = _zip(tmp_path / "rates.xlsx", {"xl/workbook.xml": b"<workbook/>"})
    assert not is_archive(workbook)  # an .xlsx is one file (CFETS rates)
    damaged = tmp_path / "cut.zip"
    damaged.write_bytes(b"PK\x03\x04" + bytes(100))
    assert not is_archive(damaged)
    result = run("auto", str(damaged), "--dry-run", "-i", "BANK")
    assert result.exit_code == 3
    assert "a zip archive that cannot be read" in result.stderr


def test_a_zip_with_nothing_to_ingest_is_a_usage_error(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "empty.zip", {"__MACOSX/._x": b"", "folder/": b""})
    result = run("auto", str(archive), "--dry-run", "-i", "BANK")
    assert result.exit_code == 2
    assert "holds no files to ingest" in result.stderr


def test_a_zip_in_a_folder_is_unpacked_too(tmp_path: Path) -> None:
    sta = (REAL / "mt940_danske_fi_account_in_86.sta").read_bytes()
    folder = tmp_path / "drop"
    folder.mkdir()
    _zip(folder / "day1.zip", {"danske.sta": sta})
    (folder / "day2.sta").write_bytes(sta.replace(b":28C:00001/001", b":28C:00002/001"))
    accounts = str(REAL / "accounts.toml")
    result = run("auto", str(folder), "--dry-run", "-i", "BANK", "--accounts", accounts)
    assert result.exit_code == 0, result.output
    assert len(result.stdout_bytes.splitlines()) == 12
