"""Memory and cost of restatement state (streams/aggregate/restate.py) at N scored enterprises.

``python -m bench.restate_memory [--enterprises N] [--per-enterprise T]``: fills one score
table with N enterprises (one assessment each, as the worker holds them), then records T
counted transactions per enterprise within the horizon through the worker's own code
(``restate.record``, at distinct instants, so nothing aggregates), and reports the process RSS
before and after each step, the bytes per enterprise, the changelog bytes per enterprise
(``rs:<uscc>`` records), the time of one ``record`` and of one restatement that moves all T
entries. No broker; the worker's own baseline (interpreter, Faust, aiokafka: ~120 MB) and
the score table's share are in bench/RESULTS.md ("1 million scored enterprises").
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

import orjson

from schemas.uscc import make_uscc
from streams.aggregate import restate
from streams.reference.scores import ScoreTable, ScoreVersion
from streams.state.dedup import id_hash
from streams.state.partition import PartitionState

_DIVISIONS = ("330106", "330203", "330302", "330402", "330502", "330602", "330702")
_DAY_US = 86_400 * 1_000_000
_T0 = 1_790_000_000 * 1_000_000  # µs, autumn 2026


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _usccs(n: int) -> list[str]:
    return [make_uscc(_DIVISIONS[i % len(_DIVISIONS)], f"{i:08d}") for i in range(n)]


def measure(n: int, per: int) -> dict[str, float]:
    usccs = _usccs(n)
    gc.collect()
    rss0 = _rss_mb()
    table = ScoreTable()
    for i, u in enumerate(usccs):
        # a fresh key string per record, as decoding gives the worker; the id as its hash
        sid = id_hash(f"sc-{i:020d}")
        table.add(u[:9] + u[9:], ScoreVersion(_T0 - 200 * _DAY_US, sid, "l2", "C"))
    gc.collect()
    rss_scores = _rss_mb()
    state = PartitionState(0)
    labels = ("bank", "credit", True, "unscored", "unknown")
    t0 = time.perf_counter()
    for k in range(per):
        for u in usccs:
            # a fresh key string per event, as decoding gives the worker
            # keyed by the score table's string, as the worker does (streams/processor.py)
            key = table.canonical(u[:9] + u[9:])
            restate.record(state, key, _T0 + k * 3_600_000_000, labels, 12_345, None)
    record_ns = (time.perf_counter() - t0) / (n * per) * 1e9
    state.dirty_contributions.clear()
    state.contrib_base.clear()
    gc.collect()
    rss_contrib = _rss_mb()
    sample = usccs[: min(n, 20_000)]
    changelog = sum(len(orjson.dumps(restate.to_json(state, u))) + 21 for u in sample)
    t0 = time.perf_counter()
    for u in sample:  # moves every entry from unscored to l2
        restate.restate(state, table, u, "hangzhou", _T0 - 200 * _DAY_US, None, 600_000_000)
    restate_us = (time.perf_counter() - t0) / len(sample) * 1e6
    return {
        "enterprises": n,
        "transactions_per_enterprise": per,
        "rss_score_table_mib": rss_scores - rss0,
        "rss_contributions_mib": rss_contrib - rss_scores,
        "contribution_bytes_per_enterprise": (rss_contrib - rss_scores) * 2**20 / n,
        "changelog_bytes_per_enterprise": changelog / len(sample),
        "record_ns": record_ns,
        "restate_us_per_enterprise": restate_us,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--enterprises", type=int, default=1_000_000)
    ap.add_argument("--per-enterprise", type=int, default=1)
    args = ap.parse_args()
    for key, value in measure(args.enterprises, args.per_enterprise).items():
        print(f"{key}: {value:,.1f}")


if __name__ == "__main__":
    main()
