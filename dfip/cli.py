"""The ``dfip`` command line: local Kafka, topics, the worker, ingest, the simulator, run."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Annotated

import typer
from kafka.errors import KafkaError
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.errors import DfipError
from core.kafka_config import KafkaSettings
from core.text import printable
from core.version import __version__
from dfip.alerts_cli import alerts_app
from dfip.config_errors import describe_os_error, describe_validation_error

__all__ = ["app", "main"]

#: What every command's exit status means (scripts and CI jobs branch on it).
EXIT_CODES = (
    "Exit codes: 0 success; 1 Kafka unreachable or failing, or a platform process failed; "
    "2 usage or configuration error (an option, a DFIP_* value or a file one names); "
    "3 `dfip ingest`: some entries rejected (they are on dfip.deadletter); "
    "130 interrupted (Ctrl-C, SIGTERM). Errors are one line on stderr."
)

# markdown: docstring paragraphs are reflowed to the terminal, not cut at their line ends
app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="The `dfip` command line: local Kafka, topics, the worker, ingest, the simulator, run.",
    epilog=EXIT_CODES,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
kafka_app = typer.Typer(
    no_args_is_help=True,
    help="A local Kafka broker (KRaft), or a cluster of three.",
    rich_markup_mode="markdown",
)
topics_app = typer.Typer(
    no_args_is_help=True, help="Topics from the catalog.", rich_markup_mode="markdown"
)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.add_typer(alerts_app, name="alerts")


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
    """The `dfip` command line: local Kafka, topics, the worker, ingest, the simulator, run."""


# soft_wrap: an error stays one line however narrow the terminal (or 80 columns when piped)
console = Console(emoji=False, stderr=True, soft_wrap=True)
REPO = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = REPO / "deploy" / "kafka" / "kafka.sh"


def _kafka_script(action: str, nodes: int | None = None, *, quiet: bool = False) -> int:
    if not KAFKA_SCRIPT.exists():
        raise DfipError(
            f"{KAFKA_SCRIPT} not found",
            hint="`dfip kafka` runs from a source checkout; use docker compose otherwise",
        )
    env = dict(os.environ)
    if nodes is not None:
        env["DFIP_KAFKA_NODES"] = str(nodes)
    out = subprocess.DEVNULL if quiet else None
    return subprocess.call(
        ["bash", str(KAFKA_SCRIPT), action], cwd=os.getcwd(), env=env, stdout=out, stderr=out
    )


# Unset: as the state folder was set up (kafka.sh counts its node folders), else one broker.
NodesOption = Annotated[
    int | None,
    typer.Option(
        "--nodes",
        min=1,
        max=5,
        help="Brokers (combined broker+controller, a quorum of all): 1, or 3 as production "
        "runs Kafka. Default: as DFIP_KAFKA_HOME was set up, else 1.",
    ),
]


@kafka_app.command("up")
def kafka_up(nodes: NodesOption = None) -> None:
    """Fetch (first time), format and start the broker(s); wait until they accept requests."""
    raise typer.Exit(_kafka_script("up", nodes))


@kafka_app.command("down")
def kafka_down(nodes: NodesOption = None) -> None:
    """Stop the broker(s) started by `dfip kafka up`."""
    raise typer.Exit(_kafka_script("down", nodes))


@kafka_app.command("status")
def kafka_status(nodes: NodesOption = None) -> None:
    """Say whether the local broker(s) run."""
    raise typer.Exit(_kafka_script("status", nodes))


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Resolve the Kafka jars from Maven Central into the cache."""
    raise typer.Exit(_kafka_script("fetch"))


