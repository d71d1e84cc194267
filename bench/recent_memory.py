"""Memory and cost of the recent-flows state (streams/query/recent.py) at N enterprises.

``python -m bench.recent_memory [--enterprises N] [--days D]``: records one counted
transaction per enterprise on each of D Beijing days through the worker's own code
(``recent.record``), and reports the process RSS it added, the bytes per enterprise, the
changelog bytes per enterprise (``rf:<uscc>`` records) and the time of one ``record``.
No broker.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

from schemas.uscc import make_uscc
from streams.query import recent
from streams.state.partition import PartitionState

_DIVISIONS = ("330106", "330203", "330302", "330402", "330502", "330602", "330702")
_DAY_US = 86_400 * 1_000_000
_T0 = 1_790_000_000 * 1_000_000  # µs, autumn 2026


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def measure(n: int, days: int) -> dict[str, float]:
    usccs = [make_uscc(_DIVISIONS[i % len(_DIVISIONS)], f"{i:08d}") for i in range(n)]
    gc.collect()
    rss0 = _rss_mb()
    state = PartitionState(0)
    t0 = time.perf_counter()
    for d in range(days):
        state.watermarks["dfip.transactions"] = _T0 + d * _DAY_US
        for k, u in enumerate(usccs):
            # a fresh key string per event, as decoding gives the worker
            direction = "credit" if k % 2 else "debit"
            recent.record(state, u[:9] + u[9:], _T0 + d * _DAY_US, direction, 12_345)
    record_ns = (time.perf_counter() - t0) / (n * days) * 1e9
    rows = recent.changelog_records(state)  # as a commit does: the dirty marks are cleared
    changelog = sum(len(k) + len(v or b"") for k, v in rows) / max(1, len(rows))
    del rows
    gc.collect()
    rss = _rss_mb() - rss0
    return {
        "enterprises": n,
        "days": days,
        "rss_mib": rss,
        "bytes_per_enterprise": rss * 2**20 / n,
        "changelog_bytes_per_enterprise": changelog,
        "record_ns": record_ns,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--enterprises", type=int, default=200_000)
    ap.add_argument("--days", type=int, default=1)
    args = ap.parse_args()
    for key, value in measure(args.enterprises, args.days).items():
        print(f"{key}: {value:,.1f}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
