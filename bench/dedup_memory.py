"""Memory and changelog size of the duplicate memory (streams/state/dedup.py) per million ids.

``python -m bench.dedup_memory [--ids N] [--days D]``: remembers N event ids (shaped like the
adapters' ids: 26-character hashes) spread over D arrival days in one DedupMemory, and reports
the Python heap it holds (tracemalloc, after a full collection), the process RSS growth, the
bytes of its changelog records and the cost of one lookup of an unknown id. No broker needed.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
import tracemalloc

from streams.state.dedup import DAY_MS, DedupMemory, id_hash, pack


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _fill(ids: int, days: int) -> tuple[DedupMemory, int]:
    mem = DedupMemory()
    changelog = 0
    per_day = ids // days
    for d in range(days):
        mem.observe(1_767_225_600_000 + d * DAY_MS)
        for i in range(per_day):
            mem.add(id_hash(f"{d:04d}{i:022d}"))
        for _day, _seq, hashes in mem.seal():
            changelog += len(pack(hashes)) + 40  # + key "dd:dfip.transactions:<day>:<seq>"
    return mem, changelog


def measure(ids: int, days: int) -> dict[str, float]:
    gc.collect()
    rss0 = _rss_mb()
    mem, changelog = _fill(ids, days)  # RSS first, without tracemalloc's own overhead
    gc.collect()
    rss = _rss_mb() - rss0
    n = len(mem)
    probes = [id_hash(f"missing-{i}") for i in range(200_000)]
    t0 = time.perf_counter()
    for h in probes:
        mem.seen(h)
    lookup_ns = (time.perf_counter() - t0) / len(probes) * 1e9
    t0 = time.perf_counter()
    for i in range(200_000):
        id_hash(f"{i:026d}")
    hash_ns = (time.perf_counter() - t0) / 200_000 * 1e9
    del mem
    gc.collect()
    tracemalloc.start()
    again, _ = _fill(ids, days)
    gc.collect()
    heap, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "ids": n,
        "heap_bytes_per_id": heap / len(again),
        "rss_mib_per_million": rss / n * 1e6,
        "changelog_bytes_per_id": changelog / n,
        "lookup_ns": lookup_ns,
        "hash_ns": hash_ns,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ids", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=45)
    args = ap.parse_args()
    for key, value in measure(args.ids, args.days).items():
        print(f"{key}: {value:,.1f}")


if __name__ == "__main__":
    main()