@topics_app.command("create")
def topics_create(
    allow_under_replicated: Annotated[
        bool,
        typer.Option(
            "--allow-under-replicated",
            help="On a cluster of several brokers, create topics with fewer copies than "
            "production needs (3, 2 in sync) anyway.",
        ),
    ] = False,
) -> None:
    """Create every catalog topic that is missing (idempotent), replicated for the cluster:
    DFIP_KAFKA_REPLICATION_FACTOR / DFIP_KAFKA_MIN_INSYNC_REPLICAS, else 3 and 2 on three
    brokers or more, 1 and 1 on a single broker. An existing topic whose cleanup.policy,
    retention or other declared config differs from the catalog is set back to it (listed)."""
    from core.kafka_admin import create_topics

    results = create_topics(KafkaSettings(), allow_under_replicated=allow_under_replicated)
    table = Table("topic", "partitions", "created", "config")
    for r in results:
        config = "; ".join(r.reconfigured) if r.reconfigured else "as declared"
        table.add_row(r.name, str(r.partitions), "yes" if r.created else "existed", config)
    console = Console(emoji=False)
    console.print(table)
    for r in results:
        if r.reconfigured:
            console.print(f"reconfigured {r.name} to the catalog: {'; '.join(r.reconfigured)}")


def _group_id(kafka: KafkaSettings) -> str:
    """The workers' consumer group, as streams/engine/engine.py names it."""
    from streams.settings import WorkerSettings

    return f"{kafka.topic_prefix}{WorkerSettings().app_id}"


def _topic_name(kafka: KafkaSettings, name: str) -> str:
    """A catalog name (the prefix is added) or an already prefixed one."""
    from schemas.catalog import ALL_TOPICS

    catalog = [t.name for t in ALL_TOPICS]
    if name in catalog:
        return kafka.topic(name)
    if kafka.topic_prefix and name.startswith(kafka.topic_prefix):
        return name
    raise DfipError(f"unknown topic {name}", hint="one of " + ", ".join(catalog), exit_code=2)


@topics_app.command("list")
def topics_list(
    catalog: Annotated[
        bool, typer.Option("--catalog", help="Print the catalog only, without Kafka.")
    ] = False,
) -> None:
    """Every platform topic with its partitions, retained records, end offsets and the
    worker group's lag (committed records only)."""
    from schemas.catalog import ALL_TOPICS

    if catalog:
        table = Table("topic", "partitions", "cleanup", "key", "description")
        for t in ALL_TOPICS:
            table.add_row(t.name, str(t.partitions), t.cleanup_policy, t.key, t.description)
        Console(emoji=False).print(table)
        return
    from dfip.peek import topic_rows

    kafka = KafkaSettings()
    group = _group_id(kafka)
    rows = topic_rows(kafka, group)
    table = Table("topic", "partitions", "retained", "end offset", f"lag ({group})")
    for r in rows:
        lag = "—" if r.lag is None else f"{r.lag:,}"
        table.add_row(r.name, str(r.partitions), f"{r.records:,}", f"{r.end_offset:,}", lag)
    Console(emoji=False).print(table)


@topics_app.command("tail")
def topics_tail(
    topic: Annotated[str, typer.Argument(help="Catalog name, e.g. dfip.transactions.")],
    count: Annotated[
        int, typer.Option("-n", "--count", min=0, help="Last records per partition.")
    ] = 10,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new records (Ctrl-C stops).")
    ] = False,
) -> None:
    """Print a topic's last committed records, one line each: partition@offset, timestamp,
    key, value (text or JSON where the bytes are text, hex otherwise)."""
    from dfip.peek import format_record, tail

    kafka = KafkaSettings()
    name = _topic_name(kafka, topic)
    try:
        tail(kafka, name, count=count, follow=follow, emit=lambda r: print(format_record(r)))
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `| head`
        sys.stderr.close()


