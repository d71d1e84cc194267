"""``python -m streams.supervisor``: what ``dfip worker`` executes (same pid) once its checks
passed and the worker has more than one process. Imports only what supervising needs: the
CLI, the Kafka clients and Faust stay out of its memory."""

from __future__ import annotations

import logging
import sys

from streams.settings import WorkerSettings
from streams.supervisor.cpus import process_count
from streams.supervisor.run import run_supervisor


def main() -> int:
    settings = WorkerSettings()
    logging.basicConfig(
        level=settings.log_level.upper().replace("WARN", "WARNING"),
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
    )
    return run_supervisor(settings, process_count(settings))


if __name__ == "__main__":
    sys.exit(main())
