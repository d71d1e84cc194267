"""Parse rates of the camt.053 and MT940 adapters on generated files (entries/s, median of 3).

    .venv/bin/python bench/bench_parsers.py                 # default sizes, appends results
    .venv/bin/python bench/bench_parsers.py --gigabyte      # adds a ~1 GiB camt.053 run
    .venv/bin/python bench/bench_parsers.py --no-record     # print only
    .venv/bin/python bench/bench_parsers.py --memory        # peak RSS of `dfip ingest
                                                            #   --dry-run`, 200 MB per format

Files are generated in a temporary folder (adapters.samples) and deleted afterwards. Each
run parses the whole file through the registered parser, building and validating every
event (no Kafka). Results are appended to bench/RESULTS_adapters.md with the command, date,
machine and load average: on a shared machine the load matters as much as the CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adapters import AccountDirectory, ParseContext, Rejected, get_parser  # noqa: E402
from adapters.samples import (  # noqa: E402
    SAMPLE_ACCOUNT,
    SAMPLE_USCC,
    write_camt053,
    write_camt053_balances,
    write_csv_hk,
    write_loans,
    write_mt940,
    write_obie,
    write_psd2,
)

RESULTS = REPO / "bench" / "RESULTS_adapters.md"
KEY = b"bench-key-0123456789abcdef"


def context() -> ParseContext:
    accounts = AccountDirectory(KEY)
    accounts.add(account=SAMPLE_ACCOUNT, uscc=SAMPLE_USCC)
    return ParseContext("BENCH", accounts)


def parse_once(fmt: str, path: Path) -> tuple[int, int, float, float]:
    """(entries, events, wall seconds, cpu seconds) of one full parse."""
    parser = get_parser(fmt)(context())
    wall, cpu = time.perf_counter(), time.process_time()
    events = 0
    for result in parser.parse(path):
        if isinstance(result, Rejected):
            raise SystemExit(f"unexpected rejection in generated input: {result}")
        events += 1
    return parser.stats.entries, events, time.perf_counter() - wall, time.process_time() - cpu


def measure(label: str, fmt: str, path: Path, runs: int) -> dict[str, object]:
    samples = [parse_once(fmt, path) for _ in range(runs)]
    entries, events = samples[0][0], samples[0][1]
    wall = statistics.median(s[2] for s in samples)
    cpu = statistics.median(s[3] for s in samples)
    row = {
        "input": label,
        "size_mib": path.stat().st_size / 2**20,
        "entries": entries,
        "events": events,
        "wall_s": wall,
        "entries_per_s": entries / wall,
        "entries_per_cpu_s": entries / cpu,
        "mib_per_s": path.stat().st_size / 2**20 / wall,
    }
    print(
        f"{label:<34} {row['size_mib']:8.1f} MiB {entries:>9} entries "
        f"{row['entries_per_s']:>9.0f}/s wall {row['entries_per_cpu_s']:>9.0f}/s cpu "
        f"{row['mib_per_s']:6.1f} MiB/s",
        flush=True,
    )
    return row


def generated(folder: Path, name: str, write: Callable[[Path], object]) -> Path:
    path = folder / name
    started = time.perf_counter()
    write(path)
    print(
        f"generated {name}: {path.stat().st_size / 2**20:.1f} MiB in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return path


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.node()} · {cpu} · {os.cpu_count()} CPUs · Python {platform.python_version()} "
        f"· {platform.system()} {platform.release()} · load average at start {load}"
    )


def record(rows: list[dict[str, object]], command: str, started: str, host: str) -> None:
    lines = [
        f"\n## {started}\n",
        f"- command: `{command}`",
        f"- machine: {host}",
        f"- load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- peak RSS of the benchmark process: {peak_rss_mib():.0f} MiB\n",
        "| input | MiB | entries | events | entries/s (wall, median of runs) "
        "| entries/s (CPU) | MiB/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['input']} | {r['size_mib']:.1f} | {r['entries']} | {r['events']} "
            f"| {r['entries_per_s']:.0f} | {r['entries_per_cpu_s']:.0f} | {r['mib_per_s']:.1f} |"
        )
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Adapter parse rates\n\nAppended by `bench/bench_parsers.py`; newest last.\n",
            encoding="utf-8",
        )
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# (label, format, file name, writer of ~1 MiB per unit, extra `dfip ingest` arguments)
_MEMORY_INPUTS: list[tuple[str, str, str, Callable[[Path, int], object], list[str]]] = [
    ("camt.053 (entries)", "camt", "camt053.xml", lambda p, mb: write_camt053(p, mb * 133), []),
    (
        "camt.053 (Bal siblings)",
        "camt",
        "camt053_bal.xml",
        lambda p, mb: write_camt053_balances(p, mb * 6200),
        [],
    ),
    ("MT940", "mt940", "statements.sta", lambda p, mb: write_mt940(p, mb * 8500), []),
    ("PSD2 page", "psd2", "psd2.json", lambda p, mb: write_psd2(p, mb * 2400), []),
    ("Open Banking page", "obie", "obie.json", lambda p, mb: write_obie(p, mb * 2450), []),
    (
        "CSV (hk_utf8_signed)",
        "csv",
        "statement.csv",
        lambda p, mb: write_csv_hk(p, mb * 6400),
        ["--mapping", "hk_utf8_signed"],
    ),
    ("loans JSONL", "loans", "loans.jsonl", lambda p, mb: write_loans(p, mb * 2850), []),
]


def memory(mib: int, folder: Path) -> list[dict[str, object]]:
    """Peak RSS of `dfip ingest <format> <file> --dry-run` (events to /dev/null), per format."""
    accounts = folder / "accounts.toml"
    accounts.write_text(f'[[account]]\naccount = "{SAMPLE_ACCOUNT}"\nuscc = "{SAMPLE_USCC}"\n')
    env = dict(os.environ, DFIP_ACCOUNT_HASH_KEY=KEY.decode())
    dfip = Path(sys.executable).parent / "dfip"
    rows = []
    for label, fmt, name, write, extra in _MEMORY_INPUTS:
        path = generated(folder, name, lambda p, write=write: write(p, mib))
        command = [str(dfip), "ingest", fmt, str(path), "--dry-run", "-i", "BENCH"]
        command += ["--accounts", str(accounts), *extra]
        started = time.perf_counter()
        with open(os.devnull, "wb") as sink:
            done = subprocess.run(
                ["/usr/bin/time", "-f", "%M", *command],
                stdout=sink,
                stderr=subprocess.PIPE,
                env=env,
                check=False,
            )
        wall = time.perf_counter() - started
        peak_kib = int(done.stderr.decode().strip().splitlines()[-1])
        row = {
            "input": label,
            "size_mib": path.stat().st_size / 2**20,
            "exit": done.returncode,
            "peak_rss_mib": peak_kib / 1024,
            "wall_s": wall,
        }
        print(
            f"{label:<26} {row['size_mib']:7.1f} MiB  exit {done.returncode}  "
            f"peak RSS {row['peak_rss_mib']:6.1f} MiB  {wall:6.1f} s",
            flush=True,
        )
        rows.append(row)
        path.unlink()
    return rows


def record_memory(rows: list[dict[str, object]], command: str, started: str, host: str) -> None:
    lines = [
        f"\n## {started}: peak memory of `dfip ingest --dry-run`\n",
        f"- command: `{command}`",
        f"- machine: {host}",
        "- peak RSS of the `dfip ingest <format> <file> --dry-run` process (`/usr/bin/time %M`),"
        " events written to /dev/null; goal ≤ 150 MB whatever the input\n",
        "| input | MiB | exit | peak RSS MiB | wall s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['input']} | {r['size_mib']:.1f} | {r['exit']} | {r['peak_rss_mib']:.0f} "
            f"| {r['wall_s']:.0f} |"
        )
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--camt-entries", type=int, default=10_000)
    ap.add_argument("--mt940-entries", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gigabyte", action="store_true", help="also parse a ~1 GiB camt.053 once")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS file")
    ap.add_argument(
        "--memory", type=int, nargs="?", const=200, metavar="MIB", help="peak RSS runs only"
    )
    args = ap.parse_args()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    host = machine()
    print(host)
    if args.memory:
        with tempfile.TemporaryDirectory(prefix="dfip-bench-") as tmp:
            memory_rows = memory(args.memory, Path(tmp))
        if not args.no_record:
            command = "python bench/bench_parsers.py " + " ".join(sys.argv[1:])
            record_memory(memory_rows, command.strip(), started, host)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="dfip-bench-") as tmp:
        folder = Path(tmp)
        camt = generated(folder, "camt053.xml", lambda p: write_camt053(p, args.camt_entries))
        rows.append(measure("camt.053.001.08 (full TxDtls)", "camt.053", camt, args.runs))
        lean = generated(
            folder, "camt053_lean.xml", lambda p: write_camt053(p, args.camt_entries, invoices=0)
        )
        rows.append(measure("camt.053.001.08 (no invoice list)", "camt.053", lean, args.runs))
        camt.unlink()
        lean.unlink()
        mt940 = generated(folder, "statements.sta", lambda p: write_mt940(p, args.mt940_entries))
        rows.append(measure("MT940 (FIN envelope, 500/stmt)", "mt940", mt940, args.runs))
        mt940.unlink()
        if args.gigabyte:
            big = generated(folder, "camt053_1g.xml", lambda p: write_camt053(p, 2**30 // 7900))
            rows.append(measure("camt.053.001.08 ~1 GiB (1 run)", "camt.053", big, 1))
            big.unlink()
    print(f"peak RSS {peak_rss_mib():.0f} MiB")
    if not args.no_record:
        command = "python bench/bench_parsers.py " + " ".join(sys.argv[1:])
        record(rows, command.strip(), started, host)
        print(f"appended to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
