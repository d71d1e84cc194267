"""bench/compare: the job's oracle, the result readers and the check (no engine, no timing)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson

from bench.compare.cli import append_results
from bench.compare.job import band, build_input, dfip_result, diff, oracle, parse_output
from schemas import partition_for

USCC = "91330106MA2CDL8K41"
OTHER = "91330381TT6705569L"


def _score(uscc: str, at: str, score: str) -> bytes:
    return orjson.dumps({"enterprise_uscc": uscc, "assessed_at": at, "overall_score": score})


def _tx(uscc: str, at: str, amount: str) -> bytes:
    return orjson.dumps({"enterprise_uscc": uscc, "occurred_at": at, "amount": amount})


def test_band_edges() -> None:
    assert [band(Decimal(x)) for x in ("0", "19.9", "20", "39.99", "40", "60", "79.9", "80")] == [
        "l0",
        "l0",
        "l1",
        "l1",
        "l2",
        "l3",
        "l3",
        "l4",
    ]
    assert band(None) == "unscored"


def test_oracle_latest_score_beijing_day_and_fen() -> None:
    scores = [
        _score(USCC, "2025-03-01T00:00:00Z", "85"),
        _score(USCC, "2025-02-01T00:00:00Z", "10"),  # older, read later: not the latest
        _score(USCC, "2025-03-01T00:00:00Z", "45.5"),  # same assessed_at, read last: wins
    ]
    txs = [
        _tx(USCC, "2025-03-03T15:59:59Z", "1.00"),  # 23:59:59 in Beijing
        _tx(USCC, "2025-03-03T16:00:00Z", "2.50"),  # next Beijing day
        _tx(USCC, "2025-03-03T16:30:00+00:00", "1.005"),  # half to even: 100 fen
        _tx(OTHER, "2025-03-03T01:00:00Z", "7"),
    ]
    assert oracle(scores, txs) == {
        ("l2", "2025-03-03"): (1, 100),
        ("l2", "2025-03-04"): (2, 350),
        ("unscored", "2025-03-03"): (1, 700),
    }


def test_parse_output_keeps_the_latest_per_key() -> None:
    got = parse_output(
        [(b"l1|2025-03-03", b"1,100"), (b"l1|2025-03-03", b"2,300"), (b"l0|2025-03-04", b"1,5")]
    )
    assert got == {("l1", "2025-03-03"): (2, 300), ("l0", "2025-03-04"): (1, 5)}


def test_dfip_result_closed_windows_plus_the_open_day() -> None:
    def window(day: str, partition: int, rows: list[tuple[str, str, int, int]]) -> dict:
        return {
            "size": "1d",
            "topic": "dfip.transactions",
            "partition": partition,
            "local_date": day,
            "figures": {
                "tx_count": [{"labels": [i, b], "value": c} for i, b, c, _ in rows],
                "tx_amount_fen": [{"labels": [i, b], "value": f} for i, b, _, f in rows],
            },
        }

    windows = [
        window("2025-03-03", 0, [("bank", "l1", 2, 300), ("fintech", "l1", 1, 50)]),
        window("2025-03-03", 1, [("bank", "unscored", 1, 7)]),
        {"size": "1h", "topic": "dfip.transactions", "local_date": "2025-03-03", "figures": {}},
    ]
    totals = {"l1": (5, 450), "unscored": (1, 7)}
    assert dfip_result(windows, totals, "2025-03-04") == {
        ("l1", "2025-03-03"): (3, 350),
        ("unscored", "2025-03-03"): (1, 7),
        ("l1", "2025-03-04"): (2, 100),
    }


def test_diff_names_every_differing_row() -> None:
    expected = {("l1", "2025-03-03"): (3, 350), ("l2", "2025-03-03"): (1, 1)}
    assert diff(dict(expected), expected) == []
    got = {("l1", "2025-03-03"): (3, 351), ("l0", "2025-03-03"): (1, 1)}
    assert diff(got, expected) == [
        "l0 2025-03-03: got (1, 1), expected None",
        "l1 2025-03-03: got (3, 351), expected (3, 350)",
        "l2 2025-03-03: got None, expected (1, 1)",
    ]


def test_append_results_keeps_the_headline_lines_last(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nold\n\np99 at 5000/s: 2003 ms\npipeline events/s: 13907\n")
    append_results(["## new", "", "| a |"], path)
    lines = path.read_text().splitlines()
    assert lines[-2:] == ["p99 at 5000/s: 2003 ms", "pipeline events/s: 13907"]
    assert lines.index("## new") > lines.index("old")


def test_input_is_shaped_for_the_simple_job() -> None:
    ci = build_input(2000)
    txs = [orjson.loads(r.value) for r in ci.transactions]
    first = min(t["occurred_at"] for t in txs)
    assert all(orjson.loads(r.value)["assessed_at"] <= first for r in ci.scores)
    assert [t["occurred_at"] for t in txs] == sorted(t["occurred_at"] for t in txs)
    assert {t["currency"] for t in txs} == {"CNY"}
    assert len({t["event_id"] for t in txs}) == len(txs)
    assert all(r.partition == partition_for(r.key.decode()) for r in ci.transactions if r.key)
    sentinels = [t for t in txs if t["event_id"].startswith("compare-sentinel-")]
    assert sorted(partition_for(t["enterprise_uscc"]) for t in sentinels) == list(range(12))
    assert sum(count for count, _ in ci.expected.values()) == ci.events
    assert ci.scores[-1].barrier
