"""The benchmark harness (bench/) without Kafka: imports, argument parsing, result formatting.

No timing is asserted; the benchmarks themselves run with `python -m bench` (bench/README.md).
"""

from __future__ import annotations

import importlib
import math

import pytest

from bench.cli import PHASES, QUICK, SoakOptions, SuiteOptions, parse_args
from bench.feed import CapturedFeed, CaptureSink, Produced
from bench.latency import received_by_partition, visible_latencies
from bench.pipeline import batch_stats, count_events, figure_diff
from bench.profile import collapse
from bench.report import Measure, fmt, percentile, ratio, ratio_line, table
from bench.scrape import histogram_quantile, parse_samples
from bench.soak import SoakResult, SoakSample, render_soak
from schemas import USCC_PARTITIONS, FxRate, TransactionEvent, partition_for
from schemas.examples import example_events
from tests.support.workers import Figures

MODULES = (
    "bench",
    "bench.__main__",
    "bench.broker",
    "bench.cli",
    "bench.enterprises",
    "bench.feed",
    "bench.fresh_topics",
    "bench.latency",
    "bench.pipeline",
    "bench.profile",
    "bench.raw",
    "bench.report",
    "bench.scrape",
    "bench.soak",
    "bench.suite",
    "bench.sustained",
)

EXPOSITION = """\
# HELP dfip_events_received Records read from an input topic.
# TYPE dfip_events_received counter
dfip_events_received_total{partition="0",topic="dfip.transactions"} 7.0
dfip_events_received_total{partition="1",topic="dfip.transactions"} 3.0
dfip_events_received_total{partition="0",topic="dfip.loans"} 2.0
dfip_events_received_total{partition="0",topic="dfip.scores"} 5.0
dfip_events_received_created{partition="0",topic="dfip.scores"} 1.7e9
dfip_events_processed_total{partition="0",topic="dfip.transactions"} 6.0
dfip_events_duplicate_total{partition="0",topic="dfip.transactions"} 1.0
dfip_event_latency_seconds_bucket{le="0.1"} 10.0
dfip_event_latency_seconds_bucket{le="0.5"} 90.0
dfip_event_latency_seconds_bucket{le="1.0"} 100.0
dfip_event_latency_seconds_bucket{le="+Inf"} 100.0
"""


@pytest.mark.parametrize("name", MODULES)
def test_modules_import(name: str) -> None:
    importlib.import_module(name)


def test_suite_is_the_default_command_with_documented_defaults() -> None:
    opts = parse_args([])
    assert isinstance(opts, SuiteOptions)
    assert opts == SuiteOptions(bootstrap=opts.bootstrap)
    assert opts.runs >= 3  # medians of at least three runs
    assert all(opts.runs_phase(p) for p in PHASES)


def test_sizes_and_skips() -> None:
    opts = parse_args(
        ["--events", "1000", "--runs", "5", "--enterprises", "200", "--skip", "latency,raw"]
    )
    assert isinstance(opts, SuiteOptions)
    assert (opts.events, opts.runs, opts.enterprises) == (1000, 5, 200)
    assert opts.skip == {"latency", "raw"}
    assert not opts.runs_phase("latency")
    assert opts.runs_phase("pipeline")
    only = parse_args(["suite", "--only", "enterprises", "--skip", "raw"])
    assert isinstance(only, SuiteOptions)
    assert [p for p in PHASES if only.runs_phase(p)] == ["enterprises"]


def test_bad_arguments_are_refused() -> None:
    for argv in (["--skip", "nonsense"], ["--events", "0"], ["--rate", "-1"]):
        with pytest.raises(SystemExit):
            parse_args(argv)


def test_quick_shrinks_sizes_but_explicit_values_win() -> None:
    quick = parse_args(["--quick"])
    assert isinstance(quick, SuiteOptions)
    assert quick.quick
    for key, value in QUICK.items():
        assert getattr(quick, key) == value
    mixed = parse_args(["--quick", "--events", "12345"])
    assert isinstance(mixed, SuiteOptions)
    assert mixed.events == 12345
    assert mixed.runs == QUICK["runs"]


def test_soak_defaults_to_one_hour() -> None:
    opts = parse_args(["soak"])
    assert isinstance(opts, SoakOptions)
    assert opts.duration == 3600
    short = parse_args(["soak", "--duration", "120", "--rate", "300", "--start-broker"])
    assert isinstance(short, SoakOptions)
    assert (short.duration, short.rate, short.start_broker) == (120, 300, True)


def test_ratio_line_and_number_formats() -> None:
    assert ratio_line(12_000, 240_000) == "ratio pipeline/raw: 0.05"
    assert ratio_line(None, 240_000) == "ratio pipeline/raw: n/a"
    assert ratio(1.0, 0.0) is None
    assert fmt(1234567.8, "events/s") == "1,234,568"
    assert fmt(0.0044, "×") == "0.0044"
    assert fmt(1.93, "×") == "1.93"
    assert fmt(math.inf, "ms") == "∞"
    assert fmt(None, "s") == "n/a"


def test_measure_median_ignores_missing_runs_and_table_lists_runs() -> None:
    m = Measure("pipeline, 1 worker", "events/s")
    for v in (300.0, None, 100.0, 200.0):
        m.add(v)
    assert m.median == 200.0
    text = table([m])
    assert "| pipeline, 1 worker | 200 | events/s | 300, n/a, 100, 200 |" in text
    assert Measure("empty", "s").median is None


