"""Deterministic identifiers: the same source entry always yields the same `event_id`.

Adapters may deliver one statement twice; the stream deduplicates on `event_id`, so the
id must come from the document, never from a clock or a random generator.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

__all__ = [
    "DFIP_NAMESPACE",
    "dead_letter_id",
    "make_event_id",
    "normalise_account",
    "pseudonymise_account",
]

DFIP_NAMESPACE = uuid.UUID("6f1c6b8e-3d0a-5f55-9d8e-d1f1b0a2c7e4")
"""UUIDv5 namespace of DFIP event ids. Changing it changes every id: never do that."""

_SEP = "\x1f"  # ASCII unit separator: cannot occur in ids, so ("a", "bc") != ("ab", "c")


def make_event_id(*parts: str) -> str:
    """`uuid5(DFIP_NAMESPACE, "\\x1f".join(parts))` as a string.

    Call with (institution, document/statement id, entry reference[, sub-index]).
    """
    if not parts:
        raise ValueError("make_event_id needs at least one part")
    for part in parts:
        if not isinstance(part, str):
            raise TypeError(f"event id parts must be str, got {type(part).__name__}")
        if _SEP in part:
            raise ValueError("event id parts must not contain the \\x1f separator")
    return str(uuid.uuid5(DFIP_NAMESPACE, _SEP.join(parts)))


def dead_letter_id(
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    source_location: str | None = None,
) -> str:
    """Deterministic dead-letter id: from topic/partition/offset, else from the file location.

    Re-processing the same record after a crash yields the same id, so the dead-letter
    topic can be deduplicated like the event topics.
    """
    if topic is not None and partition is not None and offset is not None:
        return make_event_id("deadletter", topic, str(partition), str(offset))
    if source_location:
        return make_event_id("deadletter", source_location)
    raise ValueError("need topic+partition+offset or a source_location")


def normalise_account(raw: str) -> str:
    """Canonical account text before hashing: no spaces or dashes, upper case."""
    return "".join(raw.split()).replace("-", "").upper()


def pseudonymise_account(raw: str, key: bytes) -> str:
    """`"acct_" + hmac_sha256(key, normalised raw)[:32 hex]`.

    A keyed hash, so the reference cannot be reversed by hashing all account numbers;
    raw account numbers never leave the adapter.
    """
    if not key:
        raise ValueError("pseudonymisation key must not be empty")
    account = normalise_account(raw)
    if not account:
        raise ValueError("account number is empty")
    digest = hmac.new(key, account.encode("utf-8"), hashlib.sha256).hexdigest()
    return "acct_" + digest[:32]
