"""A local Kafka broker with SASL_SSL (SCRAM-SHA-512) and mutual-TLS listeners.

`prepare(home, ports, users)` generates a CA with broker and client certificates
(`pki.py`), writes the extra server.properties (`broker.py`) and formats the storage with the
SCRAM users; then start the broker with `deploy/kafka/kafka.sh up` and the environment that
`Prepared.broker_env()` returns. `python -m deploy.kafka.security --help` does the same from a
shell. tests/integration/test_security.py runs the platform against such a broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploy.kafka.security.broker import Ports, format_storage, listener_config
from deploy.kafka.security.pki import Bundle, write_bundle

__all__ = ["Ports", "Prepared", "prepare"]


@dataclass(frozen=True)
class Prepared:
    home: Path
    ports: Ports
    pki: Bundle
    extra_config: Path

    def broker_env(self) -> dict[str, str]:
        """kafka.sh variables for this broker (no DFIP_KAFKA_FRESH: it would wipe the users)."""
        return {
            "DFIP_KAFKA_HOME": str(self.home),
            "DFIP_KAFKA_PORT": str(self.ports.plaintext),
            "DFIP_KAFKA_CONTROLLER_PORT": str(self.ports.controller),
            "DFIP_KAFKA_EXTRA_CONFIG": str(self.extra_config),
        }

    def client_env(self, *, user: str, password_file: Path) -> dict[str, str]:
        """DFIP_KAFKA_* for an adapter, simulator or worker on the SASL_SSL listener."""
        return {
            "DFIP_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.ports.sasl_ssl}",
            "DFIP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "DFIP_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "DFIP_KAFKA_SASL_USERNAME": user,
            "DFIP_KAFKA_SASL_PASSWORD_FILE": str(password_file),
            "DFIP_KAFKA_SSL_CAFILE": str(self.pki.ca_cert),
        }

    def mtls_env(self) -> dict[str, str]:
        """DFIP_KAFKA_* for a client on the mutual-TLS listener."""
        return {
            "DFIP_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.ports.ssl}",
            "DFIP_KAFKA_SECURITY_PROTOCOL": "SSL",
            "DFIP_KAFKA_SSL_CAFILE": str(self.pki.ca_cert),
            "DFIP_KAFKA_SSL_CERTFILE": str(self.pki.client_cert),
            "DFIP_KAFKA_SSL_KEYFILE": str(self.pki.client_key),
        }


def prepare(home: Path, ports: Ports, users: dict[str, str]) -> Prepared:
    """Certificates in `<home>/tls`, `<home>/security.properties`, formatted `<home>/data`."""
    home.mkdir(parents=True, exist_ok=True)
    pki = write_bundle(home / "tls")
    extra = home / "security.properties"
    extra.write_text(
        listener_config(ports, keystore=pki.broker_keystore, truststore=pki.ca_cert),
        encoding="utf-8",
    )
    format_storage(home, ports, extra, users)
    return Prepared(home, ports, pki, extra)
