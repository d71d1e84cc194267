"""The "Platform health" dashboard: throughput, lag, dead letters, late events, latency and
rebalances, per worker where the metric is per worker."""

from __future__ import annotations

from deploy.grafana.dashboards_src.layout import DashboardSpec, Row
from deploy.grafana.dashboards_src.panels import Query, Step, bars, stat_panel, timeseries_panel

__all__ = ["dashboard"]

_WORKER = "{{instance}}"
_TOPIC = "{{topic}}"
_UP = 'up{job="dfip-worker"}'
# Owned partitions only: a worker keeps its last lag value of a partition that moved away.
_OWNED_LAG = "dfip_consumer_lag and on (instance, partition) dfip_events_received_total"


def _overview() -> Row:
    return Row(
        "Overview",
        [
            stat_panel(
                "Workers up",
                "Worker targets Prometheus scrapes successfully.",
                Query(f"sum({_UP})"),
                unit="short",
                steps=(Step(None, "red"), Step(1, "green")),
            ),
            stat_panel(
                "Workers ready",
                "Workers whose owned partitions are all restored.",
                Query("sum(dfip_worker_ready)"),
                unit="short",
                steps=(Step(None, "red"), Step(1, "green")),
            ),
            stat_panel(
                "Partitions owned",
                "Input partitions owned over all workers; equals the partition count when "
                "the group is stable (more during a rebalance hand-over).",
                Query("sum(dfip_worker_assigned_partitions)"),
                unit="short",
            ),
            stat_panel(
                "Consumer lag",
                "Records behind the end of the input topics, over owned partitions.",
                Query("dfip:consumer_lag:sum"),
                unit="short",
                steps=(Step(None, "green"), Step(1000, "orange"), Step(100000, "red")),
            ),
            stat_panel(
                "Unaccounted records",
                "Received - processed - duplicate - dead-lettered. 0 whenever the workers "
                "are quiet; positive while forwarded records are in flight.",
                Query("dfip:events_unaccounted:sum"),
                unit="short",
                steps=(Step(None, "green"), Step(1, "orange")),
            ),
            stat_panel(
                "Dead-lettered records",
                "Records sent to the dead-letter topic since the stream began (kept with "
                "their original bytes and a reason).",
                Query("sum(dfip:events_deadlettered:sum_by_error_class)"),
                unit="short",
                steps=(Step(None, "green"), Step(1, "orange")),
            ),
        ],
    )


def _throughput() -> Row:
    return Row(
        "Throughput",
        [
            timeseries_panel(
                "Records per second by worker",
                "Records handled in committed batches, per worker (5-minute rate).",
                [Query("dfip:worker_records:rate5m_by_instance", _WORKER)],
                unit="cps",
                stacked=True,
            ),
            timeseries_panel(
                "Events per second by topic",
                "Records read from each input topic and events applied to the figures "
                "(5-minute rates).",
                [
                    Query("dfip:events_received:rate5m_by_topic", "received {{topic}}"),
                    Query("dfip:events_processed:rate5m_by_topic", "processed {{topic}}"),
                ],
                unit="cps",
            ),
            timeseries_panel(
                "Batches per second by worker",
                "Batches committed (one Kafka transaction each), per worker.",
                [Query("sum by (instance) (rate(dfip_worker_batches_total[5m]))", _WORKER)],
                unit="cps",
            ),
            timeseries_panel(
                "Batch duration p99 by worker",
                "99th percentile time to process and commit one batch, per worker.",
                [
                    Query(
                        "histogram_quantile(0.99, sum by (instance, le) "
                        "(rate(dfip_worker_batch_seconds_bucket[5m])))",
                        _WORKER,
                    )
                ],
                unit="s",
            ),
        ],
    )


