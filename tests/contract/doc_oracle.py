"""An oracle of the figures docs/metrics.md defines, written from that document (and the
wire formats of docs/events.md) alone, without the worker's code: the judge's view.

It reads records one by one in a read order (each topic-partition in its Kafka order,
topics interleaved at any rate) and keeps the integer state behind every series. Rules
are quoted from docs/metrics.md where they are applied. Scope: transactions, scores, FX,
loans (book, gauges, inclusive SME), flow accounting, event-time windows, and with
``rules`` set the rule hits (tests/contract/doc_rules_oracle.py: which transactions the rules
see is decided here, the hits there).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import orjson

from tests.contract.doc_rules_oracle import RulesOracle, Seen, is_cash

PARTITIONS = 12
TX, LOANS, SCORES, FX = "dfip.transactions", "dfip.loans", "dfip.scores", "dfip.fx"
DAY_US = 86_400_000_000
DAY_MS = 86_400_000
BEIJING = timedelta(hours=8)

REGIONS = {
    "3301": "hangzhou", "3302": "ningbo", "3303": "wenzhou", "3304": "jiaxing",
    "3305": "huzhou", "3306": "shaoxing", "3307": "jinhua", "3308": "quzhou",
    "3309": "zhoushan", "3310": "taizhou", "3311": "lishui",
}  # fmt: skip
RISK_ORDER = ["normal", "special_mention", "substandard", "doubtful", "loss"]
LOAN_EVENT_TYPES = {
    "application_submitted", "approved", "rejected", "withdrawn", "disbursed", "repayment",
    "delinquency_changed", "risk_class_changed", "defaulted", "written_off", "closed",
}  # fmt: skip
ENDING = ("written_off", "closed")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's ``Utils.murmur2``), unsigned 32-bit."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[4 * n4 :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def home_of(uscc: str) -> int:
    """``partition_for(USCC) = (murmur2(USCC as UTF-8) & 0x7fffffff) mod 12``."""
    return (murmur2(uscc.encode()) & 0x7FFFFFFF) % PARTITIONS


def region_of(uscc: str) -> str:
    """Characters 3-6 of the USCC (GB/T 2260 prefecture)."""
    return REGIONS.get(uscc[2:6], "other")


def band_of(score: Decimal | None) -> str:
    if score is None:
        return "unscored"
    if score < 20:
        return "l0"
    if score < 40:
        return "l1"
    if score < 60:
        return "l2"
    if score < 80:
        return "l3"
    return "l4"


def to_fen(amount: Decimal, rate: Decimal) -> int:
    """``round_half_even(amount x rate_to_cny x 100)``, exactly in decimal."""
    with localcontext() as ctx:
        ctx.prec = 80
        return int((amount * rate * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def rate_units(rate: Decimal) -> int:
    """``round_half_even(annual_rate x 10000)``."""
    with localcontext() as ctx:
        ctx.prec = 80
        return int((rate * 10000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def us_of(text: str) -> int:
    """An ISO 8601 time with an offset, kept to the microsecond, as µs since the epoch."""
    at = datetime.fromisoformat(text).astimezone(UTC)
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def beijing_date(at_us: int) -> date:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=at_us) + BEIJING).date()


@dataclass(frozen=True)
class In:
    """One record as read: ``copy_of`` names the (topic, partition, offset) of the record a
    forwarded copy was made from (None for a record the inputs contain)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None
    copy_of: tuple[str, int, int] | None = None


class Rejected(Exception):
    def __init__(self, error_class: str) -> None:
        super().__init__(error_class)
        self.error_class = error_class


