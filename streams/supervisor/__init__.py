"""Several worker processes behind one worker: a Python process computes on one core, so a
worker uses the machine's cores by running N processes, each an ordinary member of the
consumer group (its own transactional producer, its own share of the partitions), behind
one HTTP port that merges their /metrics and answers /health, /ready and /state for all.

- ``cpus``: how many processes ``processes = auto`` means here (for ``dfip worker``);
- ``children``: starting the processes (each dies with the supervisor);
- ``gate``: a process holds its records until its siblings have joined the group too;
- ``front``: the HTTP endpoints on ``web_port``; ``merge``: their /metrics as one;
- ``http``: the little HTTP/1.1 server and client it needs (no aiohttp: memory);
- ``plan``: what it needs of the settings, handed over as JSON (no pydantic: memory);
- ``run``: the supervisor's life: start, release, watch, stop;
- ``__main__``: the process ``dfip worker`` replaces itself with once its checks passed
  (``exec``: the same pid, without the CLI's and the checks' libraries in memory).

``cpus`` is imported on its own (``streams.supervisor.cpus``): it reads the settings, which
the supervisor itself never imports.
"""

from streams.supervisor.gate import RELEASE_FD_VARIABLE, ReleaseGate
from streams.supervisor.plan import Plan
from streams.supervisor.run import run_supervisor

__all__ = [
    "RELEASE_FD_VARIABLE",
    "Plan",
    "ReleaseGate",
    "run_supervisor",
]