def _lag_and_latency() -> Row:
    return Row(
        "Lag and latency",
        [
            timeseries_panel(
                "Consumer lag by topic",
                "Records behind the end of each input topic (owned partitions, once each). "
                "DfipConsumerLagGrowing fires when it rises above 1000 for 10 minutes.",
                [Query("dfip:consumer_lag:sum_by_topic", _TOPIC)],
                unit="short",
                reference_lines=(Step(1000, "orange"),),
                width=8,
            ),
            timeseries_panel(
                "Consumer lag by worker",
                "Records behind the end of the partitions each worker owns.",
                [Query(f"sum by (instance) ({_OWNED_LAG})", _WORKER)],
                unit="short",
                width=8,
            ),
            timeseries_panel(
                "Event latency",
                "Produce time of a record to its committed figure (sampled per batch): p50 "
                "and p99 over all workers, p99 per worker.",
                [
                    Query("dfip:event_latency_seconds:p50_5m", "p50"),
                    Query("dfip:event_latency_seconds:p99_5m", "p99"),
                    Query(
                        "histogram_quantile(0.99, sum by (instance, le) "
                        "(rate(dfip_event_latency_seconds_bucket[5m])))",
                        "p99 {{instance}}",
                    ),
                ],
                unit="s",
                width=8,
            ),
        ],
    )


def _data_quality() -> Row:
    return Row(
        "Dead letters, late events, duplicates",
        [
            timeseries_panel(
                "Dead letters per second by topic",
                "Records sent to the dead-letter topic (5-minute rate); DfipDeadLetters "
                "fires when this stays above 0 for 15 minutes.",
                [Query("dfip:events_deadlettered:rate5m_by_topic", _TOPIC)],
                unit="cps",
                width=8,
            ),
            bars(
                "Dead letters by error class",
                "Dead-lettered records since the stream began, by error class (see the "
                "reason on each dead-letter record).",
                Query("dfip:events_deadlettered:sum_by_error_class", "{{error_class}}"),
                unit="short",
            ),
            timeseries_panel(
                "Duplicates per second by topic",
                "Re-sent events dropped by their event_id (5-minute rate).",
                [Query("dfip:events_duplicate:rate5m_by_topic", _TOPIC)],
                unit="cps",
                width=8,
            ),
            timeseries_panel(
                "Late events per second by topic",
                "Events older than their partition's watermark minus the grace period "
                "(counted live, left out of event-time windows, copied to dfip.late).",
                [Query("dfip:events_late:rate5m_by_topic", _TOPIC)],
                unit="cps",
                width=12,
            ),
            timeseries_panel(
                "Late share of received events",
                "Late over received records in the last 10 minutes; DfipLateEventsRising "
                "fires above the dashed 1 % line for 10 minutes.",
                [Query("dfip:events_late:ratio_rate10m", "late share")],
                unit="percentunit",
                reference_lines=(Step(0.01, "orange"),),
                min_value=0,
                width=12,
            ),
        ],
    )


def _rebalances() -> Row:
    return Row(
        "Rebalances and restores",
        [
            timeseries_panel(
                "Rebalances by worker",
                "Partition assignments each worker received in the last hour.",
                [Query("sum by (instance) (increase(dfip_worker_rebalances_total[1h]))", _WORKER)],
                unit="short",
                width=6,
            ),
            timeseries_panel(
                "Partitions owned by worker",
                "Input partitions each worker owns (and exports figures for).",
                [Query("sum by (instance) (dfip_worker_assigned_partitions)", _WORKER)],
                unit="short",
                stacked=True,
                width=6,
            ),
            timeseries_panel(
                "Last state restore by worker",
                "Duration of each worker's last restore of partition state from the "
                "dfip.state changelog.",
                [Query("max by (instance) (dfip_worker_last_restore_seconds)", _WORKER)],
                unit="s",
                width=6,
            ),
            timeseries_panel(
                "Worker up and ready",
                "1 = scraped / restored, per worker. A worker that is up but not ready is "
                "still restoring (DfipWorkerNotReady after 10 minutes).",
                [
                    Query(f"min by (instance) ({_UP})", "up {{instance}}"),
                    Query("max by (instance) (dfip_worker_ready)", "ready {{instance}}"),
                ],
                unit="short",
                min_value=0,
                width=6,
            ),
        ],
    )


def dashboard() -> DashboardSpec:
    return DashboardSpec(
        uid="dfip-platform-health",
        title="DFIP · Platform health",
        description=(
            "Whether the stream workers keep up and account for every record: throughput, "
            "lag, dead letters, late events, latency and rebalances, per worker."
        ),
        file_name="platform-health.json",
        rows=[_overview(), _throughput(), _lag_and_latency(), _data_quality(), _rebalances()],
        time_from="now-1h",
        refresh="10s",
    )
