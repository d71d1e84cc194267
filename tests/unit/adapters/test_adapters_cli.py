"""`dfip ingest`: dry runs, summaries and exit codes (0 ok, 3 rejected, 2 usage, 1 Kafka)."""

from __future__ import annotations

import os

import pytest
import typer
from conftest import FIXTURES
from typer.testing import CliRunner

from adapters import cli as cli_module
from adapters import producer as producer_module
from adapters.cli import ingest_command
from schemas import decode

app = typer.Typer()
app.command("ingest")(ingest_command)
app.command("noop")(lambda: None)  # two commands, so `ingest` is a sub-command as in dfip

ACCOUNTS = str(FIXTURES / "accounts.toml")


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, ["ingest", *args], env=env)


def test_dry_run_prints_events_as_json_lines() -> None:
    result = run("camt", str(FIXTURES / "camt053_v08_ccb_usd.xml"), "--dry-run", "-i", "CCB-NB")
    assert result.exit_code == 0, result.output
    lines = result.stdout_bytes.splitlines()
    events = [decode(line) for line in lines]
    assert len(events) == 4
    assert {e.source for e in events} == {"CCB-NB"}
    assert "entries read" in result.stderr
    assert "not booked" in result.stderr


def test_rejections_give_exit_code_3_and_a_summary() -> None:
    result = run(
        "camt",
        str(FIXTURES / "camt053_v08_bad_entries.xml"),
        "--dry-run",
        "-i",
        "ICBC-ZJ",
        "--accounts",
        ACCOUNTS,
    )
    assert result.exit_code == 3
    assert len(result.stdout_bytes.splitlines()) == 2
    assert "rejected, by reason" in result.stderr
    assert "Ntry[2]: Amt: not a plain decimal string" in result.stderr.replace("\n", "")