@app.command("deadletters")
def deadletters(
    last: Annotated[int, typer.Option("-n", "--last", min=0, help="Entries to show.")] = 5,
) -> None:
    """Dead letters: counts by stage and error class, then the newest entries with their
    reason, origin and original bytes (decoded as text where they are text)."""
    from dfip.peek import dead_letters

    kafka = KafkaSettings()
    summary = dead_letters(kafka, last=last)
    out = Console(emoji=False, soft_wrap=True)
    table = Table("stage", "error class", "count", title=f"{summary.total:,} dead letters")
    for (stage, error_class), n in summary.by_reason.most_common():
        table.add_row(stage, error_class, f"{n:,}")
    out.print(table)
    for entry in summary.last:
        origin = entry.get("source_location") or (
            f"{entry.get('topic')}:{entry.get('partition')}@{entry.get('offset')}"
            if entry.get("topic")
            else "?"
        )
        head = (
            f"{entry.get('_at', '')} {entry.get('first_seen', '')} "
            f"{entry.get('stage')}/{entry.get('error_class')} from {origin}: "
            f"{entry.get('reason', '')}"
        )
        # reasons and originals quote hostile input: its control characters are escaped
        out.print(escape(printable(head)), highlight=False)
        original = str(entry.get("original", entry.get("original_b64", "")))
        if len(original) > 400:
            original = original[:400] + "…"
        out.print(f"  original: {escape(printable(original, lines=True))}", highlight=False)


@app.command("worker")
def worker() -> None:
    """Run a stream worker (configured by DFIP_KAFKA_* and DFIP_WORKER_* variables)."""
    from dfip.native import warn_if_stale
    from dfip.preflight import check_broker, check_store, check_web_port, prepare_data_dir
    from streams.faust_compat import check_versions
    from streams.settings import WorkerSettings

    settings = WorkerSettings()
    kafka = KafkaSettings()
    check_versions()  # the record path uses Faust/aiokafka internals of known releases
    warn_if_stale()  # a compiled hot module older than its source runs the old code
    check_store(settings.store)
    if settings.rules:  # a bad rule set stops the worker before it joins the group
        from schemas.alerts import load_ruleset

        path = settings.rules_file
        if path is not None and not path.is_file():
            raise DfipError(
                f"DFIP_WORKER_RULES_FILE={path}: "
                + (
                    "is a folder"
                    if path.is_dir()
                    else "not a regular file (a device or a pipe)"
                    if path.exists()
                    else "no such file"
                ),
                hint="point it at a rule set like schemas/aml_rules.toml, or unset it",
                exit_code=2,
            )
        try:
            load_ruleset(path)
        except ValueError as exc:
            raise DfipError(
                str(exc), hint="fix the rule set (docs/aml-rules.md)", exit_code=2
            ) from None
    from streams.supervisor.cpus import process_count

    processes = process_count(settings)
    check_web_port(settings.web_host, settings.web_port)
    prepare_data_dir(settings.data_dir)
    group_id = f"{kafka.topic_prefix}{settings.app_id}"  # as streams/engine/engine.py names them
    # the transactional id a process of this worker uses (streams/supervisor/children.py)
    worker_id = settings.worker_id if processes == 1 else f"{settings.worker_id}-p0"
    check_broker(kafka, group_id=group_id, transactional_id=f"{group_id}-{worker_id}")
    # the same pid (kill -9 of the worker stays what it was), without the CLI's and the
    # checks' libraries (kafka-python's admin client among them: ~27 MB) in memory; -P: the
    # working directory (the data folder in the image) is not put on sys.path, as the
    # `dfip` script does not put it there either
    sys.stdout.flush()
    sys.stderr.flush()
    if processes > 1:  # the supervisor, without Faust's either (streams/supervisor/)
        from streams.supervisor.plan import Plan

        plan = Plan.of(settings, processes).to_json()
        os.execv(sys.executable, [sys.executable, "-P", "-m", "streams.supervisor", plan])  # noqa: S606 - our own interpreter
    os.execv(sys.executable, [sys.executable, "-P", "-m", "dfip.worker_process"])  # noqa: S606 - our own interpreter


