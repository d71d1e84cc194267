"""bench/latency.py's per-round diagnostics: latency by second sent, producer lateness by
second, the broker's process found by its port, and the warm-up round's switch."""

from __future__ import annotations

import math
import os
import socket

from bench.cli import SuiteOptions, parse_args
from bench.latency import LatencyRun, late_by_second, latencies_by_second, listener_pid


def test_latencies_by_second_split_by_send_time() -> None:
    # partition A: records sent at 0.0, 0.5, 1.2; the count shows 2 at 0.9 and 3 at 2.0
    sends = {("t", 0): [100.0, 100.5, 101.2]}
    observations = [(100.9, {("t", 0): 2}), (102.0, {("t", 0): 3})]
    got = latencies_by_second(sends, observations)
    assert len(got) == 2
    assert got[0] is not None
    assert math.isclose(got[0], 0.9, abs_tol=0.01)  # p99 of 0.9 and 0.4
    assert got[1] is not None
    assert math.isclose(got[1], 0.8)
    assert latencies_by_second({}, []) == []


def test_records_never_seen_are_infinitely_late_in_their_second() -> None:
    got = latencies_by_second({("t", 0): [10.0, 12.5]}, [(11.0, {("t", 0): 1})])
    assert got[:2] == [1.0, None]
    assert got[2] is not None
    assert math.isinf(got[2])


def test_producer_lateness_is_the_worst_per_second() -> None:
    assert late_by_second([(0.0, 0.02), (0.4, 0.3), (2.1, 0.05)]) == [0.3, 0.0, 0.05]
    assert late_by_second([]) == []


def test_listener_pid_finds_the_listening_process() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert listener_pid(f"127.0.0.1:{port}") == os.getpid()
    assert listener_pid("not-an-address") is None


def test_timeline_line_names_each_part() -> None:
    run = LatencyRun(4990.0, 10, 0, 0.2, 0.4, 0.25, 0.5, 1.0, 3.0, by_second=[0.4, None])
    run.worker_cpu, run.broker_cpu, run.late_by_second = 4.2, 6.0, [0.01]
    line = run.timeline()
    assert "p50/p99 200/400 ms scrape side" in line
    assert "p99 by second sent: 400 - ms" in line
    assert "worker CPU 4.2 s broker CPU 6.0 s" in line


def test_latency_warm_up_round_and_priming_are_on_by_default() -> None:
    on = parse_args(["--only", "latency"])
    off = parse_args(["--only", "latency", "--no-warm-up", "--no-prime"])
    assert isinstance(on, SuiteOptions)
    assert isinstance(off, SuiteOptions)
    assert on.warm_up
    assert on.prime
    assert not off.warm_up
    assert not off.prime
