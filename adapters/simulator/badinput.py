"""Deliberately broken payloads, each built so exactly one error class applies.

Every function takes the bytes of a valid event (or nothing) and returns bytes a reader must
dead-letter with the named class. They are pure functions of their inputs and the rng.
"""

from __future__ import annotations

import random

import orjson

from schemas import SUPPORTED_CURRENCIES

__all__ = [
    "FUTURE_VERSION",
    "UNKNOWN_CURRENCIES",
    "bad_uscc",
    "future_version",
    "garbage",
    "truncated_json",
    "unknown_currency",
    "with_uscc",
    "wrong_shape",
]

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
# Plausible mistakes: not ISO 4217 (RMB, CNH offshore yuan) or not supported (XBT).
UNKNOWN_CURRENCIES = ("RMB", "CNH", "XBT")
assert not SUPPORTED_CURRENCIES.intersection(UNKNOWN_CURRENCIES)

FUTURE_VERSION = 99


def garbage(rng: random.Random) -> bytes:
    """Binary noise; the 0xFF lead byte never occurs in UTF-8, so it cannot be text."""
    return b"\xff\xfe" + rng.randbytes(rng.randint(8, 120))


def truncated_json(valid: bytes, rng: random.Random) -> bytes:
    """A JSON object cut short (a dropped TCP segment, a half-written file).

    A proper prefix of a serialised object can never be a complete JSON value; cutting
    only before an ASCII byte keeps it valid UTF-8, so it is `invalid_json`, not
    `undecodable`.
    """
    cuts = [i for i in range(1, len(valid) - 1) if valid[i] < 0x80]
    return valid[: rng.choice(cuts)]


def wrong_shape(valid: bytes, rng: random.Random) -> bytes:
    """Valid JSON that is not an event object: wrapped in an array, a bare scalar, or an
    object of a kind no topic carries."""
    variant = rng.randrange(3)
    if variant == 0:
        return b"[" + valid + b"]"
    if variant == 1:
        return orjson.dumps(rng.choice(["transaction", 42, None, True]))
    payload = orjson.loads(valid)
    payload["kind"] = "payment_order"
    return orjson.dumps(payload)


def _mutate(valid: bytes, field: str, value: object) -> bytes:
    payload = orjson.loads(valid)
    if field not in payload:
        raise ValueError(f"event has no field {field!r}")
    payload[field] = value
    return orjson.dumps(payload)


def future_version(valid: bytes) -> bytes:
    """The same event stamped with a schema version no reader knows yet."""
    return _mutate(valid, "schema_version", FUTURE_VERSION)


def unknown_currency(valid: bytes, rng: random.Random) -> bytes:
    return _mutate(valid, "currency", rng.choice(UNKNOWN_CURRENCIES))


def bad_uscc(uscc: str, rng: random.Random) -> str:
    """`uscc` with a different last character: the check character no longer matches."""
    wrong = rng.choice([c for c in _USCC_CHARS if c != uscc[-1]])
    return uscc[:-1] + wrong


def with_uscc(valid: bytes, uscc: str) -> bytes:
    return _mutate(valid, "enterprise_uscc", uscc)
