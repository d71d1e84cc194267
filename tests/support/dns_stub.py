"""A tiny authoritative DNS server: Docker's embedded DNS for the compose-topology test.

Compose answers a service name with one A record per replica; Prometheus' `dns_sd_configs`
relies on that. This stub does the same for the names it is given (any query whose first
label is a service name, so search-domain suffixes match too) and NXDOMAIN otherwise.

    python -m tests.support.dns_stub 127.0.0.1 worker=10.0.0.11,10.0.0.12 kafka=10.0.0.2
"""

from __future__ import annotations

import socket
import struct
import sys

A, IN = 1, 1


def _question(packet: bytes) -> tuple[list[str], int, int]:
    """Labels of the first question, and the offset just after its type and class."""
    labels, i = [], 12
    while packet[i]:
        n = packet[i]
        labels.append(packet[i + 1 : i + 1 + n].decode("ascii", "replace").lower())
        i += 1 + n
    return labels, i + 5, struct.unpack("!H", packet[i + 1 : i + 3])[0]


def answer(packet: bytes, records: dict[str, list[str]]) -> bytes:
    """The response to one query packet."""
    (ident,) = struct.unpack("!H", packet[:2])
    labels, end, qtype = _question(packet)
    addresses = records.get(labels[0], []) if labels else []
    known = bool(labels) and labels[0] in records
    rcode = 0 if known else 3  # NXDOMAIN for names that are not services
    rows = addresses if qtype == A else []
    header = struct.pack("!HHHHHH", ident, 0x8580 | rcode, 1, len(rows), 0, 0)
    body = b"".join(
        struct.pack("!HHHIH", 0xC00C, A, IN, 5, 4) + socket.inet_aton(ip) for ip in rows
    )
    return header + packet[12:end] + body


def serve(host: str, records: dict[str, list[str]]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 53))
    while True:
        packet, peer = sock.recvfrom(512)
        try:
            sock.sendto(answer(packet, records), peer)
        except (IndexError, struct.error, UnicodeError):
            continue  # not a query this stub understands


def main(argv: list[str]) -> None:
    host, *pairs = argv
    records = {}
    for pair in pairs:
        name, _, ips = pair.partition("=")
        records[name.lower()] = [ip for ip in ips.split(",") if ip]
    serve(host, records)


if __name__ == "__main__":
    main(sys.argv[1:])
