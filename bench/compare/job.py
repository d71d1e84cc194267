"""The comparison job: its input (from the simulator), its oracle, and result checks.

The job (bench/compare/README.md): every transaction is joined with the latest assessment of
its enterprise (by ``assessed_at``), and counted and summed in integer CNY fen per
(digitalisation band, Beijing calendar day of ``occurred_at``). The input is shaped so that
this simple job and DFIP's full pipeline define the same figures: CNY only (no FX), valid
and unique events only, every assessment older than every transaction (so "latest" equals
DFIP's as-of join), transactions in ``occurred_at`` order (none is late), and one closing
event per partition (see `sentinels`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from bench.feed import Produced, capture
from schemas import SchemaError, decode, partition_for
from schemas.catalog import topic_by_name
from schemas.enums import band_for_score
from schemas.money import to_fen

__all__ = [
    "BEIJING",
    "CompareInput",
    "Result",
    "band",
    "beijing_day",
    "build_input",
    "dfip_result",
    "diff",
    "oracle",
    "parse_output",
]

SCORES = "dfip.scores"
TRANSACTIONS = "dfip.transactions"
BEIJING = timedelta(hours=8)  # Asia/Shanghai is UTC+8 all year
GRACE = timedelta(seconds=600)  # DFIP_WORKER_GRACE_SECONDS default

# (band, Beijing day ISO) -> (events, fen)
Result = dict[tuple[str, str], tuple[int, int]]


def band(score: Decimal | None) -> str:
    """The platform's own band rule (docs/metrics.md), as a label."""
    return band_for_score(score).value


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def beijing_day(occurred_at: str) -> str:
    return (_utc(occurred_at) + BEIJING).date().isoformat()


def oracle(scores: Iterable[bytes], transactions: Iterable[bytes]) -> Result:
    """The job computed directly from the input values (scores first, in produce order)."""
    latest: dict[str, tuple[datetime, Decimal]] = {}
    for raw in scores:
        s = orjson.loads(raw)
        at = _utc(s["assessed_at"])
        old = latest.get(s["enterprise_uscc"])
        if old is None or at >= old[0]:  # a tie: the one read last wins
            latest[s["enterprise_uscc"]] = (at, Decimal(str(s["overall_score"])))
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for raw in transactions:
        t = orjson.loads(raw)
        score = latest.get(t["enterprise_uscc"])
        slot = sums[(band(score[1] if score else None), beijing_day(t["occurred_at"]))]
        slot[0] += 1
        slot[1] += to_fen(Decimal(str(t["amount"])))
    return {k: (v[0], v[1]) for k, v in sums.items()}


def parse_output(records: Iterable[tuple[bytes | None, bytes | None]]) -> Result:
    """An engine's output topic (key ``band|day``, value ``count,fen``): the latest per key."""
    out: Result = {}
    for key, value in records:
        if key is None or value is None:
            continue
        b, day = key.decode().split("|")
        count, fen = value.decode().split(",")
        out[(b, day)] = (int(count), int(fen))
    return out


def dfip_result(
    windows: Iterable[Mapping[str, Any]],
    totals: Mapping[str, tuple[int, int]],
    open_day: str,
) -> Result:
    """The job's figures from DFIP's outputs.

    `windows`: the latest ``window_figures`` record per key on ``dfip.metrics``; the closed
    daily windows of ``dfip.transactions`` give (band, day) for every day but the last.
    `totals`: band -> (``dfip_transactions_total``, ``dfip_transaction_amount_yuan_total``
    in fen) from /metrics, all events; what the closed windows do not hold is the open day's
    (the sentinels close every earlier day on every partition).
    """
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for w in windows:
        if w.get("size") != "1d" or w.get("topic") != TRANSACTIONS:
            continue
        for index, name in ((0, "tx_count"), (1, "tx_amount_fen")):
            for row in w["figures"].get(name, []):
                _, b = row["labels"]  # (institution_type, digitalization_band)
                sums[(b, w["local_date"])][index] += int(row["value"])
    closed: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (b, _), (count, fen) in sums.items():
        closed[b][0] += count
        closed[b][1] += fen
    for b, (count, fen) in totals.items():
        rest = (count - closed[b][0], fen - closed[b][1])
        if rest != (0, 0):
            sums[(b, open_day)] = [rest[0], rest[1]]
    return {k: (v[0], v[1]) for k, v in sums.items() if v != [0, 0]}


