"""Fixtures for the adapter tests: the fixture folder, a fixed key, a parse helper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters import AccountDirectory, ParseContext, Parser, Rejected, get_parser
from schemas import InstitutionType

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "adapters"
KEY = b"test-key-dfip-adapters-0123456789"


@dataclass
class Parsed:
    events: list  # canonical events, in file order
    rejected: list[Rejected]
    parser: Parser
    results: list  # events and rejections, interleaved as yielded


@pytest.fixture(autouse=True)
def _hash_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DFIP_ACCOUNT_HASH_KEY", KEY.decode())
    monkeypatch.delenv("DFIP_ACCOUNT_HASH_KEY_FILE", raising=False)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def accounts() -> AccountDirectory:
    return AccountDirectory.load(FIXTURES / "accounts.toml", KEY)


@pytest.fixture
def parse(accounts: AccountDirectory) -> Callable[..., Parsed]:
    """parse(format, file name or path, **ParseContext fields) → Parsed."""

    def run(fmt: str, name: str | Path, **context: object) -> Parsed:
        path = name if isinstance(name, Path) else FIXTURES / name
        options: dict = {
            "institution": "TEST-BANK",
            "accounts": accounts,
            "institution_type": InstitutionType.bank,
        }
        options.update(context)
        parser = get_parser(fmt)(ParseContext(**options))
        results = list(parser.parse(path))
        events = [r for r in results if not isinstance(r, Rejected)]
        rejected = [r for r in results if isinstance(r, Rejected)]
        return Parsed(events, rejected, parser, results)

    return run


def money(event: object) -> str:
    """The direction/amount/currency part of a servicer-reference event id."""
    return f"{event.direction}:{event.amount.normalize():f}:{event.currency}"  # type: ignore[attr-defined]
