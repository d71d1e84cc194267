"""Values at the edge of what the worker can hold are dead letters, never a stuck batch.

A record that is valid on the wire but whose figures could not be stored (a year-1 date the
Beijing calendar cannot represent; an amount whose CNY fen, or rate-weighted principal,
leaves the 64-bit integers of the changelog) once failed every retry of its batch and held
the partitions behind it for good. They are now dead-lettered ``invalid_field``; and any
other error raised while a record is processed dead-letters it as ``processing_error``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from schemas.codec import decode, encode
from schemas.errors import SchemaError
from schemas.money import MAX_COUNTED_FEN, MAX_LOAN_FEN
from streams.processor import DEADLETTER, FX, LOANS, TRANSACTIONS, Processor
from streams.reference.scores import ScoreTable
from streams.state.changelog import dirty_records
from tests.unit.streams.helpers import HANGZHOU, disbursed, fx, processor, record, t, tx, value


def _letters(proc: Processor) -> list[dict[str, Any]]:
    return [orjson.loads(o.value) for o in proc.outputs if o.topic == DEADLETTER and o.value]


def _commit_prep(proc: Processor) -> None:
    """What the engine does after a batch: it must not raise."""
    proc.finish_batch()
    for p in sorted(proc.take_touched()):
        for _key, row in dirty_records(proc.states[p]):
            assert row is None or isinstance(row, bytes)


def _wire_tx(at: str, amount: str, currency: str = "CNY") -> bytes:
    raw = orjson.loads(encode(tx(t("09:00"), "1.00", currency=currency)))
    raw.update(occurred_at=at, amount=amount)
    return orjson.dumps(raw)


@pytest.mark.parametrize(
    "at", ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "1970-01-01T07:59:59+08:00"]
)
def test_a_time_before_1970_is_an_invalid_field(at: str) -> None:
    with pytest.raises(SchemaError) as err:
        decode(_wire_tx(at, "1.00"))
    assert err.value.error_class == "invalid_field"
    assert "occurred_at" in str(err.value)
    assert "1970-01-01T00:00:00Z" in str(err.value)


def test_the_epoch_itself_is_valid() -> None:
    assert decode(_wire_tx("1970-01-01T08:00:00+08:00", "1.00")) is not None


def test_a_year_one_transaction_is_dead_lettered_and_the_batch_commits() -> None:
    proc = processor()
    proc.process_batch([record(TRANSACTIONS, _wire_tx("0001-01-01T00:00:00Z", "1.00"))])
    assert [d["error_class"] for d in _letters(proc)] == ["invalid_field"]
    _commit_prep(proc)


def test_a_cny_amount_worth_the_bound_is_dead_lettered_without_counting_it() -> None:
    proc = processor()
    too_big = f"{MAX_COUNTED_FEN // 100}.00"
    just_below = f"{(MAX_COUNTED_FEN - 1) // 100}.99"
    proc.process_batch(
        [record(TRANSACTIONS, _wire_tx("2026-01-05T09:00:00Z", a)) for a in (too_big, just_below)]
    )
    letters = _letters(proc)
    assert [d["error_class"] for d in letters] == ["invalid_field"]
    assert letters[0]["reason"].startswith("amount: ")
    assert value(proc, "dfip_transaction_amount_yuan_total") == MAX_COUNTED_FEN - 1
    assert value(proc, "dfip_transactions_total") == 1
    _commit_prep(proc)


def test_a_foreign_amount_at_a_huge_rate_is_dead_lettered() -> None:
    proc = processor()
    proc.process_fx(record(FX, encode(fx(date(2026, 1, 5), "KWD", "999999999999999"))))
    proc.process_batch(
        [record(TRANSACTIONS, _wire_tx("2026-01-05T09:00:00Z", "999999999999999.999", "KWD"))]
    )
    assert [d["error_class"] for d in _letters(proc)] == ["invalid_field"]
    assert value(proc, "dfip_transactions_total") == 0
    _commit_prep(proc)


def test_a_loan_principal_worth_the_bound_is_dead_lettered() -> None:
    proc = processor()
    at = t("09:00")
    big = disbursed(at, "L-BIG", f"{MAX_LOAN_FEN // 100}.00", rate="1")
    fine = disbursed(at, "L-OK", f"{(MAX_LOAN_FEN - 1) // 100}.99", rate="1")
    proc.process_batch([record(LOANS, encode(big)), record(LOANS, encode(fine))])
    assert [d["error_class"] for d in _letters(proc)] == ["invalid_field"]
    assert value(proc, "dfip_loan_disbursements_total") == 1
    # the largest rate-weighted principal still fits the changelog's 64-bit integers
    weighted = value(proc, "dfip_loan_disbursed_rate_weighted_yuan_total")
    assert weighted == (MAX_LOAN_FEN - 1) * 10_000
    _commit_prep(proc)


class _Broken(ScoreTable):
    """A score table with a defect: every join raises."""

    def as_of(self, uscc: str, ts_us: int) -> tuple[str, str]:
        raise RuntimeError("a defect")

    def join(self, uscc: str, ts_us: int) -> tuple[str, str, str]:
        raise RuntimeError("a defect")


def test_an_error_while_processing_dead_letters_the_record_and_the_batch_goes_on() -> None:
    proc = processor()
    bad = record(TRANSACTIONS, encode(tx(t("09:00"))))
    good = record(TRANSACTIONS, encode(tx(t("09:01"))), uscc=HANGZHOU)
    healthy = proc.scores[bad.partition]
    proc.scores[bad.partition] = _Broken()
    proc.process_batch([bad])
    proc.scores[bad.partition] = healthy
    proc.process_batch([good])
    letters = _letters(proc)
    assert [(d["error_class"], d["stage"]) for d in letters] == [("processing_error", "aggregate")]
    assert "RuntimeError" in letters[0]["reason"]
    assert proc.states[bad.partition].offsets[TRANSACTIONS] == good.offset + 1
    assert value(proc, "dfip_transactions_total") == 1
    _commit_prep(proc)


def test_the_bounds_are_far_above_any_real_payment() -> None:
    # 10 trillion yuan per transaction, 1 trillion yuan per loan (10 万亿元 / 1 万亿元)
    assert MAX_COUNTED_FEN // 100 == 10_000_000_000_000
    assert MAX_LOAN_FEN // 100 == 1_000_000_000_000
    assert datetime(1970, 1, 1, tzinfo=UTC).timestamp() == 0
