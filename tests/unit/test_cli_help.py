"""`dfip --help` and `dfip ingest --help` say what the exit codes mean (scripts and CI jobs
branch on them), and the help text is reflowed to the terminal, not cut at the docstring's
own line ends."""

from __future__ import annotations

import logging
import re

import pytest
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


def test_an_unexpected_kafka_error_is_one_line_with_the_address(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A client error no command expected (here from topic creation) still ends in one
    line naming the broker, exit 1 — not a traceback."""
    import sys

    from kafka.errors import KafkaTimeoutError

    import core.kafka_admin
    from dfip.cli import main

    def fail(*args: object, **kwargs: object) -> None:
        raise KafkaTimeoutError("Timeout after waiting for 30000 ms")

    monkeypatch.setattr(core.kafka_admin, "create_topics", fail)
    monkeypatch.setenv("DFIP_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setattr(sys, "argv", ["dfip", "topics", "create"])
    kafka_logger = logging.getLogger("kafka")
    level = kafka_logger.level
    try:
        with pytest.raises(SystemExit) as info:
            main()
    finally:
        kafka_logger.setLevel(level)  # main() raises it to ERROR; setLevel clears the caches
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("dfip: Kafka at 127.0.0.1:1 failed: KafkaTimeoutError")