def test_several_files_and_a_csv_mapping() -> None:
    result = run(
        "csv",
        str(FIXTURES / "hk_utf8_statement.csv"),
        str(FIXTURES / "hk_utf8_bad_encoding.csv"),
        "--mapping",
        "hk_utf8_signed",
        "--dry-run",
        "-i",
        "HSBC-HK",
        "--accounts",
        ACCOUNTS,
    )
    assert result.exit_code == 3
    assert len(result.stdout_bytes.splitlines()) == 5
    assert "total" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["swift", "x.sta"], "unknown format 'swift'; known: camt"),
        (["camt", "/nonexistent.xml"], "no such file: /nonexistent.xml"),
        (["csv", "/dev/zero", "--mapping", "hk_utf8_signed"], "not a regular file: /dev/zero"),
        (["camt", str(FIXTURES / "empty.xml"), "-i", "bad id"], "--institution 'bad id'"),
        (["csv", str(FIXTURES / "hk_utf8_statement.csv")], "needs --mapping"),
        (
            ["csv", str(FIXTURES / "hk_utf8_statement.csv"), "--mapping", "nope"],
            "no such file or shipped",
        ),
        (
            ["camt", str(FIXTURES / "empty.xml"), "--accounts", "/nonexistent.toml"],
            "--accounts /nonexistent.toml: No such file or directory",
        ),
        (
            ["camt", str(FIXTURES / "empty.xml"), "--accounts", str(FIXTURES)],
            f"--accounts {FIXTURES}: Is a directory",
        ),
        (
            ["csv", str(FIXTURES / "hk_utf8_statement.csv"), "--mapping", str(FIXTURES)],
            f"--mapping {FIXTURES}: cannot read mapping: Is a directory",
        ),
        (
            ["mt940", str(FIXTURES / "mt940_de_structured.sta"), "--encoding", "klingon"],
            "unknown encoding",
        ),
        (["camt", str(FIXTURES / "empty.xml"), "--timezone", "Mars/Olympus"], "unknown time zone"),
        # /dev/zero as a map or mapping was read for ever (memory without bound)
        (
            ["camt", str(FIXTURES / "empty.xml"), "--accounts", "/dev/zero"],
            "--accounts /dev/zero: not a regular file",
        ),
        (
            ["csv", str(FIXTURES / "hk_utf8_statement.csv"), "--mapping", "/dev/zero"],
            "--mapping /dev/zero: cannot read mapping: not a regular file",
        ),
        # codecs that are not text encodings, or refuse errors="replace": were tracebacks
        *(
            (
                ["mt940", str(FIXTURES / "mt940_de_structured.sta"), "--encoding", codec],
                f"--encoding {codec!r}: not a text encoding",
            )
            for codec in ("idna", "punycode", "base64", "rot13", "undefined")
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    if "-i" not in args:
        args = [*args, "-i", "TEST-BANK"]
    result = run(*args, "--dry-run")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_fifo_options_and_paths_are_refused_at_once(tmp_path, monkeypatch) -> None:
    """A FIFO nobody writes to: opening it to read waited for ever (the map, the mapping,
    the key file, or a path given to ingest, which was opened to see if it is a zip)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    sta = str(FIXTURES / "mt940_de_structured.sta")
    for args in (
        ["mt940", sta, "--accounts", str(fifo)],
        ["csv", str(FIXTURES / "hk_utf8_statement.csv"), "--mapping", str(fifo)],
        ["mt940", str(fifo)],
        ["auto", str(fifo)],
    ):
        result = run(*args, "--dry-run", "-i", "TEST-BANK")
        assert result.exit_code == 2, (args, result.output)
        assert "not a regular file" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    monkeypatch.setenv("DFIP_ACCOUNT_HASH_KEY_FILE", str(fifo))
    result = run("mt940", sta, "--dry-run", "-i", "TEST-BANK")
    assert result.exit_code == 2, result.output
    assert f"DFIP_ACCOUNT_HASH_KEY_FILE={fifo}: not a regular file" in result.stderr


def test_missing_institution_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run("camt", str(FIXTURES / "empty.xml"), "--dry-run")
    assert result.exit_code == 2
    assert "--institution is required" in result.stderr
    monkeypatch.delenv("DFIP_ACCOUNT_HASH_KEY")
    result = run("camt", str(FIXTURES / "empty.xml"), "--dry-run", "-i", "B")
    assert result.exit_code == 2
    assert "DFIP_ACCOUNT_HASH_KEY" in result.stderr


def test_kafka_unreachable_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFIP_KAFKA_CONNECT_TIMEOUT_MS", "300")
    monkeypatch.setenv("DFIP_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    result = run("camt", str(FIXTURES / "camt053_v08_ccb_usd.xml"), "-i", "CCB-NB")
    assert result.exit_code == 1
    assert "Kafka is unreachable at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.output


def test_progress_bar_for_large_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "PROGRESS_MIN_BYTES", 1)
    result = run(
        "camt",
        str(FIXTURES / "camt053_v02_icbc.xml"),
        "--dry-run",
        "-i",
        "ICBC-ZJ",
        "--accounts",
        ACCOUNTS,
    )
    assert result.exit_code == 3
    assert len(result.stdout_bytes.splitlines()) == 5


def test_raw_accounts_never_reach_the_output() -> None:
    result = run(
        "camt",
        str(FIXTURES / "camt053_v02_icbc.xml"),
        str(FIXTURES / "camt053_v13_multi.xml"),
        "--dry-run",
        "-i",
        "ICBC-ZJ",
        "--accounts",
        ACCOUNTS,
    )
    output = result.stdout + result.stderr
    for raw in ("1202021109900123456", "DE89370400440532013000", "358058100100123456"):
        assert raw not in output


def test_bad_kafka_settings_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFIP_KAFKA_SECURITY_PROTOCOL", "CARRIER_PIGEON")
    result = run("camt", str(FIXTURES / "camt053_v08_ccb_usd.xml"), "-i", "CCB-NB")
    assert result.exit_code == 2
    # named as the user set it (the variable and its value), as every other command does
    assert "DFIP_KAFKA_SECURITY_PROTOCOL=CARRIER_PIGEON: Input should be" in result.stderr


def test_missing_password_file_is_one_line_and_exit_2(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DFIP_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "absent"))
    result = run("camt", str(FIXTURES / "camt053_v08_ccb_usd.xml"), "-i", "CCB-NB")
    assert result.exit_code == 2
    assert "DFIP_KAFKA_SASL_PASSWORD_FILE: cannot read" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_unreachable_broker_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFIP_KAFKA_CONNECT_TIMEOUT_MS", "300")
    monkeypatch.setenv("DFIP_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    result = run("camt", str(FIXTURES / "camt053_v08_ccb_usd.xml"), "-i", "CCB-NB")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "dfip ingest: Kafka is unreachable at 127.0.0.1:1 (start it with `dfip kafka up` or set "
        "DFIP_KAFKA_BOOTSTRAP_SERVERS)"
    ]


class FailingProducer:
    """A transactional producer whose second commit fails and whose broker stays away."""

    transactional = True
    bootstrap_servers = "127.0.0.1:9"

    def __init__(self, settings: object, **_: object) -> None:
        self.settings = settings
        self.commits = 0
        self.closed: list[float | None] = []

    def missing_topics(self, names: object) -> list[str]:
        return []

    def begin(self) -> None:
        pass

    def send(self, event: object) -> None:
        pass

    def send_dead_letter(self, letter: object) -> None:
        pass

    def send_raw(self, *args: object, **kwargs: object) -> None:
        pass

    def commit(self) -> producer_module.DeliveryReport:
        self.commits += 1
        if self.commits == 2:
            report = producer_module.DeliveryReport(0, 0)
            raise producer_module.DeliveryError(report, [], pending=3)
        return producer_module.DeliveryReport(1, 0, {"dfip.transactions": 1})

    def abort(self, timeout: float | None = None) -> bool:
        return False

    def renew(self) -> None:
        raise producer_module.KafkaUnavailable("Kafka is unreachable at 127.0.0.1:9")

    def close(self, timeout: float | None = None) -> None:
        self.closed.append(timeout)

    def __enter__(self) -> FailingProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_a_kafka_failure_mid_ingest_is_the_summary_and_one_line(monkeypatch) -> None:
    monkeypatch.setattr(cli_module, "EventProducer", FailingProducer)
    monkeypatch.setattr(cli_module, "read_ledger", lambda settings: {})
    statement = str(FIXTURES / "hk_utf8_statement.csv")
    other = str(FIXTURES / "cn_gb18030_statement.csv")
    args = ["csv", statement, other, "-i", "HK", "--mapping", "hk_utf8_signed"]
    result = run(*args, "--accounts", ACCOUNTS, "--checkpoint-every", "2")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "ingest summary" in result.stderr
    assert "ledger: hk_utf8_statement.csv committed up to entry 2" in result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("dfip ingest:")]
    assert line == (
        "dfip ingest: Kafka delivery failed: 3 record(s) not acknowledged within the flush "
        "timeout; 0 document(s) committed completely; hk_utf8_statement.csv committed up to "
        "entry 2, the rest not; 1 document(s) not started (run the same command again once "
        "Kafka is back)"
    )


def test_fx_rates_need_no_account_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # a rate table names no account: nothing to pseudonymise, so no key is asked for
    monkeypatch.delenv("DFIP_ACCOUNT_HASH_KEY", raising=False)
    monkeypatch.delenv("DFIP_ACCOUNT_HASH_KEY_FILE", raising=False)
    result = run("fx", str(FIXTURES / "fx_cfets_central_parity.csv"), "-i", "cfets", "--dry-run")
    assert result.exit_code == 0, result.output
    assert '"kind":"fx_rate"' in result.stdout
    statement = run("mt940", str(FIXTURES / "mt940_triodos.sta"), "-i", "x", "--dry-run")
    assert statement.exit_code == 2
    assert "DFIP_ACCOUNT_HASH_KEY" in statement.output


def test_a_folder_stands_for_its_files(tmp_path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    for name in ("camt053_v08_ccb_usd.xml", "mt940_triodos.sta"):
        (drop / name).write_bytes((FIXTURES / name).read_bytes())
    (drop / ".partial").write_text("not yet complete")  # hidden: a transfer in progress
    (drop / "archive").mkdir()  # not descended into
    (drop / "archive" / "old.sta").write_text("garbage")
    one_by_one = run(
        "auto",
        *(str(drop / n) for n in sorted(("camt053_v08_ccb_usd.xml", "mt940_triodos.sta"))),
        "-i",
        "B",
        "--dry-run",
    )
    folder = run("auto", str(drop), "-i", "B", "--dry-run")
    assert folder.exit_code == one_by_one.exit_code, folder.output  # 3: unmapped accounts
    events = [line for line in folder.stdout.splitlines() if line.startswith("{")]
    assert events
    assert events == [line for line in one_by_one.stdout.splitlines() if line.startswith("{")]
    assert "garbage" not in folder.output
    assert ".partial" not in folder.output


def test_an_empty_folder_is_one_line(tmp_path) -> None:
    result = run("auto", str(tmp_path), "-i", "B", "--dry-run")
    assert result.exit_code == 2
    assert f"folder {tmp_path} has no files to ingest" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ((str(FIXTURES / "camt053_v08_ccb_usd.xml"),), "looks like a file, not a format"),
        (("statement.sta",), "dfip ingest auto statement.sta"),
        (("mt940",), "no file given: dfip ingest mt940 PATH"),
        (("camt.053",), "no file given: dfip ingest camt.053 PATH"),
        (("nonsense",), "unknown format 'nonsense' and no file given"),
    ],
)
def test_one_argument_says_what_is_missing(args: tuple[str, ...], said: str) -> None:
    """`dfip ingest FILE` is the commonest slip: the answer names the fix, exit code 2."""
    result = run(*args, "-i", "CCB-NB")
    assert result.exit_code == 2
    assert said in result.stderr.replace("\n", "")
    assert "Traceback" not in result.output


def test_a_file_that_vanishes_mid_run_stops_with_the_summary(accounts, tmp_path, capsys) -> None:
    """A file removed (or made unreadable) after the run started was a bare OSError: exit 2
    from dfip's catch-all, no summary of what was committed, the transaction left open."""
    from adapters import ParseContext, get_parser
    from adapters.ingest import DryRunSink, IngestAborted, ingest_files

    parser = get_parser("mt940")(ParseContext("TEST-BANK", accounts))
    first = FIXTURES / "mt940_de_structured.sta"
    gone = tmp_path / "gone.sta"
    with pytest.raises(IngestAborted) as info:
        ingest_files(parser, [first, gone], DryRunSink())
    assert isinstance(info.value.cause, FileNotFoundError)
    assert [f.complete for f in info.value.summary.files] == [True, False]
    capsys.readouterr()  # the dry run's events
    with pytest.raises(typer.Exit) as exited:
        cli_module._aborted(info.value, 3)
    assert exited.value.exit_code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"dfip ingest: {gone}: cannot be read any more (No such file")
    assert "1 document(s) committed completely" in line
    assert "1 document(s) not started" in line


