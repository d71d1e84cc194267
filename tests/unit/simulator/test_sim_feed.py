"""The feed: deterministic bytes, valid events, ordering contract, plausible lifecycles."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from adapters.simulator.feed import FX_CURRENCIES, Feed
from adapters.simulator.model import FX, LOANS, SCORES, TRANSACTIONS, FxFact, LoanFact, ScoreFact
from schemas import SchemaError, decode, encode, partition_for


def _wire(record):
    return record.raw if record.raw is not None else encode(record.event)


def _time(fact):
    if isinstance(fact, FxFact):
        return fact.published_at
    if isinstance(fact, ScoreFact):
        return fact.assessed_at
    return fact.occurred_at


def test_same_seed_same_bytes(small_config):
    a = list(itertools.islice(Feed(small_config), 6000))
    b = list(itertools.islice(Feed(small_config), 6000))
    assert [(r.topic, r.partition, r.key, r.anomaly, _wire(r)) for r in a] == [
        (r.topic, r.partition, r.key, r.anomaly, _wire(r)) for r in b
    ]
    c = list(itertools.islice(Feed(replace(small_config, seed=12)), 6000))
    assert [_wire(r) for r in a] != [_wire(r) for r in c]


def test_every_record_decodes_as_its_truth_says(small_run):
    for record in small_run.records:
        raw = _wire(record)
        if record.fact is None:
            with pytest.raises(SchemaError) as err:
                decode(raw)
            assert err.value.error_class == record.anomaly
            continue
        event = decode(raw)
        fact = record.fact
        assert event.event_id == fact.event_id
        assert (
            event.kind
            == {
                TRANSACTIONS: "transaction",
                LOANS: "loan",
                SCORES: "digitalization_score",
                FX: "fx_rate",
            }[record.topic]
        )
        if isinstance(fact, FxFact):
            assert (event.currency, event.rate_date, event.rate_to_cny) == (
                fact.currency,
                fact.rate_date,
                fact.rate_to_cny,
            )
            continue
        assert event.enterprise_uscc == fact.uscc
        assert event.occurred_at == _time(fact)
        expected = record.home_partition
        assert partition_for(fact.uscc) == expected
        if record.anomaly == "wrong_partition":
            assert record.partition != expected
        else:
            assert record.partition == expected


def test_every_anomaly_kind_occurs(small_run):
    kinds = Counter(r.anomaly for r in small_run.records if r.anomaly)
    assert set(kinds) == {
        "undecodable",
        "invalid_json",
        "invalid_shape",
        "unsupported_version",
        "invalid_field",
        "fx_rate_missing",
        "unknown_loan",
        "duplicate",
        "late",
        "wrong_partition",
    }
    share = sum(kinds.values()) / len(small_run.records)
    assert 0.03 < share < 0.07  # bad_rate 5 %


def test_no_bad_input_at_rate_zero(small_config):
    records = itertools.islice(Feed(replace(small_config, bad_rate=0.0)), 5000)
    assert not [r for r in records if r.anomaly is not None]


def test_event_time_never_goes_back_on_a_partition_except_late_events(small_run):
    newest: dict[tuple[str, int], object] = {}
    late = 0
    for record in small_run.records:
        if record.fact is None or record.anomaly in ("duplicate", "wrong_partition"):
            continue
        key, at = (record.topic, record.partition), _time(record.fact)
        if record.anomaly == "late":
            late += 1
            assert at < newest[key] - timedelta(seconds=small_run.config.grace_seconds)
            continue
        if key in newest:
            assert at >= newest[key], record
        newest[key] = at
    assert late > 10


def test_reference_data_is_flushed_before_anything_joined_against_it(small_run):
    records = small_run.records
    # Each run of score or FX records ends with a flush barrier.
    for i, record in enumerate(records):
        if record.topic in (SCORES, FX):
            if i + 1 == len(records):
                break  # the run was cut short here
            if records[i + 1].topic != record.topic:
                assert record.barrier, (i, record.topic)
        else:
            assert not record.barrier
    # No assessment is published after an event it applies to, and every event's day has
    # its FX rates published (and flushed) before the event.
    published: set[tuple[str, object]] = set()
    latest_score_after: dict[str, object] = {}
    for record in reversed(records):
        fact = record.fact
        if isinstance(fact, ScoreFact):
            old = latest_score_after.get(fact.uscc)
            if old is None or fact.assessed_at < old:
                latest_score_after[fact.uscc] = fact.assessed_at
        elif fact is not None and not isinstance(fact, FxFact):
            first_later = latest_score_after.get(fact.uscc)
            assert first_later is None or first_later > fact.occurred_at
    for record in records:
        fact = record.fact
        if isinstance(fact, FxFact):
            published.add((fact.currency, fact.rate_date))
        elif fact is not None and not isinstance(fact, ScoreFact):
            for cur in FX_CURRENCIES:
                assert (cur, fact.occurred_at.date()) in published


def _loans(records):
    by_loan = defaultdict(list)
    for record in records:
        if isinstance(record.fact, LoanFact) and record.anomaly is None:
            by_loan[record.fact.loan_id].append(record.fact)
    return by_loan


def test_loan_lifecycles_are_legal(small_run):
    ended = Counter()
    for loan_id, facts in _loans(small_run.records).items():
        kinds = [f.event_type for f in facts]
        assert kinds[0] == "application_submitted", loan_id
        times = [f.occurred_at for f in facts]
        assert times == sorted(times)
        if len(kinds) > 1:
            assert kinds[1] in ("approved", "rejected", "withdrawn")
            if kinds[1] != "approved":
                assert len(kinds) == 2
        if "disbursed" not in kinds:
            assert len(kinds) <= 3
            continue
        assert kinds[2] == "disbursed"
        principal = facts[2].amount
        repaid = Decimal(0)
        dpd = 0
        for fact in facts[3:]:
            if fact.event_type in ("closed", "written_off"):
                assert fact is facts[-1]  # nothing follows the end of a loan
            if fact.event_type == "repayment":
                repaid += fact.amount
                assert repaid <= principal
            elif fact.event_type == "delinquency_changed":
                assert fact.days_past_due == 0 or fact.days_past_due > dpd
                dpd = fact.days_past_due
            elif fact.event_type == "closed":
                assert repaid == principal
                ended["closed"] += 1
            elif fact.event_type == "written_off":
                assert fact.amount == principal - repaid > 0
                assert dpd >= 181
                ended["written_off"] += 1
            elif fact.event_type == "defaulted":
                assert dpd >= 91
    assert ended["closed"] > 20
    assert ended["written_off"] >= 1


def test_rates_are_plausible(small_run):
    loans = _loans(small_run.records)
    decided = Counter(f[1].event_type for f in loans.values() if len(f) > 1)
    approval = decided["approved"] / sum(decided.values())
    assert 0.5 < approval < 0.85
    disbursed = [f for f in loans.values() if any(x.event_type == "disbursed" for x in f)]
    delinquent = [f for f in disbursed if any(x.event_type == "delinquency_changed" for x in f)]
    assert 0.02 < len(delinquent) / len(disbursed) < 0.2
    txs = [r.fact for r in small_run.records if r.topic == TRANSACTIONS and r.anomaly is None]
    currencies = Counter(f.currency for f in txs)
    assert currencies["CNY"] / len(txs) > 0.9
    assert {"USD", "EUR", "HKD"} <= set(currencies)
    assert {f.customs_mode for f in txs} == {None, "9610", "9710", "9810", "1210"}
    assert {f.institution_type for f in txs} == {"bank", "fintech"}
    lenders = {f[0].institution_type for f in loans.values()}
    assert lenders == {"bank", "fintech", "joint"}
