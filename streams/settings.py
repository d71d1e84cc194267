"""Worker configuration, from environment variables prefixed ``DFIP_WORKER_``.

Kafka connection and security settings are separate (:class:`core.kafka_config.KafkaSettings`,
prefix ``DFIP_KAFKA_``) because adapters and the simulator share them.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MAX_PROCESSES", "WorkerSettings"]

#: one process per input partition at most (schemas.catalog.USCC_PARTITIONS; a unit test
#: holds them equal, as settings import nothing of the platform)
MAX_PROCESSES = 12


class WorkerSettings(BaseSettings):
    """Everything a stream worker reads at start-up."""

    model_config = SettingsConfigDict(env_prefix="DFIP_WORKER_", env_file=".env", extra="ignore")

    app_id: str = Field(default="dfip", description="Faust app id = Kafka consumer group id.")
    worker_id: str = Field(
        default_factory=socket.gethostname,
        description="Stable identity of this worker; names its transactional producer.",
    )
    web_host: str = Field(default="127.0.0.1", description="Bind address of /metrics etc.")
    web_port: int = Field(default=6066, description="Port of /metrics, /health, /ready.")
    store: Literal["memory://", "rocksdb://"] = Field(
        default="memory://",
        description="Local state store: memory (tests) or RocksDB (deployments).",
    )
    data_dir: Path = Field(default=Path(".dfip/worker"), description="Local state folder.")
    processing_guarantee: Literal["exactly_once", "at_least_once"] = Field(
        default="exactly_once",
        description=(
            "exactly_once: state, outputs and offsets commit in one Kafka transaction and "
            "consumers read committed data only."
        ),
    )
    batch_size: int = Field(
        default=2000,
        ge=1,
        description=(
            "Max records per batch while the worker is caught up (the oldest record of the "
            "last batch younger than batch_behind_ms): small transactions, figures soon."
        ),
    )
    batch_size_behind: int = Field(
        default=12_000,
        ge=1,
        description=(
            "Max records per batch once the worker is behind (the oldest record of a batch "
            "older than batch_behind_ms), until a batch's oldest record is young again: a "
            "larger batch spreads each transaction's fixed cost over more records, so a "
            "worker that fell behind catches up sooner (6,000: +15 % events/s over 2,000 on "
            "the bench feed; 12,000, as many as the read-ahead holds: +9 % over 6,000 on "
            "the comparison job; bench/RESULTS.md, issue 18). Never below batch_size."
        ),
    )
    batch_behind_ms: int = Field(
        default=500,
        ge=1,
        description=(
            "A batch whose oldest record (Kafka CreateTime) is older than this means the "
            "worker is behind: the next batches may hold batch_size_behind records."
        ),
    )
    batch_interval_ms: int = Field(
        default=0,
        ge=0,
        description=(
            "While caught up, the least time from one batch's start to the next one's: "
            "records that arrive meanwhile wait and join the next batch, so a commit's fixed "
            "cost (the transaction, the changelog of every touched partition) is paid less "
            "often. At 8,000 records/s, 100 took the worker's CPU per event from ~105 to "
            "75-85 µs and put ~200 ms on its p99 latency (bench/RESULTS.md, issue 18): a knob "
            "for a worker short of CPU. 0: a batch starts as soon as records are there. "
            "Behind (batch_size_behind), batches come back to back."
        ),
    )
    batch_within_ms: int = Field(
        default=50, ge=1, description="Max wait for a batch to fill (latency bound)."
    )
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=60_000,
        description=(
            "Longest a fetch of the input topics waits at the broker for new records. Reading "
            "committed records only, a fetch was seen waiting out its whole wait while records "
            "arrived (idle stalls of 1.0-1.5 s at Faust's fixed 1,500 ms, bench/RESULTS.md, "
            "issue 18): this bounds how long a record can sit in the broker unseen. An idle "
            "worker sends about 1000 / this many empty fetches a second."
        ),
    )
    read_ahead_records: int = Field(
        default=12_000,
        ge=0,
        description=(
            "Input records the group consumer may fetch ahead of the batch loop while a batch "
            "runs (0: aiokafka's own buffering, where a partition is fetched again only after "
            "its last fetch was drained, so records waited ~1.7 batch cycles before their "
            "batch; bench/RESULTS.md, issue 18). Beyond this many held, fetching waits for "
            "the batch loop."
        ),
    )
    gc_freeze: bool = Field(
        default=True,
        description=(
            "After start-up, each rebalance and each batch, move every object alive then "
            "(modules, state) to Python's permanent GC generation, so the collector scans "
            "only what the current batch made: the collector took ~13 % of the worker's CPU, "
            "its full collections of the growing state ~7 % with pauses of 35-220 ms "
            "(bench/RESULTS.md, issue 18). Objects are still freed when unreferenced; "
            "cycles that became garbage after they were frozen are collected at the next "
            "rebalance or full collection "
            "(gc_full_every_seconds)."
        ),
    )
    gc_full_every_seconds: float = Field(
        default=600,
        gt=0,
        allow_inf_nan=False,
        description=(
            "With gc_freeze: how often everything is unfrozen, collected once and frozen "
            "again (at the end of a batch), which bounds the memory that cycles frozen "
            "before they became garbage can hold. One such collection scans the whole heap "
            "(~0.1-1 s with a large state)."
        ),
    )
    grace_seconds: int = Field(
        default=600, ge=0, description="Event-time grace before a window closes."
    )
    dedup_retention_days: int = Field(
        default=45,
        ge=1,
        description=(
            "Duplicate detection remembers an event id for this many UTC days of ARRIVAL time "
            "(the Kafka record timestamps of its topic-partition), whatever its event time: a "
            "monthly statement (up to 31 days) re-sent up to two weeks after month end still "
            "counts once. About 80 MiB of memory per million remembered ids (bench/RESULTS.md)."
        ),
    )
    dedup_max_entries: int = Field(
        default=20_000_000,
        ge=1000,
        description=(
            "Safety cap on remembered ids per topic-partition: beyond it the oldest arrival "
            "days are forgotten early (logged); size the partitions so it is never reached."
        ),
    )
    max_future_seconds: int = Field(
        default=86_400,
        ge=0,
        description=(
            "Transactions and loan events whose occurred_at (scores: assessed_at) is more than "
            "this after their Kafka record timestamp are dead-lettered as future_dated."
        ),
    )
    fx_max_age_days: int = Field(
        default=10,
        ge=0,
        description=(
            "An event takes the newest FX rate published by its time and dated on or before "
            "its Asia/Shanghai date, at most this many days before it (10: the Spring "
            "Festival and National Day closures of up to 9 days); none yet → the event waits "
            "for one (docs/metrics.md)."
        ),
    )
    restate_horizon_days: int = Field(
        default=120,
        ge=0,
        description=(
            "An assessment read after transactions, loan applications or decisions it applies "
            "to moves them to its band and sector back to the partition's newest "
            "transactions/loans watermark minus this many days (event time); 120 covers "
            "assessments published up to about four months late."
        ),
    )
    score_history: int = Field(
        default=8, ge=1, description="Assessment versions kept per enterprise for as-of joins."
    )
    commit_timeout_seconds: float = Field(
        default=60,
        gt=0,
        allow_inf_nan=False,
        description=(
            "A batch's transaction that has not committed by then counts as failed: the "
            "worker restores the committed state and reads the batch again."
        ),
    )
    idle_commit_ms: int = Field(
        default=1000, ge=50, description="How often reference topics are read when idle."
    )
    rules: bool = Field(
        default=True,
        description=(
            "Run the large-value and suspicious-pattern rules (docs/aml-rules.md) and write "
            "their hits to dfip.alerts."
        ),
    )
    rules_file: Path | None = Field(
        default=None,
        description="Rule-set TOML file (validated at start); default: schemas/aml_rules.toml.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for HTTP endpoints beyond /metrics, /health and /ready.",
    )
    window_zone: str = Field(
        default="Asia/Shanghai",
        description=(
            "IANA time zone whose calendar the event-time windows follow: daily windows run "
            "from local midnight to local midnight (Asia/Shanghai: 16:00 to 16:00 UTC), "
            "hourly ones are local clock hours."
        ),
    )
    advertised_url: str | None = Field(
        default=None,
        description=(
            "URL other workers use to reach this worker's HTTP port (forwarded enterprise "
            "queries); default http://<web_host>:<web_port>, or the host name when bound "
            "to all interfaces."
        ),
    )
    audit_key: SecretStr | None = Field(
        default=None,
        description=(
            "Key of the keyed hash (HMAC-SHA256) that pseudonymises enterprise ids in the "
            "query audit log (at least 16 bytes); unset: the API token is the key, so "
            "pseudonyms change when the token is rotated."
        ),
    )
    query_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        allow_inf_nan=False,
        description=(
            "An enterprise query waits at most this long for the partition's state (a batch "
            "committing) or for the owning worker; then it answers 503 with Retry-After."
        ),
    )
    processes: int | Literal["auto"] = Field(
        default="auto",
        description=(
            "Worker processes behind this worker's port, each a member of the consumer "
            "group owning its share of the partitions (a Python process uses one core): "
            "auto = one per CPU this process may use (affinity and cgroup quota), at most "
            "the 12 input partitions. Each listens on a free port picked at start; "
            "web_port serves their /metrics merged (docs/operations.md)."
        ),
    )
    heartbeat_interval_seconds: float = Field(
        default=0.5,
        gt=0,
        le=20,
        allow_inf_nan=False,
        description=(
            "How often the group consumer heartbeats to the group coordinator. A member "
            "learns of a rebalance (a worker or process joining or leaving) at its next "
            "heartbeat and goes on with partitions that are moving until then (Faust's "
            "default, 3 s, let the first of several processes take every partition for "
            "3 s at start)."
        ),
    )
    log_level: Literal["debug", "info", "warn", "error"] = "info"

    @field_validator("processes", mode="before")
    @classmethod
    def _process_count(cls, value: object) -> int | str:
        # one message for any wrong value (the union's own errors name its branches)
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_PROCESSES:
            raise ValueError(
                f"must be auto or a whole number from 1 to {MAX_PROCESSES} (at most one "
                "process per input partition)"
            )
        return value

    @field_validator("window_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value
