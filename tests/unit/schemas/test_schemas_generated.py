"""Committed generated artefacts match the generators; JSON Schemas agree with the models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from schemas import DeadLetter, docs_gen, encode, jsonschema_gen
from schemas.examples import example_events

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[3]


def test_json_schema_files_match_the_models():
    assert jsonschema_gen.check() == [], "run: python -m schemas.jsonschema_gen"


def test_events_doc_matches_the_generator():
    assert docs_gen.check(), "run: python -m schemas.docs_gen"


@pytest.mark.parametrize("module", ["schemas.jsonschema_gen", "schemas.docs_gen"])
def test_check_commands_exit_zero_when_in_sync(module):
    result = subprocess.run(
        [sys.executable, "-m", module, "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_check_reports_drift(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonschema_gen, "JSON_DIR", tmp_path)
    assert "missing Event.json" in jsonschema_gen.check()
    assert jsonschema_gen.main([]) == 0
    assert jsonschema_gen.check() == []
    (tmp_path / "FxRate.json").write_text("{}", encoding="utf-8")
    (tmp_path / "Old.json").write_text("{}", encoding="utf-8")
    assert set(jsonschema_gen.check()) == {"out of date FxRate.json", "stale Old.json"}
    assert jsonschema_gen.main(["--check"]) == 1
    monkeypatch.setattr(docs_gen, "DOC_PATH", tmp_path / "events.md")
    assert docs_gen.main(["--check"]) == 1
    assert docs_gen.main([]) == 0
    assert docs_gen.main(["--check"]) == 0


def _validator(name: str):
    schema = json.loads((jsonschema_gen.JSON_DIR / f"{name}.json").read_text(encoding="utf-8"))
    cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_every_example_validates_against_its_json_schema():
    event_schema = _validator("Event")
    for event in example_events():
        data = orjson.loads(encode(event))
        if isinstance(event, DeadLetter):
            _validator("DeadLetter").validate(data)
        else:
            event_schema.validate(data)
            name = "LoanEvent" if data["kind"] == "loan" else type(event).__name__
            _validator(name).validate(data)


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 25600.5},  # float money
        {"amount": "1,000.00"},
        {"currency": "XXX"},
        {"kind": "transfer"},
        {"unknown": 1},
        {"account_ref": "6222021234567890"},
        {"enterprise_uscc": "not-a-uscc"},
    ],
)
def test_json_schema_rejects_what_the_decoder_rejects(change):
    data = {**orjson.loads(encode(example_events()[0])), **change}
    assert list(_validator("Event").iter_errors(data))


@pytest.mark.parametrize("field", ["kind", "schema_version", "event_id"])
def test_json_schema_requires_wire_constants(field):
    data = orjson.loads(encode(example_events()[0]))
    del data[field]
    assert list(_validator("TransactionEvent").iter_errors(data))


def test_events_doc_has_one_example_per_event_type_and_the_topic_table():
    text = docs_gen.DOC_PATH.read_text(encoding="utf-8")
    for event in example_events():
        assert f"`{type(event).__name__}`" in text
        assert f'"event_id": "{event.event_id}"' in text
    assert text.count("```json") == len(example_events())
    for name in ("dfip.transactions", "dfip.loans", "dfip.scores", "dfip.fx", "dfip.deadletter"):
        assert f"| `{name}` |" in text