def test_a_rejection_never_quotes_a_whole_uscc() -> None:
    # "borrower_uscc: USCC check character does not match (got 91330106MA2H3K4P71)" was
    # printed in the summary and kept in the dead letter's reason
    from adapters.base import Rejected

    rejected = Rejected("f:1", "borrower_uscc", "does not match (got 91330106MA2H3K4P71)", b"")
    assert rejected.reason == "does not match (got 91330106**********)"
    kept = Rejected("f:1", ":61:", "not a statement line (got 2403050305D35,50NONREF)", b"")
    assert "2403050305D35,50NONREF" in kept.reason


def test_a_member_of_a_zip_is_named_inside_the_archive_given(tmp_path) -> None:
    # messages named the temporary folder it was unpacked to (/tmp/dfip-unzip-…/…)
    import io
    import zipfile

    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("a.sta", (FIXTURES / "mt940_de_structured.sta").read_bytes())
    outer = tmp_path / "银行 回单.zip"
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("inner.zip", inner.getvalue())
    for fmt in ("camt", "auto"):
        result = run(fmt, str(outer), "--dry-run", "-i", "TEST-BANK")
        assert result.exit_code in (2, 3), result.output
        assert f"{outer}/inner.zip" in result.stderr.replace("\n", "")
        assert "dfip-unzip-" not in result.stderr


def test_control_characters_from_a_hostile_file_are_escaped_on_the_terminal(tmp_path) -> None:
    # an amount cell holding ESC sequences (clear screen, set the window title) reached the
    # analyst's terminal through the rejection's "(got …)"
    text = (FIXTURES / "cn_gb18030_statement.csv").read_bytes().decode("gb18030")
    assert "86000.00" in text
    hostile = tmp_path / "statement.csv"
    hostile.write_bytes(
        text.replace("86000.00", "\x1b]0;pwned\x07\x1b[2J86000.00", 1).encode("gb18030")
    )
    result = run(
        "csv",
        str(hostile),
        "--mapping",
        "cn_gb18030_split",
        "--accounts",
        ACCOUNTS,
        "--dry-run",
        "-i",
        "TEST-BANK",
    )
    assert result.exit_code == 3, result.output
    assert "\x1b" not in result.stderr
    assert "\x07" not in result.stderr
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in result.stderr


def test_printable_escapes_controls_and_keeps_text() -> None:
    from core.text import printable

    assert printable("交易\x1b[31m\r\n\tok\x9b") == "交易\\x1b[31m\\x0d\\x0a\tok\\x9b"
    assert printable("a\nb\x1b", lines=True) == "a\nb\\x1b"
