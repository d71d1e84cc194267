"""``python -m dfip.worker_process``: one worker process (Faust) as configured by the
DFIP_KAFKA_* and DFIP_WORKER_* variables, without the CLI. ``dfip worker`` runs the same
after its checks; a worker of several processes (streams/supervisor/) starts each of its
processes this way, since its checks ran once, before the supervisor: the CLI's libraries
(typer, rich, the checks') stay out of each process's memory (~10 MB apiece).
"""

from __future__ import annotations

import logging
from typing import Any

from core.kafka_config import KafkaSettings
from dfip import log_filters
from streams.settings import WorkerSettings

__all__ = ["CLIENT_LOGGERS", "run_faust_worker", "worker_logging_config"]

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


def run_faust_worker(kafka: KafkaSettings, settings: WorkerSettings) -> None:
    """Run the Faust worker until it stops (SIGTERM/SIGINT); exits the process."""
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


if __name__ == "__main__":
    run_faust_worker(KafkaSettings(), WorkerSettings())
