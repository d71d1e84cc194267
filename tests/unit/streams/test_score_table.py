"""ScoreTable (a worker's single assessment in flat arrays, anything else as objects) against
a plain reference model."""

from __future__ import annotations

from bisect import insort

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.reference.scores import UNKNOWN_SECTOR, UNSCORED, ScoreTable, ScoreVersion

HISTORY = 3
USCCS = ("A", "B", "C")
# canonical 18-character codes: the flat table's keys (the short ones above are kept as objects)
CODES = ("913301020000000006", "91330102000000001X", "913301020000000022")
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
@given(
    adds,
    st.lists(st.tuples(st.sampled_from(USCCS), st.integers(-1, 21)), max_size=20),
    st.booleans(),
    st.booleans(),
)
def test_matches_the_reference(
    steps: list[tuple[str, int, int, str]],
    queries: list[tuple[str, int]],
    codes: bool,
    int_ids: bool,
) -> None:
    """Both layouts: 18-character keys with 64-bit id hashes (the worker's: flat arrays
    while an enterprise has one version) and anything else (objects)."""
    key = dict(zip(USCCS, CODES, strict=True)) if codes else {u: u for u in USCCS}

    def eid_of(n: int) -> int | str:
        return n * 0x9E3779B97F4A7C15 % 2**64 if int_ids else f"e{n}"

    table, ref = ScoreTable(HISTORY), Reference()
    for uscc, at, eid, band in steps:
        version = ScoreVersion(at, eid_of(eid), band, "C")
        table.add(key[uscc], version)
        ref.add(key[uscc], ScoreVersion(at, eid_of(eid), band, "C"))
        assert table.scored == ref.scored()
    assert len(table) == len(ref.versions)
    for uscc, ts in queries:
        assert table.as_of(key[uscc], ts) == ref.as_of(key[uscc], ts)
        assert table.join(key[uscc], ts)[:2] == ref.as_of(key[uscc], ts)
    for uscc in USCCS:
        assert table.versions_of(key[uscc]) == ref.versions.get(key[uscc], [])
        for eid in range(31):
            assert table.has(key[uscc], eid_of(eid)) == ref.has(key[uscc], eid_of(eid))


def test_a_workers_single_assessment_is_held_without_objects() -> None:
    table = ScoreTable(HISTORY)
    table.add(CODES[0], ScoreVersion(5, 2**64 - 1, "basic", "C"))
    assert not table._other  # the flat arrays hold it
    assert table.versions_of(CODES[0]) == [ScoreVersion(5, 2**64 - 1, "basic", "C")]
    table.add(CODES[0], ScoreVersion(7, 2, "leading", "C"))
    assert isinstance(table._other[CODES[0]], list)  # several versions: objects
    assert table.as_of(CODES[0], 6) == ("basic", "C")
    assert table.as_of(CODES[0], 4) == (UNSCORED, UNKNOWN_SECTOR)
    assert len(table) == 1
    table.add("A", ScoreVersion(5, "e1", "basic", "C"))  # not a worker's id hash: an object
    assert isinstance(table._other["A"], ScoreVersion)
    assert len(table) == 2


def test_the_flat_table_grows_and_finds_every_enterprise() -> None:
    """Many enterprises (the table doubles a dozen times), unscored ones probed too."""
    from schemas import make_uscc

    table = ScoreTable(HISTORY)
    codes = [make_uscc("330102", f"{i:08d}") for i in range(20_000)]
    for i, code in enumerate(codes[::2]):
        table.add(code, ScoreVersion(1_000 + i, i, BANDS[i % 3], "C"))
    assert len(table) == 10_000
    assert not table._other
    assert table.scored == {(b, "C"): n for b, n in zip(BANDS, (3334, 3333, 3333), strict=True)}
    for i, code in enumerate(codes):
        if i % 2:
            assert table.join(code, 10**9) == (UNSCORED, UNKNOWN_SECTOR, code)
            assert not table.has(code, i // 2)
        else:
            n = i // 2
            assert table.as_of(code, 1_000 + n) == (BANDS[n % 3], "C")
            assert table.as_of(code, 999 + n) == (UNSCORED, UNKNOWN_SECTOR)
            assert table.has(code, n)
            assert not table.has(code, n + 1)
            assert not table.has(code, str(n))
