"""Checks a worker makes before Faust starts, so a mistake is one line and not a crash loop.

Faust would otherwise retry an unreachable broker forever (logging every attempt), crash
on a missing folder with a traceback, or fail deep inside the store on a missing extra.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import time
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError

from core.errors import DfipError
from core.kafka_admin import (
    CONNECT_TIMEOUT,
    admin_client,
    client_log,
    drift_text,
    topic_drift,
)
from core.kafka_config import KafkaSettings
from schemas.catalog import ALL_TOPICS, FX, SCORES

__all__ = ["check_broker", "check_store", "check_web_port", "prepare_data_dir"]

log = logging.getLogger(__name__)


def check_store(store: str) -> None:
    """`rocksdb://` needs the optional rocksdict package (the `rocksdb` extra)."""
    if store.startswith("rocksdb://") and importlib.util.find_spec("rocksdict") is None:
        raise DfipError(
            f"DFIP_WORKER_STORE={store} needs the rocksdict package, which is not installed",
            hint="install the extra: pip install 'dfip[rocksdb]' (or use memory://)",
            exit_code=2,
        )


def check_web_port(host: str, port: int) -> None:
    """The HTTP port (/metrics, /health) is free: a second worker on one machine needs its
    own DFIP_WORKER_WEB_PORT, and Faust would only fail after joining the group."""
    if not 0 < port < 65536:
        raise DfipError(
            f"DFIP_WORKER_WEB_PORT={port} is not a TCP port", hint="use 1-65535", exit_code=2
        )
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise DfipError(
            f"DFIP_WORKER_WEB_HOST={host} is not an address of this machine: {exc.strerror}",
            hint="use 0.0.0.0 (all interfaces) or 127.0.0.1",
            exit_code=2,
        ) from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise DfipError(
                f"DFIP_WORKER_WEB_PORT={port} on {host} cannot be used: {exc.strerror}",
                hint="another worker listens there? give each its own DFIP_WORKER_WEB_PORT",
            ) from exc


def prepare_data_dir(path: Path) -> Path:
    """Create the worker's state folder with its parents (Faust's own mkdir has none)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DfipError(
            f"DFIP_WORKER_DATA_DIR={path} cannot be created: {exc.strerror}",
            hint="point it at a writable folder",
            exit_code=2,
        ) from exc
    return path


def check_broker(
    settings: KafkaSettings,
    *,
    group_id: str | None = None,
    transactional_id: str | None = None,
    timeout: float = CONNECT_TIMEOUT,
    topics_timeout: float = 30.0,
) -> None:
    """The cluster answers, every topic a worker reads or writes exists, and the group and
    transaction coordinators are available.

    Missing topics are waited for up to `topics_timeout` (a `topics` job may be creating
    them right now); a fresh topic's partitions have leaders before the worker starts, so its
    first transaction does not meet a broker that is still electing them. On a fresh broker
    the first FindCoordinator creates __consumer_offsets / __transaction_state: waiting for
    them here keeps the worker's first minute free of coordinator errors and retries."""
    with client_log():
        admin = admin_client(settings, timeout=timeout)
        try:
            _wait_for_topics(admin, settings, topics_timeout)
            _wait_for_reference_configs(admin, settings, topics_timeout)
            _wait_for_coordinators(admin, settings, group_id, transactional_id, topics_timeout)
        except KafkaError as exc:
            raise DfipError(
                f"Kafka at {settings.bootstrap_servers} failed a metadata request: {exc}",
                hint="check the broker log",
            ) from exc
        finally:
            admin.close()


def _wait_for_reference_configs(admin: Any, settings: KafkaSettings, timeout: float) -> None:
    """The reference topics keep every record as the catalog declares (not compacted): a
    worker rebuilds its FX table and as-of join from them, and on a compacted dfip.fx a
    restart would find a corrected rate in force later than the live worker did. Waited for
    like the topics (a `topics` job may be setting them back right now)."""
    wanted = {settings.topic(s.name): s for s in (FX, SCORES)}
    deadline = time.monotonic() + timeout
    while drifts := topic_drift(admin, wanted):
        if time.monotonic() > deadline:
            name, drift = sorted(drifts.items())[0]
            raise DfipError(
                f"{drift_text(name, drift)}: figures restored "
                "from it could depend on log compaction (docs/operations.md, Reference "
                "topics keep every record)",
                hint="run `dfip topics create` (it sets existing topics back to the catalog)",
            )
        log.debug("waiting for the reference topics' configs: %s", sorted(drifts))
        time.sleep(0.5)


def _wait_for_topics(admin: Any, settings: KafkaSettings, timeout: float) -> None:
    wanted = [settings.topic(t.name) for t in ALL_TOPICS]
    deadline = time.monotonic() + timeout
    while True:
        described = admin.describe_topics(wanted)
        ready = {
            d["name"]
            for d in described
            if d.get("error_code", 0) == 0
            and d["partitions"]
            and all(p.get("leader_id", -1) >= 0 for p in d["partitions"])
        }
        missing = [name for name in wanted if name not in ready]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise DfipError(
                f"topics missing or without leaders on {settings.bootstrap_servers}: "
                + ", ".join(missing),
                hint="create them with `dfip topics create` (same DFIP_KAFKA_TOPIC_PREFIX)",
            )
        log.debug("waiting for topics: %s", missing)
        time.sleep(0.5)


def _wait_for_coordinators(
    admin: Any,
    settings: KafkaSettings,
    group_id: str | None,
    transactional_id: str | None,
    timeout: float,
) -> None:
    from kafka.protocol.metadata import CoordinatorType

    keys = [(group_id, CoordinatorType.GROUP), (transactional_id, CoordinatorType.TRANSACTION)]
    deadline = time.monotonic() + timeout
    for key, kind in keys:
        if key is None:
            continue
        while True:
            try:
                # kafka-python has no public FindCoordinator call; this is what its own
                # group methods use (the coordinator is cached on the admin client after)
                admin._manager.run(admin._find_coordinator_ids, [key], kind)
                break
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise DfipError(
                        f"Kafka at {settings.bootstrap_servers} has no {kind.name.lower()} "
                        f"coordinator available: {type(exc).__name__}",
                        hint="check the broker log (__consumer_offsets, __transaction_state)",
                    ) from exc
                log.debug("waiting for the %s coordinator: %s", kind.name, exc)
                time.sleep(0.5)
