"""A transaction parked for its FX rate is seen by the rules only if its time is not final
when the rate is read (docs/aml-rules.md, "Order does not matter"), also when its partition
was restored from the changelog in between: a restore must not make the rules see it.

Minimal form of a hypothesis example of tests/contract/test_contract_rules.py (seed 943,
one crash): a USD 200,000 credit 1 µs before its hour's end waits for the USD rate, a later
transaction makes the hour final, the partition is restored, then the rate arrives. The
restored rule state knew only its enterprises' decided times (0 here: none was due yet), so
the parked credit was seen and fired `large_value`; without the restore it is not seen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas.alerts import Alert, load_ruleset
from schemas.catalog import partition_for
from schemas.uscc import make_uscc
from streams.processor import ALERTS, FX, TRANSACTIONS, Processor, Record
from streams.reference.scores import ScoreTable
from streams.rules import RuleEngine
from streams.state.changelog import apply_record, dirty_records, finish_restore
from streams.state.partition import PartitionState

GRACE_US = 600 * 1_000_000
U = make_uscc("330106", "MA2B3C4D")
P = partition_for(U)
HOUR_END = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _processor() -> Processor:
    proc = Processor(grace_us=GRACE_US, rules=RuleEngine(load_ruleset()))
    for p in range(12):
        proc.adopt_partition(PartitionState(p), ScoreTable())
    return proc


def _tx(eid: str, at: datetime, amount: str, currency: str) -> bytes:
    day = (at + timedelta(hours=8)).date().isoformat()
    return orjson.dumps({
        "kind": "transaction", "event_id": eid, "schema_version": 1, "source": "bank-a",
        "institution_type": "bank", "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "enterprise_uscc": U, "direction": "credit", "amount": amount, "currency": currency,
        "booking_date": day, "value_date": day,
    })  # fmt: skip


RATE = orjson.dumps({
    "kind": "fx_rate", "event_id": "fx-USD", "schema_version": 1, "source": "cfets",
    "currency": "USD", "rate_date": "2026-03-01", "rate_to_cny": "7.1",
    "published_at": "2026-03-01T20:00:00Z",
})  # fmt: skip


def _hits(*, rate_first: bool, restore: bool) -> list[tuple[str, tuple[str, ...]]]:
    """The hits written when the USD credit's rate is read before (``rate_first``) or after
    a CNY transaction makes the credit's hour final, with or without a restore of every
    partition from its changelog before the rate is read."""
    proc = _processor()
    log: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in range(12)}
    hits: list[tuple[str, tuple[str, ...]]] = []
    offset = 0

    def batch(value: bytes) -> None:
        nonlocal offset
        proc.process_batch([Record(TRANSACTIONS, P, offset, U.encode(), value)])
        offset += 1
        commit()

    def commit() -> None:
        proc.finish_batch()
        for q in proc.take_touched():
            log[q] += dirty_records(proc.states[q])
        for out in proc.take_outputs():
            if out.topic == ALERTS:
                alert = Alert.model_validate_json(out.value or b"")
                hits.append((alert.rule.value, tuple(alert.event_ids)))

    batch(_tx("usd", HOUR_END - timedelta(microseconds=1), "200000", "USD"))  # parked
    if rate_first:
        proc.process_fx(Record(FX, 0, 0, None, RATE))
        commit()
    batch(_tx("later", HOUR_END + timedelta(hours=1) - timedelta(microseconds=1), "1.00", "CNY"))
    if restore:  # a restart: a new process, every partition from its changelog
        proc = _processor()
        for q in range(12):
            state = PartitionState(q)
            for key, value in log[q]:
                apply_record(state, key, value)
            finish_restore(state)
            proc.adopt_partition(state, ScoreTable())
            proc.restored(q)
        commit()
    if not rate_first:
        proc.process_fx(Record(FX, 0, 0, None, RATE))
        commit()
    batch(_tx("close", HOUR_END + timedelta(days=2), "1.00", "CNY"))  # every window final
    return sorted(hits)


@pytest.mark.parametrize("restore", [False, True])
def test_a_parked_transaction_whose_time_is_final_is_not_seen_after_a_restore(
    restore: bool,
) -> None:
    assert _hits(rate_first=False, restore=restore) == []


@pytest.mark.parametrize("restore", [False, True])
def test_a_parked_transaction_counted_before_its_time_is_final_is_seen(restore: bool) -> None:
    assert _hits(rate_first=True, restore=restore) == [("large_value", ("usd",))]
