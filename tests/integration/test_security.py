"""The platform against a real broker that requires authentication.

A broker of this module's own (deploy/kafka/kafka.sh on free loopback ports) is prepared with
deploy/kafka/security: a CA, broker and client certificates generated with `cryptography`, a
SASL_SSL listener with SCRAM-SHA-512 and an SSL listener that requires a client certificate
(mutual TLS), and the SCRAM user created at storage-format time. Its PLAINTEXT listener
(inter-broker) is never given to a client here. The tests prove:

1. topic creation (`core.kafka_admin.create_topics`) over SASL_SSL;
2. the adapters' EventProducer, through the simulator, over SASL_SSL;
3. a real `dfip worker` over SASL_SSL, configured only by DFIP_KAFKA_* variables (the
   password from a file), with every figure equal to the simulator's oracle;
4. mutual TLS: a producer and consumer round trip with DFIP_KAFKA_SSL_CERTFILE/KEYFILE, and
   a client without a certificate refused;
5. a wrong password: `dfip topics create` fails with a non-zero exit code and no traceback,
   and says so in one clear line.

Everything is on 127.0.0.1, on ports of this module's own (never those of the other suites'
brokers), and every wait is bounded.
"""

from __future__ import annotations

import os
import secrets
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.producer import EventProducer
from core.errors import DfipError
from core.kafka_admin import admin_client, create_topics
from core.kafka_config import KafkaSettings
from deploy.kafka.security import Ports, Prepared, prepare
from schemas.catalog import ALL_TOPICS
from tests.integration.test_faults import PrivateBroker
from tests.integration.test_stream_exact import assert_exact, assert_flow_identity, simulate
from tests.support.ports import free_ports
from tests.support.workers import (
    WorkerProcess,
    oracle_figures,
    read_topic,
    wait_converged,
    wait_for,
    wait_ready,
)

REPO = Path(__file__).resolve().parents[2]
USER = "dfip"
# client and controller ports of the brokers other suites and developers run on this host
_OTHER_BROKERS = {base + d for base in (9092, 19092, 39092, 41092, 42092, 49092) for d in range(4)}


def _own_ports(n: int) -> list[int]:
    """`n` free loopback ports, none of them another broker's."""
    for _ in range(50):
        ports = free_ports(n)
        if not _OTHER_BROKERS.intersection(ports):
            return ports
    raise AssertionError("no free loopback ports outside the other brokers' ports")


