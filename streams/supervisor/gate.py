"""A process of a multi-process worker holds its records until the supervisor releases it.

Siblings start together but join the consumer group a few milliseconds apart: the first to
join is given every partition and would work through a backlog alone until its next
heartbeat (seconds) tells it to hand half over. So each process holds the records it is
handed (rewinds to its committed position; they come again) until the supervisor, having
seen every sibling ready with its share, writes to the pipe whose read end the process got
as ``DFIP_WORKER_RELEASE_FD``. This happens once, at start; later rebalances are ordinary.
The supervisor going away (EOF) releases too.

The same race made start-up slow: the first process restored every partition (~2.5 s each
with a million scored enterprises) before it rejoined and handed half over, and restored
them in series that its siblings could have restored side by side. So while held, a process
given more than its share (``DFIP_WORKER_RELEASE_SHARE``: the partitions over the
processes, rounded up) waits for the rebalance its siblings' joining brings before it
restores (:attr:`ReleaseGate.share`; streams/app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping

__all__ = ["RELEASE_FD_VARIABLE", "RELEASE_SHARE_VARIABLE", "ReleaseGate"]

RELEASE_FD_VARIABLE = "DFIP_WORKER_RELEASE_FD"
RELEASE_SHARE_VARIABLE = "DFIP_WORKER_RELEASE_SHARE"


class ReleaseGate:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get(RELEASE_FD_VARIABLE, "")
        self._fd: int | None = int(raw) if raw.isdigit() else None
        self.released = self._fd is None
        self._watching = False
        raw_share = env.get(RELEASE_SHARE_VARIABLE, "")
        self._share = int(raw_share) if raw_share.isdigit() and int(raw_share) > 0 else None

    @property
    def share(self) -> int | None:
        """While held: how many partitions this process expects once its siblings joined;
        None when released or not one of several."""
        return None if self.released else self._share

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
