"""Client-library logging: capped in the worker, kept off the CLI's stderr; one-line errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from kafka.errors import SaslAuthenticationFailedError
from mode.utils.logging import setup_logging

from core.errors import DfipError
from core.kafka_admin import _auth_error, client_log
from core.kafka_config import KafkaSettings
from dfip import cli, worker_process

_OWN = ("dfip", "streams.engine", "adapters.producer")
_CLIENTS = ("aiokafka.producer.sender", "kafka.net.connection", "faust.agents.agent", "mode")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """setup_logging reconfigures the root logger: put everything back afterwards."""
    root = logging.getLogger()
    saved_root = root.level, list(root.handlers)
    names = {n.split(".")[0] for n in (*_OWN, *_CLIENTS)} | set(worker_process.CLIENT_LOGGERS)
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in names}
    yield
    root.setLevel(saved_root[0])
    root.handlers[:] = saved_root[1]
    for name, (level, handlers) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).handlers[:] = handlers


@pytest.mark.parametrize("level", ["debug", "info", "warn", "error"])
def test_worker_logging_caps_client_libraries_at_info(restore_logging: None, level: str) -> None:
    number = logging.getLevelName(level.upper())
    # as mode's Worker applies it: root at the worker's level, the config merged in
    setup_logging(
        loglevel=level.upper(), logging_config=worker_process.worker_logging_config(level)
    )
    for name in _OWN:
        assert logging.getLogger(name).getEffectiveLevel() == number, name
    for name in _CLIENTS:
        assert logging.getLogger(name).getEffectiveLevel() == max(number, logging.INFO), name
    assert not logging.getLogger("aiokafka.producer").isEnabledFor(logging.DEBUG)


def test_a_refused_login_is_noticed_and_kept_off_stderr(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kafka_log = logging.getLogger("kafka.net.manager")
    caplog.set_level(logging.DEBUG)
    with client_log() as seen:
        kafka_log.warning("Bootstrap %s not ready; waiting %.2f secs", "bootstrap-0", 0.05)
        assert seen.auth_failure is None
        error = SaslAuthenticationFailedError("invalid credentials with SCRAM-SHA-512")
        kafka_log.warning("Bootstrap connection to %s failed: %s", "bootstrap-0", error)
    assert seen.auth_failure is not None
    assert "invalid credentials" in seen.auth_failure
    assert not [r for r in caplog.records if r.name.startswith("kafka")]
    assert logging.getLogger("kafka").propagate  # restored
    kafka_log.warning("after")
    assert [r.getMessage() for r in caplog.records] == ["after"]


def test_the_auth_error_names_user_mechanism_and_broker_never_the_password() -> None:
    settings = KafkaSettings(
        _env_file=None,  # type: ignore[call-arg]
        bootstrap_servers="127.0.0.1:9094",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="dfip",
        sasl_password="s3cret-value",
    )
    text = str(_auth_error(settings))
    assert "authentication failed for user dfip via SCRAM-SHA-512 at 127.0.0.1:9094" in text
    assert "DFIP_KAFKA_SASL_USERNAME" in text
    assert "s3cret-value" not in text


def test_cli_error_is_one_unwrapped_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    what = "Kafka authentication failed for user dfip via SCRAM-SHA-512 at " + ",".join(
        f"broker-{i}.example.internal:9094" for i in range(6)
    )

    def fail() -> None:
        raise DfipError(what + " [brackets stay]", hint="check DFIP_KAFKA_SASL_USERNAME")

    monkeypatch.setattr(cli, "_register_optional", lambda: None)
    monkeypatch.setattr(cli, "app", fail)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert len(lines[0]) > 200
    assert lines[0].startswith("dfip: " + what)
    assert "[brackets stay]" in lines[0]
