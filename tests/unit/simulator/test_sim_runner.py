"""run_simulation and `dfip simulate` against a recording fake producer (no Kafka)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import adapters.simulator.cli as cli
from adapters.simulator.cli import check_oracle_path, check_time_range
from adapters.simulator.runner import (
    SimulationConfig,
    TokenBucket,
    run_simulation,
)
from core.errors import DfipError
from schemas import encode


@dataclass
class Report:
    sent: int
    failed: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)


TOPIC_OF = {
    "transaction": "dfip.transactions",
    "loan": "dfip.loans",
    "digitalization_score": "dfip.scores",
    "fx_rate": "dfip.fx",
}


class FakeSink:
    """Records what would be produced, and where the flushes fall."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, int | None]] = []
        self.flushed_at: list[int] = []
        self._since = 0
        self.closed = False

    def send(self, event):
        topic = TOPIC_OF[event.kind]
        self.sent.append((topic, encode(event), None, None))
        self._since += 1

    def send_raw(self, topic, value, *, key=None, partition=None):
        self.sent.append((topic, value, key, partition))
        self._since += 1

    def flush(self, timeout=None):
        self.flushed_at.append(len(self.sent))
        sent, self._since = self._since, 0
        return Report(sent)

    def close(self):
        self.closed = True


CONFIG = SimulationConfig(
    seed=5,
    events=3000,
    start=datetime(2025, 6, 30, 22, 0, tzinfo=UTC),
    step_seconds=Decimal(30),
    enterprises=200,
    bad_rate=0.02,
)


def test_produces_exactly_the_requested_records_and_their_oracle():
    sink = FakeSink()
    seen: list[int] = []
    result = run_simulation(None, CONFIG, sink=sink, progress=seen.append)
    assert result.records == len(sink.sent) == 3000
    assert result.delivered == 3000
    assert sink.closed
    assert seen[-1] == 3000
    assert sum(result.by_topic.values()) == 3000
    received = {
        s["labels"]["topic"]: s["value"]
        for s in result.oracle["figures"]["dfip_events_received_total"]
    }
    assert received == result.by_topic
    meta = result.oracle["meta"]
    assert meta["events"] == 3000
    assert meta["seed"] == 5
    assert meta["start"] == "2025-06-30T22:00:00+00:00"
    assert meta["end"] > meta["start"]
    assert meta["grace_seconds"] == 600
    assert sum(result.anomalies.values()) > 0


def test_reference_batches_are_flushed_before_later_records():
    sink = FakeSink()
    run_simulation(None, CONFIG, sink=sink)
    # The run crosses midnight: that day's FX batch is flushed right after its 3 records.
    for i, (topic, *_rest) in enumerate(sink.sent):
        nxt = sink.sent[i + 1][0] if i + 1 < len(sink.sent) else None
        if topic in ("dfip.fx", "dfip.scores") and nxt not in (topic, None):
            assert i + 1 in sink.flushed_at, (i, topic)
    fx = [i for i, (t, *_r) in enumerate(sink.sent) if t == "dfip.fx"]
    assert len(fx) == 6  # two days x USD, EUR, HKD
    assert sink.flushed_at[-1] == len(sink.sent)  # final flush


def test_same_seed_same_records():
    a, b = FakeSink(), FakeSink()
    run_simulation(None, CONFIG, sink=a)
    run_simulation(None, CONFIG, sink=b)
    assert a.sent == b.sent


def test_duration_stop_and_endless_runs_stopped_by_a_signal():
    sink = FakeSink()
    result = run_simulation(None, SimulationConfig(duration=0.0, enterprises=50), sink=sink)
    assert result.records == 0
    assert result.oracle["figures"]["dfip_events_received_total"] == []

    endless = SimulationConfig(enterprises=50)
    assert endless.endless
    stop = threading.Event()

    def progress(n: int) -> None:
        if n >= 1500:
            stop.set()  # what the CLI's SIGINT/SIGTERM handler does

    result = run_simulation(None, endless, sink=FakeSink(), progress=progress, stop=stop)
    assert result.records == 1500
    assert result.oracle["meta"]["events"] == 1500


