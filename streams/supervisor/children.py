"""Starting the worker processes: each an ordinary worker with ``processes = 1`` (``python -m
dfip.worker_process``: the checks ran once, before the supervisor), its
own port, identity and data folder, killed by the kernel when the supervisor dies.

Their ports are free ports picked at start, not ``web_port + 1 …``: two workers on one host
are often given neighbouring ports (6066, 6067), and fixed offsets would collide."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from streams.supervisor.gate import RELEASE_FD_VARIABLE, RELEASE_SHARE_VARIABLE
from streams.supervisor.plan import Plan

__all__ = ["Child", "child_env", "connect_host", "free_ports", "start_child"]

_PR_SET_PDEATHSIG = 1


def free_ports(web_host: str, count: int) -> list[int]:
    """``count`` ports free on ``web_host`` now (held open together while chosen; a process
    binds its port a second later, before anything else is likely to take it)."""
    host = "0.0.0.0" if web_host in ("", "0.0.0.0") else web_host  # noqa: S104 - as bound
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(family, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def connect_host(web_host: str) -> str:
    """Where the supervisor reaches its processes: they bind ``web_host`` as it does."""
    if web_host in ("", "0.0.0.0"):  # noqa: S104 - every interface: loopback is one of them
        return "127.0.0.1"
    if web_host == "::":
        return "[::1]"
    return f"[{web_host}]" if ":" in web_host else web_host


def _child_url(advertised: str, port: int) -> str:
    """The supervisor's advertised URL with the process's own port (queries are forwarded
    to the process owning the partition, which other hosts must reach)."""
    parts = urlsplit(advertised)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path, "", ""))


def child_env(
    env: Mapping[str, str], plan: Plan, index: int, port: int, release_fd: int
) -> dict[str, str]:
    out = {
        **env,
        "DFIP_WORKER_PROCESSES": "1",
        "DFIP_WORKER_WEB_PORT": str(port),
        # names the process's transactional producer: stable across restarts, so a restarted
        # process fences the transaction its predecessor left open
        "DFIP_WORKER_WORKER_ID": f"{plan.worker_id}-p{index}",
        "DFIP_WORKER_DATA_DIR": str(plan.process_dir(index)),
        RELEASE_FD_VARIABLE: str(release_fd),
        RELEASE_SHARE_VARIABLE: str(plan.share),
    }
    if plan.advertised_url:
        out["DFIP_WORKER_ADVERTISED_URL"] = _child_url(plan.advertised_url, port)
    return out


def _die_with_parent(parent: int) -> None:
    """In the child before exec: SIGKILL when the supervisor dies (kill -9 included), so no
    process keeps consuming for a worker that is gone."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the supervisor died before prctl
        os._exit(1)


@dataclass
class Child:
    index: int
    port: int
    proc: subprocess.Popen[bytes]
    release_w: int | None  # write end of the release pipe until released

    def release(self) -> None:
        fd, self.release_w = self.release_w, None
        if fd is not None:
            try:
                os.write(fd, b"1")
            except OSError:  # the process is gone: its exit is noticed elsewhere
                pass
            finally:
                os.close(fd)


def start_child(plan: Plan, index: int, port: int, env: Mapping[str, str]) -> Child:
    read_fd, write_fd = os.pipe()
    os.set_inheritable(read_fd, True)
    parent = os.getpid()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "dfip.worker_process"],  # -P: as dfip/cli.py
            env=child_env(env, plan, index, port, read_fd),
            pass_fds=(read_fd,),
            preexec_fn=lambda: _die_with_parent(parent),  # forked before any thread starts
        )
    except BaseException:
        os.close(write_fd)
        raise
    finally:
        os.close(read_fd)
    return Child(index, port, proc, write_fd)
