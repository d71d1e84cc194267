"""Event ids: unique within every file, stable across re-sends, shared references kept apart."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import FIXTURES

EXPECTED = FIXTURES / "expected"
CASES = tomllib.loads((EXPECTED / "cases.toml").read_text(encoding="utf-8"))["case"]


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_every_fixture_has_unique_stable_ids(case: dict, parse) -> None:
    options = {"mapping": Path(case["mapping"])} if "mapping" in case else {}
    first = parse(case["format"], case["file"], **options)
    again = parse(case["format"], case["file"], **options)
    ids = [e.event_id for e in first.events]
    assert len(ids) == len(set(ids)), "two entries of one file share an event id"
    assert ids == [e.event_id for e in again.events], "a re-sent file must keep its ids"


MT940_SHARED = """:20:STMT1
:25:BKCHCNBJ300/350055667788
:28C:7/1
:60F:C240304EUR1000,00
:61:2403050305D800,00NTRFNONREF//55555
:86:/REMI/rent
:61:2403050305C3000,00NTRFNONREF//55555
:86:/REMI/invoice
:61:2403050305C3000,00NTRFNONREF//55555
:86:/REMI/invoice again
:62F:C240305EUR5200,00
"""


def test_mt940_entries_sharing_a_bank_reference_keep_distinct_ids(tmp_path: Path, parse) -> None:
    path = tmp_path / "shared.sta"
    path.write_text(MT940_SHARED, encoding="utf-8")
    parsed = parse("mt940", path)
    assert len(parsed.events) == 3
    assert len({e.event_id for e in parsed.events}) == 3


def test_shared_reference_ids_do_not_depend_on_order(tmp_path: Path, parse) -> None:
    """An intraday report with only the credit and the day's statement with both agree."""
    credit_only = MT940_SHARED.replace(
        ":61:2403050305D800,00NTRFNONREF//55555\n:86:/REMI/rent\n", ""
    )
    full = tmp_path / "full.sta"
    full.write_text(MT940_SHARED, encoding="utf-8")
    part = tmp_path / "part.sta"
    part.write_text(credit_only, encoding="utf-8")
    full_ids = [e.event_id for e in parse("mt940", full).events]
    part_ids = [e.event_id for e in parse("mt940", part).events]
    assert part_ids == full_ids[1:]


def test_camt_repeated_servicer_reference_keeps_distinct_ids(tmp_path: Path, parse) -> None:
    from test_adapters_camt import camt, entry, write

    text = camt(8, entry("100.00", ref="R1") + entry("100.00", ref="R1") + entry("5.00", ref="R1"))
    parsed = parse("camt", write(tmp_path, text))
    assert len(parsed.events) == 3
    assert len({e.event_id for e in parsed.events}) == 3
