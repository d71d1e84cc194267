"""A seeded synthetic province: enterprises, their initial digitalisation, banks and fintechs.

Everything here is a pure function of the seed, so the feed and the tests can rebuild the
same province without sharing state.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate
from typing import Generic, TypeVar

from schemas import make_uscc, partition_for

__all__ = [
    "BAND_WEIGHTS",
    "INSTITUTIONS",
    "SECTOR_WEIGHTS",
    "Enterprise",
    "Institution",
    "Province",
    "WeightedChoice",
    "build_province",
]

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Institution:
    """A bank, a fintech, or a bank+platform joint-lending programme."""

    id: str
    name: str
    type: str  # InstitutionType value: bank | fintech | joint
    weight: int  # market share among institutions of its type (relative)
    lends: bool
    crossborder: bool  # handles cross-border receipts for exporters


INSTITUTIONS: tuple[Institution, ...] = (
    Institution("icbc-zj", "ICBC Zhejiang Branch", "bank", 14, True, True),
    Institution("ccb-zj", "China Construction Bank Zhejiang Branch", "bank", 12, True, True),
    Institution("abc-zj", "Agricultural Bank of China Zhejiang Branch", "bank", 11, True, False),
    Institution("boc-zj", "Bank of China Zhejiang Branch", "bank", 9, True, True),
    Institution("czbank", "China Zheshang Bank", "bank", 8, True, True),
    Institution("hzbank", "Bank of Hangzhou", "bank", 9, True, False),
    Institution("nbbank", "Bank of Ningbo", "bank", 9, True, True),
    Institution("tailong", "Zhejiang Tailong Commercial Bank", "bank", 7, True, False),
    Institution("mintai", "Zhejiang Mintai Commercial Bank", "bank", 5, True, False),
    Institution("chouzhou", "Zhejiang Chouzhou Commercial Bank", "bank", 4, True, True),
    Institution("zjrcu", "Zhejiang Rural Credit Union", "bank", 12, True, False),
    Institution("mybank", "MYbank", "fintech", 40, True, False),
    Institution("webank", "WeBank", "fintech", 15, True, False),
    Institution("alipay", "Alipay", "fintech", 25, False, False),
    Institution("lianlian", "LianLian Global", "fintech", 10, False, True),
    Institution("pingpong", "PingPong", "fintech", 10, False, True),
    Institution("joint-hzbank-mybank", "Bank of Hangzhou x MYbank", "joint", 5, True, False),
    Institution("joint-nbbank-webank", "Bank of Ningbo x WeBank", "joint", 3, True, False),
    Institution("joint-tailong-mybank", "Tailong x MYbank", "joint", 2, True, False),
)


class WeightedChoice(Generic[T]):
    """Integer-weighted choice with one `random()` draw (cheap, and deterministic per seed)."""

    __slots__ = ("_cum", "_items", "_total")

    def __init__(self, pairs: list[tuple[T, int]] | tuple[tuple[T, int], ...]) -> None:
        self._items = [item for item, _ in pairs]
        self._cum = list(accumulate(w for _, w in pairs))
        self._total = self._cum[-1]

    def pick(self, rng: random.Random) -> T:
        return self._items[bisect_right(self._cum, rng.randrange(self._total))]


# Zhejiang prefecture cities with a few real GB/T 2260 county codes each, weighted roughly by
# their number of registered enterprises; `other` holds places outside the province.
_DIVISIONS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("330102", "330105", "330106", "330108", "330109", "330110", "330113", "330114"), 48),
    (("330203", "330205", "330206", "330211", "330212", "330281", "330282"), 36),
    (("330302", "330303", "330304", "330381", "330382"), 26),
    (("330402", "330411", "330481", "330482", "330483"), 16),
    (("330502", "330503", "330521", "330522", "330523"), 10),
    (("330602", "330603", "330604", "330681", "330683"), 16),
    (("330702", "330703", "330782", "330783", "330784"), 20),
    (("330802", "330803", "330881"), 4),
    (("330902", "330903"), 3),
    (("331002", "331003", "331004", "331081", "331082", "331083"), 18),
    (("331102", "331121", "331181"), 5),
    (("310115", "320505", "110108", "440305", "340104"), 12),
)

# GB/T 4754 sections: manufacturing, trade and business/IT services dominate Zhejiang's SMEs.
SECTOR_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("C", 340),
    ("F", 270),
    ("I", 70),
    ("L", 70),
    ("M", 45),
    ("E", 40),
    ("G", 30),
    ("H", 30),
    ("K", 20),
    ("O", 20),
    ("R", 15),
    ("A", 15),
    ("N", 8),
    ("P", 5),
    ("Q", 5),
    ("D", 5),
    ("B", 4),
    ("J", 4),
    ("S", 2),
    ("T", 1),
)

# Initial digitalisation band: Zhejiang's 2023-24 counts 12,000 : 6,600 : 840 : 240 for
# levels 1-4 (DOMAIN.md), plus firms never assessed and firms assessed below level 1.
BAND_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("unscored", 1968),
    ("l0", 787),
    ("l1", 12000),
    ("l2", 6600),
    ("l3", 840),
    ("l4", 240),
)
_SCORE_TENTHS = {
    "l0": (50, 199),
    "l1": (200, 399),
    "l2": (400, 599),
    "l3": (600, 799),
    "l4": (800, 1000),
}
_SIZES = (("micro", 60), ("small", 30), ("medium", 10))
# Exporters are more common in manufacturing and trade (Yiwu, Ningbo port).
_EXPORT_PERMILLE = {"C": 220, "F": 200, "I": 60}


@dataclass(frozen=True, slots=True)
class Enterprise:
    """One enterprise of the synthetic province (the ground truth the oracle joins with)."""

    uscc: str
    partition: int  # partition_for(uscc): where its keyed events live
    sector: str
    size: str  # micro | small | medium
    initial_score: Decimal | None  # None: not assessed at the start
    bank: str  # institution id of its main account bank
    fintech: str | None  # payment/fintech account, if any
    exporter: bool
    activity: int  # relative transaction frequency


@dataclass(frozen=True, slots=True)
class Province:
    seed: int
    enterprises: tuple[Enterprise, ...]
    institutions: tuple[Institution, ...]

    def institution(self, inst_id: str) -> Institution:
        return _BY_ID[inst_id]


_BY_ID = {i.id: i for i in INSTITUTIONS}


def score_in_band(rng: random.Random, band: str) -> Decimal:
    """A score with one decimal uniformly inside the band."""
    lo, hi = _SCORE_TENTHS[band]
    return Decimal(rng.randint(lo, hi)) / 10


def _org_codes(rng: random.Random, n: int) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        # Mostly digits, as real organisation codes are; letters keep the space large.
        code = "".join(
            rng.choice(_USCC_CHARS) if rng.randrange(4) == 0 else str(rng.randrange(10))
            for _ in range(8)
        )
        if code not in seen:
            seen.add(code)
            out.append(code)
    return out


def build_province(seed: int, enterprises: int = 2000) -> Province:
    """The province for `seed`: `enterprises` firms with valid USCCs, plus the institutions."""
    if enterprises < 1:
        raise ValueError("a province needs at least one enterprise")
    rng = random.Random(f"dfip-province-{seed}")
    divisions = WeightedChoice(_DIVISIONS)
    sectors = WeightedChoice(SECTOR_WEIGHTS)
    bands = WeightedChoice(BAND_WEIGHTS)
    sizes = WeightedChoice(_SIZES)
    banks = WeightedChoice([(i.id, i.weight) for i in INSTITUTIONS if i.type == "bank"])
    payments = WeightedChoice(
        [(i.id, i.weight) for i in INSTITUTIONS if i.type == "fintech" and not i.crossborder]
    )
    xb_fintech = WeightedChoice(
        [(i.id, i.weight) for i in INSTITUTIONS if i.type == "fintech" and i.crossborder]
    )
    out: list[Enterprise] = []
    for org in _org_codes(rng, enterprises):
        division = rng.choice(divisions.pick(rng))
        # 91 = enterprise registered with market regulation; some individual businesses (92).
        entity = "2" if rng.randrange(20) == 0 else "1"
        uscc = make_uscc(division, org, "9", entity)
        sector = sectors.pick(rng)
        band = bands.pick(rng)
        score = None if band == "unscored" else score_in_band(rng, band)
        size = sizes.pick(rng)
        exporter = rng.randrange(1000) < _EXPORT_PERMILLE.get(sector, 30)
        fintech: str | None = None
        if exporter and rng.randrange(100) < 60:
            fintech = xb_fintech.pick(rng)
        elif rng.randrange(100) < 35:
            fintech = payments.pick(rng)
        out.append(
            Enterprise(
                uscc=uscc,
                partition=partition_for(uscc),
                sector=sector,
                size=size,
                initial_score=score,
                bank=banks.pick(rng),
                fintech=fintech,
                exporter=exporter,
                activity={"micro": 1, "small": 3, "medium": 8}[size],
            )
        )
    return Province(seed=seed, enterprises=tuple(out), institutions=INSTITUTIONS)