def diff(got: Result, expected: Result) -> list[str]:
    """One line per (band, day) whose (events, fen) differ; empty when exact."""
    lines = []
    for key in sorted(set(got) | set(expected)):
        g, e = got.get(key), expected.get(key)
        if g != e:
            lines.append(f"{key[0]} {key[1]}: got {g}, expected {e}")
    return lines


@dataclass(frozen=True)
class CompareInput:
    """Records to produce (scores first) and the oracle for them."""

    scores: list[Produced]
    transactions: list[Produced]
    expected: Result
    open_day: str  # the sentinels' Beijing day: the one day no DFIP window closes

    @property
    def events(self) -> int:
        return len(self.transactions)

    @property
    def records(self) -> list[Produced]:
        return [*self.scores, *self.transactions]


def sentinels(transactions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One CNY transaction per partition just after the last day's DFIP window closes.

    DFIP emits a daily window once its partition's watermark passes the window's end plus
    the grace: these make every day but theirs final on every partition. They are ordinary
    input events for every engine.
    """
    last = max(_utc(t["occurred_at"]) for t in transactions)
    day_end = datetime.combine((last + BEIJING).date() + timedelta(days=1), datetime.min.time())
    at = day_end.replace(tzinfo=UTC) - BEIJING + GRACE + timedelta(seconds=1)
    by_partition: dict[int, dict[str, Any]] = {}
    for t in transactions:
        by_partition[partition_for(t["enterprise_uscc"])] = t
    n = topic_by_name(TRANSACTIONS).partitions
    if len(by_partition) < n:
        raise ValueError(f"the feed has transactions on {len(by_partition)} of {n} partitions")
    out = []
    for p in range(n):
        t = dict(by_partition[p])
        t["event_id"] = f"compare-sentinel-{p}"
        t["occurred_at"] = at.isoformat().replace("+00:00", "Z")
        local = (at + BEIJING).date().isoformat()
        t["booking_date"] = t["value_date"] = local
        t["amount"] = "1.00"
        out.append(t)
    return out


def _valid(raw: bytes) -> Any:
    try:
        return decode(raw)
    except SchemaError:
        return None


def build_input(events: int, *, seed: int = 7) -> CompareInput:
    """Simulator feed of about `events` records -> the comparison input (see module doc)."""
    feed = capture(events, seed=seed)
    score_records: list[Produced] = []
    tx: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in feed.records:
        if r.topic == SCORES and _valid(r.value) is not None:
            score_records.append(r)
        elif r.topic == TRANSACTIONS:
            event = _valid(r.value)
            if event is None or event.currency != "CNY" or event.event_id in seen:
                continue
            seen.add(event.event_id)
            tx.append(orjson.loads(r.value))
    if not tx:
        raise ValueError("the feed has no CNY transactions")
    start = min(_utc(t["occurred_at"]) for t in tx)
    score_records = [
        r for r in score_records if _utc(orjson.loads(r.value)["assessed_at"]) <= start
    ]
    score_values = [r.value for r in score_records]
    tx.sort(key=lambda t: _utc(t["occurred_at"]))  # stable: no event is late
    tx.extend(sentinels(tx))
    tx_values = [orjson.dumps(t) for t in tx]
    for v in tx_values[-topic_by_name(TRANSACTIONS).partitions :]:
        if _valid(v) is None:
            raise ValueError(f"sentinel does not validate: {v!r}")
    scores = [Produced(SCORES, r.partition, r.key, r.value) for r in score_records]
    if scores:
        last = scores[-1]
        scores[-1] = Produced(last.topic, last.partition, last.key, last.value, True)
    txs = [
        Produced(
            TRANSACTIONS, partition_for(t["enterprise_uscc"]), t["enterprise_uscc"].encode(), v
        )
        for t, v in zip(tx, tx_values, strict=True)
    ]
    return CompareInput(
        scores,
        txs,
        oracle(score_values, tx_values),
        (_utc(tx[-1]["occurred_at"]) + BEIJING).date().isoformat(),
    )
