"""`dfip --help` and `dfip ingest --help` say what the exit codes mean (scripts and CI jobs
branch on them), and the help text is reflowed to the terminal, not cut at the docstring's
own line ends."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from dfip.cli import _register_optional, app

_register_optional()


def _help(*argv: str, columns: int = 100) -> str:
    result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def test_the_root_help_lists_every_exit_code() -> None:
    text = " ".join(_help().split())
    assert "Exit codes:" in text
    for code, meaning in [
        ("0", "success"),
        ("1", "Kafka unreachable"),
        ("2", "usage or configuration error"),
        ("3", "rejected"),
        ("130", "interrupted"),
    ]:
        assert re.search(rf"\b{code}\b[^0-9]*{meaning}", text), (code, text)


def test_ingest_help_lists_its_exit_codes() -> None:
    text = " ".join(_help("ingest").split())
    assert "Exit codes:" in text
    assert "3 some entries rejected" in text


def test_help_paragraphs_are_reflowed() -> None:
    # the docstring breaks its line after "entries with their"; the help joins it again
    lines = [line.strip(" │") for line in _help(columns=250).splitlines()]
    assert not [line for line in lines if line.endswith("entries with their")]
    assert "entries with their reason" in " ".join(" ".join(lines).split())
    assert "``dfip``" not in _help()