def test_token_bucket_paces_to_the_rate():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(100.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(1000):
        bucket.take()
    # 1000 tokens at 100/s, minus the initial burst of 5: 9.95 s of waiting.
    assert now[0] == pytest.approx(9.95, abs=1e-6)
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)


def test_parse_start():
    assert cli.parse_start("2025-03-03T08:00:00+08:00") == datetime(2025, 3, 3, tzinfo=UTC)
    assert cli.parse_start("2025-03-03T00:00:00Z") == datetime(2025, 3, 3, tzinfo=UTC)
    assert cli.parse_start("2025-03-03 00:00") == datetime(2025, 3, 3, tzinfo=UTC)
    now = cli.parse_start("now")
    assert now.tzinfo is UTC
    assert now.microsecond == 0
    with pytest.raises(typer.BadParameter):
        cli.parse_start("yesterday")


def test_cli_writes_the_oracle_and_a_summary(tmp_path, monkeypatch):
    real = cli.run_simulation

    def fake_run(settings, config, **kw):
        assert config.events == 400
        assert config.start == datetime(2025, 3, 3, tzinfo=UTC)
        assert config.step_seconds == Decimal("2.5")
        return real(settings, config, sink=FakeSink(), **kw)

    monkeypatch.setattr(cli, "run_simulation", fake_run)
    monkeypatch.setattr(cli, "create_topics", lambda settings: [])
    app = typer.Typer()
    app.command()(cli.simulate_command)
    out = tmp_path / "oracle" / "expected.json"
    result = CliRunner().invoke(
        app,
        [
            "--events",
            "400",
            "--start",
            "2025-03-03T00:00:00Z",
            "--step-seconds",
            "2.5",
            "--enterprises",
            "100",
            "--oracle",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    oracle = json.loads(out.read_text(encoding="utf-8"))
    assert oracle["meta"]["events"] == 400
    assert set(oracle) == {"figures", "windows", "meta"}
    assert "dfip.transactions" in result.output
    assert "oracle written" in result.output


def test_an_unwritable_oracle_path_is_refused_before_anything_is_sent(tmp_path) -> None:
    from core.errors import DfipError

    check_oracle_path(tmp_path / "new" / "oracle.json")  # parents are created
    for bad, said in ((tmp_path, "is a folder"), (Path("/proc/none/o.json"), "cannot write")):
        with pytest.raises(DfipError, match=said) as refused:
            check_oracle_path(bad)
        assert refused.value.exit_code == 2


@pytest.mark.parametrize(
    ("args", "said"),
    [
        # each was a traceback: OverflowError past year 9999, SchemaError before 1970,
        # decimal.InvalidOperation for nan
        (["--start", "9999-12-31T23:59:59"], "would run past 9000"),
        (["--start", "0001-01-01T00:00:00"], "is before 2000-01-01"),
        (["--step-seconds", "1e12"], "more than the 7004 years"),
        (["--start", "2024-01-01", "--step-seconds", "1e15"], "more than the 7004 years"),
        (["--step-seconds", "nan"], "finitenumberofseconds"),
        # the province is built up front: 10^8 enterprises never finished
        (["--enterprises", "100000000"], "1000000"),
    ],
)
def test_a_feed_outside_datetime_or_the_schemas_is_a_usage_error(args, said) -> None:
    app = typer.Typer()
    app.command()(cli.simulate_command)
    result = CliRunner().invoke(app, ["--events", "5", *args])
    if isinstance(result.exception, DfipError):  # dfip's main prints it, exit code its own
        assert result.exception.exit_code == 2
        assert said in str(result.exception)
    else:  # a typer usage error
        assert result.exit_code == 2, result.output
        assert said in result.output.replace("\n", "").replace("│", "").replace(" ", "")


def test_the_feed_limits_themselves_are_accepted() -> None:
    check_time_range(datetime(2000, 1, 1, tzinfo=UTC), Decimal(3600))
    check_time_range(datetime(8999, 12, 31, tzinfo=UTC), Decimal(3600))
