"""Network namespaces on a private bridge: a container network without Docker (needs root).

Every host gets its own namespace (own loopback, own eth0 on the bridge), its own /etc/hosts
and /etc/resolv.conf (`ip netns exec` bind-mounts /etc/netns/<ns>/*), so a process listening
on 127.0.0.1 is unreachable from the others, as in a container. Everything created here is
removed by `close()`; names carry a random tag so parallel runs never collide.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

NETNS_ETC = Path("/etc/netns")


def available() -> str | None:
    """Why namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _free_subnet() -> ipaddress.IPv4Network:
    used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    for _ in range(100):
        net = ipaddress.IPv4Network(
            f"10.{secrets.randbelow(50) + 200}.{secrets.randbelow(254) + 1}.0/24"
        )
        if f" {'.'.join(str(net.network_address).split('.')[:3])}." not in used:
            return net
    raise RuntimeError("no free 10.x.y.0/24 subnet")


@dataclass
class Host:
    name: str  # host name inside the network (service replica)
    ns: str
    ip: str


@dataclass
class Network:
    tag: str = field(default_factory=lambda: "d" + secrets.token_hex(2))
    subnet: ipaddress.IPv4Network = field(default_factory=_free_subnet)
    hosts: dict[str, Host] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bridge = f"{self.tag}-br"
        addresses = self.subnet.hosts()
        self.gateway = str(next(addresses))
        self._addresses = addresses
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add(self, name: str) -> Host:
        """A host: a namespace with eth0 on the bridge and loopback up."""
        index = len(self.hosts)
        ns, veth = f"{self.tag}-{index}-{name}"[:40], f"{self.tag}-v{index}"
        ip = str(next(self._addresses))
        _ip("netns", "add", ns)
        host = Host(name, ns, ip)
        self.hosts[name] = host  # registered first: close() removes even a half-built host
        _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        _ip("link", "set", f"{veth}p", "netns", ns)
        _ip("link", "set", veth, "master", self.bridge, "up")
        _ip("-n", ns, "link", "set", f"{veth}p", "name", "eth0")
        _ip("-n", ns, "addr", "add", f"{ip}/{self.subnet.prefixlen}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        return host

    def write_etc(self, host: Host, services: Mapping[str, Sequence[str]]) -> None:
        """/etc/hosts naming every service (as Docker's DNS would) and /etc/resolv.conf
        pointing at a DNS stub on the host's own loopback (see tests/support/dns_stub.py)."""
        etc = NETNS_ETC / host.ns
        etc.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", f"{host.ip} {host.name}"]
        lines += [f"{ip} {name}" for name, ips in services.items() for ip in ips[:1]]
        (etc / "hosts").write_text("\n".join(lines) + "\n")
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions ndots:0\n")

    @staticmethod
    def exec_prefix(host: Host, hostname: str | None = None) -> list[str]:
        """The command prefix that runs a program inside the host (with its own host name:
        Java resolves it at start-up, and it names a worker's transactional producer)."""
        prefix = ["ip", "netns", "exec", host.ns]
        if hostname is not None:
            prefix += ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname]
        return prefix

    def spawn(
        self,
        host: Host,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log: IO[bytes],
        hostname: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Run `argv` in the host's namespace (and its own UTS namespace with `hostname`,
        as a container has); `ip netns exec` and `unshare` exec, so the pid is argv's."""
        proc = subprocess.Popen(
            [*self.exec_prefix(host, hostname), *argv],
            env=dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        """Terminate every process started by `spawn` (and wait for it)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def close(self) -> None:
        """Stop the processes, remove the namespaces, their /etc files and the bridge."""
        self.stop()
        for host in self.hosts.values():
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", host.ns)  # takes its veth pair with it
            shutil.rmtree(NETNS_ETC / host.ns, ignore_errors=True)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.bridge)
        with contextlib.suppress(OSError):
            NETNS_ETC.rmdir()  # only if empty: other users' namespaces keep theirs
