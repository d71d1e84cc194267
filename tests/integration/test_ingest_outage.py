"""An ingest that meets a broker outage longer than the delivery timeout, then runs again.

On a broker of this module's own (tests/integration/test_faults.py's PrivateBroker; the
session broker is never stopped), with the delivery timeout lowered to seconds through
DFIP_KAFKA_DELIVERY_TIMEOUT_MS:

- a 30-day CSV statement is ingested in checkpointed transactions; the broker is stopped
  after the third checkpoint and kept down: `dfip ingest` ends by itself with exit 1, the
  summary and one line saying how far the document is committed;
- the broker is started again and the same command run again: it resumes after the last
  checkpoint, and the topics then hold every event and dead letter exactly once (read
  committed: distinct ids = records = the parser's own count);
- a third run skips the document (the ledger has it), `--force` sends it all again (the
  stream's duplicate memory then drops the copies by event id);
- the simulator's producer through the same outage raises `DeliveryError` instead of
  hanging;
- Ctrl-C during an outage stops `dfip ingest` (a process of its own, default 120 s delivery
  timeout) at once: exit 130 and the "interrupted" line, long before the delivery timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from adapters import AccountDirectory, ParseContext, Rejected, get_parser
from adapters.cli import ingest_command
from adapters.ingest import KafkaSink
from adapters.ledger import read_ledger
from adapters.producer import DeliveryError
from adapters.simulator.runner import SimulationConfig, run_simulation
from core.kafka_admin import create_topics
from core.kafka_config import KafkaSettings
from schemas import DeadLetter, decode_as
from tests.integration.test_faults import PrivateBroker
from tests.support.workers import read_topic

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "adapters"
KEY = "test-key-dfip-adapters-0123456789"
INSTITUTION = "HK-BANK"
DAYS, ROWS_PER_DAY, BAD_EVERY = 30, 400, 997
CHECKPOINT = 1_000
DELIVERY_TIMEOUT_MS = 6_000
HEADER = (
    "Account Number,Transaction Date,Value Date,Description,Bank Reference,Amount,"
    "Currency,Balance,Counterparty Country\n"
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    own = PrivateBroker(tmp_path_factory.mktemp("ingest-kafka"))
    own.up()
    try:
        yield own
    finally:
        own.down()


def statement(path: Path) -> Path:
    """30 days of rows of one account; every BAD_EVERY-th row has an impossible date."""
    start = date(2025, 3, 1)
    lines = [HEADER]
    n = 0
    for day in range(DAYS):
        when = (start + timedelta(days=day)).strftime("%d/%m/%Y")
        for i in range(ROWS_PER_DAY):
            n += 1
            booked = "31/02/2025" if n % BAD_EVERY == 0 else when
            amount = f"{(n % 50_000) + 1}.{n % 100:02d}" if i % 3 else f"-{n % 9_000 + 1}.00"
            lines.append(
                f"012-345678-001,{booked},{when},ROW {n},HK{n:09d},{amount},HKD,1000.00,HK\n"
            )
    path.write_text("".join(lines), encoding="utf-8")
    return path


def expected(path: Path) -> tuple[list[str], int]:
    """(event ids, rejections) the parser makes of the file."""
    accounts = AccountDirectory.load(FIXTURES / "accounts.toml", KEY.encode())
    parser = get_parser("csv")(ParseContext(INSTITUTION, accounts, mapping=Path("hk_utf8_signed")))
    ids: list[str] = []
    rejected = 0
    for result in parser.parse(path):
        if isinstance(result, Rejected):
            rejected += 1
        else:
            ids.append(result.event_id)
    return ids, rejected


def event_ids(settings: KafkaSettings) -> list[str]:
    return [orjson.loads(r.value)["event_id"] for r in read_topic(settings, "dfip.transactions")]


def letter_ids(settings: KafkaSettings) -> list[str]:
    return [
        decode_as(r.value, DeadLetter).event_id for r in read_topic(settings, "dfip.deadletter")
    ]


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command("ingest")(ingest_command)
    app.command("noop")(lambda: None)
    return app


def ingest(path: Path, *extra: str) -> Any:
    """`dfip ingest csv …` in a thread, waited for with a generous bound (a hang fails)."""
    args = [
        "ingest", "csv", str(path), "-i", INSTITUTION, "--mapping", "hk_utf8_signed",
        "--accounts", str(FIXTURES / "accounts.toml"), "--checkpoint-every", str(CHECKPOINT),
        *extra,
    ]  # fmt: skip
    holder: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: holder.setdefault("r", CliRunner().invoke(cli_app(), args)), daemon=True
    )
    thread.start()
    thread.join(timeout=300)
    assert not thread.is_alive(), "dfip ingest hung"
    return holder["r"]


def after_checkpoints(n: int, action: Callable[[], None]) -> Callable[..., None]:
    """A KafkaSink.checkpoint that runs `action` once, after its n-th commit."""
    original = KafkaSink.checkpoint
    calls = Counter[str]()

    def checkpoint(self: KafkaSink, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == n:
            action()

    return checkpoint


@pytest.fixture
def env(broker: PrivateBroker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> KafkaSettings:
    prefix = f"o{tmp_path.name[-8:]}-".replace("_", "")
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix=prefix,
        delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
        request_timeout_ms=2_000,
    )
    create_topics(settings)
    for name, value in {
        "DFIP_ACCOUNT_HASH_KEY": KEY,
        "DFIP_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "DFIP_KAFKA_TOPIC_PREFIX": prefix,
        "DFIP_KAFKA_DELIVERY_TIMEOUT_MS": str(DELIVERY_TIMEOUT_MS),
        "DFIP_KAFKA_REQUEST_TIMEOUT_MS": "2000",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DFIP_ACCOUNT_HASH_KEY_FILE", raising=False)
    return settings


def test_outage_past_the_delivery_timeout_then_rerun_is_exact(
    broker: PrivateBroker, env: KafkaSettings, tmp_path: Path
) -> None:
    path = statement(tmp_path / "hk_march.csv")
    ids, rejections = expected(path)
    assert len(ids) + rejections == DAYS * ROWS_PER_DAY
    assert len(set(ids)) == len(ids)

    # 1. the broker goes away after three checkpoints and stays away past the timeout
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(KafkaSink, "checkpoint", after_checkpoints(3, broker.down))
        t0 = time.monotonic()
        first = ingest(path)
        took = time.monotonic() - t0
    assert first.exit_code == 1, first.output
    assert "Traceback" not in first.output
    lines = [line for line in first.stderr.splitlines() if line.startswith("dfip ingest:")]
    assert len(lines) == 1, first.stderr
    assert "Kafka delivery failed" in lines[0]
    assert f"hk_march.csv committed up to entry {3 * CHECKPOINT}, the rest not" in lines[0]
    assert "ingest summary" in first.stderr
    assert f"ledger: hk_march.csv committed up to entry {3 * CHECKPOINT}" in first.stderr
    print(f"\nbroker down after 3 checkpoints: the ingest gave up after {took:.1f}s")
    print("\n".join(first.stderr.splitlines()[-2:]))

    # 2. the broker is back: the same command resumes after the last checkpoint
    broker.up()
    ledger = read_ledger(env)
    [entry] = ledger.values()
    assert (entry.results, entry.complete) == (3 * CHECKPOINT, False)
    second = ingest(path)
    assert second.exit_code == 3, second.output  # the impossible dates are rejected
    assert f"ledger: hk_march.csv resumed after {3 * CHECKPOINT}; complete" in second.stderr
    got = event_ids(env)
    assert len(got) == len(set(got)) == len(ids)
    assert sorted(got) == sorted(ids)
    letters = letter_ids(env)
    assert len(letters) == len(set(letters)) == rejections
    [entry] = read_ledger(env).values()
    assert entry.complete
    assert (entry.results, entry.events, entry.rejected) == (
        DAYS * ROWS_PER_DAY,
        len(ids),
        rejections,
    )

    # 3. run again: the ledger has it, nothing is sent
    third = ingest(path)
    assert third.exit_code == 0, third.output
    assert "ledger: hk_march.csv already ingested" in third.stderr
    assert "(skipped); complete" in third.stderr
    assert "delivered 0 record(s)" in third.stderr
    assert len(event_ids(env)) == len(ids)

    # 4. --force sends it all again; the copies carry the same ids (the worker's duplicate
    # memory drops them; a re-send much later relies on its arrival-time horizon)
    forced = ingest(path, "--force")
    assert forced.exit_code == 3, forced.output
    assert "ledger: hk_march.csv forced; complete" in forced.stderr
    again = event_ids(env)
    assert Counter(again) == Counter({i: 2 for i in ids})


def test_simulator_through_a_long_outage_raises_instead_of_hanging(
    broker: PrivateBroker, env: KafkaSettings
) -> None:
    stop = threading.Event()
    holder: dict[str, BaseException | None] = {}

    def run() -> None:
        config = SimulationConfig(seed=3, events=1_000_000, rate=400, enterprises=50)
        try:
            run_simulation(env, config, stop=stop)
            holder["e"] = None
        except BaseException as exc:
            holder["e"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        time.sleep(3)  # some records out, then the broker goes away for good
        broker.down()
        thread.join(timeout=240)
        assert not thread.is_alive(), "the simulator hung through the outage"
        assert isinstance(holder.get("e"), DeliveryError), holder
    finally:
        stop.set()
        thread.join(timeout=30)
        broker.up()  # for the next test


def test_ctrl_c_during_an_outage_stops_the_ingest(
    broker: PrivateBroker, env: KafkaSettings, tmp_path: Path
) -> None:
    """The module's last test: it leaves the broker down (the fixture's `down` is a no-op)."""
    path = tmp_path / "long.csv"
    lines = [HEADER]
    for n in range(1, 200_001):  # long enough to still be running on any machine
        lines.append(f"012-345678-001,01/03/2025,01/03/2025,R {n},HK{n:09d},1.00,HKD,1.00,HK\n")
    path.write_text("".join(lines), encoding="utf-8")
    child_env = {**os.environ, "DFIP_KAFKA_DELIVERY_TIMEOUT_MS": "120000"}
    args = [
        sys.executable, "-m", "dfip.cli", "ingest", "csv", str(path), "-i", INSTITUTION,
        "--mapping", "hk_utf8_signed", "--accounts", str(FIXTURES / "accounts.toml"),
        "--checkpoint-every", str(CHECKPOINT),
    ]  # fmt: skip
    proc = subprocess.Popen(args, env=child_env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not read_ledger(env):  # the first checkpoint is in: the ingest is mid-way
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.5)
        broker.down()
        time.sleep(2)  # records are now waiting for a broker that is gone
        proc.send_signal(signal.SIGINT)
        # a bound for a hang only: without the fix the wait is the 120 s delivery timeout
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    [line] = [x for x in err.splitlines() if x.startswith("dfip ingest:")]
    assert line.startswith("dfip ingest: interrupted; 0 document(s) committed completely; ")
    assert "long.csv committed up to entry" in line
    assert "Traceback" not in err
