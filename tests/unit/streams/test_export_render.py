"""The cached /metrics rendering of the committed figures equals prometheus_client's."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from schemas.figures import FIGURES, HEALTH_FIGURES
from streams.engine import CommittedView
from streams.export.collector import STAGES, FiguresCollector, WorkerMetrics

_ALL = (*FIGURES, *HEALTH_FIGURES)
# label values as they occur, plus the characters the exposition format escapes
_VALUE = st.sampled_from(
    ["A", "B", "state_owned", "东部", "", 'q"uote', "back\\slash", "new\nline"]
)


@st.composite
def _views(draw: st.DrawFn) -> CommittedView:
    view = CommittedView()
    for p in draw(st.sets(st.integers(0, 11), max_size=4)):
        snap: dict[str, dict[tuple[str, ...], int]] = {}
        for fig in draw(st.lists(st.sampled_from(_ALL), max_size=6, unique_by=lambda f: f.name)):
            rows = draw(
                st.dictionaries(
                    st.tuples(*(_VALUE for _ in fig.labels)),
                    st.integers(-(10**15), 10**15),
                    max_size=4,
                )
            )
            snap[fig.name] = rows
        view.figures[p] = snap
        view.scored[p] = draw(
            st.dictionaries(st.tuples(_VALUE, _VALUE), st.integers(0, 10**6), max_size=3)
        )
    return view


def _reference(collector: FiguresCollector) -> str:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    return generate_latest(registry).decode()


@settings(max_examples=60, deadline=None)
@given(_views(), _views())
def test_render_equals_prometheus_client_also_after_a_commit(
    first: CommittedView, second: CommittedView
) -> None:
    view = CommittedView()
    collector = FiguresCollector(view)
    view.figures, view.scored = dict(first.figures), dict(first.scored)
    assert collector.render() == _reference(collector)
    # the next commit replaces some partitions' snapshots (others stay cached) and drops some
    view.figures.update(second.figures)
    view.scored.update(second.scored)
    for p in list(view.figures)[:1]:
        view.figures.pop(p)
        view.scored.pop(p, None)
    assert collector.render() == _reference(collector)


def test_stage_histogram_has_every_stage_and_no_identifier_labels() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    for stage in STAGES:
        metrics.stages[stage].observe(0.01)
    text = generate_latest(registry).decode()
    for stage in STAGES:
        assert f'dfip_worker_stage_seconds_count{{stage="{stage}"}} 1.0' in text
    assert metrics.stage._labelnames == ("stage",)
