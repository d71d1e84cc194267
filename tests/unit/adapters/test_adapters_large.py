"""A ~200 MB camt.053 streams through the parser in constant memory.

Generated on the fly in tmp (never committed). Memory is checked two ways: tracemalloc
(Python allocations) must not grow with the file — its peak on an 8 MB file matches the
one on a 2 MB file and is a sliver of either — and the process's peak RSS while parsing the
full file (which also covers libxml2's own buffers, invisible to tracemalloc) must stay far
below the file size. Size via DFIP_BIG_CAMT_MB (default 200); bench/ has the gigabyte run.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import pytest

from adapters import AccountDirectory, ParseContext, Rejected, get_parser
from adapters.samples import write_camt053

ENTRY_BYTES = 7900  # size of one generated entry, roughly
BIG_MB = int(os.environ.get("DFIP_BIG_CAMT_MB", "200"))


def parse_all(path: Path) -> tuple[int, int]:
    parser = get_parser("camt.053")(ParseContext("BENCH", AccountDirectory(b"k" * 32)))
    events = rejected = 0
    for result in parser.parse(path):
        if isinstance(result, Rejected):
            rejected += 1
        else:
            events += 1
    return events, rejected


def traced_peak(path: Path) -> int:
    tracemalloc.start()
    try:
        parse_all(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def peak_rss_kib() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")  # resets VmHWM to the current RSS (Linux)
        return True
    except OSError:
        return False


def test_python_allocations_do_not_grow_with_the_file(tmp_path: Path) -> None:
    small, medium = tmp_path / "small.xml", tmp_path / "medium.xml"
    write_camt053(small, 2 * 2**20 // ENTRY_BYTES)
    write_camt053(medium, 8 * 2**20 // ENTRY_BYTES)
    small_peak, medium_peak = traced_peak(small), traced_peak(medium)
    size = medium.stat().st_size
    assert medium_peak < size / 10, (medium_peak, size)
    assert medium_peak < 1.5 * small_peak + 256 * 1024, (small_peak, medium_peak)


def test_large_statement_streams_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    expected = write_camt053(path, BIG_MB * 2**20 // ENTRY_BYTES)
    size = path.stat().st_size
    assert size > BIG_MB * 2**20 * 0.9
    measured = reset_peak_rss()
    before = peak_rss_kib()
    started = time.monotonic()
    events, rejected = parse_all(path)
    elapsed = time.monotonic() - started
    assert (events, rejected) == (expected, 0)
    if not measured or before is None:
        pytest.skip("peak RSS cannot be reset here (no /proc/self/clear_refs)")
    growth = ((peak_rss_kib() or 0) - before) * 1024
    # A tree of the whole document would take several times the file size.
    assert growth < min(size / 8, 64 * 2**20), (growth, size)
    print(
        f"{size / 2**20:.0f} MiB, {events} events in {elapsed:.1f} s, RSS +{growth / 2**20:.1f} MiB"
    )