def _align_local_broker(env: MutableMapping[str, str]) -> None:
    """`dfip run` starts its broker on 127.0.0.1:DFIP_KAFKA_PORT (kafka.sh); the clients
    follow DFIP_KAFKA_BOOTSTRAP_SERVERS. Unset, it is derived from the port; set to something
    else, the two disagree and the platform would talk to another broker (or none)."""
    port = env.get("DFIP_KAFKA_PORT", "9092")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise DfipError(
            f"DFIP_KAFKA_PORT={port} is not a TCP port", hint="use 1-65535", exit_code=2
        )
    local = {f"127.0.0.1:{port}", f"localhost:{port}"}
    bootstrap = env.get("DFIP_KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap is None:
        env["DFIP_KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{port}"
    elif bootstrap.strip() not in local:
        raise DfipError(
            f"DFIP_KAFKA_BOOTSTRAP_SERVERS={bootstrap} disagrees with DFIP_KAFKA_PORT={port} "
            f"(`dfip run` starts its broker on 127.0.0.1:{port})",
            hint="unset DFIP_KAFKA_BOOTSTRAP_SERVERS or make the two agree",
            exit_code=2,
        )


@app.command("run")
def run(
    # checked here, not by the simulator it starts: after the broker, a bad rate was a
    # usage error of a child process and "a platform process exited"
    rate: Annotated[float, typer.Option(min=0, help="Simulated events per second.")] = 200.0,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7,
) -> None:
    """The whole platform locally: Kafka, topics, one worker, the simulator feed, metrics.

    Ctrl-C stops all of it.
    """
    from core.kafka_admin import create_topics

    _align_local_broker(os.environ)
    KafkaSettings()  # a bad DFIP_KAFKA_* value is one line now, not after the broker started
    children: list[subprocess.Popen[bytes]] = []

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (kill, a service manager) stops it as Ctrl-C does

    # a broker the user started before (`dfip kafka up`) is theirs: it is reused and left running
    ours = _kafka_script("status", quiet=True) != 0
    previous = signal.signal(signal.SIGTERM, terminate)
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
        signal.signal(signal.SIGTERM, previous)
        for c in children:
            if c.poll() is None:
                # SIGTERM, not SIGINT: a platform started in the background has SIGINT ignored
                # (and its children with it); the worker and the simulator stop cleanly on both
                c.send_signal(signal.SIGTERM)
        for c in children:
            try:
                c.wait(timeout=20)
            except subprocess.TimeoutExpired:
                c.kill()
        if ours:
            _kafka_script("down")
        else:
            console.print("the Kafka broker was running before `dfip run`: left running")


def _register_optional() -> None:
    """Commands whose code lives in adapters/ (kept out of the import path of `worker`)."""
    from adapters.cli import ingest_command
    from adapters.simulator.cli import simulate_command
    from dfip.query import query_app
    from dfip.report.cli import report_command
    from dfip.top import top_command

    app.add_typer(query_app, name="query")
    app.command("report")(report_command)
    app.command("ingest")(ingest_command)
    app.command("simulate")(simulate_command)
    app.command("top")(top_command)


def _warn_unknown_variables() -> None:
    """A mistyped DFIP_* variable is ignored; say so before the command runs with defaults."""
    from dfip.env_check import unknown_variable_warnings

    for warning in unknown_variable_warnings(os.environ):
        console.print(f"[yellow]dfip: warning:[/] {escape(warning)}")


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # kafka-python warns on every retry it makes by itself (a fresh topic whose leaders are
    # still being elected, a broker that restarts); a command reports what finally failed in
    # one line, so its retries are not shown. The worker configures its own levels.
    logging.getLogger("kafka").setLevel(logging.ERROR)
    try:
        _warn_unknown_variables()
        _register_optional()
        app()
    except DfipError as exc:
        # escaped: a message may contain [brackets] (lists, SCRAM arguments) rich would eat
        console.print(f"[red]dfip:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)
    except ValidationError as exc:  # a DFIP_* variable with a value its settings refuse
        console.print(f"[red]dfip:[/] {escape(describe_validation_error(exc))}")
        sys.exit(2)
    except KafkaError as exc:  # one no command expected: still one line, naming the broker
        where = os.environ.get("DFIP_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        console.print(
            f"[red]dfip:[/] Kafka at {escape(where)} failed: {type(exc).__name__}: "
            f"{escape(str(exc).removeprefix(type(exc).__name__ + ': '))}"
        )
        sys.exit(1)
    except OSError as exc:
        # a configured file (password, certificate, mapping) that cannot be read
        console.print(f"[red]dfip:[/] {escape(describe_os_error(exc, os.environ))}")
        sys.exit(2)


if __name__ == "__main__":
    main()