@dataclass
class SecureBroker:
    prepared: Prepared
    password: str
    password_file: Path

    def sasl_env(self, prefix: str) -> dict[str, str]:
        return {
            **self.prepared.client_env(user=USER, password_file=self.password_file),
            "DFIP_KAFKA_TOPIC_PREFIX": prefix,
        }

    def settings(self, env: dict[str, str]) -> KafkaSettings:
        """KafkaSettings read from DFIP_KAFKA_* variables, as every DFIP process reads them."""
        saved = dict(os.environ)
        try:
            os.environ.update(env)
            return KafkaSettings(_env_file=None)  # type: ignore[call-arg]
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _secret_file(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return path


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    home = tmp_path_factory.mktemp("secure-kafka")
    ports = Ports(*_own_ports(4))
    password = secrets.token_urlsafe(24)
    prepared = prepare(home, ports, {USER: password})
    broker = PrivateBroker(
        home,
        port=ports.plaintext,
        controller_port=ports.controller,
        extra_env={"DFIP_KAFKA_EXTRA_CONFIG": str(prepared.extra_config)},
    )
    broker.up()
    try:
        yield SecureBroker(prepared, password, _secret_file(home / "dfip.password", password))
    finally:
        broker.down()


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def wrong_password_result(
    secure: SecureBroker, tmp_path_factory: pytest.TempPathFactory
) -> CliResult:
    """`dfip topics create` with a wrong password, as a user runs it."""
    cwd = tmp_path_factory.mktemp("wrong-password")  # no .env file of the checkout in the way
    wrong_file = _secret_file(cwd / "wrong.password", "not-" + secure.password)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DFIP_KAFKA_")},
        **secure.prepared.client_env(user=USER, password_file=wrong_file),
        "DFIP_KAFKA_TOPIC_PREFIX": "wrong-",
        "COLUMNS": "80",  # as narrow as a terminal gets by default: the line must not wrap
    }
    done = subprocess.run(
        [sys.executable, "-m", "dfip.cli", "topics", "create"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,  # a refused login is detected in one bootstrap attempt (2 s)
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib must talk to the worker on loopback directly
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def test_topics_simulator_and_worker_over_sasl_ssl_scram(
    secure: SecureBroker, tmp_path: Path
) -> None:
    env = secure.sasl_env("sasl-")
    settings = secure.settings(env)
    assert settings.security_protocol == "SASL_SSL"
    assert settings.sasl_mechanism == "SCRAM-SHA-512"
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == secure.password  # read from the file

    # (1) topic creation
    results = create_topics(settings)
    assert {r.name for r in results} == {settings.topic(t.name) for t in ALL_TOPICS}
    assert all(r.created for r in results)

    # (3) a worker configured by the environment only (the password never in a variable)
    assert not any(secure.password in v for v in env.values())
    worker = WorkerProcess(settings, "sasl-worker", tmp_path, **env).start()
    try:
        wait_ready(worker)
        # (2) the simulator through the adapters' EventProducer
        result = simulate(settings, 2000)
        assert result.delivered == result.records
        expected = oracle_figures(result.oracle)
        got = wait_converged([worker], expected)
        assert_exact(got, expected)
        assert_flow_identity(got)
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert f"Authenticated as {USER} via SCRAM-SHA-512" in log
    assert secure.password not in log


def test_mutual_tls_round_trip(secure: SecureBroker) -> None:
    env = {**secure.prepared.mtls_env(), "DFIP_KAFKA_TOPIC_PREFIX": "mtls-"}
    settings = secure.settings(env)
    assert settings.security_protocol == "SSL"
    assert settings.ssl_certfile is not None
    create_topics(settings)
    values = [f"mtls-{i}".encode() for i in range(20)]
    with EventProducer(settings, client_id="mtls-test") as producer:
        for i, value in enumerate(values):
            producer.send_raw("dfip.late", value, key=b"k", partition=i % 12)
        report = producer.flush(timeout=30)
    assert report.sent == len(values)
    assert sorted(r.value for r in read_topic(settings, "dfip.late")) == sorted(values)


def _recv_exactly(sock: ssl.SSLSocket, n: int) -> bytes:
    """`n` bytes, or fewer if the peer closes the connection first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _kafka_request_over_tls(port: int, context: ssl.SSLContext) -> bytes:
    """An ApiVersions request over TLS; returns the response bytes (raises if refused, or
    returns b"" if the broker closes the connection instead of answering)."""
    client_id = b"probe"
    body = (
        (18).to_bytes(2, "big")  # api key: ApiVersions
        + (0).to_bytes(2, "big")  # version 0
        + (1).to_bytes(4, "big")  # correlation id
        + len(client_id).to_bytes(2, "big")
        + client_id
    )
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(len(body).to_bytes(4, "big") + body)
        header = _recv_exactly(tls, 4)
        if len(header) < 4:
            return b""
        return _recv_exactly(tls, int.from_bytes(header, "big"))


def test_mutual_tls_refuses_a_client_without_a_certificate(secure: SecureBroker) -> None:
    pki = secure.prepared.pki
    port = secure.prepared.ports.ssl
    with_cert = ssl.create_default_context(cafile=str(pki.ca_cert))
    with_cert.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    assert _kafka_request_over_tls(port, with_cert)[:4] == (1).to_bytes(4, "big")
    without = ssl.create_default_context(cafile=str(pki.ca_cert))
    try:
        response = _kafka_request_over_tls(port, without)
    except OSError:  # ssl.SSLError (alert: certificate required) or a reset connection
        return
    assert not response, "the broker answered a client without a certificate"


def test_scram_credentials_rotate_through_the_admin_api(
    secure: SecureBroker, tmp_path: Path
) -> None:
    """The rotation of docs/operations.md: a second SCRAM user (or a new password) is added
    while the old one keeps working, clients move to it, then the old one is removed — no
    broker restart, no moment without a valid credential."""
    from kafka.admin import UserScramCredentialDeletion, UserScramCredentialUpsertion

    env = secure.sasl_env("rotate-")
    settings = secure.settings(env)
    new_user, new_password = "dfip-next", secrets.token_urlsafe(24)
    admin = admin_client(settings)
    try:
        upsert = UserScramCredentialUpsertion(new_user, "SCRAM-SHA-512", new_password)
        assert admin.alter_user_scram_credentials([upsert]) == {new_user: None}
        rotated = secure.settings(
            {
                **env,
                "DFIP_KAFKA_SASL_USERNAME": new_user,
                "DFIP_KAFKA_SASL_PASSWORD_FILE": str(
                    _secret_file(tmp_path / "next.password", new_password)
                ),
            }
        )
        # the broker learns the credential through the metadata log, a moment after the
        # controller committed it: the new one works as soon as that arrives (bounded wait)
        wait_for(lambda: _logs_in(rotated), timeout=60, what=f"{new_user} to log in")
        assert create_topics(rotated)
        assert create_topics(settings)  # and the old one still works
        delete = UserScramCredentialDeletion(new_user, "SCRAM-SHA-512")
        assert admin.alter_user_scram_credentials([delete]) == {new_user: None}
        wait_for(  # applied through the metadata log: visible a moment later
            lambda: set(admin.describe_user_scram_credentials()) == {USER},
            timeout=30,
            what=f"{new_user} to be removed",
        )
    finally:
        admin.close()


def _logs_in(settings: KafkaSettings) -> bool:
    try:
        admin_client(settings, timeout=10).close()
    except DfipError as exc:
        if "authentication failed" not in str(exc):
            raise
        return False
    return True


def test_wrong_password_fails_without_a_traceback(wrong_password_result: CliResult) -> None:
    result = wrong_password_result
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "created" not in result.stdout


def test_wrong_password_error_is_one_clear_line(
    wrong_password_result: CliResult, secure: SecureBroker
) -> None:
    lines = [line for line in wrong_password_result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines[:5]
    line = lines[0]
    assert line.startswith("dfip:")
    port = secure.prepared.ports.sasl_ssl
    assert f"authentication failed for user {USER} via SCRAM-SHA-512 at 127.0.0.1:{port}" in line
    assert "DFIP_KAFKA_SASL_USERNAME" in line  # what to check
    assert "unreachable" not in line  # not the wrong cause
    assert "dfip kafka up" not in line
    assert secure.password not in line
