"""DFIP_* variables that nothing reads: most often a typo, silently ignored otherwise.

`DFIP_KAFKA_BOOSTRAP_SERVERS=kafka-1:9092` leaves the default bootstrap in force and the
command then says Kafka is unreachable at 127.0.0.1:9092, which points the user away from the
mistake. Every command warns (one line each, on stderr) and names the closest known variable.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

__all__ = ["known_variables", "unknown_variable_warnings"]

#: Read outside the settings classes: kafka.sh (local broker), the ingest CLI, the query CLI,
#: the build, deployment templates and the test suite.
OTHER_VARIABLES = frozenset(
    {
        "DFIP_ACCOUNT_HASH_KEY",
        "DFIP_ACCOUNT_HASH_KEY_FILE",
        "DFIP_INSTITUTION",
        "DFIP_QUERY_TOKEN",
        "DFIP_QUERY_TOKEN_FILE",
        "DFIP_QUERY_URL",
        "DFIP_COMPILE",
        "DFIP_IMAGE_TAG",
        "DFIP_NAMESPACE",
        "DFIP_KAFKA_PORT",
        "DFIP_KAFKA_CONTROLLER_PORT",
        "DFIP_KAFKA_HOME",
        "DFIP_KAFKA_NODES",
        "DFIP_KAFKA_TIMEOUT",
        "DFIP_KAFKA_CACHE",
        "DFIP_KAFKA_FRESH",
        "DFIP_KAFKA_HEAP",
        "DFIP_KAFKA_EXTRA_CONFIG",
        "DFIP_WORKER_ALLOW_UNTESTED_CLIENTS",
        "DFIP_WORKER_RELEASE_FD",  # set by a worker's supervisor for its processes
        "DFIP_WORKER_RELEASE_SHARE",  # likewise
        "DFIP_BIG_CAMT_MB",
        "DFIP_HYPOTHESIS_EXAMPLES",
        "DFIP_UPDATE_GOLDEN",
    }
)


def known_variables() -> frozenset[str]:
    """Every DFIP_* variable some part of dfip reads."""
    from core.kafka_config import KafkaSettings
    from streams.settings import WorkerSettings

    names = set(OTHER_VARIABLES)
    for prefix, cls in (("DFIP_KAFKA_", KafkaSettings), ("DFIP_WORKER_", WorkerSettings)):
        names.update(prefix + field.upper() for field in cls.model_fields)
    return frozenset(names)


def unknown_variable_warnings(env: Mapping[str, str]) -> list[str]:
    """One line per DFIP_* variable in `env` that nothing reads, with the likely intended one."""
    set_names = sorted(k for k in env if k.startswith("DFIP_") and not k.startswith("DFIP_TEST_"))
    if not set_names:
        return []
    known = known_variables()
    warnings = []
    for name in set_names:
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        guess = f" — did you mean {close[0]}?" if close else ""
        warnings.append(f"{name} is not a dfip setting and is ignored{guess}")
    return warnings
