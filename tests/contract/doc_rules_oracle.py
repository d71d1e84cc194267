"""An oracle of the rule hits (``dfip_alerts_total``, ``dfip_alert_amount_yuan_total`` and the
documented fields of the ``dfip.alerts`` records), written from docs/aml-rules.md and the
rule-hit Semantics of docs/metrics.md alone, without streams/rules/: the judge's view (first
written from the docs as they were, then held to the docs as made precise: AMBIGUITIES).

tests/contract/doc_oracle.py decides which transactions the rules *see* (counted on their home
partition, not late, not a forwarded copy, and a parked one only if its time is not final
when its rate is read) and with which CNY fen and band; this module turns those into hits once
the partition's ``dfip.transactions`` watermark makes their windows final. Every reading the
docs left open is named in AMBIGUITIES, with how it was settled."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import chinese_calendar

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
BEIJING_US = 8 * HOUR_US

# docs/aml-rules.md, "The rule set file" (default rule set 2026.12-2)
LARGE_CNY_FEN = 200_000_000
LARGE_USD_CENTS = 20_000_000
CASH_CNY_FEN = 5_000_000
CASH_USD_CENTS = 1_000_000
STRUCT_THRESHOLD_FEN = 5_000_000
STRUCT_LOW_PCT, STRUCT_HIGH_PCT, STRUCT_MIN, STRUCT_HOURS = 90, 100, 3, 24
VELOCITY_BASELINE_HOURS, VELOCITY_MIN, VELOCITY_FACTOR = 168, 20, 5
PASS_HOURS, PASS_MIN_CREDIT_FEN, PASS_TOLERANCE_PCT = 6, 10_000_000, 10
ROUND_UNIT, ROUND_MIN = 10_000, 3
DORMANT_DAYS = 180
MAX_LISTED = 500  # event_ids / amounts_fen: the first 500

# docs/aml-rules.md, "Cash: the bank transaction code table"
CASH_FAMILIES = {"CNTR", "CCRD", "MCRD"}
CASH_SUBFAMILIES = {"CDPT", "CWDL", "BCDP", "BCWD", "FCDP", "FCWD"}
CASH_PROPRIETARY = {"CASH", "CSH", "NCSH", "NCAS"} | {
    "现金",
    "存现",
    "取现",
    "现金存入",
    "现金支取",
    "ATM取款",
}

AMBIGUITIES = """
Where docs/aml-rules.md (as of 11f53bc) left a reader guessing; the first reading this oracle
took; what the worker does; how it was settled (all by making the docs precise: the worker's
answer is a defensible reading in each case, see the report of branch oracle2).
A1 final: "has passed the window's end plus grace" (> or >=?). Worker: >=, like the metrics
   windows. Docs now say "at or past" / ">= end + grace".
A2 thresholds inclusive? USD converted? Read as inclusive, USD compared in USD as sent:
   as the worker does. Docs now say so (Precisely, Thresholds).
A3 large_value_daily "none reaching it by itself": read as "the day's sub-threshold transfers
   of one direction sum to the threshold" (a large transfer left out of the sum). Worker (then):
   any large_value transfer that day, in EITHER direction, vetoed the day's cumulative hit,
   which held every transfer of the day, both directions; the docs said so. Since branch
   lvdir, worker and docs count each direction on its own as PBOC Order [2016] No. 3 does
   (单边累计, docs "Per direction"): credits and debits of a day are two cases, each summing
   all its transfers (not cash), each vetoed only by a large_value of its own direction, each
   its own hit listing only its direction's transfers; a day can have two.
A4 cash: both directions summed, every cash transaction in the hit: as read. Docs explicit.
A5 structuring: candidates of any kind and direction, [90 %, 100 %) in fen: as read.
A6 velocity: hours before the first transaction count 0, "more than" strict: as read.
A7 pass_through: anchors any credit, window sums, tolerance inclusive: as read.
A8 round_amounts: zero excluded (as read); a CNY amount is judged on its fen (10000.004 and
   9999.995 are round: both are 1,000,000 fen) - not as read (amount as sent). Docs now say so.
A9 dormant: >= 180 x 24 h after the previous transaction the rules saw: as read.
A10 first event (earliest, ties by event_id) and its band: the band the event was counted
   with when the rules saw it (a later assessment does not change it, even before the hit is
   decided; metrics.md said "observed when the hit was decided"). Docs now say so.
A11 amounts: the fen the rules saw; a later FX restatement changes neither thresholds nor the
   stated amount, also before the decision. Docs now say so.
A12 cash codes: read as exact; slashes accepted. Worker: surrounding spaces stripped, upper-
   cased, hyphens only (`PMNT/CNTR/CDPT`, the spelling of docs/events.md's example, was not
   cash). Docs say so; the worker now reads slashes as hyphens (schemas/txcodes.py).
A13 window of one-event hits, "the instant": worker [t, t + 1 us) for large_value and
   [previous transaction, t + 1 us) for dormant_reactivation. Docs now say so.
