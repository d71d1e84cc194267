"""/metrics?name[]=…: the families asked for, exactly as the full exposition shows them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import figure_names as fn
from schemas.figures import FIGURES, HEALTH_FIGURES
from streams.app import _only
from streams.export.collector import FiguresCollector
from streams.export.view import CommittedView
from streams.rules.overdue import OPEN, OVERDUE

_ALL = (*FIGURES, *HEALTH_FIGURES)
_NAMES = [f.name for f in _ALL]
_VALUE = st.sampled_from(["A", "B", "东部", "", 'q"uote', "new\nline"])


@st.composite
def _views(draw: st.DrawFn) -> CommittedView:
    view = CommittedView()
    for p in draw(st.sets(st.integers(0, 11), max_size=4)):
        snap: dict[str, dict[tuple[str, ...], int]] = {}
        for fig in draw(st.lists(st.sampled_from(_ALL), max_size=8, unique_by=lambda f: f.name)):
            snap[fig.name] = draw(
                st.dictionaries(
                    st.tuples(*(_VALUE for _ in fig.labels)), st.integers(0, 10**12), max_size=3
                )
            )
        view.figures[p] = snap
        view.scored[p] = draw(
            st.dictionaries(st.tuples(_VALUE, _VALUE), st.integers(0, 10**6), max_size=3)
        )
    return view


def _families(text: str, names: frozenset[str]) -> list[str]:
    """The full exposition's lines of the families in ``names`` (headers and samples)."""
    out = []
    for line in text.splitlines(keepends=True):
        name = line.split(" ", 3)[2] if line.startswith("#") else line.split("{")[0].split()[0]
        if name in names:
            out.append(line)
    return out


@settings(max_examples=80, deadline=None)
@given(_views(), st.sets(st.sampled_from([*_NAMES, "dfip_not_a_figure"]), min_size=1))
def test_filtered_figures_are_the_full_expositions_lines(
    view: CommittedView, names: set[str]
) -> None:
    wanted = frozenset(names)
    full = FiguresCollector(view).render()
    assert _only(wanted, view).splitlines(keepends=True) == _families(full, wanted)


def test_events_received_alone_and_overdue_from_open_hits() -> None:
    view = CommittedView(
        figures={
            3: {
                fn.EVENTS_RECEIVED_TOTAL: {("dfip.transactions",): 7},
                OPEN: {("r", "x", "y", "A", "2020-01-01"): 1},
            }
        }
    )
    only = _only(frozenset({fn.EVENTS_RECEIVED_TOTAL}), view)
    assert 'dfip_events_received_total{partition="3",topic="dfip.transactions"} 7.0' in only
    assert OVERDUE not in only
    assert OPEN not in only
    full = FiguresCollector(view).render()
    overdue = frozenset({OVERDUE})
    assert _only(overdue, view).splitlines(keepends=True) == _families(full, overdue)
