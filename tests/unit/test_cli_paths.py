"""Every `dfip` command as a user first meets it: run from an empty directory, with a wrong
setting, an unreachable broker or a missing file. Each must answer with one clear line on
stderr and a non-zero exit (no traceback, no client-library log lines), within seconds.

The commands run as subprocesses of the installed entry point; the "unreachable broker" is a
closed port on loopback, so no Kafka is needed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import DfipError
from core.kafka_config import KafkaSettings
from dfip.config_errors import describe_validation_error
from dfip.preflight import check_store, prepare_data_dir

DFIP = str(Path(sys.executable).parent / "dfip")

#: Every command that talks to Kafka (ingest is covered by its own tests).
KAFKA_COMMANDS = {
    "topics create": ["topics", "create"],
    "topics list": ["topics", "list"],
    "topics tail": ["topics", "tail", "dfip.fx"],
    "deadletters": ["deadletters"],
    "worker": ["worker"],
    "simulate": ["simulate", "--events", "5"],
    "report": ["report", "--month", "2026-11"],
    "alerts tail": ["alerts", "tail"],
    "alerts overdue": ["alerts", "overdue"],
    "alerts ack": ["alerts", "ack", "some-hit", "--uscc", "91330106MA2CDL8K41"],
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any DFIP_* setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DFIP_")}
    env.update(COLUMNS="80", **extra)
    return env


def start(argv: list[str], cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DFIP, *argv],
        cwd=cwd,
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def one_line(proc: subprocess.Popen[str], what: str) -> tuple[int, str]:
    """Wait (generously) and return (exit code, the single stderr line)."""
    _, err = proc.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"{what}: expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("dfip: "), f"{what}: {lines[0]}"
    assert "Traceback" not in err
    return proc.returncode, lines[0]


def test_version() -> None:
    from core.version import __version__

    out = subprocess.run([DFIP, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"dfip {__version__}"


def test_an_unreachable_broker_is_one_line_for_every_command(tmp_path: Path) -> None:
    bootstrap = f"127.0.0.1:{closed_port()}"
    procs = {}
    for name, argv in KAFKA_COMMANDS.items():  # in parallel: each waits a few seconds
        cwd = tmp_path / name.replace(" ", "-")
        cwd.mkdir()
        procs[name] = (cwd, start(argv, cwd, DFIP_KAFKA_BOOTSTRAP_SERVERS=bootstrap))
    for name, (_, proc) in procs.items():
        code, line = one_line(proc, name)
        assert code != 0, name
        assert f"Kafka is unreachable at {bootstrap}" in line, f"{name}: {line}"
    # run from an empty folder, the worker created its state folder (with parents) first
    assert (procs["worker"][0] / ".dfip" / "worker").is_dir()


@pytest.mark.parametrize("command", [*KAFKA_COMMANDS, "run"])
def test_a_bad_kafka_setting_names_the_variable_and_the_allowed_values(
    command: str, tmp_path: Path
) -> None:
    argv = KAFKA_COMMANDS.get(command, ["run"])
    code, line = one_line(start(argv, tmp_path, DFIP_KAFKA_SECURITY_PROTOCOL=("TLS")), command)
    assert code == 2
    assert "DFIP_KAFKA_SECURITY_PROTOCOL=TLS is not allowed" in line
    assert "'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'" in line
    assert not (tmp_path / ".dfip" / "kafka").exists()  # `run` did not start a broker


def test_a_bad_worker_setting_names_the_variable_and_the_allowed_values(tmp_path: Path) -> None:
    code, line = one_line(start(["worker"], tmp_path, DFIP_WORKER_LOG_LEVEL="warning"), "worker")
    assert code == 2
    assert "DFIP_WORKER_LOG_LEVEL=warning is not allowed: expected 'debug', 'info'" in line


def test_a_missing_password_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-password"
    env = {
        "DFIP_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "DFIP_KAFKA_SASL_PASSWORD_FILE": str(missing),
    }
    code, line = one_line(start(["topics", "create"], tmp_path, **env), "password file")
    assert code != 0
    assert str(missing) in line
    assert "No such file" in line


def test_run_refuses_a_bootstrap_that_disagrees_with_the_broker_port(tmp_path: Path) -> None:
    env = {"DFIP_KAFKA_PORT": "19999", "DFIP_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}
    code, line = one_line(start(["run"], tmp_path, **env), "run")
    assert code == 2
    assert "DFIP_KAFKA_BOOTSTRAP_SERVERS=kafka:9092 disagrees with DFIP_KAFKA_PORT=19999" in line
    assert not (tmp_path / ".dfip").exists()


def test_an_unknown_topic_is_one_line(tmp_path: Path) -> None:
    code, line = one_line(start(["topics", "tail", "dfip.nope"], tmp_path), "tail")
    assert code == 2
    assert "unknown topic dfip.nope" in line
    assert "dfip.transactions" in line


#: A wrong option or setting, caught before anything runs: exit 2, as `dfip --help` says.
USAGE_ERRORS = {
    "report month": (["report", "--month", "2026-13"], {}),
    "alerts outcome": (
        ["alerts", "ack", "x", "--uscc", "91330106MA2CDL8K41", "--outcome", "?"],
        {},
    ),
    "query url": (["query", "enterprise", "91330106MA2CDL8K41", "--url", "notaurl"], {}),
    "run port": (["run"], {"DFIP_KAFKA_PORT": "abc"}),
    "worker data dir": (["worker"], {"DFIP_WORKER_DATA_DIR": "/proc/no/such"}),
    # a device was read for ever ("no such file" said the check before), binary junk was
    # "'utf-8' codec can't decode …" without the file's name
    "worker rules device": (["worker"], {"DFIP_WORKER_RULES_FILE": "/dev/zero"}),
    "worker rules binary": (["worker"], {"DFIP_WORKER_RULES_FILE": sys.executable}),
}


def test_usage_and_setting_errors_exit_2(tmp_path: Path) -> None:
    web = {"DFIP_WORKER_WEB_PORT": str(closed_port())}  # not 6066: another worker may run
    procs = {
        name: start(argv, tmp_path, **web, **env) for name, (argv, env) in USAGE_ERRORS.items()
    }
    for name, proc in procs.items():
        code, line = one_line(proc, name)
        assert code == 2, f"{name}: {line}"
        if name == "worker rules device":
            assert "DFIP_WORKER_RULES_FILE=/dev/zero: not a regular file" in line
        if name == "worker rules binary":
            assert f"{sys.executable}: not UTF-8 text" in line


def test_a_nan_simulator_step_is_a_usage_error(tmp_path: Path) -> None:
    # was a decimal.InvalidOperation traceback (exit 1)
    proc = start(["simulate", "--events", "5", "--step-seconds", "nan"], tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    assert "finite number of seconds" in err


def test_a_mistyped_variable_is_named_with_the_likely_one(tmp_path: Path) -> None:
    env = {"DFIP_KAFKA_BOOSTRAP_SERVERS": "kafka-1:9092", "DFIP_WORKR_BATCH_SIZE": "5"}
    proc = start(["topics", "tail", "dfip.nope"], tmp_path, **env)
    _, err = proc.communicate(timeout=120)
    lines = err.splitlines()
    assert lines[0] == (
        "dfip: warning: DFIP_KAFKA_BOOSTRAP_SERVERS is not a dfip setting and is ignored — "
        "did you mean DFIP_KAFKA_BOOTSTRAP_SERVERS?"
    )
    assert "did you mean DFIP_WORKER_BATCH_SIZE?" in lines[1]
    assert lines[2].startswith("dfip: unknown topic dfip.nope")
    assert proc.returncode == 2


def test_known_variables_are_not_warned_about() -> None:
    from dfip.env_check import unknown_variable_warnings

    env = {
        "DFIP_KAFKA_BOOTSTRAP_SERVERS": "k:1",
        "DFIP_KAFKA_PORT": "1",
        "DFIP_WORKER_BATCH_SIZE": "5",
        "DFIP_ACCOUNT_HASH_KEY": "x",
        "DFIP_TEST_KAFKA_PORT": "1",
        "DFIP_KAFKA_SSL_CAFILE": "ca.pem",
        "PATH": "/bin",
    }
    assert unknown_variable_warnings(env) == []
    assert unknown_variable_warnings({"DFIP_NOPE": "1"}) == [
        "DFIP_NOPE is not a dfip setting and is ignored"
    ]


def test_a_malformed_bootstrap_is_a_setting_error_shown_verbatim(tmp_path: Path) -> None:
    # was a ValueError traceback from kafka-python; `:abc:` also became an emoji in rich
    env = {"DFIP_KAFKA_BOOTSTRAP_SERVERS": "localhost:abc:"}
    code, line = one_line(start(["topics", "list"], tmp_path, **env), "bootstrap")
    assert code == 2
    assert line.startswith("dfip: DFIP_KAFKA_BOOTSTRAP_SERVERS=localhost:abc:: ")
    assert "is not host:port" in line


# --------------------------------------------------------------------------- in process


def test_describe_validation_error_is_one_line_per_variable() -> None:
    with pytest.raises(ValidationError) as info:
        KafkaSettings(security_protocol="TLS", sasl_mechanism="MD5")  # type: ignore[arg-type]
    text = describe_validation_error(info.value)
    assert "\n" not in text
    assert "DFIP_KAFKA_SECURITY_PROTOCOL=TLS is not allowed" in text
    assert "DFIP_KAFKA_SASL_MECHANISM=MD5 is not allowed" in text
    assert "errors.pydantic.dev" not in text


@pytest.mark.parametrize(
    "servers", ["localhost", "localhost:abc", "kafka:99999", "", "a:1,,b:2", ":9092"]
)
def test_a_bootstrap_list_is_host_port_pairs(servers: str) -> None:
    with pytest.raises(ValidationError) as info:
        KafkaSettings(bootstrap_servers=servers)
    text = describe_validation_error(info.value)
    assert text.startswith(f"DFIP_KAFKA_BOOTSTRAP_SERVERS={servers}: ")
    assert "is not host:port" in text
    assert "Value error" not in text


@pytest.mark.parametrize("servers", ["alice:S3cret@kafka:9092", "kafka:9092/path:1", "a b:1"])
def test_credentials_in_the_bootstrap_list_are_a_setting_error_never_echoed(
    servers: str,
) -> None:
    # user:password@host passed as host:port, and every "unreachable at …" line showed it
    with pytest.raises(ValidationError) as info:
        KafkaSettings(bootstrap_servers=servers)
    text = describe_validation_error(info.value)
    assert "not host:port" in text
    assert "S3cret" not in text


def test_secret_variables_are_never_echoed() -> None:
    from dfip.config_errors import _one

    error = {"loc": ("sasl_password",), "input": "S3cret", "msg": "bad", "type": "x"}
    assert _one(error, "DFIP_KAFKA_") == "DFIP_KAFKA_SASL_PASSWORD=…: bad"
    error = {"loc": ("sasl_mechanism",), "input": "MD5", "msg": "bad", "type": "x"}
    assert _one(error, "DFIP_KAFKA_") == "DFIP_KAFKA_SASL_MECHANISM=MD5: bad"


def test_good_bootstrap_lists_are_kept() -> None:
    assert KafkaSettings(bootstrap_servers="[::1]:9092").bootstrap_servers == "[::1]:9092"
    both = KafkaSettings(bootstrap_servers="k1:9092, k2:9093").bootstrap_servers
    assert both == "k1:9092,k2:9093"


def test_sasl_without_a_user_or_a_key_without_its_certificate_is_a_setting_error() -> None:
    with pytest.raises(DfipError, match="needs DFIP_KAFKA_SASL_USERNAME") as info:
        KafkaSettings(security_protocol="SASL_SSL")
    assert info.value.exit_code == 2
    with pytest.raises(DfipError, match="DFIP_KAFKA_SSL_KEYFILE is set without"):
        KafkaSettings(security_protocol="SSL", ssl_keyfile=Path("client.key"))


def test_rocksdb_without_the_extra_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "rocksdict" else real(name)
    )
    with pytest.raises(DfipError) as info:
        check_store("rocksdb://")
    assert "pip install 'dfip[rocksdb]'" in str(info.value)
    check_store("memory://")


def test_the_data_dir_is_created_with_its_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "worker"
    assert prepare_data_dir(target).is_dir()
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(DfipError, match="DFIP_WORKER_DATA_DIR"):
        prepare_data_dir(blocked / "worker")


def test_expected_client_warnings_are_shown_at_info_and_others_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from dfip import log_filters

    log_filters.install(logging.INFO)
    sender = logging.getLogger("aiokafka.producer.sender")
    text = "Got error produce response on topic-partition %s, retrying. Error: %s"
    with caplog.at_level(logging.INFO):
        sender.warning(text, "tp", "<class 'aiokafka.errors.NotEnoughReplicasError'>")
        sender.warning(text, "tp", "<class 'aiokafka.errors.KafkaStorageError'>")
    levels = {r.getMessage().rsplit(".", 1)[-1]: r.levelname for r in caplog.records}
    assert levels["NotEnoughReplicasError'>"] == "INFO"
    assert levels["KafkaStorageError'>"] == "WARNING"
    for name, _ in log_filters.EXPECTED:  # leave the process as it was
        logging.getLogger(name).filters.clear()


def test_a_taken_or_invalid_web_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, line = one_line(
            start(["worker"], tmp_path, DFIP_WORKER_WEB_PORT=str(port)), "web port taken"
        )
    assert code == 1
    assert f"DFIP_WORKER_WEB_PORT={port} on 127.0.0.1 cannot be used" in line
    code, line = one_line(start(["worker"], tmp_path, DFIP_WORKER_WEB_PORT="99999"), "port")
    assert "DFIP_WORKER_WEB_PORT=99999 is not a TCP port" in line


def test_an_unreadable_certificate_names_its_variable(tmp_path: Path) -> None:
    env = {"DFIP_KAFKA_SECURITY_PROTOCOL": "SSL", "DFIP_KAFKA_SSL_CAFILE": "/nonexistent/ca.crt"}
    code, line = one_line(start(["topics", "create"], tmp_path, **env), "CA file")
    assert code == 2
    assert line == "dfip: DFIP_KAFKA_SSL_CAFILE=/nonexistent/ca.crt: No such file or directory"


def _ssl_failure(env: dict[str, str]) -> str:
    """The one line `dfip` prints for the OSError building the SSL context raises."""
    from dfip.config_errors import describe_os_error

    settings = KafkaSettings(
        _env_file=None,  # type: ignore[call-arg]
        security_protocol="SSL",
        ssl_cafile=env.get("DFIP_KAFKA_SSL_CAFILE"),
        ssl_certfile=env.get("DFIP_KAFKA_SSL_CERTFILE"),
        ssl_keyfile=env.get("DFIP_KAFKA_SSL_KEYFILE"),
    )
    with pytest.raises(OSError) as info:
        settings.ssl_context()
    return describe_os_error(info.value, env)


def test_a_bad_tls_file_is_named_with_its_variable(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    folder = tmp_path / "certs"
    folder.mkdir()
    line = _ssl_failure({"DFIP_KAFKA_SSL_CAFILE": str(folder)})
    assert line == f"DFIP_KAFKA_SSL_CAFILE={folder}: is a folder, not a file"
    line = _ssl_failure({"DFIP_KAFKA_SSL_CAFILE": str(junk)})
    assert line.startswith(f"DFIP_KAFKA_SSL_CAFILE={junk}: not a PEM CA bundle")
    line = _ssl_failure({"DFIP_KAFKA_SSL_CERTFILE": str(junk)})
    assert line.startswith(f"DFIP_KAFKA_SSL_CERTFILE={junk}: not a PEM certificate")
    line = _ssl_failure(
        {"DFIP_KAFKA_SSL_CERTFILE": str(junk), "DFIP_KAFKA_SSL_KEYFILE": str(tmp_path / "nope")}
    )
    assert line == f"DFIP_KAFKA_SSL_KEYFILE={tmp_path / 'nope'}: No such file or directory"


@pytest.mark.parametrize("prefix", ["bad prefix/", "x" * 151, "租户-"])
def test_a_topic_prefix_kafka_cannot_name_is_a_setting_error(prefix: str) -> None:
    # `topics create` failed with the broker's raw CreateTopicsResponse (exit 1)
    with pytest.raises(ValidationError) as info:
        KafkaSettings(topic_prefix=prefix)
    assert "ASCII letters, digits, '.', '_' and '-'" in describe_validation_error(info.value)
    assert KafkaSettings(topic_prefix="t1_a.b-").topic_prefix == "t1_a.b-"


def test_a_tls_file_that_is_a_pipe_is_refused_at_once(tmp_path: Path) -> None:
    # OpenSSL opened the FIFO and waited for a writer for ever
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    with pytest.raises(DfipError, match=f"DFIP_KAFKA_SSL_CAFILE={fifo}: not a regular file"):
        KafkaSettings(security_protocol="SSL", ssl_cafile=fifo)


def test_run_refuses_a_negative_rate_before_starting_the_broker(tmp_path: Path) -> None:
    # the simulator child refused it only after the broker and the worker had started
    proc = start(["run", "--rate", "-5"], tmp_path, DFIP_KAFKA_PORT=str(closed_port()))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "--rate" in err
    assert not (tmp_path / ".dfip").exists()
