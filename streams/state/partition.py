"""The state of one input partition number (all co-partitioned USCC topics share it).

Everything that decides a figure lives here, keyed by partition, so an aggregate is never
updated from two partitions (the Faust changelog trap in DESIGN.md). Changes since the last
commit are tracked so that a commit writes only what changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from streams.reference.fx_state import FxBook
from streams.rules.engine import RulesState
from streams.state.dedup import DedupMemory

__all__ = [
    "ContribLabels",
    "Counters",
    "LoanState",
    "PartitionState",
    "Tally",
    "TxGroup",
    "Window",
    "WindowGroup",
    "WindowKey",
]

Labels = tuple[str, ...]
# (institution_type, direction, windowed, band, sector) of a restatement contribution
ContribLabels = tuple[str, str, bool, str, str]
# what decides a counted transaction's live figures: (institution_type, band, region,
# direction, sector, customs_mode or None)
TxGroup = tuple[str, str, str, str, str, str | None]
# what decides its window figures: (topic, quarter hour of occurred_at, institution_type,
# band); a quarter hour never straddles a window boundary (streams/aggregate/windows.py)
WindowGroup = tuple[str, int, str, str]


class Counters:
    """figure name → label values → integer (fen, counts). Gauges live here too.

    ``track=True`` (the partition's live counters) also remembers which series changed since
    the last commit (``changed``: name → labels, in order of first change), so the changelog
    writes only those (streams/state/changelog.py); window counters are written whole.
    Change values only through :meth:`add`: a change made around it would not be written.

    A tracked instance also keeps its last :meth:`snapshot` and the names changed since
    (``_stale``): the next snapshot copies only those series and shares the others with the
    last one (copied when taken, never written after), instead of copying every series of
    every touched partition per batch (issue 18).
    """

    __slots__ = ("_dirty", "_snap", "_stale", "changed", "values")

    def __init__(self, *, track: bool = False) -> None:
        self.values: dict[str, dict[Labels, int]] = {}
        self._dirty = False
        self.changed: dict[str, dict[Labels, None]] | None = {} if track else None
        # the last snapshot (None: none taken yet) and the names changed since it that
        # ``changed`` no longer lists (mark_clean moves them here)
        self._snap: dict[str, dict[Labels, int]] | None = None
        self._stale: set[str] = set()

    def add(self, name: str, labels: Labels, amount: int) -> None:
        if amount == 0:
            return
        series = self.values.get(name)
        if series is None:
            series = self.values[name] = {}
        new = series.get(labels, 0) + amount
        if new == 0:
            series.pop(labels, None)
        else:
            series[labels] = new
        self._dirty = True
        changed = self.changed
        if changed is not None:
            names = changed.get(name)
            if names is None:
                changed[name] = {labels: None}
            else:
                names[labels] = None

    def get(self, name: str, labels: Labels) -> int:
        return self.values.get(name, {}).get(labels, 0)

    @property
    def dirty(self) -> bool:
        return self._dirty

    def mark_clean(self) -> None:
        self._dirty = False
        changed = self.changed
        if changed:
            if self._snap is not None:
                self._stale.update(changed)
            self.changed = {}

    def snapshot(self) -> dict[str, dict[Labels, int]]:
        """Every series, copied: a mapping nothing writes to afterwards (the committed view).

        Tracked: the series unchanged since the last snapshot are that snapshot's copies;
        the same keys in the same order as a whole copy (names are never removed; one added
        since, rare, takes a whole copy to keep the order)."""
        values = self.values
        prev = self._snap
        changed = self.changed
        if changed is None:
            return {name: dict(series) for name, series in values.items()}
        stale = self._stale
        if prev is None or len(prev) != len(values):
            snap = {name: dict(series) for name, series in values.items()}
        else:
            snap = prev.copy()
            for name in stale:
                snap[name] = dict(values[name])
            for name in changed:
                if name not in stale:
                    snap[name] = dict(values[name])
        stale.clear()
        self._snap = snap
        return snap

    def to_json(self) -> list[list[Any]]:
        """``[[name, [[labels, value], ...]], ...]``: orjson writes the (labels tuple, value)
        items as arrays itself, so no Python list is built per series (the whole counter
        set is written per touched partition and batch; issue 18)."""
        return [[name, list(series.items())] for name, series in self.values.items()]

    def changed_json(self) -> list[list[Any]]:
        """The series changed since the last commit, in the layout of :meth:`to_json`, with
        their current values (0: gone)."""
        values = self.values
        out: list[list[Any]] = []
        for name, changed in (self.changed or {}).items():
            get = values.get(name, {}).get
            out.append([name, [(labels, get(labels, 0)) for labels in changed]])
        return out

    def overlay_json(self, rows: list[list[Any]]) -> None:
        """Set the series of a :meth:`changed_json` record (0 removes one)."""
        self._snap = None  # changed around add: the next snapshot copies everything
        for name, items in rows:
            series = self.values.setdefault(name, {})
            for labels, value in items:
                if value:
                    series[tuple(labels)] = int(value)
                else:
                    series.pop(tuple(labels), None)

    @classmethod
    def from_json(cls, rows: list[list[Any]], *, track: bool = False) -> Counters:
        """Reads both layouts: the one above and the older ``[name, labels, value]`` rows."""
        c = cls(track=track)
        for row in rows:
            if len(row) == 2:
                name, items = row
                series = c.values.setdefault(name, {})
                for labels, value in items:
                    series[tuple(labels)] = int(value)
            else:
                name, labels, value = row
                c.values.setdefault(name, {})[tuple(labels)] = int(value)
        return c


class Tally:
    """The order-independent figure updates of the batch so far, summed per group: flow
    counts per (figure, labels), counted transactions per :data:`TxGroup` and windowed ones
    per :data:`WindowGroup`, both as ``[count, fen]``. Sums commute, so applying them once
    (``flush_tally`` in streams/aggregate/apply.py) gives exactly the figures of applying
    each event in turn; they are applied before anything reads or moves figures (end of
    batch, restatement, FX reconciliation). Not persisted: a tally never outlives its batch.
    """

    __slots__ = ("flow", "tx", "windows")

    def __init__(self) -> None:
        self.flow: dict[tuple[str, Labels], int] = {}
        self.tx: dict[TxGroup, list[int]] = {}
        self.windows: dict[WindowGroup, list[int]] = {}

    def __bool__(self) -> bool:
        return bool(self.flow) or bool(self.tx) or bool(self.windows)


@dataclass
class LoanState:
    """One loan's book, frozen at origination except for what its lifecycle changes."""

    uscc: str
    institution_type: str
    band: str
    region: str
    currency: str
    # CNY per unit of the loan currency, as a decimal string: the booked (disbursement) rate
    book_rate: str
    outstanding: str  # exact, in the loan currency, as a decimal string
    outstanding_fen: int  # to_fen(outstanding, book_rate)
    days_past_due: int = 0
    reported_risk: str = "normal"
    defaulted: bool = False
    # to_fen(principal, book_rate): the credit this loan takes of its borrower's total
    principal_fen: int = -1
    # for restating its vintage band: occurred_at (µs) of the disbursement and
    # round_half_even(annual_rate x RATE_SCALE); -1 in changelogs written before (such a
    # loan is not restated)
    disbursed_us: int = -1
    rate_units: int = -1
    # for restating its book rate when a later-read FX rate changes the rate in force at
    # disbursement (streams/aggregate/fx_book.py): the principal as sent, whether it counted
    # as inclusive SME and whether it entered its windows; "" in changelogs written before
    # (such a loan is not restated)
    principal: str = ""
    inclusive_counted: bool = False
    windowed: bool = False

    def __post_init__(self) -> None:
        if self.principal_fen < 0:  # written before it was kept: the best value still known
            self.principal_fen = self.outstanding_fen

    def to_json(self) -> dict[str, Any]:
        # asdict, not __dict__: a compiled (mypyc) class keeps its fields in slots
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LoanState:
        return cls(**d)


@dataclass
class Window:
    """One event-time window of one input topic-partition."""

    counters: Counters = field(default_factory=Counters)
    closed: bool = False
    amended: bool = False  # changed after closing: emit again (not persisted)

    def to_json(self) -> dict[str, Any]:
        return {"c": self.counters.to_json(), "closed": self.closed}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Window:
        return cls(Counters.from_json(d["c"]), bool(d["closed"]))


WindowKey = tuple[str, str, int]  # (topic, size name, start µs)


@dataclass
class PartitionState:
    """All state of partition number ``partition``."""

    partition: int
    dedup_max_entries: int = 20_000_000
    counters: Counters = field(default_factory=lambda: Counters(track=True))
    loans: dict[str, LoanState] = field(default_factory=dict)
    # next offset to process, per input topic (catalog name) and reference topic
    offsets: dict[str, int] = field(default_factory=dict)
    # largest occurred_at (µs) processed, per input topic
    watermarks: dict[str, int] = field(default_factory=dict)
    # event-time windows, open and recently closed (kept so late forwards can amend them)
    windows: dict[WindowKey, Window] = field(default_factory=dict)
    borrowers: dict[str, int] = field(default_factory=dict)  # uscc → active loans
    # uscc → ids of its active loans (derived, like borrowers)
    borrower_loans: dict[str, list[str]] = field(default_factory=dict)
    # uscc → Σ principal_fen of its active loans (the borrower's total credit here)
    borrower_credit: dict[str, int] = field(default_factory=dict)
    # duplicate memory per topic (catalog name) of this partition number: never shared, so
    # one topic's progress can never prune another's (streams/state/dedup.py)
    dedup: dict[str, DedupMemory] = field(default_factory=dict)
    # uscc → counted transaction contributions kept for restatement, packed
    # (streams/aggregate/restate.py); labels by index into contrib_labels (not persisted:
    # the changelog spells the labels out)
    contributions: dict[str, bytes | bytearray] = field(default_factory=dict)
    contrib_labels: list[ContribLabels] = field(default_factory=list)
    contrib_index: dict[ContribLabels, int] = field(default_factory=dict)
    # the changelog's JSON of each contrib_labels row, by index (restate._packed_value)
    contrib_label_json: list[bytes] = field(default_factory=list)
    dirty_contributions: set[str] = field(default_factory=set)
    # changelog of the contributions (streams/state/changelog.py): uscc → length of its packed
    # entries before this batch's first append (absent for a dirty enterprise whose entries
    # were rewritten); cleared by each commit
    contrib_base: dict[str, int] = field(default_factory=dict)
    # uscc → its live rs:<uscc>:<seq> delta records since its last whole rs:<uscc> record,
    # as count | delta bytes << 16 (only enterprises that have some)
    contrib_deltas: dict[str, int] = field(default_factory=dict)
    # changelog of the counters (streams/state/changelog.py): live ctr:<seq> delta records
    # since the last whole ctr record, their bytes, the whole record's bytes (0: none yet)
    ctr_deltas: int = 0
    ctr_delta_bytes: int = 0
    ctr_whole_bytes: int = 0
    # restore only: the counters records read, by seq (0: the whole record), applied in
    # order by finish_restore (a local copy replays by key: ctr:10 before ctr:2)
    ctr_restored: dict[int, bytes] = field(default_factory=dict)
    # FX: counted foreign-currency transactions and parked events (streams/aggregate/fx_book.py)
    fx_book: FxBook = field(default_factory=FxBook)
    # UTC day of the restatement floor at the last sweep (not persisted)
    swept_day: int | None = None
    # uscc → its counted transactions of the last 30 Beijing days, packed; the day floor at
    # the last sweep (not persisted); changed enterprises (streams/query/recent.py)
    recent_flows: dict[str, bytes] = field(default_factory=dict)
    recent_floor: int | None = None
    dirty_recent: set[str] = field(default_factory=set)
    dirty_loans: set[str] = field(default_factory=set)
    dirty_windows: set[WindowKey] = field(default_factory=set)
    # (topic, arrival day, seq) of dedup changelog records to tombstone at the next commit
    expired_dedup: list[tuple[str, int, int]] = field(default_factory=list)
    # migration: ids of the pre-arrival-time format ("dedup:<seq>" records), by seq
    legacy_dedup: dict[int, list[str]] = field(default_factory=dict)
    legacy_tombstones: list[int] = field(default_factory=list)
    # rule state per enterprise (streams/rules/), changelogged as `al:<uscc>`
    rules: RulesState = field(default_factory=RulesState)
    # figure updates of the current batch not yet applied to counters and windows
    tally: Tally = field(default_factory=Tally)

    def memory(self, topic: str) -> DedupMemory:
        """The duplicate memory of (topic, this partition)."""
        mem = self.dedup.get(topic)
        if mem is None:
            mem = self.dedup[topic] = DedupMemory()
        return mem
