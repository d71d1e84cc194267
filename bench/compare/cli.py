"""`python -m bench.compare`: the comparison job on every engine, same broker, same input.

See bench/compare/README.md. Each round produces the input (generated once) into a fresh
topic namespace and runs the engines one after the other on it (the order rotates between
rounds); every engine's result must equal the oracle exactly, else the run fails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.broker import drop_namespace, namespace, private_broker
from bench.compare.engines import (
    HERE,
    EngineRun,
    drop_internal_topics,
    kstreams_command,
    produce_input,
    python_command,
    run_dfip,
    run_output_engine,
)
from bench.compare.job import CompareInput, build_input, diff

ENGINES = ("kstreams", "dfip", "faust", "quix")
RESULTS = HERE.parent / "RESULTS.md"
QUIX_PYTHON = HERE / ".venv-quix" / "bin" / "python"
LABELS = {
    "kstreams": "Kafka Streams 4.1.1 (exactly_once_v2)",
    "dfip": "DFIP worker (full pipeline)",
    "faust": "Faust agent (exactly_once)",
    "quix": "Quix Streams (exactly-once)",
}


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    p.add_argument("--events", type=int, default=200_000, help="simulator records (≈ input)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--start-broker", action="store_true", help="a private broker for the run")
    p.add_argument("--broker-port", type=int, default=19092)
    p.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    return p.parse_args(argv)


@contextlib.contextmanager
def _broker(args: argparse.Namespace) -> Iterator[str]:
    if args.start_broker:
        with private_broker(args.broker_port) as bootstrap:
            yield bootstrap
    else:
        yield args.bootstrap


def build_kstreams() -> Path:
    out = subprocess.run(
        ["bash", str(HERE / "build.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def run_engine(
    engine: str, settings: object, ci: CompareInput, jar: Path | None, work: Path
) -> EngineRun:
    from core.kafka_config import KafkaSettings

    assert isinstance(settings, KafkaSettings)
    if engine == "dfip":
        return run_dfip(settings, ci, work)
    if engine == "kstreams":
        assert jar is not None
        return run_output_engine(
            engine, settings, ci, kstreams_command(settings, jar, work / "kstreams-state"), work
        )
    if engine == "faust":
        return run_output_engine(
            engine, settings, ci, python_command("bench.compare.faust_app", settings), work
        )
    if engine == "quix":
        return run_output_engine(
            engine,
            settings,
            ci,
            python_command("bench.compare.quix_app", settings, str(QUIX_PYTHON)),
            work,
        )
    raise ValueError(f"unknown engine {engine}")


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def table(engines: Sequence[str], rounds: list[dict[str, EngineRun]]) -> list[str]:
    lines = [
        "| engine | events/s, median | runs | × Kafka Streams (same round), median |",
        "|---|---:|---|---:|",
    ]
    for e in engines:
        rates = [r[e].rate for r in rounds if e in r]
        ratios = [
            r[e].rate / r["kstreams"].rate
            for r in rounds
            if e in r and "kstreams" in r and r["kstreams"].rate > 0
        ]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "—"
        lines.append(
            f"| {LABELS.get(e, e)} | {_fmt(statistics.median(rates))} | "
            f"{', '.join(_fmt(x) for x in rates)} | {ratio} |"
        )
    return lines


def append_results(section: Sequence[str], path: Path = RESULTS) -> None:
    """Insert `section` before the two headline lines that must stay last."""
    lines = path.read_text().rstrip("\n").split("\n")
    tail: list[str] = []
    if (
        len(lines) >= 2
        and lines[-2].startswith("p99 at 5000/s:")
        and lines[-1].startswith("pipeline events/s:")
    ):
        tail, lines = lines[-2:], lines[:-2]
        while lines and not lines[-1].strip():
            lines.pop()
    out = [*lines, "", *section, ""]
    if tail:
        out += [*tail]
    path.write_text("\n".join(out) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = _args(argv)
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        print(f"unknown engines: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if "quix" in engines and not QUIX_PYTHON.exists():
        print("quix: run bench/compare/quix_venv.sh first", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    jar = build_kstreams() if "kstreams" in engines else None
    began = time.perf_counter()
    ci = build_input(args.events, seed=args.seed)
    print(
        f"input: {len(ci.scores)} scores, {ci.events} transactions, "
        f"{len(ci.expected)} (band, day) results; built in {time.perf_counter() - began:.1f} s",
        flush=True,
    )
    rounds: list[dict[str, EngineRun]] = []
    failures: list[str] = []
    with _broker(args) as bootstrap, tempfile.TemporaryDirectory(prefix="dfip-compare-") as tmp:
        for n in range(args.runs):
            settings = namespace(bootstrap, "compare")
            try:
                produce_input(settings, ci)
                order = engines[n % len(engines) :] + engines[: n % len(engines)]
                got: dict[str, EngineRun] = {}
                for engine in order:
                    work = Path(tmp) / f"round{n}"
                    work.mkdir(exist_ok=True)
                    run = run_engine(engine, settings, ci, jar, work)
                    problems = diff(run.result, ci.expected)
                    status = "exact" if run.complete and not problems else "WRONG"
                    print(
                        f"round {n + 1} {engine}: {run.rate:,.0f} events/s "
                        f"({run.events} in {run.seconds:.2f} s), {status}",
                        flush=True,
                    )
                    if not run.complete:
                        problems = ["did not finish", *problems]
                    for line in problems:
                        print(f"  {engine}: {line}", flush=True)
                    failures += [f"round {n + 1} {engine}: {p}" for p in problems]
                    got[engine] = run
                rounds.append(got)
            finally:
                drop_namespace(settings)
                drop_internal_topics(settings)
    load_after = os.getloadavg()
    lines = table(engines, rounds)
    print("\n".join(lines))
    if failures:
        print(f"FAILED: {len(failures)} differences from the oracle", file=sys.stderr)
        return 1
    if not args.no_record:
        cmd = "python -m bench.compare " + " ".join(argv if argv is not None else sys.argv[1:])
        section = [
            f"## Comparison job beside Kafka Streams, Faust, Quix Streams — "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"`{cmd.strip()}` (git {_git_rev()}; bench/compare/README.md defines the job): "
            f"{ci.events:,} transactions, {len(ci.scores):,} scores, one process per engine, "
            f"same broker, same input, engines one after the other in each round (order "
            f"rotated). Every result exact (equal to the oracle, every round). Load average "
            f"{load_before[0]:.1f} before, {load_after[0]:.1f} after.",
            "",
            *lines,
        ]
        append_results(section)
    return 0


def _git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=HERE,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
