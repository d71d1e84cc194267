"""Command line: `python -m bench [suite] …` (the pipeline suite) and `python -m bench soak …`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "PHASES",
    "QUICK",
    "SoakOptions",
    "SuiteOptions",
    "main",
    "parse_args",
    "warm_up_round",
]

PHASES = ("raw", "pipeline", "two-workers", "latency", "enterprises")


@dataclass(frozen=True)
class SuiteOptions:
    events: int = 30_000
    runs: int = 3
    enterprises: int = 50_000
    rate: float = 10_000.0
    latency_seconds: float = 10.0
    drain: float = 20.0
    scrape_interval: float = 1.0
    poll: float = 5.0
    max_seconds: float = 120.0
    profile: float = 0.0
    seed: int = 7
    skip: frozenset[str] = field(default_factory=frozenset)
    bootstrap: str = "127.0.0.1:9092"
    start_broker: bool = False
    broker_port: int = 39092
    output: Path | None = None
    log_dir: Path | None = None
    quick: bool = False
    # the latency phase: one unmeasured round first, on the cold broker (see warm_up_round)
    warm_up: bool = True
    # the latency phase: each round's fresh topics written to once first (prime_partitions)
    prime: bool = True

    def runs_phase(self, phase: str) -> bool:
        return phase not in self.skip

    def latency_round(self) -> dict[str, Any]:
        """``run_latency``'s options of one latency round, the warm-up round's included."""
        return {
            "rate": self.rate,
            "seconds": self.latency_seconds,
            "scrape_interval": self.scrape_interval,
            "drain": self.drain,
            "prime": self.prime,
        }


# --quick: a smoke run of every phase in a few minutes (single runs, small sizes)
QUICK = {
    "events": 5_000,
    "runs": 1,
    "enterprises": 5_000,
    "latency_seconds": 3.0,
    "drain": 10.0,
    "max_seconds": 60.0,
}


@dataclass(frozen=True)
class SoakOptions:
    duration: float = 3600.0
    rate: float = 250.0
    sample_every: float = 10.0
    drain: float = 300.0
    seed: int = 7
    bootstrap: str = "127.0.0.1:9092"
    start_broker: bool = False
    broker_port: int = 39092
    output: Path | None = None
    log_dir: Path | None = None


def _phases(text: str) -> frozenset[str]:
    names = frozenset(p.strip() for p in text.split(",") if p.strip())
    unknown = names - set(PHASES)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown phase(s) {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}"
        )
    return names


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _broker_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("broker")
    g.add_argument(
        "--bootstrap",
        default=os.environ.get("DFIP_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="broker to use (default: $DFIP_KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    g.add_argument(
        "--start-broker",
        action="store_true",
        help="start a private broker with deploy/kafka/kafka.sh for this run (and stop it)",
    )
    g.add_argument(
        "--broker-port",
        type=int,
        default=39092,
        help="client port of the private broker; the controller uses the next port",
    )
    p.add_argument("--output", type=Path, help="also write the markdown report to this file")
    p.add_argument("--log-dir", type=Path, help="worker logs (default: a temporary folder)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed")


def _parser() -> argparse.ArgumentParser:
    d = SuiteOptions()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="DFIP pipeline benchmarks on a real Kafka broker (see bench/README.md).",
    )
    sub = parser.add_subparsers(dest="command")
    suite = sub.add_parser("suite", help="the pipeline suite (default command)")
    s = suite.add_argument_group("sizes")
    s.add_argument("--events", type=_positive_int, default=d.events, help="simulator records")
    s.add_argument("--runs", type=_positive_int, default=d.runs, help="runs per figure")
    s.add_argument(
        "--enterprises", type=_positive_int, default=d.enterprises, help="scored enterprises"
    )
    s.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()),
    )
    s.add_argument(
        "--skip",
        type=_phases,
        action="append",
        default=[],
        metavar="PHASE[,PHASE]",
        help=f"leave out phases: {', '.join(PHASES)}",
    )
    s.add_argument("--only", type=_phases, metavar="PHASE[,PHASE]", help="run only these phases")
    t = suite.add_argument_group("timing")
    t.add_argument("--rate", type=_positive_float, default=d.rate, help="offered load, records/s")
    t.add_argument(
        "--latency-seconds", type=_positive_float, default=d.latency_seconds,
        help="how long the load is offered",
    )  # fmt: skip
    t.add_argument(
        "--drain", type=_positive_float, default=d.drain,
        help="seconds after the last send for the figures to show",
    )  # fmt: skip
    t.add_argument(
        "--scrape-interval", type=_positive_float, default=d.scrape_interval,
        help="latency phase: seconds between /metrics scrapes",
    )  # fmt: skip
    t.add_argument(
        "--no-warm-up", dest="warm_up", action="store_false",
        help="latency phase: no unmeasured round on the cold broker first",
    )  # fmt: skip
    t.add_argument(
        "--no-prime", dest="prime", action="store_false",
        help="latency phase: no aborted write to each fresh partition before a round",
    )  # fmt: skip
    t.add_argument(
        "--poll", type=_positive_float, default=d.poll,
        help="throughput phases: seconds between progress scrapes",
    )  # fmt: skip
    t.add_argument(
        "--max-seconds", type=_positive_float, default=d.max_seconds,
        help="time limit of one pipeline run (rate then from the scrapes)",
    )  # fmt: skip
    t.add_argument(
        "--profile", type=float, default=0.0, metavar="SECONDS",
        help="py-spy the first one-worker run for this long (needs py-spy)",
    )  # fmt: skip
    _broker_args(suite)

    soak = sub.add_parser("soak", help="long steady run checked against the oracle (issue 8)")
    ds = SoakOptions()
    soak.add_argument("--duration", type=_positive_float, default=ds.duration, help="seconds")
    soak.add_argument("--rate", type=_positive_float, default=ds.rate, help="records/s")
    soak.add_argument(
        "--sample-every", type=_positive_float, default=ds.sample_every, help="seconds"
    )
    soak.add_argument(
        "--drain", type=_positive_float, default=ds.drain,
        help="seconds the worker gets to catch up after the feed ends",
    )  # fmt: skip
    _broker_args(soak)
    return parser


def parse_args(argv: Sequence[str]) -> SuiteOptions | SoakOptions:
    """Options for `argv` (without the program name); `suite` is the default command."""
    argv = list(argv)
    if not argv or argv[0] not in ("suite", "soak", "-h", "--help"):
        argv.insert(0, "suite")
    ns = _parser().parse_args(argv)
    common = {
        "seed": ns.seed,
        "bootstrap": ns.bootstrap,
        "start_broker": ns.start_broker,
        "broker_port": ns.broker_port,
        "output": ns.output,
        "log_dir": ns.log_dir,
    }
    if ns.command == "soak":
        return SoakOptions(
            duration=ns.duration,
            rate=ns.rate,
            sample_every=ns.sample_every,
            drain=ns.drain,
            **common,
        )
    skip: frozenset[str] = frozenset().union(*ns.skip) if ns.skip else frozenset()
    if ns.only:
        skip |= frozenset(PHASES) - ns.only
    opts = SuiteOptions(
        events=ns.events,
        runs=ns.runs,
        enterprises=ns.enterprises,
        rate=ns.rate,
        latency_seconds=ns.latency_seconds,
        drain=ns.drain,
        scrape_interval=ns.scrape_interval,
        poll=ns.poll,
        max_seconds=ns.max_seconds,
        profile=ns.profile,
        warm_up=ns.warm_up,
        prime=ns.prime,
        skip=skip,
        quick=ns.quick,
        **common,
    )
    if ns.quick:
        # explicit sizes win over the quick defaults
        given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in argv if a.startswith("--")}
        opts = replace(opts, **{k: v for k, v in QUICK.items() if k not in given})  # type: ignore[arg-type]
    return opts


@contextlib.contextmanager
def broker(bootstrap: str, start: bool, port: int) -> Iterator[str]:
    if not start:
        yield bootstrap
        return
    from bench.broker import private_broker

    with private_broker(port) as address:
        yield address


def warm_up_round(o: SuiteOptions, log_dir: Path) -> str:
    """Before the latency phase, one latency round that is not measured: its figures are
    returned as a note for the report, apart from the rounds' medians.

    The first latency round on a broker that has just started was the slow one in every
    invocation (p99 640-1,015 ms at 5,000/s on a quiet machine, 310-403 ms in the next;
    bench/RESULTS.md, issue 18), with a fresh worker in every round: the broker's JVM uses
    ~1.2-2 x the CPU for the same records in its first round (interpreted code, the JIT
    compiling on the same two cores). That is the broker warming up, not the worker.
    Measured rounds therefore run on a warm broker, and the cold round is still shown.
    """
    if not (o.warm_up and o.runs_phase("latency")):
        return ""
    from bench.feed import capture
    from bench.latency import run_latency

    feed = capture(max(1, int(o.rate * o.latency_seconds)), seed=o.seed)
    try:
        lat = run_latency(
            o.bootstrap,
            feed,
            log_dir=log_dir,
            label="latency warm-up round (not in the medians)",
            **o.latency_round(),
        )
    except Exception as exc:  # the measured rounds still run; say why this one is missing
        return f"\n\nLatency warm-up round (not measured): failed ({type(exc).__name__}: {exc})."
    return (
        f"\n\nLatency warm-up round on the broker as it was (not in the medians; "
        f"{lat.offered_rate:,.0f} records/s offered): {lat.timeline()}."
    )


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    # a fresh topic's leader is not known for a moment: aiokafka retries and says so
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    log_dir = opts.log_dir or Path(tempfile.mkdtemp(prefix="dfip-bench-"))
    with broker(opts.bootstrap, opts.start_broker, opts.broker_port) as bootstrap:
        if isinstance(opts, SoakOptions):
            from bench.report import machine
            from bench.soak import render_soak, run_soak

            info = machine()
            result = run_soak(
                bootstrap,
                duration=opts.duration,
                rate=opts.rate,
                log_dir=log_dir,
                sample_every=opts.sample_every,
                drain=opts.drain,
                seed=opts.seed,
            )
            text = render_soak(result, command.strip(), info)
            code = 0 if result.ok else 1
        else:
            from bench.suite import run_suite

            suite = replace(opts, bootstrap=bootstrap)
            cold = warm_up_round(suite, log_dir)
            report = run_suite(suite, command.strip(), log_dir)
            text, code = report.text + cold, 0 if report.ok else 1
    print(text)
    if opts.output is not None:
        opts.output.write_text(text + "\n", encoding="utf-8")
    print(f"(worker logs: {log_dir})", file=sys.stderr)
    return code
