"""Closed enumerations used by events and as bounded Prometheus label values.

Every enum is a `StrEnum`, so members compare equal to, and serialise as, their value.
Adding a member is a schema change (see docs/schema-versioning.md): readers reject
values they do not know.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

__all__ = [
    "Collateral",
    "CustomsMode",
    "DeadLetterStage",
    "Decision",
    "DigitalizationBand",
    "Direction",
    "DpdBucket",
    "InstitutionType",
    "LoanChannel",
    "LoanEventType",
    "Region",
    "RepaymentMethod",
    "RiskClass",
    "Sector",
    "TxChannel",
    "band_for_score",
    "dpd_bucket",
]


class InstitutionType(StrEnum):
    bank = "bank"
    fintech = "fintech"
    joint = "joint"


class Direction(StrEnum):
    credit = "credit"
    debit = "debit"


class TxChannel(StrEnum):
    branch = "branch"
    online = "online"
    mobile = "mobile"
    pos = "pos"
    api = "api"
    other = "other"


class CustomsMode(StrEnum):
    """China customs supervision modes for cross-border e-commerce."""

    b2c_direct = "9610"  # cross-border e-commerce retail, direct mail
    b2b_direct = "9710"  # B2B direct export
    b2b_overseas_warehouse = "9810"  # export to overseas warehouse
    bonded = "1210"  # bonded e-commerce


class LoanEventType(StrEnum):
    application_submitted = "application_submitted"
    approved = "approved"
    rejected = "rejected"
    withdrawn = "withdrawn"
    disbursed = "disbursed"
    repayment = "repayment"
    delinquency_changed = "delinquency_changed"
    risk_class_changed = "risk_class_changed"
    defaulted = "defaulted"
    written_off = "written_off"
    closed = "closed"


class Decision(StrEnum):
    """Outcome of a loan application (label `decision`)."""

    approved = "approved"
    rejected = "rejected"
    withdrawn = "withdrawn"


class RiskClass(StrEnum):
    """China's five-category loan classification (2023 rules)."""

    normal = "normal"
    special_mention = "special_mention"
    substandard = "substandard"
    doubtful = "doubtful"
    loss = "loss"


class DpdBucket(StrEnum):
    current = "current"
    d1_29 = "1_29"
    d30_59 = "30_59"
    d60_89 = "60_89"
    d90_plus = "90_plus"


def dpd_bucket(days: int) -> DpdBucket:
    """Days past due → bucket: 0 current, 1–29, 30–59, 60–89, 90+."""
    if days < 0:
        raise ValueError(f"days past due must be >= 0, got {days}")
    if days == 0:
        return DpdBucket.current
    if days < 30:
        return DpdBucket.d1_29
    if days < 60:
        return DpdBucket.d30_59
    if days < 90:
        return DpdBucket.d60_89
    return DpdBucket.d90_plus


class Collateral(StrEnum):
    credit = "credit"  # unsecured
    guarantee = "guarantee"
    mortgage = "mortgage"
    pledge = "pledge"


class LoanChannel(StrEnum):
    branch = "branch"
    online = "online"
    platform = "platform"


class RepaymentMethod(StrEnum):
    equal_installment = "equal_installment"
    equal_principal = "equal_principal"
    bullet = "bullet"
    interest_only = "interest_only"


class DeadLetterStage(StrEnum):
    """Where in the pipeline a record was rejected."""

    adapter = "adapter"
    ingress = "ingress"
    join_ = "join"  # trailing underscore: `join` would shadow str.join
    aggregate = "aggregate"


class DigitalizationBand(StrEnum):
    """MIIT digitalisation levels from the overall score, plus `unscored`."""

    unscored = "unscored"
    l0 = "l0"
    l1 = "l1"
    l2 = "l2"
    l3 = "l3"
    l4 = "l4"


_TWENTY = Decimal(20)
_FORTY = Decimal(40)
_SIXTY = Decimal(60)
_EIGHTY = Decimal(80)


def band_for_score(score: Decimal | None) -> DigitalizationBand:
    """None → unscored, < 20 l0, [20, 40) l1, [40, 60) l2, [60, 80) l3, [80, 100] l4."""
    if score is None:
        return DigitalizationBand.unscored
    if score < _TWENTY:
        return DigitalizationBand.l0
    if score < _FORTY:
        return DigitalizationBand.l1
    if score < _SIXTY:
        return DigitalizationBand.l2
    if score < _EIGHTY:
        return DigitalizationBand.l3
    return DigitalizationBand.l4


class Sector(StrEnum):
    """GB/T 4754-2017 industry sections."""

    A = "A"  # agriculture, forestry, animal husbandry, fishery
    B = "B"  # mining
    C = "C"  # manufacturing
    D = "D"  # electricity, heat, gas and water
    E = "E"  # construction
    F = "F"  # wholesale and retail
    G = "G"  # transport, storage and post
    H = "H"  # accommodation and catering
    I = "I"  # information transmission, software and IT services  # noqa: E741
    J = "J"  # finance
    K = "K"  # real estate
    L = "L"  # leasing and business services
    M = "M"  # scientific research and technical services
    N = "N"  # water, environment and public facilities
    O = "O"  # residents' services and repairs  # noqa: E741
    P = "P"  # education
    Q = "Q"  # health and social work
    R = "R"  # culture, sports and entertainment
    S = "S"  # public administration and social organisations
    T = "T"  # international organisations


class Region(StrEnum):
    """Zhejiang's 11 prefecture-level cities, everything else `other`."""

    hangzhou = "hangzhou"
    ningbo = "ningbo"
    wenzhou = "wenzhou"
    jiaxing = "jiaxing"
    huzhou = "huzhou"
    shaoxing = "shaoxing"
    jinhua = "jinhua"
    quzhou = "quzhou"
    zhoushan = "zhoushan"
    taizhou = "taizhou"
    lishui = "lishui"
    other = "other"