"""


@dataclass(frozen=True)
class Seen:
    """A transaction as the rules saw it."""

    at_us: int
    event_id: str
    fen: int
    direction: str
    currency: str
    amount: Decimal
    cash: bool
    institution_type: str
    band: str


@dataclass(frozen=True)
class Hit:
    rule: str
    uscc: str
    partition: int
    region: str
    institution_type: str
    band: str
    event_ids: tuple[str, ...]
    amounts_fen: tuple[int, ...]
    event_count: int
    total_fen: int
    window_start_us: int
    window_end_us: int
    report_due: date

    def record(self) -> dict[str, object]:
        """The documented fields of the dfip.alerts record (not the id, clock or version)."""
        return {
            "rule": self.rule, "enterprise_uscc": self.uscc, "region": self.region,
            "institution_type": self.institution_type, "band": self.band,
            "event_ids": list(self.event_ids), "amounts_fen": list(self.amounts_fen),
            "event_count": self.event_count, "total_fen": self.total_fen,
            "window_start": iso(self.window_start_us), "window_end": iso(self.window_end_us),
            "report_due": self.report_due.isoformat(),
        }  # fmt: skip


def iso(at_us: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=at_us)).isoformat()


def bj_date(at_us: int) -> date:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=at_us + BEIJING_US)).date()


def day_start(at_us: int) -> int:
    """The Beijing day holding ``at_us`` starts at 16:00 UTC the evening before."""
    return at_us - (at_us + BEIJING_US) % DAY_US


def is_cash(code: str | None) -> bool:
    if not code:
        return False
    code = code.strip().upper()  # docs/aml-rules.md: case and surrounding spaces ignored
    if code in CASH_PROPRIETARY:
        return True
    parts = code.replace("/", "-").split("-")  # hyphens or slashes (docs/aml-rules.md)
    if len(parts) == 3:
        _, family, sub = parts
        return family == "CASH" or (family in CASH_FAMILIES and sub in CASH_SUBFAMILIES)
    return False


def report_due(last_us: int) -> date:
    """The 5th China working day after the Beijing date of the hit's last event."""
    day, n = bj_date(last_us), 0
    while n < 5:
        day += timedelta(days=1)
        if chinese_calendar.is_workday(day):
            n += 1
    return day


def cents(amount: Decimal) -> int:
    return int(amount * 100)


