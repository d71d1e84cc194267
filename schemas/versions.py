"""Schema versions: which `schema_version` values readers accept, and the upgrade chain.

The rule (docs/schema-versioning.md): adding an optional field keeps the version; any
other change bumps `SCHEMA_VERSION`, keeps the previous version in `SUPPORTED_VERSIONS`
and registers an upgrader here that rewrites an old payload (a JSON object) into the
next version's shape. Readers upgrade before validating, so the models only ever describe
the current version. Unknown versions are rejected (`unsupported_version`) and go to the
dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["SCHEMA_VERSION", "SUPPORTED_VERSIONS", "UPGRADERS", "Payload", "upgrade"]

Payload = dict[str, Any]

SCHEMA_VERSION = 1
"""The version every model validates and every writer emits."""

SUPPORTED_VERSIONS: frozenset[int] = frozenset({1})
"""Versions a reader accepts: the current one and older ones with an upgrade path."""

UPGRADERS: dict[int, Callable[[Payload], Payload]] = {}
"""`UPGRADERS[v]` turns a version-`v` payload into a version-`v + 1` payload.

Example for a future version 2 that renamed `bank_tx_code`:

    def _v1_to_v2(p: Payload) -> Payload:
        p = dict(p)
        p["bank_transaction_code"] = p.pop("bank_tx_code", None)
        return p

    UPGRADERS[1] = _v1_to_v2
"""


def upgrade(payload: Payload, version: int) -> Payload:
    """Rewrite a supported older payload into the current version (sets `schema_version`).

    The caller has checked `version in SUPPORTED_VERSIONS`; a missing step is a
    programming error (a version listed as supported without its upgrader).
    """
    while version < SCHEMA_VERSION:
        step = UPGRADERS.get(version)
        if step is None:
            raise LookupError(f"no upgrader registered from schema_version {version}")
        payload = step(payload)
        version += 1
    if payload.get("schema_version") != SCHEMA_VERSION:
        payload = {**payload, "schema_version": SCHEMA_VERSION}
    return payload
