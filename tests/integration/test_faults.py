"""Faults on the real broker, each ending with every figure equal to the simulator's oracle
exactly and received = processed + duplicate + dead-lettered per input topic:

- the broker stopped and restarted mid-stream (a broker of this test's own, on free loopback
  ports with its own DFIP_KAFKA_HOME; the session broker is never stopped): the worker and
  the simulator's producer reconnect by themselves;
- scaling from one to three workers mid-stream, and back to one;
- a worker killed with SIGKILL while another keeps running: the survivor takes the dead
  worker's partitions over after the consumer session timeout;
- a replay from the start (consumer group offsets and dfip.state deleted), as
  docs/operations.md describes it.

The simulator's producer is the adapters' EventProducer (idempotent, unbounded retries within
a 120 s delivery timeout): through a broker restart it neither raised nor lost a record, so
the feed needs no retry loop of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from adapters.simulator.runner import SimulationConfig, SimulationResult, run_simulation
from core.errors import DfipError
from core.kafka_admin import admin_client, create_topics
from core.kafka_config import KafkaSettings
from schemas.catalog import STATE_TOPIC, USCC_PARTITIONS
from tests.integration.test_stream_exact import (
    assert_exact,
    assert_flow_identity,
    in_background,
    join_ok,
    simulate,
)
from tests.support.ports import free_ports
from tests.support.workers import (
    WorkerProcess,
    oracle_figures,
    scrape,
    total,
    wait_converged,
    wait_for,
    wait_ready,
)

REPO = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO / "deploy" / "kafka" / "kafka.sh"
ALL_PARTITIONS = set(range(USCC_PARTITIONS))
# Faust reads these from the environment (faust.types.settings: env_name); a short session
# timeout lets the survivor take a SIGKILLed worker's partitions over in seconds instead of
# the 60 s default. The semantics under test are the same.
FAST_FAILOVER = {"BROKER_SESSION_TIMEOUT": "10", "BROKER_HEARTBEAT_INTERVAL": "1"}


class PrivateBroker:
    """A single-node broker of one test's own: deploy/kafka/kafka.sh with its own home and
    ports, started and stopped only by that test."""

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        if port is None or controller_port is None:
            port, controller_port = free_ports(2)
        self.home = home
        self.port = port
        self.env = {
            **os.environ,
            "DFIP_KAFKA_HOME": str(home),
            "DFIP_KAFKA_PORT": str(port),
            "DFIP_KAFKA_CONTROLLER_PORT": str(controller_port),
            **(extra_env or {}),
        }

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _script(self, action: str) -> None:
        subprocess.run(["bash", str(KAFKA_SCRIPT), action], check=True, env=self.env, cwd=REPO)

    def up(self) -> float:
        """Start (formatting the storage on first use); seconds until it answers."""
        t0 = time.monotonic()
        self._script("up")
        return time.monotonic() - t0

    def down(self) -> float:
        """Controlled shutdown (SIGTERM, SIGKILL after 30 s); seconds it took."""
        t0 = time.monotonic()
        self._script("down")
        return time.monotonic() - t0

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = (self.home / "logs" / "server.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def received(worker: WorkerProcess) -> int:
    return total(scrape([worker]), "dfip_events_received_total")


def partitions_of(worker: WorkerProcess) -> set[int] | None:
    """Partitions the worker owns when it is ready (its /ready JSON), else None."""
    try:
        status, body = worker.get("/ready", timeout=1)
    except OSError:
        return None
    return set(orjson.loads(body)["partitions"]) if status == 200 else None


def owners(workers: list[WorkerProcess]) -> list[set[int]] | None:
    """Each worker's partitions if all are ready, own something and split all 12 cleanly."""
    parts = [partitions_of(w) for w in workers]
    if any(not p for p in parts):
        return None
    sets = [p for p in parts if p]
    union: set[int] = set().union(*sets)
    if union != ALL_PARTITIONS or sum(len(p) for p in sets) != USCC_PARTITIONS:
        return None
    return sets


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib must talk to the worker on loopback directly
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


# ---- a feed that runs until the fault has happened ---------------------------------------


