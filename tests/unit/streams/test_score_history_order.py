"""The join keeps the newest DFIP_WORKER_SCORE_HISTORY assessments per enterprise
(docs/metrics.md): an event older than the oldest kept one joins as unscored whatever the
order in which the ninth assessment and the event were read (a version pushed out of the
history restates the events it had joined)."""

from __future__ import annotations

import itertools

import pytest

from schemas import figure_names as fn
from schemas.codec import encode
from streams.processor import SCORES, TRANSACTIONS
from tests.unit.streams.helpers import HANGZHOU, processor, record, score, t, tx

# 01:00 scores l1 (25); 02:00 .. 09:00 score l4 (85): nine assessments, eight kept
_SCORES = [(h, "25" if h == 1 else "85") for h in range(1, 10)]


def _bands(order: list[object]) -> dict[str, int]:
    proc = processor()
    for item in order:
        if isinstance(item, tuple):
            h, overall = item
            rec = record(SCORES, encode(score(t(f"{h:02d}:00"), overall)))
            proc.process_score(rec, counted=True)
        else:
            proc.process(record(TRANSACTIONS, encode(tx(t(str(item))))))
    proc.finish_batch()
    state = proc.states[record(TRANSACTIONS, b"", uscc=HANGZHOU).partition]
    series = state.counters.values.get(fn.TRANSACTIONS_TOTAL, {})
    out: dict[str, int] = {}
    for labels, n in series.items():
        band = labels[1]
        out[band] = out.get(band, 0) + n
    return out


@pytest.mark.parametrize("event_at", ["01:30", "02:30", "09:30"])
@pytest.mark.parametrize("position", [0, 1, 8, 9])
def test_band_does_not_depend_on_where_the_event_was_read(event_at: str, position: int) -> None:
    order: list[object] = list(_SCORES)
    order.insert(position, event_at)
    # as-of join over the eight kept assessments (02:00 .. 09:00, all l4)
    want = {"unscored": 1} if event_at == "01:30" else {"l4": 1}
    assert _bands(order) == want


def test_back_dated_assessment_pushes_out_the_oldest_kept() -> None:
    # eight kept (02:00 .. 09:00), the event joined l4 at 02:30; a back-dated 01:00 is older
    # than all kept: dropped at once, nothing moves
    base: list[object] = [s for s in _SCORES if s[0] != 1]
    for order in itertools.islice(itertools.permutations([*base[:2], "02:30"]), 6):
        got = _bands([*order, *base[2:], _SCORES[0]])
        assert got == {"l4": 1}
