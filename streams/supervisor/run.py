"""The supervisor's life: start the processes, release them once all are in the group, serve
the worker's port, stop them all on SIGTERM/SIGINT, and stop them all when one exits (as a
one-process worker would exit: the service manager restarts the worker)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence

from streams.supervisor.children import Child, connect_host, free_ports, start_child
from streams.supervisor.front import Front
from streams.supervisor.http import serve
from streams.supervisor.plan import Plan

__all__ = ["run_supervisor"]

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2
# release anyway this long after the first process was ready: a sibling that cannot join
# (the broker unreachable for it, a crash loop) must not hold the others forever
_HOLD_AT_MOST_SECONDS = 30.0
_STOP_SECONDS = 90.0


def run_supervisor(plan: Plan) -> int:
    """Run the worker as ``plan.processes`` processes; the exit status (0 after
    SIGTERM/SIGINT)."""
    count = plan.processes
    children: list[Child] = []
    try:
        # before the event loop and its threads exist (the children are forked)
        ports = free_ports(plan.web_host, count)
        for index in range(count):
            children.append(start_child(plan, index, ports[index], os.environ))
    except BaseException:
        for child in children:
            child.proc.kill()
        raise
    log.info(
        "worker %s: %d processes on ports %s; /metrics merged on %d",
        plan.worker_id,
        count,
        ", ".join(str(c.port) for c in children),
        plan.web_port,
    )
    return asyncio.run(_supervise(plan, children))


async def _release_when_ready(front: Front, children: Sequence[Child]) -> None:
    try:
        await _wait_all_ready(front, children)
    finally:  # also if the wait failed: a process must never stay held
        for child in children:
            child.release()


async def _wait_all_ready(front: Front, children: Sequence[Child]) -> None:
    first_ready: float | None = None
    while True:
        answers = await front.gather("/ready")
        ready = [status == 200 for status, _ in answers]
        if all(ready):
            log.info("every worker process is in the group: records flow")
            break
        if any(ready):
            first_ready = first_ready or time.monotonic()
            if time.monotonic() - first_ready > _HOLD_AT_MOST_SECONDS:
                log.warning(
                    "worker processes %s not ready after %.0f s: the others go on",
                    [c.index for c, r in zip(children, ready, strict=True) if not r],
                    _HOLD_AT_MOST_SECONDS,
                )
                break
        await asyncio.sleep(_POLL_SECONDS)


def _status(code: int | None) -> int:
    return 1 if code is None or code < 0 else code


async def _supervise(plan: Plan, children: Sequence[Child]) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    front = Front(
        plan.worker_id,
        children,
        alive=lambda: all(c.proc.poll() is None for c in children),
        host=connect_host(plan.web_host),
    )
    server: asyncio.Server | None = None
    status = 0
    releasing: asyncio.Task[None] | None = None
    try:
        server = await serve(plan.web_host, plan.web_port, front.handle)
        releasing = asyncio.create_task(_release_when_ready(front, children))
        while not stopping.is_set():
            gone = [c for c in children if c.proc.poll() is not None]
            if gone:
                status = _status(gone[0].proc.returncode) or 1
                log.error(
                    "worker process %d exited (%s): stopping the others",
                    gone[0].index,
                    gone[0].proc.returncode,
                )
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 0.5)
    finally:
        if releasing is not None:
            releasing.cancel()
        for child in children:
            child.release()  # a held process stops without waiting for its siblings
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_SECONDS
        for child in children:
            left = max(0.1, deadline - time.monotonic())
            try:
                code = await asyncio.wait_for(loop.run_in_executor(None, child.proc.wait), left)
            except TimeoutError:
                log.error("worker process %d did not stop: killed", child.index)
                child.proc.kill()
                code = await loop.run_in_executor(None, child.proc.wait)
            if status == 0 and code != 0:
                status = _status(code)
        if server is not None:
            server.close()
    return status