def decode(value: bytes | None, topic: str) -> dict[str, Any]:
    """The verdict classes of docs/metrics.md for the few malformed shapes the tests send;
    valid records are read as docs/events.md writes them."""
    if value is None:
        raise Rejected("undecodable")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("undecodable") from None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Rejected("invalid_json") from None
    if not isinstance(doc, dict):
        raise Rejected("invalid_shape")
    kind = doc.get("kind")
    wanted = {TX: ("transaction", "loan"), LOANS: ("transaction", "loan"),
              SCORES: ("digitalization_score",), FX: ("fx_rate",)}[topic]  # fmt: skip
    known = ("transaction", "loan", "digitalization_score", "fx_rate")
    if kind not in known:
        raise Rejected("invalid_shape")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):  # missing or non-integer
        raise Rejected("invalid_shape")
    if version != 1:
        raise Rejected("unsupported_version")
    own = {TX: "transaction", LOANS: "loan"}.get(topic)
    if kind not in wanted or (own is not None and kind != own):
        raise Rejected("invalid_shape")  # valid as its own kind, on the wrong topic
    return doc


@dataclass
class Counted:
    """A counted transaction or application/decision, as restatement needs it."""

    topic: str
    event_type: str  # "transaction" or the loan event type
    occurred_us: int
    labels: dict[str, str]
    band: str
    sector: str
    currency: str = "CNY"
    amount: Decimal = Decimal(0)
    fen: int = 0
    windowed: bool = False


@dataclass
class Loan:
    loan_id: str
    uscc: str
    institution_type: str
    band: str
    region: str
    currency: str
    principal: Decimal
    outstanding: Decimal
    rate: Decimal  # book rate (CNY per unit)
    annual_units: int
    occurred_us: int
    inclusive: bool
    windowed: bool = False
    risk: str = "normal"
    dpd: int = 0
    defaulted: bool = False

    def p_fen(self) -> int:
        return to_fen(self.principal, self.rate)

    def o_fen(self) -> int:
        return to_fen(self.outstanding, self.rate)

    def effective_risk(self) -> str:
        implied = "normal"
        d = self.dpd
        if d > 360:
            implied = "loss"
        elif d > 270:
            implied = "doubtful"
        elif d > 90:
            implied = "substandard"
        elif d >= 1:
            implied = "special_mention"
        worst = max(RISK_ORDER.index(self.risk), RISK_ORDER.index(implied))
        if self.defaulted:
            worst = max(worst, RISK_ORDER.index("substandard"))
        return RISK_ORDER[worst]


def dpd_bucket(d: int) -> str | None:
    if d <= 0:
        return None
    if d < 30:
        return "1_29"
    if d < 60:
        return "30_59"
    if d < 90:
        return "60_89"
    return "90_plus"


@dataclass
class Parked:
    doc: dict[str, Any]
    topic: str
    home: int
    late: bool
    forwarded: bool = False


