"""The topic catalog creates its topics on the real broker, idempotently and as declared."""

from __future__ import annotations

import subprocess
import sys

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from core.kafka_admin import create_topics
from core.kafka_config import KafkaSettings
from schemas.catalog import ALL_TOPICS, USCC_PARTITIONS


def test_catalog_topics_exist_as_declared(kafka_settings: KafkaSettings) -> None:
    # the fixture created them; a second run creates nothing and changes nothing
    again = create_topics(kafka_settings)
    assert not any(r.created for r in again)
    assert not any(r.reconfigured for r in again)
    by_name = {r.name: r for r in again}
    admin = KafkaAdminClient(**kafka_settings.kafka_python_config())
    try:
        for spec in ALL_TOPICS:
            name = kafka_settings.topic(spec.name)
            assert by_name[name].partitions == spec.partitions
            if spec.key.startswith(("uscc", "enterprise")) or spec.name == "dfip.state":
                assert spec.partitions == USCC_PARTITIONS
            configs = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name, list(spec.topic_config()))],
                config_filter="all",
            )["topic"][name]
            assert {k: v["value"] for k, v in configs.items()} == spec.topic_config(), name
    finally:
        admin.close()


def test_cli_fails_in_one_line_when_kafka_is_unreachable() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dfip.cli", "topics", "create"],
        env={"DFIP_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "unreachable" in proc.stderr
