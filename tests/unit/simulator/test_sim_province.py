"""The synthetic province: valid keys, realistic shares, determinism."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from stdnum.cn import uscc as stdnum_uscc

from adapters.simulator.province import INSTITUTIONS, build_province
from schemas import band_for_score, partition_for, region_of


@pytest.fixture(scope="module")
def big():
    return build_province(seed=3, enterprises=20_000)


def test_every_uscc_is_valid_unique_and_partitioned(big):
    codes = [e.uscc for e in big.enterprises]
    assert len(set(codes)) == len(codes) == 20_000
    for ent in big.enterprises:
        assert stdnum_uscc.is_valid(ent.uscc), ent.uscc
        assert ent.partition == partition_for(ent.uscc)


def test_same_seed_same_province_other_seed_other_province():
    a, b = build_province(5, 300), build_province(5, 300)
    assert a == b
    assert build_province(6, 300).enterprises != a.enterprises


def test_level_proportions_follow_zhejiang_counts(big):
    bands = Counter(band_for_score(e.initial_score).value for e in big.enterprises)
    graded = sum(bands[b] for b in ("l1", "l2", "l3", "l4"))
    # DOMAIN.md: about 12,000 : 6,600 : 840 : 240 firms at levels 1-4.
    expected = {"l1": 12_000, "l2": 6_600, "l3": 840, "l4": 240}
    for band, count in expected.items():
        assert bands[band] / graded == pytest.approx(count / 19_680, abs=0.012), band
    n = len(big.enterprises)
    assert 0.06 < bands["unscored"] / n < 0.13  # some never assessed
    assert 0.02 < bands["l0"] / n < 0.06  # some assessed below level 1


def test_regions_cover_zhejiang_and_some_elsewhere(big):
    regions = Counter(region_of(e.uscc).value for e in big.enterprises)
    assert len(regions) == 12  # 11 prefecture cities + other
    assert regions.most_common(1)[0][0] == "hangzhou"
    assert 0.02 < regions["other"] / len(big.enterprises) < 0.10


def test_manufacturing_trade_and_it_dominate(big):
    sectors = Counter(e.sector for e in big.enterprises)
    top = [s for s, _ in sectors.most_common(5)]
    assert top[:2] == ["C", "F"]
    assert "I" in top
    assert set(sectors) <= set("ABCDEFGHIJKLMNOPQRST")


def test_institutions_are_well_formed():
    ids = [i.id for i in INSTITUTIONS]
    assert len(set(ids)) == len(ids)
    assert {i.type for i in INSTITUTIONS} == {"bank", "fintech", "joint"}
    for inst in INSTITUTIONS:
        assert re.fullmatch(r"[A-Za-z0-9][\w.:/\-]*", inst.id)
    assert any(i.crossborder and i.type == "fintech" for i in INSTITUTIONS)
    assert all(i.lends for i in INSTITUTIONS if i.type == "joint")
