"""Client-library log records that are expected in normal operation, shown at INFO.

A rebalance (a worker joining or leaving) makes aiokafka and Faust warn about things that are
the rebalance itself; an operator reads WARNING as "something is wrong". These records are
downgraded to INFO (and dropped when the worker logs at WARNING or above); anything else keeps
its level.
"""

from __future__ import annotations

import logging

__all__ = ["EXPECTED", "install"]

#: (logger name, text the formatted message contains)
EXPECTED: tuple[tuple[str, str], ...] = (
    # aiokafka: the heartbeat answered REBALANCE_IN_PROGRESS, so this member rejoins
    ("aiokafka.consumer.group_coordinator", "because it is rebalancing"),
    # Faust: every rebalance of an app without sensors (DFIP exports its own metrics); its
    # sensor delegate returns an empty, falsy state and Faust takes that for a missing one
    ("faust.app.base", "Missing sensor state for rebalance"),
    # mode: the idle timer's tick (reference reads, a restore after an assignment) outlasted
    # its interval, so the next tick starts late; batches are not timer-driven, and their
    # durations are exported (dfip_worker_batch_seconds)
    ("mode.timers", "is overlapping"),
    # aiokafka retries the produce by itself. Brokers since Kafka 3.6 verify that a
    # transaction covers a partition before appending (KIP-890) and answer NOT_ENOUGH_REPLICAS
    # (retriable for older clients) while the previous transaction's markers are still being
    # written: on a fresh broker that is every batch of the first seconds. A produce that never
    # succeeds fails its batch, which is logged and counted (dfip_worker_batch_failures).
    (
        "aiokafka.producer.sender",
        "retrying. Error: <class 'aiokafka.errors.NotEnoughReplicasError'>",
    ),
)


class _Downgrade(logging.Filter):
    def __init__(self, text: str, threshold: int) -> None:
        super().__init__()
        self.text = text
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO and self.text in record.getMessage():
            record.levelno, record.levelname = logging.INFO, "INFO"
            return self.threshold <= logging.INFO
        return True


def install(threshold: int) -> None:
    """Attach the filters; `threshold` is the worker's log level."""
    for name, text in EXPECTED:
        logging.getLogger(name).addFilter(_Downgrade(text, threshold))
