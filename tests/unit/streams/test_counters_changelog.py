"""The counters' changelog layout round-trips, and the older row layout still restores."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from streams.state.partition import Counters

_SERIES = st.dictionaries(
    st.sampled_from(["dfip_transactions_total", "dfip_loan_applications_total", "g"]),
    st.dictionaries(
        st.tuples(st.sampled_from(["bank", "fintech", "A", "东部"]), st.text(max_size=3)),
        st.integers(-(10**18), 10**18).filter(bool),
        min_size=1,
        max_size=5,
    ),
    max_size=3,
)


@given(_SERIES)
def test_round_trip_through_json(values: dict[str, dict[tuple[str, ...], int]]) -> None:
    c = Counters()
    for name, series in values.items():
        for labels, value in series.items():
            c.add(name, labels, value)
    back = Counters.from_json(orjson.loads(orjson.dumps(c.to_json())))
    assert back.values == c.values


@given(_SERIES)
def test_older_rows_restore_the_same(values: dict[str, dict[tuple[str, ...], int]]) -> None:
    old_rows = [
        [name, list(labels), value]
        for name, series in values.items()
        for labels, value in series.items()
    ]
    back = Counters.from_json(orjson.loads(orjson.dumps(old_rows)))
    assert back.values == {n: s for n, s in values.items() if s}
