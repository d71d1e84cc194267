"""A batch whose commit the broker refuses is redone from the committed state, not half-kept.

The refusal is real, not injected: the test namespace's dead-letter topic is given a 2,000
byte `max.message.bytes`, and a 3,000-byte bad record is sent among the simulator's feed.
Its dead letter (base64 plus envelope) is over that limit, so every transaction holding it
fails. The worker must keep running, count the failures, and neither lose nor double-count
anything while it retries; once the topic's limit is raised again, the figures must equal
the oracle exactly and the dead letter must be on the topic once.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from kafka.admin import ConfigResource, ConfigResourceType

from core.kafka_admin import admin_client
from core.kafka_config import KafkaSettings
from tests.integration.test_poison import (
    Poison,
    add_expected,
    assert_alive,
    assert_dead_lettered,
    dead_letters,
    produce,
)
from tests.integration.test_stream_exact import (
    TOPICS,
    assert_exact,
    assert_flow_identity,
    simulate,
)
from tests.support.workers import (
    WorkerProcess,
    oracle_figures,
    wait_converged,
    wait_for,
    wait_ready,
)

TX = TOPICS[0]
_FAILURES = re.compile(r"^dfip_worker_batch_failures_total (\S+)$", re.MULTILINE)


def _set_limit(settings: KafkaSettings, topic: str, limit: int) -> None:
    admin = admin_client(settings)
    try:
        resource = ConfigResource(
            ConfigResourceType.TOPIC,
            settings.topic(topic),
            configs={"max.message.bytes": str(limit)},
        )
        admin.alter_configs([resource])
    finally:
        admin.close()


def _failures(worker: WorkerProcess) -> float:
    text = worker.metrics_text() or ""
    found = _FAILURES.search(text)
    return float(found.group(1)) if found else 0.0


def test_a_refused_commit_is_redone_once_the_cause_is_gone(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    _set_limit(kafka_settings, "dfip.deadletter", 2000)
    worker = WorkerProcess(kafka_settings, "phoenix", tmp_path).start()
    try:
        wait_ready(worker)
        result = simulate(kafka_settings, 1200)
        # 3,000 bytes that are not UTF-8: an `undecodable` dead letter of about 4.5 kB
        big = b"\xff" + bytes(range(256)) * 11 + b"\xfe" * 183
        assert len(big) == 3000
        sent = produce(kafka_settings, [Poison("refused dead letter", TX, big, "undecodable", 5)])
        wait_for(lambda: _failures(worker) >= 2, timeout=120, what="refused commits, retried")
        assert_alive(worker)
        # nothing of the refused batches is visible: neither its dead letter nor, twice, anything
        assert (TX, sent[0].partition, sent[0].offset) not in dead_letters(kafka_settings)

        _set_limit(kafka_settings, "dfip.deadletter", 4 * 1024 * 1024)
        expected = add_expected(oracle_figures(result.oracle), sent)
        got = wait_converged([worker], expected)
        assert_exact(got, expected)
        assert_flow_identity(got)
        assert_dead_lettered(kafka_settings, sent)
        assert_alive(worker)
        # the batch loop is healthy again: no further failures once the cause is gone
        settled = _failures(worker)
        time.sleep(3)
        assert _failures(worker) == settled
    finally:
        worker.stop()
