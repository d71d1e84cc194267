"""A process of a multi-process worker holds its records until the supervisor releases it.

Siblings start together but join the consumer group a few milliseconds apart: the first to
join is given every partition and would work through a backlog alone until its next
heartbeat (seconds) tells it to hand half over. So each process holds the records it is
handed (rewinds to its committed position; they come again) until the supervisor, having
seen every sibling ready with its share, writes to the pipe whose read end the process got
as ``DFIP_WORKER_RELEASE_FD``. This happens once, at start; later rebalances are ordinary.
The supervisor going away (EOF) releases too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping

__all__ = ["RELEASE_FD_VARIABLE", "ReleaseGate"]

RELEASE_FD_VARIABLE = "DFIP_WORKER_RELEASE_FD"


class ReleaseGate:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        raw = (os.environ if env is None else env).get(RELEASE_FD_VARIABLE, "")
        self._fd: int | None = int(raw) if raw.isdigit() else None
        self.released = self._fd is None
        self._watching = False

    def watch(self) -> None:
        """Start listening on the running loop (idempotent)."""
        if self.released or self._watching or self._fd is None:
            return
        self._watching = True
        try:
            asyncio.get_running_loop().add_reader(self._fd, self._release)
        except (OSError, ValueError):  # not a pipe we can watch: never hold
            self._release()

    def _release(self) -> None:
        fd, self._fd = self._fd, None
        self.released = True
        if fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
