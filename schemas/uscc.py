"""Unified Social Credit Code (GB 32100-2015): the enterprise key of every USCC topic."""

from __future__ import annotations

from functools import lru_cache

from stdnum import exceptions as stdnum_errors
from stdnum.cn import uscc as stdnum_uscc

from schemas.enums import Region
from schemas.errors import SchemaError, field_error

__all__ = [
    "USCC_PATTERN",
    "ZHEJIANG_PREFECTURES",
    "check_uscc",
    "make_uscc",
    "normalize_uscc",
    "region_of",
]

ZHEJIANG_PREFECTURES: dict[str, Region] = {
    "3301": Region.hangzhou,
    "3302": Region.ningbo,
    "3303": Region.wenzhou,
    "3304": Region.jiaxing,
    "3305": Region.huzhou,
    "3306": Region.shaoxing,
    "3307": Region.jinhua,
    "3308": Region.quzhou,
    "3309": Region.zhoushan,
    "3310": Region.taizhou,
    "3311": Region.lishui,
}
"""GB/T 2260 prefecture prefix (USCC characters 3–6) → region label."""

_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_PATTERN = "^[0-9]{8}[0-9A-HJ-NP-RTUW-Y]{10}$"
"""Canonical wire form (the check character is verified by `normalize_uscc`)."""
_MAX_INPUT = 64  # cheap guard before stdnum; real codes are 18 characters


def _normalize(value: str) -> str:
    return str(stdnum_uscc.validate(value.strip().upper()))


# Enterprise keys repeat constantly in a stream; stdnum is pure Python (~7 µs), so cache.
_normalize_cached = lru_cache(maxsize=1 << 16)(_normalize)


def check_uscc(value: object, *, cached: bool = True) -> str:
    """Like `normalize_uscc` but raises a plain `ValueError` (for pydantic field validators).

    ``cached=False`` for callers that remember the codes they saw themselves (the wire's
    check, schemas/fields.py): a second cache of the same codes costs ~250 bytes a code.
    """
    if not isinstance(value, str) or len(value) > _MAX_INPUT:
        raise ValueError("must be an 18-character USCC string")
    try:
        return _normalize_cached(value) if cached else _normalize(value)
    except stdnum_errors.ValidationError as exc:
        raise ValueError(_reason(exc)) from None


def normalize_uscc(value: str) -> str:
    """Strip, upper-case and validate (length, alphabet, check character) a USCC.

    Raises `SchemaError` (`invalid_field`, path `enterprise_uscc`) when invalid.
    """
    try:
        return check_uscc(value)
    except ValueError as exc:
        raise SchemaError(
            "invalid_field", [field_error("enterprise_uscc", value, str(exc))]
        ) from None


def _reason(exc: stdnum_errors.ValidationError) -> str:
    if isinstance(exc, stdnum_errors.InvalidChecksum):
        return "USCC check character does not match"
    if isinstance(exc, stdnum_errors.InvalidLength):
        return "USCC must be 18 characters"
    return "USCC has characters outside its alphabet"


def region_of(uscc: str) -> Region:
    """Zhejiang prefecture city from characters 3–6 (3301..3311), else `other`."""
    return ZHEJIANG_PREFECTURES.get(uscc[2:6], Region.other)


def _org_check_char(org8: str) -> str:
    # GB 11714 organisation-code check character (USCC position 17).
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    # Characters are valued in base 36 here (A=10 … Z=35), unlike the USCC alphabet.
    total = sum(int(c, 36) * w for c, w in zip(org8, weights, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def _is_digit(char: str) -> bool:
    return len(char) == 1 and char in "0123456789"


def make_uscc(division6: str, org_code8: str, authority: str = "9", entity_type: str = "1") -> str:
    """Build a valid USCC from its parts, computing both check characters.

    For the simulator and tests: `make_uscc("330106", "12345678")` is a Hangzhou company.
    """
    org = org_code8.upper()
    if len(division6) != 6 or not division6.isdigit() or not division6.isascii():
        raise ValueError(f"division code must be 6 digits, got {division6!r}")
    if len(org) != 8 or any(c not in _ALPHABET for c in org):
        raise ValueError(f"organisation code must be 8 USCC characters, got {org_code8!r}")
    if not (_is_digit(authority) and _is_digit(entity_type)):
        raise ValueError("authority and entity type must be single digits")
    body = authority + entity_type + division6 + org + _org_check_char(org)
    return body + str(stdnum_uscc.calc_check_digit(body))