@dataclass
class RulesOracle:
    grace_us: int = 600_000_000
    seen: dict[str, list[Seen]] = field(default_factory=lambda: defaultdict(list))
    home: dict[str, int] = field(default_factory=dict)
    region: dict[str, str] = field(default_factory=dict)
    # reading choices the test can flip to see the comparison fail
    large_cny_fen: int = LARGE_CNY_FEN

    def observe(self, uscc: str, partition: int, region: str, seen: Seen) -> None:
        self.seen[uscc].append(seen)
        self.home[uscc] = partition
        self.region[uscc] = region

    # ---- hits -------------------------------------------------------------------------

    def hits(self, watermarks: dict[int, int]) -> list[Hit]:
        """Every hit whose window is final under each partition's transactions watermark."""
        out: list[Hit] = []
        for uscc, events in self.seen.items():
            p = self.home[uscc]
            mark = watermarks.get(p)
            if mark is None:
                continue
            final = mark - self.grace_us  # windows ending at or before this are decided
            evs = sorted(events, key=lambda e: (e.at_us, e.event_id))
            for rule, group, start, end in self.windows(evs, final):
                out.append(self.hit(rule, uscc, p, group, start, end))
        return out

    def hit(self, rule: str, uscc: str, p: int, group: list[Seen], start: int, end: int) -> Hit:
        group = sorted(group, key=lambda e: (e.at_us, e.event_id))
        first = group[0]
        return Hit(
            rule, uscc, p, self.region[uscc], first.institution_type, first.band,
            tuple(e.event_id for e in group[:MAX_LISTED]),
            tuple(e.fen for e in group[:MAX_LISTED]),
            len(group), sum(e.fen for e in group), start, end,
            report_due(max(e.at_us for e in group)),
        )  # fmt: skip

    def windows(self, evs: list[Seen], final: int) -> list[tuple[str, list[Seen], int, int]]:
        out: list[tuple[str, list[Seen], int, int]] = []
        # large_value and dormant_reactivation: one event, decided when its hour is final
        prev: Seen | None = None
        for e in evs:
            hour_final = e.at_us - e.at_us % HOUR_US + HOUR_US <= final
            if hour_final and not e.cash and self.large(e):
                out.append(("large_value", [e], e.at_us, e.at_us + 1))
            if hour_final and prev is not None and e.at_us - prev.at_us >= DORMANT_DAYS * DAY_US:
                out.append(("dormant_reactivation", [e], prev.at_us, e.at_us + 1))
            prev = e
        # per Beijing day: large_value_daily, cash, round_amounts
        days: dict[int, list[Seen]] = defaultdict(list)
        for e in evs:
            days[day_start(e.at_us)].append(e)
        for start, group in sorted(days.items()):
            end = start + DAY_US
            if end > final:
                continue
            # each direction on its own: its transfers' sum reaches the threshold and none of
            # them reaches it by itself (that one is reported alone); the hit holds that
            # direction's transfers of the day
            for d in ("credit", "debit"):
                side = [e for e in group if not e.cash and e.direction == d]
                if sum(e.fen for e in side) >= self.large_cny_fen and not any(
                    self.large(e) for e in side
                ):
                    out.append(("large_value_daily", side, start, end))
            cash = [e for e in group if e.cash]
            usd = any(e.currency == "USD" and cents(e.amount) >= CASH_USD_CENTS for e in cash)
            if cash and (sum(e.fen for e in cash) >= CASH_CNY_FEN or usd):
                out.append(("cash", cash, start, end))
            rounds = [e for e in group if round_amount(e)]
            if len(rounds) >= ROUND_MIN:
                out.append(("round_amounts", rounds, start, end))
        # velocity: per clock hour against the 168 hours before
        hours: dict[int, list[Seen]] = defaultdict(list)
        for e in evs:
            hours[e.at_us - e.at_us % HOUR_US].append(e)
        for start, group in sorted(hours.items()):
            if start + HOUR_US > final or len(group) < VELOCITY_MIN:
                continue
            span = range(1, VELOCITY_BASELINE_HOURS + 1)
            before = sum(len(hours.get(start - k * HOUR_US, ())) for k in span)
            if len(group) * VELOCITY_BASELINE_HOURS > VELOCITY_FACTOR * before:
                out.append(("velocity", group, start, start + HOUR_US))
        # anchored windows
        low = STRUCT_THRESHOLD_FEN * STRUCT_LOW_PCT // 100
        high = STRUCT_THRESHOLD_FEN * STRUCT_HIGH_PCT // 100
        near = [e for e in evs if low <= e.fen < high]
        out += self.anchored(
            "structuring", near, near, STRUCT_HOURS * HOUR_US, final,
            lambda w: len(w) >= STRUCT_MIN and sum(e.fen for e in w) >= STRUCT_THRESHOLD_FEN,
        )  # fmt: skip
        credits = [e for e in evs if e.direction == "credit"]
        out += self.anchored("pass_through", credits, evs, PASS_HOURS * HOUR_US, final, passes)
        return out

    @staticmethod
    def anchored(
        rule: str, anchors: list[Seen], members: list[Seen], size: int, final: int, fires: object
    ) -> list[tuple[str, list[Seen], int, int]]:
        """A window starts at the earliest anchor not yet used; when it fires its time is used
        up (the next starts at or after its end), else only its first instant is dropped."""
        out: list[tuple[str, list[Seen], int, int]] = []
        free_from = -(2**62)
        for a in anchors:
            if a.at_us < free_from:
                continue
            start, end = a.at_us, a.at_us + size
            if end > final:
                break
            window = [e for e in members if start <= e.at_us < end]
            assert callable(fires)
            if fires(window):
                out.append((rule, window, start, end))
                free_from = end
            else:
                free_from = start + 1
        return out

    def large(self, e: Seen) -> bool:
        return e.fen >= self.large_cny_fen or (
            e.currency == "USD" and cents(e.amount) >= LARGE_USD_CENTS
        )

    # ---- figures ----------------------------------------------------------------------

    @staticmethod
    def series(hits: list[Hit]) -> dict[str, dict[tuple[str, ...], int]]:
        out: dict[str, dict[tuple[str, ...], int]] = defaultdict(lambda: defaultdict(int))
        reports: set[tuple[str, str, int, str]] = set()
        for h in hits:
            lab = (h.rule, h.region, h.institution_type, h.band, str(h.partition))
            out["dfip_alerts_total"][lab] += 1
            out["dfip_alert_amount_yuan_total"][lab] += h.total_fen
            # the hidden series of open hits behind dfip_alerts_overdue (docs/aml-rules.md,
            # "Overdue reports": by those labels and the due date; no acknowledgements here):
            # a hit id written twice is one report, the id derived from (rule, enterprise,
            # window start, first event id)
            report = (h.rule, h.uscc, h.window_start_us, h.event_ids[0])
            if report in reports:
                continue
            reports.add(report)
            due = (h.rule, h.region, h.institution_type, h.band, h.report_due.isoformat())
            out["dfip_alerts_open"][(*due, str(h.partition))] += 1
        return {n: {k: v for k, v in rows.items() if v} for n, rows in out.items()}


def round_amount(e: Seen) -> bool:
    """Not 0, and a whole multiple of 10,000 units: CNY judged on its fen (the amount rounded
    to the fen, docs/metrics.md "Money"), another currency on its amount as sent."""
    if e.currency == "CNY":
        return e.fen > 0 and e.fen % (ROUND_UNIT * 100) == 0
    return e.amount > 0 and e.amount % ROUND_UNIT == 0


def passes(window: list[Seen]) -> bool:
    credit = sum(e.fen for e in window if e.direction == "credit")
    debit = sum(e.fen for e in window if e.direction == "debit")
    near = 100 * abs(debit - credit) <= PASS_TOLERANCE_PCT * credit  # within ±10 %, inclusive
    return credit >= PASS_MIN_CREDIT_FEN and near
