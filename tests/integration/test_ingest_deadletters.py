"""Large rejections reach the dead-letter topic on the real broker.

The adapters' producer allows requests as large as `dfip.deadletter`'s `max.message.bytes`
(one number in the catalog), and a dead letter keeps at most MAX_ORIGINAL_KEPT bytes of its
original, with the full length and the SHA-256 of the whole in the reason. Before, each of
these inputs ended in `MessageSizeTooLargeError`, nothing on the topic, exit 1:

- a CSV line of 50 MB (cut to MAX_ORIGINAL_KEPT);
- a camt.053 file cut off inside a 1.4 MB entry (the parser keeps the first 1 MiB of the
  unread rest: about 1.4 MB in base64);
- a PSD2 page of 950 kB whose transaction list is not a list (kept whole).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from adapters.cli import ingest_command
from adapters.ingest import MAX_ORIGINAL_KEPT
from core.kafka_config import KafkaSettings
from schemas import DeadLetter, decode_as
from tests.support.workers import read_topic

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "adapters"
KEY = "test-key-dfip-adapters-0123456789"
ACCOUNTS = str(FIXTURES / "accounts.toml")


@pytest.fixture(autouse=True)
def _env(kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFIP_ACCOUNT_HASH_KEY", KEY)
    monkeypatch.delenv("DFIP_ACCOUNT_HASH_KEY_FILE", raising=False)
    monkeypatch.setenv("DFIP_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("DFIP_KAFKA_TOPIC_PREFIX", kafka_settings.topic_prefix)


def csv_with_a_huge_line(path: Path) -> tuple[Path, bytes]:
    lines = (FIXTURES / "hk_utf8_statement.csv").read_text(encoding="utf-8").splitlines()
    huge = f'012-345678-001,04/03/2024,04/03/2024,"{"X" * 50_000_000}",HKBIG,10.00,HKD,1.00,HK'
    path.write_text("\n".join([lines[0], lines[1], huge, lines[2]]) + "\n", encoding="utf-8")
    return path, huge.encode()


def camt_cut_inside_a_huge_entry(path: Path) -> Path:
    text = (FIXTURES / "camt053_v02_icbc.xml").read_text(encoding="utf-8")
    cut = text[: text.index("<Ntry>")]
    path.write_text(cut + "<Ntry><AddtlNtryInf>" + "Z" * 1_400_000, encoding="utf-8")
    return path


def psd2_page_with_a_bad_list(path: Path) -> Path:
    page = json.loads((FIXTURES / "psd2_abn_transactions.json").read_text(encoding="utf-8"))
    page["transactions"]["booked"] = "x" * 950_000
    path.write_text(json.dumps(page), encoding="utf-8")
    return path


def ingest(*args: str) -> object:
    app = typer.Typer()
    app.command("ingest")(ingest_command)
    app.command("noop")(lambda: None)
    return CliRunner().invoke(app, ["ingest", *args])


def letters(settings: KafkaSettings) -> list[DeadLetter]:
    return [decode_as(r.value, DeadLetter) for r in read_topic(settings, "dfip.deadletter")]


def test_large_rejections_all_reach_the_dead_letter_topic(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    csv_path, huge = csv_with_a_huge_line(tmp_path / "huge_line.csv")
    result = ingest(
        "csv", str(csv_path), "-i", "HK-BANK", "--mapping", "hk_utf8_signed", "--accounts", ACCOUNTS
    )
    assert result.exit_code == 3, result.output  # type: ignore[attr-defined]
    [letter] = letters(kafka_settings)
    kept = base64.b64decode(letter.original_b64)
    assert len(kept) == MAX_ORIGINAL_KEPT
    assert huge.startswith(kept)
    note = re.search(
        r"first (\d+) of (\d+) bytes kept, sha256 of the whole ([0-9a-f]{64})", letter.reason
    )
    assert note is not None, letter.reason
    # the parser's original is the row with its line end
    assert int(note[2]) in (len(huge), len(huge) + 1)
    assert note[3] in {hashlib.sha256(huge).hexdigest(), hashlib.sha256(huge + b"\n").hexdigest()}

    camt = camt_cut_inside_a_huge_entry(tmp_path / "cut.xml")
    result = ingest("camt", str(camt), "-i", "ICBC-ZJ", "--accounts", ACCOUNTS)
    assert result.exit_code == 3, result.output  # type: ignore[attr-defined]
    psd2 = psd2_page_with_a_bad_list(tmp_path / "page.json")
    result = ingest("psd2", str(psd2), "-i", "ABN", "--accounts", ACCOUNTS)
    assert result.exit_code == 3, result.output  # type: ignore[attr-defined]

    by_file = {
        (letter.source_location or "").split(":")[0].split("#")[0]: letter
        for letter in letters(kafka_settings)
    }
    camt_letter = by_file[str(camt)]
    camt_original = base64.b64decode(camt_letter.original_b64)
    assert len(camt_original) > 1_000_000
    assert camt_original.lstrip().startswith(b"<Ntry><AddtlNtryInf>ZZZ")  # the unread rest
    assert camt_original in camt.read_bytes()
    page_letter = by_file[str(psd2)]
    assert len(page_letter.original_b64) > 1_250_000  # over the client's old 1 MiB limit
    assert b'"' + b"x" * 950_000 + b'"' in base64.b64decode(page_letter.original_b64)
