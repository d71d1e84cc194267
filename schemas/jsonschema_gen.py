"""Generate schemas/json/<Model>.json from the pydantic models.

These files are the contract for producers written in other languages. They are
generated, committed, and checked for drift in CI:

    python -m schemas.jsonschema_gen          # rewrite the files
    python -m schemas.jsonschema_gen --check  # exit 1 if any file differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from schemas.alerts import Alert, AlertAck
from schemas.events import (
    DeadLetter,
    DigitalizationScore,
    Event,
    FxRate,
    LoanEvent,
    TransactionEvent,
)
from schemas.versions import SCHEMA_VERSION

__all__ = ["JSON_DIR", "SCHEMA_TARGETS", "check", "render_all", "write"]

JSON_DIR = Path(__file__).with_name("json")

SCHEMA_TARGETS: dict[str, Any] = {
    "Event": Event,
    "TransactionEvent": TransactionEvent,
    "LoanEvent": LoanEvent,
    "DigitalizationScore": DigitalizationScore,
    "FxRate": FxRate,
    "DeadLetter": DeadLetter,
    "Alert": Alert,
    "AlertAck": AlertAck,
}
"""File stem → model or union alias."""


def _name_nested_unions(schema: dict[str, Any]) -> None:
    # pydantic inlines the loan union inside `Event` and puts that object into the
    # OpenAPI discriminator mapping, whose values must be references: hoist it to $defs.
    mapping = schema.get("discriminator", {}).get("mapping", {})
    for tag, target in list(mapping.items()):
        if not isinstance(target, dict):
            continue
        def_name = "LoanEvent" if tag == "loan" else f"{tag}_union"
        ref = f"#/$defs/{def_name}"
        schema.setdefault("$defs", {})[def_name] = target
        mapping[tag] = ref
        schema["oneOf"] = [{"$ref": ref} if item == target else item for item in schema["oneOf"]]


def schema_for(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one target, as written to its file."""
    schema = TypeAdapter(SCHEMA_TARGETS[name]).json_schema(mode="validation")
    _name_nested_unions(schema)
    schema.setdefault("title", name)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:dfip:schema:{name}:v{SCHEMA_VERSION}",
        "x-dfip-schema-version": SCHEMA_VERSION,
        **schema,
    }


def render(name: str) -> str:
    return json.dumps(schema_for(name), indent=2, ensure_ascii=False) + "\n"


def render_all() -> dict[Path, str]:
    """Every schema file path → its expected content."""
    return {JSON_DIR / f"{name}.json": render(name) for name in SCHEMA_TARGETS}


def write() -> list[Path]:
    """Write every file; remove stale ones. Returns the files that changed."""
    JSON_DIR.mkdir(exist_ok=True)
    expected = render_all()
    changed = []
    for path, text in expected.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    for stale in set(JSON_DIR.glob("*.json")) - set(expected):
        stale.unlink()
        changed.append(stale)
    return changed


def check() -> list[str]:
    """Problems (empty when the committed files match the models)."""
    expected = render_all()
    problems = []
    for path, text in expected.items():
        if not path.exists():
            problems.append(f"missing {path.name}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"out of date {path.name}")
    problems += [f"stale {p.name}" for p in sorted(set(JSON_DIR.glob("*.json")) - set(expected))]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when files drift")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for problem in problems:
            print(f"schemas/json: {problem}", file=sys.stderr)
        if problems:
            print("run: python -m schemas.jsonschema_gen", file=sys.stderr)
        return 1 if problems else 0
    for path in write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
