"""Kafka connection settings shared by adapters, the simulator and the stream workers.

Read from environment variables (prefix ``DFIP_KAFKA_``) or a ``.env`` file; secrets may be
given as files (``DFIP_KAFKA_SASL_PASSWORD_FILE``) so they never appear on a command line.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import DfipError
from core.files import read_regular_file

__all__ = ["KafkaSettings"]

_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]*")
#: Kafka's 249 characters less the longest catalog name (dfip.alerts.ack.changelog-like
#: names of the workers' tables included) with room to spare.
MAX_TOPIC_PREFIX = 150

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseSettings):
    """How to reach the Kafka cluster, and the topic namespace to use."""

    model_config = SettingsConfigDict(env_prefix="DFIP_KAFKA_", env_file=".env", extra="ignore")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Comma-separated host:port list (no user:password@; SASL has its own).",
    )
    topic_prefix: str = Field(
        default="",
        description="Prepended to every catalog topic name (isolates tests and tenants); "
        "ASCII letters, digits, '.', '_' and '-', at most 150 characters.",
    )
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default with SASL)."
    )
    sasl_username: str | None = Field(default=None, description="SASL user.")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (prefer the _FILE variant)."
    )
    sasl_password_file: Path | None = Field(
        default=None, description="File holding the SASL password (wins over sasl_password)."
    )
    ssl_cafile: Path | None = Field(default=None, description="CA bundle for the brokers.")
    ssl_certfile: Path | None = Field(default=None, description="Client certificate (mTLS).")
    ssl_keyfile: Path | None = Field(default=None, description="Client key (mTLS).")
    ssl_check_hostname: bool = Field(
        default=True, description="Verify the broker certificate's host name."
    )
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        description="Copies of every topic `dfip topics create` makes; unset: 3 on a cluster "
        "of three brokers or more, else the number of brokers.",
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description="min.insync.replicas of every topic created; unset: 2 where the "
        "replication factor is 3 or more, else 1.",
    )
    connect_timeout_ms: int = Field(
        default=3_000,
        ge=100,
        description="How long producers wait for an unreachable cluster at start before "
        "giving up with one line.",
    )
    request_timeout_ms: int = Field(
        default=30_000, ge=100, description="Producers' per-request timeout (then a retry)."
    )
    delivery_timeout_ms: int = Field(
        default=120_000,
        ge=500,
        description="How long adapters and the simulator keep retrying a record before it "
        "counts as undelivered; also bounds every flush, close and transaction step, so a "
        "longer broker outage ends an ingest instead of hanging it.",
    )

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        """Kafka names are ASCII letters, digits, '.', '_' and '-', at most 249 characters: a
        prefix outside that failed `topics create` with the broker's raw response."""
        if not _TOPIC_CHARS.fullmatch(value) or len(value) > MAX_TOPIC_PREFIX:
            raise ValueError(
                "a topic prefix is ASCII letters, digits, '.', '_' and '-' only, "
                f"at most {MAX_TOPIC_PREFIX} characters (e.g. test-1.)"
            )
        return value

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        """host:port[,host:port…]: a typo is a configuration error naming the variable, not
        a client-library ValueError traceback or a 5 s wait for an "unreachable" broker."""
        servers = [s.strip() for s in value.split(",")]
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
                shown = server or "(empty)"
                raise ValueError(f"{shown} is not host:port (e.g. 127.0.0.1:9092, port 1-65535)")
            if any(c in host for c in "@/ \t"):
                # user:password@host (URL style) would be echoed by every "unreachable" message
                raise ValueError(
                    "not host:port: credentials or a URL path in the list (SASL logs in with "
                    "DFIP_KAFKA_SASL_USERNAME and DFIP_KAFKA_SASL_PASSWORD_FILE)"
                )
        return ",".join(servers)

    @model_validator(mode="after")
    def _load_secret_file(self) -> KafkaSettings:
        if self.sasl_password_file is not None:
            # DfipError is not a ValueError, so pydantic lets it through: one line from every
            # command, not a validation traceback
            try:
                secret = read_regular_file(self.sasl_password_file).decode("utf-8").strip()
            except (OSError, UnicodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise DfipError(
                    f"DFIP_KAFKA_SASL_PASSWORD_FILE: cannot read {self.sasl_password_file}: "
                    f"{reason}",
                    hint="point it at the file holding the SASL password",
                    exit_code=2,
                ) from None
            self.sasl_password = SecretStr(secret)
        if self.uses_sasl and not self.sasl_username:
            raise DfipError(
                f"DFIP_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                "DFIP_KAFKA_SASL_USERNAME (and a password)",
                hint="set DFIP_KAFKA_SASL_USERNAME and DFIP_KAFKA_SASL_PASSWORD_FILE",
                exit_code=2,
            )
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise DfipError(
                "DFIP_KAFKA_SSL_KEYFILE is set without DFIP_KAFKA_SSL_CERTFILE",
                hint="a client key needs its certificate (mutual TLS), or unset both",
                exit_code=2,
            )
        for name, path in (
            ("CAFILE", self.ssl_cafile),
            ("CERTFILE", self.ssl_certfile),
            ("KEYFILE", self.ssl_keyfile),
        ):
            # OpenSSL opens a FIFO and waits for a writer for ever; /dev/zero it reads for
            # ever. A missing or unreadable file is left to the TLS set-up, which names it.
            if path is not None and path.exists() and not (path.is_file() or path.is_dir()):
                raise DfipError(
                    f"DFIP_KAFKA_SSL_{name}={path}: not a regular file (a device or a pipe)",
                    hint="point it at the PEM file",
                    exit_code=2,
                )
        return self

    @property
    def uses_ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """An SSL context for aiokafka/Faust, or None for plaintext."""
        if not self.uses_ssl:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        ctx.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile:
            ctx.load_cert_chain(
                str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None
            )
        return ctx

    def _password(self) -> str | None:
        return self.sasl_password.get_secret_value() if self.sasl_password else None

    def kafka_python_config(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (producer, consumer, admin)."""
        return self._client_config(self.bootstrap_servers.split(","))

    def aiokafka_config(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients."""
        return self._client_config(self.bootstrap_servers)

    def _client_config(self, bootstrap_servers: str | list[str]) -> dict[str, Any]:
        # The two client libraries take the same security keywords; only the bootstrap
        # list differs (kafka-python wants a list, aiokafka a comma-separated string).
        cfg: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.uses_sasl:
            cfg.update(
                sasl_mechanism=self.sasl_mechanism or "SCRAM-SHA-512",
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self._password(),
            )
        if self.uses_ssl:
            cfg["ssl_context"] = self.ssl_context()
        return cfg

    def topic(self, name: str) -> str:
        """The concrete topic name for a catalog name."""
        return f"{self.topic_prefix}{name}"
