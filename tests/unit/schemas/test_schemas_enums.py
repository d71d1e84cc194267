"""Closed enumerations, DPD buckets and digitalisation bands."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas import (
    Collateral,
    CustomsMode,
    Decision,
    DigitalizationBand,
    Direction,
    DpdBucket,
    InstitutionType,
    LoanChannel,
    LoanEventType,
    Region,
    RepaymentMethod,
    RiskClass,
    Sector,
    TxChannel,
    band_for_score,
    dpd_bucket,
)


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        (InstitutionType, ["bank", "fintech", "joint"]),
        (Direction, ["credit", "debit"]),
        (TxChannel, ["branch", "online", "mobile", "pos", "api", "other"]),
        (CustomsMode, ["9610", "9710", "9810", "1210"]),
        (
            LoanEventType,
            [
                "application_submitted",
                "approved",
                "rejected",
                "withdrawn",
                "disbursed",
                "repayment",
                "delinquency_changed",
                "risk_class_changed",
                "defaulted",
                "written_off",
                "closed",
            ],
        ),
        (Decision, ["approved", "rejected", "withdrawn"]),
        (RiskClass, ["normal", "special_mention", "substandard", "doubtful", "loss"]),
        (DpdBucket, ["current", "1_29", "30_59", "60_89", "90_plus"]),
        (Collateral, ["credit", "guarantee", "mortgage", "pledge"]),
        (LoanChannel, ["branch", "online", "platform"]),
        (RepaymentMethod, ["equal_installment", "equal_principal", "bullet", "interest_only"]),
        (DigitalizationBand, ["unscored", "l0", "l1", "l2", "l3", "l4"]),
        (Sector, [chr(c) for c in range(ord("A"), ord("T") + 1)]),
        (
            Region,
            [
                "hangzhou",
                "ningbo",
                "wenzhou",
                "jiaxing",
                "huzhou",
                "shaoxing",
                "jinhua",
                "quzhou",
                "zhoushan",
                "taizhou",
                "lishui",
                "other",
            ],
        ),
    ],
)
def test_enums_are_exactly_the_contract_sets(enum, values):
    assert [m.value for m in enum] == values
    for value in values:
        assert enum(value) == value  # StrEnum: compares equal to its value


@pytest.mark.parametrize(
    ("days", "bucket"),
    [
        (0, "current"),
        (1, "1_29"),
        (29, "1_29"),
        (30, "30_59"),
        (59, "30_59"),
        (60, "60_89"),
        (89, "60_89"),
        (90, "90_plus"),
        (10_000, "90_plus"),
    ],
)
def test_dpd_bucket_boundaries(days, bucket):
    assert dpd_bucket(days) == DpdBucket(bucket)


def test_dpd_bucket_rejects_negative_days():
    with pytest.raises(ValueError):
        dpd_bucket(-1)


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (None, "unscored"),
        ("0", "l0"),
        ("19.99", "l0"),
        ("20", "l1"),
        ("39.99", "l1"),
        ("40", "l2"),
        ("59.999", "l2"),
        ("60", "l3"),
        ("79.99", "l3"),
        ("80", "l4"),
        ("100", "l4"),
    ],
)
def test_band_for_score_boundaries(score, band):
    value = None if score is None else Decimal(score)
    assert band_for_score(value) == DigitalizationBand(band)
