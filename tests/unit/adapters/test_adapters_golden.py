"""Every fixture parses to exactly its reviewed expected output (tests/fixtures/adapters/expected).

Set DFIP_UPDATE_GOLDEN=1 to rewrite the expected files after a deliberate change, then
review the diff: these files are the specification of what each sample document means.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import orjson
import pytest
from conftest import FIXTURES

from adapters import Rejected
from schemas import decode, encode

EXPECTED = FIXTURES / "expected"
CASES = tomllib.loads((EXPECTED / "cases.toml").read_text(encoding="utf-8"))["case"]


def result_line(result: object, path: Path) -> dict:
    if isinstance(result, Rejected):
        return {
            "rejected": {
                "location": result.location.replace(str(path), path.name, 1),
                "field": result.field,
                "error_class": result.error_class,
            }
        }
    return {"event": orjson.loads(encode(result))}


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_fixture_parses_to_expected(case: dict, parse) -> None:
    path = FIXTURES / case["file"]
    options = {"mapping": Path(case["mapping"])} if "mapping" in case else {}
    parsed = parse(case["format"], path, **options)
    lines = [result_line(r, path) for r in parsed.results]
    golden = EXPECTED / f"{case['file']}.jsonl"
    if os.environ.get("DFIP_UPDATE_GOLDEN"):
        golden.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    expected = [orjson.loads(line) for line in golden.read_bytes().splitlines()]
    assert lines == expected
    # Every event survives the wire codec unchanged.
    for event in parsed.events:
        assert decode(encode(event)) == event
