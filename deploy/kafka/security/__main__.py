"""`python -m deploy.kafka.security HOME` — prepare a SASL_SSL + mTLS local broker.

Prints the environment for `deploy/kafka/kafka.sh up` and for DFIP clients.
"""

from __future__ import annotations

import argparse
import secrets
import shlex
from pathlib import Path

from deploy.kafka.security import Ports, prepare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.kafka.security", description=__doc__)
    parser.add_argument("home", type=Path, help="broker folder (DFIP_KAFKA_HOME), must be new")
    parser.add_argument("--port", type=int, default=9092, help="PLAINTEXT (inter-broker)")
    parser.add_argument("--controller-port", type=int, default=9093)
    parser.add_argument("--sasl-ssl-port", type=int, default=9094)
    parser.add_argument("--ssl-port", type=int, default=9095)
    parser.add_argument("--user", default="dfip", help="SCRAM-SHA-512 user to create")
    args = parser.parse_args(argv)
    home: Path = args.home.resolve()
    password = secrets.token_urlsafe(24)
    password_file = home / "tls" / f"{args.user}.password"
    ports = Ports(args.port, args.controller_port, args.sasl_ssl_port, args.ssl_port)
    prepared = prepare(home, ports, {args.user: password})
    password_file.touch(mode=0o600)
    password_file.write_text(password + "\n", encoding="utf-8")
    print("# start the broker:")
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in prepared.broker_env().items())
    print(f"{env} deploy/kafka/kafka.sh up")
    print("# SASL_SSL clients (workers, adapters, simulator):")
    for k, v in prepared.client_env(user=args.user, password_file=password_file).items():
        print(f"export {k}={shlex.quote(v)}")
    print("# mutual-TLS clients use instead:")
    for k, v in prepared.mtls_env().items():
        print(f"#   {k}={shlex.quote(v)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
