"""Event-time windows (hourly, daily) per input topic-partition, closed by the watermark."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streams.state.partition import PartitionState, Window, WindowKey

__all__ = ["SIZES", "amend_windows", "close_due", "to_us", "window_add", "window_record"]

HOUR_US = 3_600_000_000
SIZES: dict[str, int] = {"1h": HOUR_US, "1d": 24 * HOUR_US}
# Closed windows stay in state this long past closing, so a forwarded (repartitioned) event
# can still amend them; afterwards they are dropped.
RETAIN_CLOSED_US = 24 * HOUR_US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(ts: datetime) -> int:
    """Microseconds since the epoch, exact (no float)."""
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def window_add(
    state: PartitionState,
    topic: str,
    ts_us: int,
    rows: tuple[tuple[str, tuple[str, ...], int], ...],
) -> None:
    """Add ``(figure, labels, value)`` rows to the hourly and daily window of ``ts_us``."""
    for size, width in SIZES.items():
        key: WindowKey = (topic, size, ts_us - ts_us % width)
        win = state.windows.get(key)
        if win is None:
            win = state.windows[key] = Window()
        add = win.counters.add
        for figure, labels, value in rows:
            add(figure, labels, value)
        win.amended = win.closed
        state.dirty_windows.add(key)


def amend_windows(
    state: PartitionState,
    topic: str,
    grace_us: int,
    ts_us: int,
    rows: tuple[tuple[str, tuple[str, ...], int], ...],
) -> None:
    """Add rows to the windows of ``ts_us`` that the watermark has not passed by more than
    end + grace + RETAIN_CLOSED_US (the rule, whether or not a batch end dropped the window
    yet); a dropped window is never re-created from a delta."""
    wm = state.watermarks.get(topic)
    for size, width in SIZES.items():
        start = ts_us - ts_us % width
        key: WindowKey = (topic, size, start)
        win = state.windows.get(key)
        if win is None or (wm is not None and wm >= start + width + grace_us + RETAIN_CLOSED_US):
            continue
        for figure, labels, value in rows:
            win.counters.add(figure, labels, value)
        win.amended = win.closed
        state.dirty_windows.add(key)


def close_due(state: PartitionState, topic: str, grace_us: int) -> list[WindowKey]:
    """Mark windows whose end + grace the watermark has passed; returns those to emit.

    A closed window that was changed again (by a forwarded event) is emitted again.
    """
    wm = state.watermarks.get(topic)
    if wm is None:
        return []
    due: list[WindowKey] = []
    for key in list(state.windows):
        t, size, start = key
        if t != topic:
            continue
        end = start + SIZES[size]
        win = state.windows[key]
        if wm >= end + grace_us + RETAIN_CLOSED_US and win.closed:
            del state.windows[key]
            state.dirty_windows.add(key)
            continue
        if wm >= end + grace_us and (not win.closed or win.amended):
            win.closed = True
            win.amended = False
            state.dirty_windows.add(key)
            due.append(key)
    return due


def window_record(partition: int, key: WindowKey, win: Window) -> tuple[bytes, dict[str, Any]]:
    """(key, value) of the metrics-topic record for a closed window."""
    topic, size, start = key
    start_dt = datetime.fromtimestamp(start / 1_000_000, tz=UTC)
    end_dt = datetime.fromtimestamp((start + SIZES[size]) / 1_000_000, tz=UTC)
    rkey = f"{size}:{start_dt.isoformat()}:{topic}:{partition}".encode()
    figures: dict[str, list[dict[str, Any]]] = {}
    for name, series in win.counters.values.items():
        figures[name] = [
            {"labels": list(labels), "value": value} for labels, value in sorted(series.items())
        ]
    return rkey, {
        "kind": "window_figures",
        "size": size,
        "window_start": start_dt.isoformat(),
        "window_end": end_dt.isoformat(),
        "topic": topic,
        "partition": partition,
        "figures": figures,
    }
