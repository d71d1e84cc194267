"""``python -m streams.supervisor PLAN``: what ``dfip worker`` executes (same pid) once its
checks passed and the worker has more than one process. ``PLAN`` is the JSON of
:class:`~streams.supervisor.plan.Plan`. Imports only what supervising needs: the CLI,
pydantic, aiohttp, the Kafka clients and Faust stay out of its memory."""

from __future__ import annotations

import logging
import sys

from streams.supervisor.plan import Plan
from streams.supervisor.run import run_supervisor


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m streams.supervisor PLAN (run by `dfip worker`)", file=sys.stderr)
        return 2
    plan = Plan.from_json(argv[0])
    logging.basicConfig(
        level=plan.log_level.upper().replace("WARN", "WARNING"),
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s",
    )
    return run_supervisor(plan)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