class Feed:
    """The simulator's feed in the background at a steady rate until `end()` (its oracle then
    covers exactly what was sent), so a fault lands mid-stream however long it takes on a
    loaded machine."""

    # `limit` only bounds the feed: `end()` stops it, and a fault that takes minutes on a
    # loaded machine must not outlast it (that would fail the test, not the code)
    def __init__(self, settings: KafkaSettings, *, rate: float, limit: int = 200_000) -> None:
        self._stop = threading.Event()
        self._holder: dict[str, SimulationResult] = {}
        self.sent = 0  # records handed to the producer so far (every 500): for diagnostics
        config = SimulationConfig(seed=11, events=limit, rate=rate, enterprises=400)
        self._thread = in_background(
            lambda: self._holder.setdefault(
                "r", run_simulation(settings, config, stop=self._stop, progress=self._progress)
            )
        )

    def _progress(self, n: int) -> None:
        self.sent = n

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def end(self) -> SimulationResult:
        assert self.running, "the feed ended before the fault was over; raise `limit`"
        self._stop.set()
        join_ok(self._thread)
        return self._holder["r"]

    def abandon(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def assert_exact_end(workers: list[WorkerProcess], result: SimulationResult) -> None:
    expected = oracle_figures(result.oracle)
    got = wait_converged(workers, expected, timeout=180)
    assert_exact(got, expected)
    assert_flow_identity(got)


# ---- (a) the broker stopped and restarted mid-stream ---------------------------------------


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """A broker of this module's own (the session broker is never stopped)."""
    broker = PrivateBroker(tmp_path_factory.mktemp("own-kafka"))
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


def test_broker_restart_mid_stream(own_broker: PrivateBroker, tmp_path: Path) -> None:
    settings = KafkaSettings(bootstrap_servers=own_broker.bootstrap, topic_prefix="outage-")
    create_topics(settings)
    # a short commit timeout: the batch caught by the outage fails (and recovery starts)
    # after 10 s instead of the default 60; the same path, sooner
    worker = WorkerProcess(
        settings, "through-outage", tmp_path, DFIP_WORKER_COMMIT_TIMEOUT_SECONDS="10"
    ).start()
    feed: Feed | None = None
    try:
        wait_ready(worker)
        # the feed must outlast the whole outage (stop, a failed recovery, start: minutes on a
        # loaded machine) without giving records up: 10 minutes instead of the default 2
        feed = Feed(settings.model_copy(update={"delivery_timeout_ms": 600_000}), rate=250)
        wait_for(lambda: received(worker) > 300, timeout=60, what="the feed to reach the worker")
        t0 = time.monotonic()
        own_broker.down()  # controlled shutdown: connections close, then are refused
        # a batch fails and at least one recovery fails too while the broker is away: the
        # next attempt must restore the same partitions (one once restored none)
        wait_for(
            lambda: "recovery failed" in worker.log_path.read_text(errors="replace"),
            timeout=90,
            what="a recovery attempt to fail while the broker is down",
        )
        own_broker.up()
        outage = time.monotonic() - t0
        seen, sent = received(worker), feed.sent  # /metrics is served without the broker
        try:
            wait_for(
                lambda: received(worker) > seen + 200,
                timeout=90,
                what=f"the worker to process records again after a {outage:.0f} s outage",
            )
        except AssertionError as e:
            raise AssertionError(
                f"{e}\nfeed: {sent} records sent at the restart, {feed.sent} now, "
                f"running={feed.running}; worker received {seen} then {received(worker)}"
                f"\n--- worker log ---\n{worker.tail(80)}\n--- broker log ---\n"
                f"{own_broker.log_tail(30)}"
            ) from None
        result = feed.end()

        assert worker.alive, f"the worker did not survive the outage:\n{worker.tail()}"
        assert partitions_of(worker) == ALL_PARTITIONS
        assert result.delivered == result.records  # the producer lost nothing either
        assert_exact_end([worker], result)
        print(f"\nbroker stopped and restarted ({result.records} records): outage {outage:.1f}s")
    finally:
        if feed is not None:
            feed.abandon()
        worker.stop()


# ---- (b) one worker → three → one ----------------------------------------------------------


def test_scale_one_to_three_and_back_to_one(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    first = WorkerProcess(kafka_settings, "scale-0", tmp_path).start()
    extra = [WorkerProcess(kafka_settings, f"scale-{i}", tmp_path) for i in (1, 2)]
    feed: Feed | None = None
    timings: dict[str, float] = {}
    try:
        wait_ready(first)
        feed = Feed(kafka_settings, rate=200)
        wait_for(lambda: received(first) > 300, timeout=60, what="the feed to reach scale-0")

        # scale-out under load: two more workers at once
        t0 = time.monotonic()
        for w in extra:
            w.start()
        wait_for(
            lambda: owners([first, *extra]) is not None,
            timeout=150,
            interval=0.2,
            what="the partitions to be split three ways",
        )
        timings["scale_out_s"] = time.monotonic() - t0
        split = owners([first, *extra]) or []
        wait_for(
            lambda: all(received(w) > 0 for w in extra),
            timeout=60,
            what="the new workers to process records",
        )

        # scale-in under load: both extra workers get SIGTERM at once
        t0 = time.monotonic()
        for w in extra:
            assert w.proc is not None
            w.proc.send_signal(signal.SIGTERM)
        for w in extra:
            # wait for the exit without a second SIGTERM (stop() would send one)
            assert w.proc is not None
            try:
                code = w.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                code = None
            assert code == 0, f"{w.worker_id} did not exit cleanly ({code}):\n{w.tail()}"
        wait_for(
            lambda: partitions_of(first) == ALL_PARTITIONS,
            timeout=90,
            interval=0.2,
            what="scale-0 to own every partition again",
        )
        timings["scale_in_s"] = time.monotonic() - t0
        seen = received(first)
        wait_for(lambda: received(first) > seen + 200, timeout=60, what="records after scale-in")
        result = feed.end()

        assert_exact_end([first], result)
        print(
            f"\nscale 1 -> 3 -> 1 ({result.records} records): split "
            f"{sorted(len(p) for p in split)} after {timings['scale_out_s']:.1f}s, "
            f"back to one worker after {timings['scale_in_s']:.1f}s"
        )
    finally:
        if feed is not None:
            feed.abandon()
        for w in (first, *extra):
            w.stop()


# ---- (c) SIGKILL one of two workers --------------------------------------------------------


def test_sigkill_one_of_two_workers(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    survivor = WorkerProcess(kafka_settings, "survivor", tmp_path, **FAST_FAILOVER).start()
    victim = WorkerProcess(kafka_settings, "victim", tmp_path, **FAST_FAILOVER).start()
    feed: Feed | None = None
    try:
        wait_for(
            lambda: owners([survivor, victim]) is not None,
            timeout=150,
            interval=0.2,
            what="two workers sharing the partitions",
        )
        feed = Feed(kafka_settings, rate=250)
        wait_for(
            lambda: received(survivor) > 0 and received(victim) > 0,
            timeout=60,
            what="both workers to process records",
        )
        t0 = time.monotonic()
        victim.kill()  # SIGKILL mid-stream: no commit, no LeaveGroup, a transaction left open
        wait_for(
            lambda: partitions_of(survivor) == ALL_PARTITIONS,
            timeout=120,
            interval=0.2,
            what="the survivor to take the dead worker's partitions over",
        )
        takeover = time.monotonic() - t0
        seen = received(survivor)
        wait_for(lambda: received(survivor) > seen + 200, timeout=60, what="records after it")
        result = feed.end()

        assert survivor.alive
        assert_exact_end([survivor], result)
        print(f"\nSIGKILL of one of two workers: the survivor owns all after {takeover:.1f}s")
    finally:
        if feed is not None:
            feed.abandon()
        survivor.stop()
        victim.stop()


# ---- replay from the start ------------------------------------------------------------------


def test_replay_from_the_start_rebuilds_every_figure(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The procedure of docs/operations.md ("Replay from the start"): stop every worker,
    delete the consumer group's offsets and the dfip.state topic, recreate it, start again."""
    result = simulate(kafka_settings, 2000)
    assert result.anomalies.get("wrong_partition"), "the feed should forward some records"
    expected = oracle_figures(result.oracle)
    first = WorkerProcess(kafka_settings, "before-replay", tmp_path).start()
    try:
        wait_ready(first)
        assert_exact(wait_converged([first], expected), expected)
    finally:
        first.stop()

    admin = admin_client(kafka_settings)
    try:
        group = f"{kafka_settings.topic_prefix}dfip"  # DFIP_WORKER_APP_ID, namespaced
        # refused (GroupNotEmptyError) while the broker still counts the stopped worker in
        wait_for(
            lambda: admin.delete_groups([group]) == {group: "OK"},
            timeout=90,
            interval=2,
            what="the stopped worker's group to be deleted",
        )
        admin.delete_topics([kafka_settings.topic(STATE_TOPIC.name)])
    finally:
        admin.close()
    wait_for(lambda: _recreated(kafka_settings), timeout=60, what="dfip.state to be created again")

    again = WorkerProcess(kafka_settings, "after-replay", tmp_path).start()
    try:
        wait_ready(again)
        # the copies the first run forwarded are read again next to the replay's own: each
        # origin is taken once, so the flow identity holds (wait_converged waits for it)
        got = wait_converged([again], expected)
        assert_exact(got, expected)
        assert_flow_identity(got)
    finally:
        again.stop()


def _recreated(settings: KafkaSettings) -> bool:
    try:
        create_topics(settings, [STATE_TOPIC])
    except DfipError:  # still being deleted
        return False
    return True
