"""Server properties for SASL_SSL (SCRAM-SHA-512) and mutual-TLS listeners, and a storage
format that creates the SCRAM users.

`deploy/kafka/kafka.sh` appends `DFIP_KAFKA_EXTRA_CONFIG` to its server.properties (later
keys win), and formats storage only when `<home>/data/meta.properties` is missing. So a
secured local broker is:

1. `listener_config(...)` → the extra properties (listeners, key/trust stores, SASL),
2. `format_storage(...)` → `kafka.tools.StorageTool format --add-scram …` into the data folder,
3. `kafka.sh up` with DFIP_KAFKA_HOME / DFIP_KAFKA_PORT / DFIP_KAFKA_CONTROLLER_PORT /
   DFIP_KAFKA_EXTRA_CONFIG (and without DFIP_KAFKA_FRESH, which would wipe the users).

The PLAINTEXT listener (inter-broker) and the controller listener stay on loopback.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KAFKA_SCRIPT",
    "Ports",
    "format_storage",
    "kafka_cache",
    "listener_config",
    "scram_argument",
]

KAFKA_DIR = Path(__file__).resolve().parents[1]
KAFKA_SCRIPT = KAFKA_DIR / "kafka.sh"
_SAFE_SCRAM_TEXT = re.compile(r"[A-Za-z0-9_.\-~!@#$%^&*+:;/?]+")


@dataclass(frozen=True)
class Ports:
    """Loopback ports of one broker."""

    plaintext: int  # DFIP_KAFKA_PORT: inter-broker, loopback only
    controller: int  # DFIP_KAFKA_CONTROLLER_PORT
    sasl_ssl: int
    ssl: int


def listener_config(
    ports: Ports,
    *,
    keystore: Path,
    truststore: Path,
    host: str = "127.0.0.1",
    mechanism: str = "SCRAM-SHA-512",
) -> str:
    """Extra server.properties: SASL_SSL (SCRAM) and SSL (client certificate required)."""
    return "\n".join(
        [
            "# --- DFIP security listeners (deploy/kafka/security) ---",
            f"listeners=PLAINTEXT://{host}:{ports.plaintext},CONTROLLER://{host}:{ports.controller},"
            f"SASL_SSL://{host}:{ports.sasl_ssl},SSL://{host}:{ports.ssl}",
            f"advertised.listeners=PLAINTEXT://{host}:{ports.plaintext},"
            f"SASL_SSL://{host}:{ports.sasl_ssl},SSL://{host}:{ports.ssl}",
            "inter.broker.listener.name=PLAINTEXT",
            # key and trust store (PEM files, no keytool needed), shared by both TLS listeners
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={truststore}",
            "ssl.enabled.protocols=TLSv1.3,TLSv1.2",
            "ssl.endpoint.identification.algorithm=https",
            # SASL_SSL: server-authenticated TLS, clients log in with SCRAM
            f"sasl.enabled.mechanisms={mechanism}",
            "listener.name.sasl_ssl.ssl.client.auth=none",
            f"listener.name.sasl_ssl.sasl.enabled.mechanisms={mechanism}",
            f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            # SSL: mutual TLS, a client without a certificate signed by the CA is refused
            "listener.name.ssl.ssl.client.auth=required",
            "",
        ]
    )


def kafka_cache() -> Path:
    """The jar cache kafka.sh uses (same rules: DFIP_KAFKA_CACHE, XDG_CACHE_HOME, pom version)."""
    pom = (KAFKA_DIR / "pom.xml").read_text(encoding="utf-8")
    match = re.search(r"<kafka.version>(.+?)</kafka.version>", pom)
    if match is None:
        raise RuntimeError(f"no <kafka.version> in {KAFKA_DIR / 'pom.xml'}")
    if os.environ.get("DFIP_KAFKA_CACHE"):
        return Path(os.environ["DFIP_KAFKA_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dfip" / f"kafka-{match.group(1)}"


def scram_argument(mechanism: str, user: str, password: str) -> str:
    """`--add-scram` value. The format has no quoting, so only plain characters are allowed."""
    for what, text in (("user name", user), ("password", password)):
        if not _SAFE_SCRAM_TEXT.fullmatch(text):
            raise ValueError(f"SCRAM {what} must match {_SAFE_SCRAM_TEXT.pattern}")
    return f"{mechanism}=[name={user},password={password}]"


def _cluster_id() -> str:
    # Kafka's Uuid.randomUuid: 16 random bytes, URL-safe base64 without padding, not "-…"
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def format_storage(
    home: Path,
    ports: Ports,
    extra_config: Path,
    users: dict[str, str],
    *,
    mechanism: str = "SCRAM-SHA-512",
) -> None:
    """Format `<home>/data` with SCRAM credentials for `users` (name → password).

    Must run before the first `kafka.sh up` of that home. The passwords appear on the
    StorageTool command line for the duration of the format (Kafka offers no file option);
    on a shared host create users through the Admin API instead (docs/operations.md).
    """
    subprocess.run(["bash", str(KAFKA_SCRIPT), "fetch"], check=True)
    data = home / "data"
    if (data / "meta.properties").exists():
        raise RuntimeError(f"{data} is already formatted; SCRAM users are added at format time")
    data.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    props = home / "format.properties"
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers=127.0.0.1:{ports.controller}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
                "SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL",
                f"log.dirs={data}",
                extra_config.read_text(encoding="utf-8"),
            ]
        ),
        encoding="utf-8",
    )
    command = [
        "java",
        "-cp",
        f"{kafka_cache()}/*",
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "--cluster-id",
        _cluster_id(),
        "--config",
        str(props),
    ]
    for user, password in users.items():
        command += ["--add-scram", scram_argument(mechanism, user, password)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    (home / "logs" / "format.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        raise RuntimeError(f"StorageTool format failed (see {home / 'logs' / 'format.log'})")