def test_percentile_and_histogram_quantile() -> None:
    values = sorted(float(i) for i in range(1, 101))
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) is None
    buckets = [(0.1, 10.0), (0.5, 90.0), (1.0, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.3)
    assert histogram_quantile(buckets, 0.99) == pytest.approx(0.95)
    assert histogram_quantile([(1.0, 1.0), (math.inf, 10.0)], 0.99) == math.inf
    assert histogram_quantile([], 0.5) is None


def test_metrics_text_is_read_without_the_full_parser() -> None:
    samples = parse_samples(EXPOSITION, ("dfip_events_received_total",))
    assert len(samples["dfip_events_received_total"]) == 4  # not the _created sample
    assert received_by_partition(EXPOSITION) == {
        ("dfip.transactions", 0): 7,
        ("dfip.transactions", 1): 3,
        ("dfip.loans", 0): 2,
    }
    counts = count_events([EXPOSITION, EXPOSITION])  # two workers showing one partition
    assert counts["dfip_events_received_total"] == 12  # max per partition, then summed
    assert counts["dfip_events_processed_total"] == 6
    bounds = parse_samples(EXPOSITION, ("dfip_event_latency_seconds_bucket",))
    assert ("le", "+Inf") in bounds["dfip_event_latency_seconds_bucket"][-1][0]


def test_latency_from_per_partition_counts() -> None:
    sends = {("dfip.loans", 0): [10.0, 10.5, 11.0], ("dfip.loans", 1): [10.0]}
    observations = [(11.0, {("dfip.loans", 0): 1}), (12.0, {("dfip.loans", 0): 2})]
    got = sorted(visible_latencies(sends, observations))
    assert got[:2] == [1.0, 1.5]
    assert got[2:] == [math.inf, math.inf]  # never seen


def test_figure_diff_counts_series() -> None:
    a: Figures = {"x": {("a",): 1, ("b",): 2}}
    assert figure_diff(a, a) == 0
    b: Figures = {"x": {("a",): 1}}
    assert figure_diff(a, b) == 1
    assert figure_diff({}, a) == 2


def test_capture_sink_keeps_keys_partitions_and_barriers() -> None:
    sink = CaptureSink()
    events = example_events()
    tx = next(e for e in events if isinstance(e, TransactionEvent))
    fx = next(e for e in events if isinstance(e, FxRate))
    sink.send(tx)
    sink.send(fx)
    sink.flush()
    sink.send_raw("dfip.loans", b"{broken", key=b"k", partition=3)
    first, second, third = sink.records
    assert first.topic == "dfip.transactions"
    assert first.partition == partition_for(tx.enterprise_uscc) < USCC_PARTITIONS
    assert first.key == tx.enterprise_uscc.encode()
    assert (second.topic, second.partition, second.barrier) == ("dfip.fx", 0, True)
    assert not first.barrier
    assert not third.barrier
    assert third == Produced("dfip.loans", 3, b"k", b"{broken")
    feed = CapturedFeed(
        sink.records,
        {
            "figures": {
                "dfip_events_received_total": [
                    {"labels": {"topic": "dfip.transactions"}, "value": 4},
                    {"labels": {"topic": "dfip.scores"}, "value": 9},
                ]
            }
        },
        0.1,
    )
    assert feed.events == 2
    assert feed.expected_received() == 4


def test_py_spy_stacks_are_summed() -> None:
    raw = (
        'process 1:"python -m dfip.cli worker";run (asyncio/events.py:80);'
        "process (streams/processor.py:150);decode (schemas/codec.py:40) 30\n"
        'process 1:"python -m dfip.cli worker";run (asyncio/events.py:80);'
        "process (streams/processor.py:150) 10\n"
    )
    samples, own, inclusive = collapse(raw)
    assert samples == 40
    assert own["decode (schemas/codec.py)"] == 30
    assert inclusive["process (streams/processor.py)"] == 40
    assert "run (asyncio/events.py)" not in inclusive  # the event loop trunk is left out


def test_soak_report_shows_lost_events_and_rss_over_time() -> None:
    result = SoakResult(duration=120, rate=250, sent=30_000, produce_seconds=120.0)
    result.samples = [SoakSample(0.0, 90.0, 0), SoakSample(60.0, 120.0, 15_000)]
    result.samples.append(SoakSample(120.0, 125.0, 30_000))
    result.expected = result.received = 30_000
    result.differing_series = 0
    result.drained = True
    assert result.ok
    text = render_soak(result, "python -m bench soak --duration 120")
    assert "| **lost events** | **0** |" in text
    assert "| 60 | 120 | 15,000 |" in text
    result.received = 29_999
    assert not result.ok
    assert result.lost == 1


def test_batch_stats_from_worker_counters() -> None:
    text = (
        "dfip_worker_batches_total 4.0\n"
        "dfip_worker_records_total 1000.0\n"
        "dfip_worker_batch_seconds_sum 2.0\n"
        "dfip_worker_batch_seconds_count 4.0\n"
    )
    assert batch_stats([text]) == (250.0, 500.0)
    assert batch_stats([""]) == (None, None)


def test_scraper_asks_for_named_families_and_times_full_scrapes_only() -> None:
    import http.server
    import threading
    from urllib.parse import parse_qs, urlsplit

    from bench.scrape import Scraper

    asked: list[list[str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(parse_qs(urlsplit(self.path).query).get("name[]", []))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x 1\n")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        scraper = Scraper(server.server_address[1])
        got = scraper.metrics(names=("dfip_events_received_total", "dfip_worker_batches_total"))
        assert got is not None
        assert got.text == "x 1\n"
        assert scraper.count == 0  # a filtered poll is not what a full scrape costs
        assert scraper.metrics() is not None
        assert scraper.count == 1
        assert asked == [["dfip_events_received_total", "dfip_worker_batches_total"], []]
    finally:
        server.shutdown()
        server.server_close()
