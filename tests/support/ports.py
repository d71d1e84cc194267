"""Free loopback ports for the servers tests start (brokers, workers, Prometheus).

They are drawn below the kernel's ephemeral range: a port from that range can be the local
end of any client's outgoing connection at the instant a server binds it, which once made a
test cluster's broker fail with "Address already in use" on a port that nothing listened on.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["free_port", "free_port_run", "free_ports"]

#: Where random ports are drawn from; the fixed test ports (the shared broker's 19092, the
#: cluster's 27092…27097) lie below it.
_LOW = 28000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free on 127.0.0.1 now (held open together while chosen)."""
    high = _ephemeral_start()
    if high - _LOW < 100 * n:  # an unusual range: fall back to ports the kernel hands out
        return _kernel_ports(n)
    socks: list[socket.socket] = []
    try:
        for port in random.sample(range(_LOW, high), min(high - _LOW, 50 * n)):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
            if len(socks) == n:
                return [int(s.getsockname()[1]) for s in socks]
        return _kernel_ports(n)
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def _kernel_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port_run(n: int) -> int:
    """The first of `n` consecutive ports free on 127.0.0.1 now (neighbouring ports, as
    operators number workers' or a fake cluster's listeners)."""
    high = _ephemeral_start()
    for base in random.sample(range(_LOW, max(_LOW + 1, high - n)), 200):
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports")
