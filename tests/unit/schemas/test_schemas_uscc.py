"""USCC validation (stdnum), normalisation, region mapping and the code builder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from schema_strategies import USCC_ALPHABET, usccs
from stdnum.cn import uscc as stdnum_uscc

from schemas import Region, SchemaError, make_uscc, normalize_uscc, region_of

VALID = "91110000600037341L"


def test_known_valid_code():
    assert normalize_uscc(VALID) == VALID


@pytest.mark.parametrize(
    "raw", ["91110000600037341l", "  91110000600037341L\n", "\t91110000600037341l "]
)
def test_normalises_case_and_surrounding_whitespace(raw):
    assert normalize_uscc(raw) == VALID


@pytest.mark.parametrize("check", sorted(set(USCC_ALPHABET) - {"L"}))
def test_every_wrong_check_character_is_rejected(check):
    with pytest.raises(SchemaError) as info:
        normalize_uscc(VALID[:-1] + check)
    err = info.value
    assert err.error_class == "invalid_field"
    assert err.errors[0].path == "enterprise_uscc"
    assert "check character" in err.errors[0].reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "18 characters"),
        ("9111000060003734", "18 characters"),
        (VALID + "0", "18 characters"),
        ("91110000600037341I", "alphabet"),  # I, O, Z, S, V are not in the alphabet
        ("9111000060003734OL", "alphabet"),
        ("A1110000600037341L", "alphabet"),  # positions 1-8 are digits
        ("9111000060003734ZL", "alphabet"),
    ],
)
def test_malformed_codes_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(SchemaError) as info:
        normalize_uscc(raw)
    assert reason in info.value.errors[0].reason


@pytest.mark.parametrize("raw", [None, 91110000600037341, "9" * 10_000])
def test_non_strings_and_huge_inputs_are_rejected(raw):
    with pytest.raises(SchemaError):
        normalize_uscc(raw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prefix", "region"),
    [
        ("3301", Region.hangzhou),
        ("3302", Region.ningbo),
        ("3303", Region.wenzhou),
        ("3304", Region.jiaxing),
        ("3305", Region.huzhou),
        ("3306", Region.shaoxing),
        ("3307", Region.jinhua),
        ("3308", Region.quzhou),
        ("3309", Region.zhoushan),
        ("3310", Region.taizhou),
        ("3311", Region.lishui),
        ("3300", Region.other),  # the province itself
        ("3312", Region.other),
        ("3201", Region.other),  # Nanjing, Jiangsu
        ("1100", Region.other),  # Beijing
    ],
)
def test_region_from_characters_3_to_6(prefix, region):
    code = make_uscc(prefix + "06", "12345678")
    assert region_of(code) == region


def test_all_eleven_zhejiang_cities_are_distinct_regions():
    regions = {region_of(make_uscc(f"33{i:02d}00", "12345678")) for i in range(1, 12)}
    assert len(regions) == 11
    assert Region.other not in regions


def test_make_uscc_rebuilds_the_known_code():
    # Both check characters: position 17 (GB 11714, here "1") and 18 ("L").
    assert make_uscc("110000", "60003734") == VALID


@given(usccs)
def test_built_codes_are_valid_for_stdnum(code):
    assert stdnum_uscc.is_valid(code)
    assert normalize_uscc(code.lower()) == code


@given(st.text(st.sampled_from(USCC_ALPHABET), min_size=17, max_size=17))
def test_exactly_one_check_character_is_valid(body):
    if not body[:8].isdigit():
        return
    valid = [c for c in USCC_ALPHABET if stdnum_uscc.is_valid(body + c)]
    assert len(valid) == 1
    assert normalize_uscc(body + valid[0]) == body + valid[0]


@pytest.mark.parametrize(
    ("division", "org", "kwargs"),
    [
        ("33010", "12345678", {}),
        ("3301066", "12345678", {}),
        ("33A106", "12345678", {}),
        ("330106", "1234567", {}),
        ("330106", "1234567I", {}),
        ("330106", "12345678", {"authority": "A"}),
        ("330106", "12345678", {"entity_type": "12"}),
    ],
)
def test_make_uscc_rejects_bad_parts(division, org, kwargs):
    with pytest.raises(ValueError):
        make_uscc(division, org, **kwargs)


def test_on_the_wire_a_uscc_must_be_canonical_while_python_input_is_normalised() -> None:
    import orjson

    from schemas.codec import decode, encode
    from schemas.errors import SchemaError
    from tests.unit.streams.helpers import t, tx

    payload = orjson.loads(encode(tx(t("10:00"))))
    canonical = payload["enterprise_uscc"]
    assert tx(t("10:00"), uscc=" " + canonical.lower()).enterprise_uscc == canonical
    for variant in (canonical.lower(), f" {canonical}", f"{canonical}\n"):
        with pytest.raises(SchemaError, match="must be upper case without spaces") as bad:
            decode(orjson.dumps({**payload, "enterprise_uscc": variant}))
        assert bad.value.error_class == "invalid_field"
