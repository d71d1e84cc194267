"""The ``dfip`` command line: local Kafka, topics, the worker, ingest, the simulator, run."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dfip import __version__, log_filters
from dfip.config_errors import describe_validation_error
from dfip.errors import DfipError
from dfip.kafka_config import KafkaSettings

__all__ = ["app", "main"]

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False
)
kafka_app = typer.Typer(no_args_is_help=True, help="A local single-node Kafka broker (KRaft).")
topics_app = typer.Typer(no_args_is_help=True, help="Topics from the catalog.")
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")


def _version(value: bool) -> None:
    if value:
        print(f"dfip {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """The ``dfip`` command line: local Kafka, topics, the worker, ingest, the simulator, run."""


# soft_wrap: an error stays one line however narrow the terminal (or 80 columns when piped)
console = Console(stderr=True, soft_wrap=True)
REPO = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = REPO / "deploy" / "kafka" / "kafka.sh"


def _kafka_script(action: str) -> int:
    if not KAFKA_SCRIPT.exists():
        raise DfipError(
            f"{KAFKA_SCRIPT} not found",
            hint="`dfip kafka` runs from a source checkout; use docker compose otherwise",
        )
    return subprocess.call(["bash", str(KAFKA_SCRIPT), action], cwd=os.getcwd())


@kafka_app.command("up")
def kafka_up() -> None:
    """Fetch (first time), format and start the broker; wait until it accepts requests."""
    raise typer.Exit(_kafka_script("up"))


@kafka_app.command("down")
def kafka_down() -> None:
    """Stop the broker started by `dfip kafka up`."""
    raise typer.Exit(_kafka_script("down"))


@kafka_app.command("status")
def kafka_status() -> None:
    """Say whether the local broker runs."""
    raise typer.Exit(_kafka_script("status"))


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Resolve the Kafka jars from Maven Central into the cache."""
    raise typer.Exit(_kafka_script("fetch"))


@topics_app.command("create")
def topics_create() -> None:
    """Create every catalog topic that is missing (idempotent)."""
    from dfip.topics import create_topics

    results = create_topics(KafkaSettings())
    table = Table("topic", "partitions", "created")
    for r in results:
        table.add_row(r.name, str(r.partitions), "yes" if r.created else "existed")
    Console().print(table)


@topics_app.command("list")
def topics_list() -> None:
    """List the catalog."""
    from dfip.topics import all_topics

    table = Table("topic", "partitions", "cleanup", "key", "description")
    for t in all_topics():
        table.add_row(t.name, str(t.partitions), t.cleanup_policy, t.key, t.description)
    Console().print(table)


#: Third-party loggers a worker never lets below INFO: at DEBUG, aiokafka and kafka-python log
#: every produced record and fetch response in full (keys are USCCs and loan ids, values carry
#: account refs), and faust logs what agents yield. DFIP's own loggers follow the level.
CLIENT_LOGGERS = ("aiokafka", "kafka", "faust", "mode")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def worker_logging_config(level: str) -> dict[str, Any]:
    """The worker's logging_config for mode's dictConfig, merged into its default (root logger
    at `level` with mode's handler): the client libraries capped at INFO."""
    cap = max(_LEVELS[level.lower()], logging.INFO)
    return {"merge": True, "loggers": {name: {"level": cap} for name in CLIENT_LOGGERS}}


@app.command("worker")
def worker() -> None:
    """Run a stream worker (configured by DFIP_KAFKA_* and DFIP_WORKER_* variables)."""
    from dfip.preflight import check_broker, check_store, prepare_data_dir
    from streams.settings import WorkerSettings

    settings = WorkerSettings()
    kafka = KafkaSettings()
    check_store(settings.store)
    prepare_data_dir(settings.data_dir)
    group_id = f"{kafka.topic_prefix}{settings.app_id}"  # as streams/engine.py names them
    check_broker(kafka, group_id=group_id, transactional_id=f"{group_id}-{settings.worker_id}")

    import faust

    from streams.app import create_app

    w = create_app(kafka, settings)
    log_filters.install(_LEVELS[settings.log_level])
    faust.Worker(
        w.app,
        loglevel=settings.log_level.upper(),
        logging_config=worker_logging_config(settings.log_level),
        quiet=True,
    ).execute_from_commandline()


@app.command("run")
def run(
    rate: Annotated[float, typer.Option(help="Simulated events per second.")] = 200.0,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7,
) -> None:
    """The whole platform locally: Kafka, topics, one worker, the simulator feed, metrics.

    Ctrl-C stops all of it.
    """
    from dfip.topics import create_topics

    children: list[subprocess.Popen[bytes]] = []
    try:
        # inside the try: a Ctrl-C while the broker starts still stops it
        if _kafka_script("up") != 0:
            raise DfipError("the local Kafka broker did not start", hint="see .dfip/kafka/logs")
        create_topics(KafkaSettings())
        exe = [sys.executable, "-m", "dfip.cli"]
        port = os.environ.get("DFIP_WORKER_WEB_PORT", "6066")
        worker_env = {"DFIP_WORKER_LOG_LEVEL": "warn", **os.environ}
        children.append(subprocess.Popen([*exe, "worker"], env=worker_env))
        children.append(
            subprocess.Popen([*exe, "simulate", "--rate", str(rate), "--seed", str(seed)])
        )
        console.print(
            f"[bold green]DFIP is running.[/] Metrics: http://127.0.0.1:{port}/metrics  "
            f"health: /health  ready: /ready — Ctrl-C stops everything."
        )
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        failed = [c for c in children if c.returncode not in (0, None)]
        if failed:
            raise DfipError("a platform process exited", hint="see its output above")
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGINT)
        for c in children:
            try:
                c.wait(timeout=20)
            except subprocess.TimeoutExpired:
                c.kill()
        _kafka_script("down")


def _register_optional() -> None:
    """Commands whose code lives in adapters/ (kept out of the import path of `worker`)."""
    from adapters.cli import ingest_command
    from adapters.simulator.cli import simulate_command
    from dfip.top import top_command

    app.command("ingest")(ingest_command)
    app.command("simulate")(simulate_command)
    app.command("top")(top_command)


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        _register_optional()
        app()
    except DfipError as exc:
        # escaped: a message may contain [brackets] (lists, SCRAM arguments) rich would eat
        console.print(f"[red]dfip:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)
    except ValidationError as exc:  # a DFIP_* variable with a value its settings refuse
        console.print(f"[red]dfip:[/] {escape(describe_validation_error(exc))}")
        sys.exit(2)
    except OSError as exc:
        if exc.filename is None:
            raise
        # a configured file (password, certificate, mapping) that cannot be read
        console.print(f"[red]dfip:[/] {escape(f'{exc.filename}: {exc.strerror}')}")
        sys.exit(1)


if __name__ == "__main__":
    main()