@dataclass
class Oracle:
    grace_us: int = 600_000_000
    max_future_us: int = DAY_US
    dedup_retention_days: int = 45
    restate_horizon_us: int = 120 * DAY_US
    fx_max_age_days: int = 10
    score_history: int = 8
    # docs/metrics.md restates a loan from max(A', F) like the other events (A' < A when the
    # new assessment pushed one out of the kept history); False: from max(A, F)
    loans_from_pushed_out: bool = True
    # series → {(labels..., partition): state}
    figures: dict[str, dict[tuple[str, ...], int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    watermark: dict[tuple[str, int], int] = field(default_factory=dict)
    clock_ms: dict[tuple[str, int], int] = field(default_factory=dict)
    remembered: dict[tuple[str, int], dict[str, int]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    # enterprise → {assessed_at µs: (overall, sector, event_id)}
    history: dict[str, dict[int, tuple[Decimal, str, str]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    counted: dict[str, list[Counted]] = field(default_factory=lambda: defaultdict(list))
    # (currency, rate_date) → (value read last, earliest published_at µs)
    rates: dict[tuple[str, date], tuple[Decimal, int]] = field(default_factory=dict)
    parked: dict[int, list[Parked]] = field(default_factory=lambda: defaultdict(list))
    loans: dict[tuple[int, str], Loan] = field(default_factory=dict)
    # event-time windows: (topic, partition, size µs, start µs) → figure → labels → value
    windows: dict[tuple[str, int, int, int], dict[str, dict[tuple[str, ...], int]]] = field(
        default_factory=dict
    )
    # the figures of each window as last emitted, and the windows amended since
    emitted: dict[tuple[str, int, int, int], dict[str, dict[tuple[str, ...], int]]] = field(
        default_factory=dict
    )
    amended: set[tuple[str, int, int, int]] = field(default_factory=set)
    # docs/metrics.md: an amended emitted window is emitted again, also when the batch that
    # ends after the amendment moves the watermark past the window's hold; False: dropped
    reemit_dropped: bool = True
    # forwarded records: origin → lateness where it landed
    forwarded: dict[tuple[str, int, int], bool] = field(default_factory=dict)
    # the rules over dfip.transactions (None: off, as in a worker with DFIP_WORKER_RULES=false)
    rules: RulesOracle | None = None

    # ---- figures ------------------------------------------------------------------------

    def add(self, name: str, labels: tuple[str, ...], partition: int, n: int) -> None:
        self.figures[name][(*labels, str(partition))] += n

    def series(self) -> dict[str, dict[tuple[str, ...], int]]:
        """Every series with a non-zero state (a 0 state has no sample)."""
        out: dict[str, dict[tuple[str, ...], int]] = {}
        for name, rows in self.figures.items():
            kept = {lab: v for lab, v in rows.items() if v != 0}
            if kept:
                out[name] = kept
        for name, rows in self.gauges().items():
            if rows:
                out[name] = rows
        if self.rules is not None:
            out.update(self.rules.series(self.rule_hits()))
        return out

    def rule_hits(self) -> list[Any]:
        """The hits decided by now: windows final under each partition's transactions
        watermark (docs/aml-rules.md, "Order does not matter")."""
        assert self.rules is not None
        marks = {p: w for (t, p), w in self.watermark.items() if t == TX}
        return self.rules.hits(marks)

    def gauges(self) -> dict[str, dict[tuple[str, ...], int]]:
        g: dict[str, dict[tuple[str, ...], int]] = defaultdict(lambda: defaultdict(int))
        borrowers: dict[int, set[str]] = defaultdict(set)
        for (p, _), loan in self.loans.items():
            ps = str(p)
            o = loan.o_fen()
            g["dfip_loan_outstanding_principal_yuan"][
                (loan.institution_type, loan.band, loan.effective_risk(), ps)
            ] += o
            bucket = dpd_bucket(loan.dpd)
            if bucket is not None:
                g["dfip_loan_past_due_principal_yuan"][(loan.institution_type, bucket, ps)] += o
            g["dfip_loans_active"][(loan.institution_type, loan.band, ps)] += 1
            borrowers[p].add(loan.uscc)
        for p, who in borrowers.items():
            g["dfip_borrowers_active"][(str(p),)] += len(who)
        for uscc, hist in self.history.items():
            if hist:
                newest = max(hist)
                overall, sector, _ = hist[newest]
                g["dfip_enterprises_scored"][(band_of(overall), sector, str(home_of(uscc)))] += 1
        pending: dict[tuple[str, ...], int] = defaultdict(int)
        for p, entries in self.parked.items():
            for e in entries:
                pending[(e.topic, str(p))] += 1
        g["dfip_fx_pending_events"] = pending
        return {n: {k: v for k, v in rows.items() if v != 0} for n, rows in g.items()}

    # ---- joins and rates ------------------------------------------------------------------

    def join(self, uscc: str, at_us: int) -> tuple[str, str]:
        """The newest kept assessment with ``assessed_at <= occurred_at``."""
        hist = self.history.get(uscc, {})
        best = [a for a in hist if a <= at_us]
        if not best:
            return "unscored", "unknown"
        overall, sector, _ = hist[max(best)]
        return band_of(overall), sector

    def rate_in_force(self, currency: str, at_us: int) -> Decimal | None:
        if currency == "CNY":
            return Decimal(1)
        day = beijing_date(at_us)
        best: date | None = None
        for (cur, rate_date), (_, first_pub) in self.rates.items():
            if cur != currency or first_pub > at_us:
                continue
            if rate_date > day or (day - rate_date).days > self.fx_max_age_days:
                continue
            if best is None or rate_date > best:
                best = rate_date
        return None if best is None else self.rates[(currency, best)][0]

    def floor(self, p: int) -> int | None:
        marks = [self.watermark[(t, p)] for t in (TX, LOANS) if (t, p) in self.watermark]
        return max(marks) - self.restate_horizon_us if marks else None

    # ---- arrival clock and dedup ----------------------------------------------------------

    def observe(self, topic: str, p: int, ts_ms: int | None) -> None:
        key = (topic, p)
        if ts_ms is not None and ts_ms >= 0 and ts_ms > self.clock_ms.get(key, -1):
            self.clock_ms[key] = ts_ms
            today = ts_ms // DAY_MS
            mem = self.remembered[key]
            for eid in [e for e, d in mem.items() if today >= d + self.dedup_retention_days + 1]:
                del mem[eid]

    def remember(self, topic: str, p: int, eid: str) -> None:
        self.remembered[(topic, p)][eid] = self.clock_ms.get((topic, p), 0) // DAY_MS

    def is_duplicate(self, topic: str, p: int, eid: str) -> bool:
        if eid in self.remembered[(topic, p)]:
            return True
        return any(e.topic == topic and e.doc["event_id"] == eid for e in self.parked[p])

    # ---- event-time windows (Asia/Shanghai: whole hours from UTC, days from 16:00 UTC) ----

    def window_add(
        self, topic: str, p: int, at_us: int, figure: str, labels: tuple[str, ...], n: int,
        *, amend: bool,
    ) -> None:  # fmt: skip
        hour = 3_600_000_000
        starts = [
            (hour, at_us - at_us % hour),
            (DAY_US, at_us - (at_us + 8 * hour) % DAY_US),
        ]
        mark = self.watermark.get((topic, p))
        for size, start in starts:
            if amend and mark is not None and mark >= start + size + self.grace_us + DAY_US:
                continue  # no longer held: an amendment does not reach it
            win = self.windows.setdefault((topic, p, size, start), {})
            row = win.setdefault(figure, {})
            row[labels] = row.get(labels, 0) + n
            if n:
                self.amended.add((topic, p, size, start))

    def window_tx(self, c: Counted, p: int, sign: int, *, amend: bool) -> None:
        if not c.windowed:
            return
        labels = (c.labels["institution_type"], c.band)
        self.window_add(TX, p, c.occurred_us, "tx_count", labels, sign, amend=amend)
        self.window_add(TX, p, c.occurred_us, "tx_amount_fen", labels, sign * c.fen, amend=amend)

    def window_loan(self, loan: Loan, p: int, sign: int, *, amend: bool) -> None:
        if loan.windowed:
            self.window_add(
                LOANS, p, loan.occurred_us, "disbursed_fen", (loan.institution_type,),
                sign * loan.p_fen(), amend=amend,
            )  # fmt: skip

    def close_windows(self, partitions: set[int] | None = None) -> None:
        """At the end of a batch (of the worker owning ``partitions``; None: all): due
        windows are emitted, emitted ones amended since are emitted again."""
        for key, win in self.windows.items():
            topic, p, size, start = key
            if partitions is not None and p not in partitions:
                continue
            if key not in self.emitted:
                self.amended.discard(key)  # its first emission shows it as it is then
            mark = self.watermark.get((topic, p))
            if mark is None or mark < start + size + self.grace_us:
                continue
            if key in self.emitted:
                if key not in self.amended:
                    continue
                held = mark < start + size + self.grace_us + DAY_US
                if not held and not self.reemit_dropped:
                    continue
            self.amended.discard(key)
            self.emitted[key] = {
                name: {lab: v for lab, v in rows.items() if v != 0} for name, rows in win.items()
            }

    def metrics_records(self) -> dict[str, dict[str, Any]]:
        """The compacted dfip.metrics: the last record of each closed window."""
        out: dict[str, dict[str, Any]] = {}
        for key in sorted(self.emitted):
            topic, p, size, start = key
            figures = self.emitted[key]
            t0 = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=start)
            t1 = t0 + timedelta(microseconds=size)
            label = "1h" if size < DAY_US else "1d"
            out[f"{label}:{t0.isoformat()}:{topic}:{p}"] = {
                "kind": "window_figures", "size": label, "window_start": t0.isoformat(),
                "window_end": t1.isoformat(), "zone": "Asia/Shanghai",
                "local_date": (t0 + BEIJING).date().isoformat(), "topic": topic,
                "partition": p, "figures": {n: r for n, r in figures.items() if r},
            }  # fmt: skip
        return out

    # ---- reading --------------------------------------------------------------------------

    def read(self, rec: In) -> None:
        if rec.topic == FX:
            self.read_fx(rec)
        elif rec.topic == SCORES:
            self.read_score(rec)
        else:
            self.read_event(rec)

    def dead_letter(self, topic: str, p: int, error_class: str) -> None:
        self.add("dfip_events_deadlettered_total", (topic, error_class), p, 1)

    def future(self, rec: In, at_us: int) -> bool:
        ts = rec.timestamp_ms
        return ts is not None and ts >= 0 and at_us > ts * 1000 + self.max_future_us

    def read_fx(self, rec: In) -> None:
        # counted once, by the owner of input partition 0, under partition="0"
        self.add("dfip_events_received_total", (FX,), 0, 1)
        try:
            doc = decode(rec.value, FX)
        except Rejected as exc:
            self.dead_letter(FX, 0, exc.error_class)
            return
        self.add("dfip_events_processed_total", (FX,), 0, 1)
        key = (doc["currency"], date.fromisoformat(doc["rate_date"]))
        published = us_of(doc["published_at"])
        old = self.rates.get(key)
        first = published if old is None else min(old[1], published)
        self.rates[key] = (Decimal(str(doc["rate_to_cny"])), first)
        self.restate_fx()
        self.apply_parked()

    def restate_fx(self) -> None:
        for uscc, events in self.counted.items():
            p = home_of(uscc)
            floor = self.floor(p)
            for c in events:
                if c.event_type != "transaction" or c.currency == "CNY":
                    continue
                if floor is not None and c.occurred_us < floor:
                    continue
                rate = self.rate_in_force(c.currency, c.occurred_us)
                assert rate is not None
                fen = to_fen(c.amount, rate)
                if fen != c.fen and fen < 10**15:  # at the bound: not restated (docs)
                    self.move_tx(c, p, c.band, c.sector, fen)
        for (p, _), loan in self.loans.items():
            if loan.currency == "CNY":
                continue
            floor = self.floor(p)
            if floor is not None and loan.occurred_us < floor:
                continue
            rate = self.rate_in_force(loan.currency, loan.occurred_us)
            assert rate is not None
            if to_fen(loan.principal, rate) < 10**14:  # at the bound: not re-booked (docs)
                self.rebook(p, loan, loan.band, rate)

    def apply_parked(self) -> None:
        for p in sorted(self.parked):
            waiting = self.parked[p]
            kept: list[Parked] = []
            blocked: set[str] = set()
            for e in waiting:
                doc = e.doc
                loan_key = doc.get("loan_id") if e.topic == LOANS else None
                if loan_key is not None and loan_key in blocked:
                    kept.append(e)
                    continue
                needs = e.topic == TX or doc.get("event_type") == "disbursed"
                if needs and self.rate_in_force(doc["currency"], us_of(doc["occurred_at"])) is None:
                    kept.append(e)
                    if loan_key is not None:
                        blocked.add(loan_key)
                    continue
                self.parked[p] = [*kept]  # what is still waiting while this one applies
                self.apply(e.topic, p, doc, e.late, e.forwarded)
            self.parked[p] = kept

    def end_batch(self, partitions: set[int] | None = None) -> None:
        """Parked events whose occurred_at the restatement floor passed are dead-lettered;
        due windows close."""
        self.close_windows(partitions)
        for p in sorted(self.parked):
            if partitions is not None and p not in partitions:
                continue
            floor = self.floor(p)
            if floor is None:
                continue
            kept: list[Parked] = []
            for e in self.parked[p]:
                if us_of(e.doc["occurred_at"]) < floor and (
                    e.topic == TX or e.doc.get("event_type") == "disbursed"
                ):
                    self.dead_letter(e.topic, p, "fx_rate_missing")
                else:
                    kept.append(e)
            self.parked[p] = kept
        self.apply_parked()  # loan events waiting behind a dead-lettered one apply now
        self.close_windows(partitions)

    def admit(self, rec: In, topic: str, time_field: str) -> tuple[dict[str, Any], int] | None:
        """Received (originals only), decoded and not future-dated: the record's document and
        its time in µs; None when it was dead-lettered instead."""
        p = rec.partition
        self.observe(topic, p, rec.timestamp_ms)
        if rec.copy_of is None:
            self.add("dfip_events_received_total", (topic,), p, 1)
        try:
            doc = decode(rec.value, topic)
        except Rejected as exc:
            self.dead_letter(topic, p, exc.error_class)
            return None
        at = us_of(doc[time_field])
        if self.future(rec, at):
            self.dead_letter(topic, p, "future_dated")
            return None
        return doc, at

    def read_score(self, rec: In) -> None:
        p = rec.partition
        admitted = self.admit(rec, SCORES, "assessed_at")
        if admitted is None:
            return
        doc, assessed = admitted
        uscc = doc["enterprise_uscc"]
        home = home_of(uscc)
        if p != home:
            assert rec.copy_of is None, "a forwarded copy on the wrong partition"
            self.forwarded[(SCORES, p, rec.offset)] = False
            return
        hist = self.history[uscc]
        if any(v[2] == doc["event_id"] for v in hist.values()):
            self.add("dfip_events_duplicate_total", (SCORES,), home, 1)
            return
        self.add("dfip_events_processed_total", (SCORES,), home, 1)
        hist[assessed] = (
            Decimal(str(doc["overall_score"])),
            doc["industry_section"],
            doc["event_id"],
        )
        since = assessed
        while len(hist) > self.score_history:
            oldest = min(hist)
            since = min(since, oldest)
            del hist[oldest]
        floor = self.floor(home)
        start = since if floor is None else max(since, floor)
        for c in self.counted[uscc]:
            if c.occurred_us >= start:
                band, sector = self.join(uscc, c.occurred_us)
                if (band, sector) != (c.band, c.sector):
                    if c.event_type == "transaction":
                        self.move_tx(c, home, band, sector, c.fen)
                    elif band != c.band:
                        self.move_loan_event(c, home, band)
        since_loans = since if self.loans_from_pushed_out else assessed
        start = since_loans if floor is None else max(since_loans, floor)
        for (lp, _), loan in self.loans.items():
            if lp == home and loan.uscc == uscc and loan.occurred_us >= start:
                band, _ = self.join(uscc, loan.occurred_us)
                if band != loan.band:
                    self.rebook(home, loan, band, loan.rate)

    def move_tx(self, c: Counted, p: int, band: str, sector: str, fen: int) -> None:
        self.count_tx(c, p, -1)
        self.window_tx(c, p, -1, amend=True)
        c.band, c.sector, c.fen = band, sector, fen
        self.count_tx(c, p, +1)
        self.window_tx(c, p, +1, amend=True)

    def count_tx(self, c: Counted, p: int, sign: int) -> None:
        lab = c.labels
        key = (lab["institution_type"], c.band, lab["region"], lab["direction"])
        self.add("dfip_transactions_total", key, p, sign)
        self.add("dfip_transaction_amount_yuan_total", key, p, sign * c.fen)
        self.add("dfip_transactions_by_sector_total", (c.sector, c.band), p, sign)
        mode = lab.get("customs_mode")
        if mode:
            self.add(
                "dfip_crossborder_ecommerce_payments_total",
                (mode, lab["institution_type"]),
                p,
                sign,
            )
            self.add(
                "dfip_crossborder_ecommerce_amount_yuan_total",
                (mode, lab["institution_type"]), p, sign * c.fen,
            )  # fmt: skip

    def move_loan_event(self, c: Counted, p: int, band: str) -> None:
        self.count_loan_event(c, p, -1)
        c.band = band
        self.count_loan_event(c, p, +1)

    def count_loan_event(self, c: Counted, p: int, sign: int) -> None:
        it = c.labels["institution_type"]
        if c.event_type == "application_submitted":
            self.add("dfip_loan_applications_total", (it, c.band), p, sign)
        else:
            self.add("dfip_loan_decisions_total", (it, c.band, c.event_type), p, sign)

    def rebook(self, p: int, loan: Loan, band: str, rate: Decimal) -> None:
        """Move a loan's disbursement figures to a new vintage band and/or book rate."""
        self.count_disbursement(p, loan, -1)
        self.window_loan(loan, p, -1, amend=True)
        loan.band, loan.rate = band, rate
        self.count_disbursement(p, loan, +1)
        self.window_loan(loan, p, +1, amend=True)

    def count_disbursement(self, p: int, loan: Loan, sign: int) -> None:
        it, band = loan.institution_type, loan.band
        pf = loan.p_fen()
        self.add("dfip_loan_disbursements_total", (it, band, loan.region), p, sign)
        self.add("dfip_loan_disbursed_principal_yuan_total", (it, band, loan.region), p, sign * pf)
        self.add(
            "dfip_loan_disbursed_rate_weighted_yuan_total", (it, band), p,
            sign * pf * loan.annual_units,
        )  # fmt: skip
        if loan.inclusive:
            self.add("dfip_loan_inclusive_sme_disbursed_principal_yuan_total", (it,), p, sign * pf)
        self.add("dfip_loan_repaid_principal_yuan_total", (it, band), p, sign * (pf - loan.o_fen()))

    def read_event(self, rec: In) -> None:
        topic, p = rec.topic, rec.partition
        admitted = self.admit(rec, topic, "occurred_at")
        if admitted is None:
            return
        doc, occurred = admitted
        home = home_of(doc["enterprise_uscc"])
        if p != home:
            assert rec.copy_of is None, "a forwarded copy on the wrong partition"
            # judged late against, and moving, the watermark where it landed
            mark = self.watermark.get((topic, p))
            late = mark is not None and occurred < mark - self.grace_us
            self.watermark[(topic, p)] = occurred if mark is None else max(mark, occurred)
            self.forwarded[(topic, p, rec.offset)] = late
            return
        if self.is_duplicate(topic, home, doc["event_id"]):
            self.add("dfip_events_duplicate_total", (topic,), home, 1)
            return
        mark = self.watermark.get((topic, home))
        if rec.copy_of is not None:
            late = self.forwarded[rec.copy_of]
        else:
            late = mark is not None and occurred < mark - self.grace_us

        def moved() -> None:  # processed or parked events move it; dead letters do not
            if rec.copy_of is None:
                self.watermark[(topic, home)] = occurred if mark is None else max(mark, occurred)

        blocked = (
            topic == LOANS
            and any(
                e.topic == LOANS and e.doc.get("loan_id") == doc["loan_id"]
                for e in self.parked[home]
            )
            and doc["event_type"]
            not in ("application_submitted", "approved", "rejected", "withdrawn")
        )
        needs = topic == TX or doc["event_type"] == "disbursed"
        if blocked or (needs and self.rate_in_force(doc["currency"], occurred) is None):
            self.parked[home].append(Parked(doc, topic, home, late, rec.copy_of is not None))
            moved()
            return
        if self.apply(topic, home, doc, late, rec.copy_of is not None):
            moved()

    def apply(
        self, topic: str, p: int, doc: dict[str, Any], late: bool, forwarded: bool = False
    ) -> bool:
        """Count an event judged not a duplicate whose rate (if it needs one) is in force;
        False if the loan book (or the amount bound) dead-lettered it."""
        occurred = us_of(doc["occurred_at"])
        mark = self.watermark.get((topic, p))
        windowed = not late and (mark is None or mark < occurred + self.grace_us + DAY_US)
        # docs/aml-rules.md: late events and forwarded copies are not seen by the rules; a
        # parked one is seen when counted unless its time is final by then
        seen = not late and not forwarded and (mark is None or occurred >= mark - self.grace_us)
        if topic == TX:
            if not self.apply_tx(p, doc, windowed, seen):
                return False
        elif not self.apply_loan(p, doc, windowed):
            return False
        self.add("dfip_events_processed_total", (topic,), p, 1)
        if late:
            self.add("dfip_events_late_total", (topic,), p, 1)
        self.remember(topic, p, doc["event_id"])
        return True

    def apply_tx(self, p: int, doc: dict[str, Any], windowed: bool, seen: bool = False) -> bool:
        uscc = doc["enterprise_uscc"]
        occurred = us_of(doc["occurred_at"])
        rate = self.rate_in_force(doc["currency"], occurred)
        assert rate is not None
        amount = Decimal(str(doc["amount"]))
        fen = to_fen(amount, rate)
        if fen >= 10**15:
            self.dead_letter(TX, p, "invalid_field")
            return False
        band, sector = self.join(uscc, occurred)
        labels = {
            "institution_type": doc["institution_type"],
            "region": region_of(uscc),
            "direction": doc["direction"],
            "customs_mode": doc.get("customs_mode") or "",
        }
        c = Counted(TX, "transaction", occurred, labels, band, sector, doc["currency"], amount, fen)
        c.windowed = windowed
        self.counted[uscc].append(c)
        self.count_tx(c, p, +1)
        self.window_tx(c, p, +1, amend=False)
        if self.rules is not None and seen:
            self.rules.observe(uscc, p, labels["region"], Seen(
                occurred, doc["event_id"], fen, doc["direction"], doc["currency"], amount,
                is_cash(doc.get("bank_tx_code")), doc["institution_type"], band,
            ))  # fmt: skip
        return True

    def apply_loan(self, p: int, doc: dict[str, Any], windowed: bool) -> bool:
        uscc = doc["enterprise_uscc"]
        occurred = us_of(doc["occurred_at"])
        et = doc["event_type"]
        it = doc["institution_type"]
        band, sector = self.join(uscc, occurred)
        if et in ("application_submitted", "approved", "rejected", "withdrawn"):
            c = Counted(LOANS, et, occurred, {"institution_type": it}, band, sector)
            self.counted[uscc].append(c)
            self.count_loan_event(c, p, +1)
            return True
        key = (p, doc["loan_id"])
        loan = self.loans.get(key)
        if et == "disbursed":
            if loan is not None:
                self.dead_letter(LOANS, p, "invalid_field")
                return False
            rate = self.rate_in_force(doc["currency"], occurred)
            assert rate is not None
            principal = Decimal(str(doc["principal"]))
            if to_fen(principal, rate) >= 10**14:
                self.dead_letter(LOANS, p, "invalid_field")
                return False
            loan = Loan(
                doc["loan_id"], uscc, it, band, region_of(uscc), doc["currency"], principal,
                principal, rate, rate_units(Decimal(str(doc["annual_rate"]))), occurred,
                inclusive=False,
            )  # fmt: skip
            if doc["inclusive_sme"]:
                credit = loan.p_fen() + sum(
                    other.p_fen() for (op, _), other in self.loans.items()
                    if op == p and other.uscc == uscc
                )  # fmt: skip
                loan.inclusive = credit <= 1_000_000_000
            loan.windowed = windowed
            self.loans[key] = loan
            self.count_disbursement(p, loan, +1)
            self.window_loan(loan, p, +1, amend=False)
            return True
        if loan is None:
            self.dead_letter(LOANS, p, "unknown_loan")
            return False
        if et == "repayment":
            amount = Decimal(str(doc["principal_amount"]))
            if doc["currency"] != loan.currency or amount > loan.outstanding:
                self.dead_letter(LOANS, p, "invalid_field")
                return False
            before = loan.o_fen()
            loan.outstanding -= amount
            self.add(
                "dfip_loan_repaid_principal_yuan_total", (loan.institution_type, loan.band), p,
                before - loan.o_fen(),
            )  # fmt: skip
        elif et == "delinquency_changed":
            loan.dpd = int(doc["days_past_due"])
        elif et == "risk_class_changed":
            loan.risk = doc["risk_class"]
        elif et == "defaulted":
            loan.defaulted = True
        elif et == "written_off":
            self.add(
                "dfip_loan_written_off_principal_yuan_total", (loan.institution_type, loan.band),
                p, loan.o_fen(),
            )  # fmt: skip
            del self.loans[key]
        elif et == "closed":
            del self.loans[key]
        return True
