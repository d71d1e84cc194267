"""streams/aggregate/restate.py directly: the restatement floor, the kept contributions and
their changelog form, and moves that conserve every total when an assessment changes a band."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas import figure_names as fn
from streams.aggregate import restate
from streams.reference.scores import ScoreTable, ScoreVersion
from streams.state.partition import PartitionState
from tests.unit.streams.aggregate.builders import BORROWER, LOANS, figure, partition, patient

TX = "dfip.transactions"
GRACE = 600_000_000
REGION = "hangzhou"


def count_tx(state: PartitionState, occ: int, fen: int, band: str = "unscored",
             sector: str = "unknown", direction: str = "credit") -> None:  # fmt: skip
    """What the processor does for a counted transaction: the figures and the entry."""
    labels = ("bank", band, REGION, direction)
    c = state.counters
    c.add(fn.TRANSACTIONS_TOTAL, labels, 1)
    c.add(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, labels, fen)
    c.add(fn.TRANSACTIONS_BY_SECTOR_TOTAL, (sector, band), 1)
    restate.record(state, BORROWER, occ, ("bank", direction, False, band, sector), fen, None)


def test_the_floor_is_the_newest_input_watermark_minus_the_horizon() -> None:
    state = partition()
    assert restate.floor_of(state, 10) is None
    state.watermarks["dfip.scores"] = 1_000  # not an input of the floor
    assert restate.floor_of(state, 10) is None
    state.watermarks[TX] = 100
    state.watermarks[LOANS] = 250
    assert restate.floor_of(state, 10) == 240


def test_equal_entries_merge_and_entries_older_than_the_floor_are_not_kept() -> None:
    state = partition()
    labels = ("bank", "credit", False, "l1", "C")
    restate.record(state, BORROWER, 50, labels, 7, floor=60)
    assert BORROWER not in state.contributions
    restate.record(state, BORROWER, 60, labels, 7, floor=60)
    restate.record(state, BORROWER, 60, labels, 5, floor=60)
    assert restate.entries_of(state, BORROWER) == {(60, labels): (2, 12)}
    restate.sweep(state, 61)
    assert restate.entries_of(state, BORROWER) == {}


entries = st.lists(
    st.tuples(
        st.integers(0, 2**50),
        st.sampled_from(["credit", "debit", "approved"]),
        st.booleans(),
        st.sampled_from(["l0", "l3", "unscored"]),
        st.integers(0, 10**12),
    ),
    max_size=12,
)


@patient
@given(entries, entries)
def test_the_changelog_rows_restore_the_same_entries(
    first: list[tuple[int, str, bool, str, int]], later: list[tuple[int, str, bool, str, int]]
) -> None:
    state = partition()
    for occ, direction, windowed, band, fen in first:
        restate.record(state, BORROWER, occ, ("bank", direction, windowed, band, "C"), fen, None)
    whole = restate.to_json(state, BORROWER)
    state.dirty_contributions.clear()  # the batch was written
    state.contrib_base.clear()
    for occ, direction, windowed, band, fen in later:
        restate.record(state, BORROWER, occ, ("bank", direction, windowed, band, "C"), fen, None)
    base = state.contrib_base.get(BORROWER, len(state.contributions.get(BORROWER, b"")))
    delta = restate.appended_json(state, BORROWER, base)
    restored = partition()
    restate.from_json(restored, BORROWER, whole)
    restate.append_json(restored, BORROWER, delta)
    assert restate.entries_of(restored, BORROWER) == restate.entries_of(state, BORROWER)


def table_with(*versions: tuple[int, str, str]) -> ScoreTable:
    table = ScoreTable()
    for i, (at, band, sector) in enumerate(versions):
        table.add(BORROWER, ScoreVersion(at, f"s{i}", band, sector))
    return table


def test_an_assessment_moves_the_transactions_at_and_after_it() -> None:
    state = partition()
    count_tx(state, 100, 1_000)
    count_tx(state, 200, 2_000)
    count_tx(state, 300, 4_000)
    table = table_with((200, "l3", "C"))
    moved = restate.restate(state, table, BORROWER, REGION, 200, None, GRACE)
    assert moved == 2
    amounts = state.counters.values[fn.TRANSACTION_AMOUNT_YUAN_TOTAL]
    assert amounts == {
        ("bank", "unscored", REGION, "credit"): 1_000,
        ("bank", "l3", REGION, "credit"): 6_000,
    }
    assert state.counters.values[fn.TRANSACTIONS_BY_SECTOR_TOTAL] == {
        ("unknown", "unscored"): 1,
        ("C", "l3"): 2,
    }
    assert figure(state, fn.RESTATED_EVENTS_TOTAL, (TX,)) == 2
    # the same assessment again moves nothing
    assert restate.restate(state, table, BORROWER, REGION, 200, None, GRACE) == 0


def test_an_assessment_before_the_floor_moves_only_from_the_floor_and_is_counted() -> None:
    state = partition()
    count_tx(state, 100, 1_000)
    count_tx(state, 300, 4_000)
    table = table_with((50, "l1", "C"))
    assert restate.restate(state, table, BORROWER, REGION, 50, 200, GRACE) == 1
    assert figure(state, fn.SCORES_BEYOND_RESTATEMENT_TOTAL, ()) == 1
    assert figure(state, fn.TRANSACTIONS_TOTAL, ("bank", "l1", REGION, "credit")) == 1


def test_a_loan_decision_moves_between_bands_in_the_decisions_figure() -> None:
    state = partition()
    state.counters.add(fn.LOAN_DECISIONS_TOTAL, ("bank", "unscored", "approved"), 1)
    restate.record(state, BORROWER, 100, ("bank", "approved", False, "unscored", "unknown"), 0,
                   None)  # fmt: skip
    restate.restate(state, table_with((10, "l2", "C")), BORROWER, REGION, 10, None, GRACE)
    assert state.counters.values[fn.LOAN_DECISIONS_TOTAL] == {("bank", "l2", "approved"): 1}
    assert figure(state, fn.RESTATED_EVENTS_TOTAL, (LOANS,)) == 1
    assert figure(state, fn.TRANSACTIONS_TOTAL) == 0


@patient
@given(
    st.lists(st.tuples(st.integers(0, 1_000), st.integers(0, 10**9)), min_size=1, max_size=20),
    st.lists(
        st.tuples(
            st.integers(0, 1_000), st.sampled_from(["l0", "l1", "l4"]), st.sampled_from("CF")
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_restatement_conserves_the_totals_and_lands_on_the_as_of_band(
    txs: list[tuple[int, int]], assessments: list[tuple[int, str, str]]
) -> None:
    state = partition()
    for occ, fen in txs:
        count_tx(state, occ, fen)
    table = ScoreTable()
    for i, (at, band, sector) in enumerate(assessments):
        table.add(BORROWER, ScoreVersion(at, f"s{i}", band, sector))
        restate.restate(state, table, BORROWER, REGION, at, None, GRACE)
    assert figure(state, fn.TRANSACTIONS_TOTAL) == len(txs)
    assert figure(state, fn.TRANSACTION_AMOUNT_YUAN_TOTAL) == sum(fen for _, fen in txs)
    assert figure(state, fn.TRANSACTIONS_BY_SECTOR_TOTAL) == len(txs)
    expected: dict[tuple[str, ...], int] = {}
    for occ, fen in txs:
        band, _ = table.as_of(BORROWER, occ)
        labels = ("bank", band, REGION, "credit")
        expected[labels] = expected.get(labels, 0) + fen
    assert state.counters.values.get(fn.TRANSACTION_AMOUNT_YUAN_TOTAL, {}) == {
        k: v for k, v in expected.items() if v
    }
