"""ScoreTable (one version stored bare, several as a list) against a plain reference model."""

from __future__ import annotations

from bisect import insort

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.reference.scores import UNKNOWN_SECTOR, UNSCORED, ScoreTable, ScoreVersion

HISTORY = 3
USCCS = ("A", "B", "C")
BANDS = ("basic", "advanced", "leading")


class Reference:
    """The obvious implementation: a sorted list per enterprise, bounded to HISTORY."""

    def __init__(self) -> None:
        self.versions: dict[str, list[ScoreVersion]] = {}

    def add(self, uscc: str, version: ScoreVersion) -> None:
        kept = [v for v in self.versions.get(uscc, []) if v.assessed_us != version.assessed_us]
        insort(kept, version)
        self.versions[uscc] = kept[-HISTORY:]

    def has(self, uscc: str, event_id: str) -> bool:
        return any(v.event_id == event_id for v in self.versions.get(uscc, []))

    def as_of(self, uscc: str, ts: int) -> tuple[str, str]:
        before = [v for v in self.versions.get(uscc, []) if v.assessed_us <= ts]
        return (before[-1].band, before[-1].sector) if before else (UNSCORED, UNKNOWN_SECTOR)

    def scored(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for versions in self.versions.values():
            key = (versions[-1].band, versions[-1].sector)
            out[key] = out.get(key, 0) + 1
        return out


adds = st.lists(
    st.tuples(
        st.sampled_from(USCCS),
        st.integers(0, 20),  # assessed time: collisions exercise the replace rule
        st.integers(0, 30),  # event id
        st.sampled_from(BANDS),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(adds, st.lists(st.tuples(st.sampled_from(USCCS), st.integers(-1, 21)), max_size=20))
def test_matches_the_reference(
    steps: list[tuple[str, int, int, str]], queries: list[tuple[str, int]]
) -> None:
    table, ref = ScoreTable(HISTORY), Reference()
    for uscc, at, eid, band in steps:
        version = ScoreVersion(at, f"e{eid}", band, "C")
        table.add(uscc, version)
        ref.add(uscc, version)
        assert table.scored == ref.scored()
    assert len(table) == len(ref.versions)
    for uscc, ts in queries:
        assert table.as_of(uscc, ts) == ref.as_of(uscc, ts)
    for uscc in USCCS:
        for eid in range(31):
            assert table.has(uscc, f"e{eid}") == ref.has(uscc, f"e{eid}")


def test_a_single_assessment_is_stored_without_a_list() -> None:
    table = ScoreTable(HISTORY)
    table.add("A", ScoreVersion(5, "e1", "basic", "C"))
    assert isinstance(table.versions["A"], ScoreVersion)
    table.add("A", ScoreVersion(7, "e2", "leading", "C"))
    assert isinstance(table.versions["A"], list)
    assert table.as_of("A", 6) == ("basic", "C")
    assert table.as_of("A", 4) == (UNSCORED, UNKNOWN_SECTOR)
