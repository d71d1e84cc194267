"""Event-time windows (hourly, daily) per input topic-partition, closed by the watermark.

Windows follow the local calendar of one time zone (``DFIP_WORKER_WINDOW_ZONE``, default
Asia/Shanghai: every report in China is by Beijing date): a daily window is
[local midnight, next local midnight) and an hourly one a local clock hour, both as UTC
instants. Asia/Shanghai is UTC+8 all year, so its daily windows start at 16:00 UTC and its
hourly windows are the UTC hours. A zone with daylight saving time gets 23- and 25-hour
days. The bounds of an instant are cached by quarter hour (every zone's offset is a
multiple of 15 minutes, so a quarter hour never straddles a window boundary).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from streams.state.partition import PartitionState, Window, WindowKey

__all__ = [
    "DEFAULT_ZONE",
    "DISBURSED_FEN",
    "EPOCH",
    "QUARTER_US",
    "SIZES",
    "TX_AMOUNT_FEN",
    "TX_COUNT",
    "WINDOW_FIGURES",
    "amend_windows",
    "bounds",
    "close_due",
    "configure_zone",
    "local_date",
    "to_us",
    "window_add",
    "window_record",
    "zone_name",
]

# the figures of a window record (docs/metrics.md, "Event-time windows"): names as constants,
# so a misspelt one is an import error and not a figure that is never reported
TX_COUNT: Final = "tx_count"
TX_AMOUNT_FEN: Final = "tx_amount_fen"
DISBURSED_FEN: Final = "disbursed_fen"
WINDOW_FIGURES: Final = frozenset((TX_COUNT, TX_AMOUNT_FEN, DISBURSED_FEN))

HOUR_US = 3_600_000_000
SIZES: dict[str, int] = {"1h": HOUR_US, "1d": 24 * HOUR_US}  # nominal widths
# Closed windows stay in state this long past closing, so a forwarded (repartitioned) event
# can still amend them; afterwards they are dropped.
RETAIN_CLOSED_US = 24 * HOUR_US
DEFAULT_ZONE = "Asia/Shanghai"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH: Final = _EPOCH
"""What `to_us` counts from (for a hot loop that inlines it)."""
# every zone's offset is a multiple of a quarter hour: the instants of one quarter hour
# (counted from the epoch) share all their windows
QUARTER_US = _QUARTER_US = 900_000_000
_CACHE_MAX = 100_000


class _Calendar:
    """Window bounds in one zone, cached by (size, quarter hour)."""

    def __init__(self, zone: str) -> None:
        self.name = zone
        self.zone = ZoneInfo(zone)
        self._cache: dict[tuple[str, int], tuple[int, int]] = {}

    def bounds(self, size: str, ts_us: int) -> tuple[int, int]:
        key = (size, ts_us // _QUARTER_US)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        local = (_EPOCH + timedelta(microseconds=ts_us)).astimezone(self.zone)
        if size == "1h":
            start = to_us(local.replace(minute=0, second=0, microsecond=0))
            end = start + HOUR_US
        else:
            start = self._midnight(local.date())
            end = self._midnight(local.date() + timedelta(days=1))
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = (start, end)
        return start, end

    def _midnight(self, day: date) -> int:
        return to_us(datetime(day.year, day.month, day.day, tzinfo=self.zone))

    def local_date(self, ts_us: int) -> date:
        return (_EPOCH + timedelta(microseconds=ts_us)).astimezone(self.zone).date()


_calendar = _Calendar(DEFAULT_ZONE)


def configure_zone(zone: str) -> None:
    """Set the zone whose calendar the windows follow (the worker does, at start-up)."""
    global _calendar
    if zone != _calendar.name:
        _calendar = _Calendar(zone)


def zone_name() -> str:
    return _calendar.name


def bounds(size: str, ts_us: int) -> tuple[int, int]:
    """[start, end) in µs of the ``size`` window holding ``ts_us``."""
    return _calendar.bounds(size, ts_us)


def local_date(ts_us: int) -> date:
    """The date of ``ts_us`` in the windows' zone."""
    return _calendar.local_date(ts_us)


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
    for size in SIZES:
        key: WindowKey = (topic, size, bounds(size, ts_us)[0])
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
    for size in SIZES:
        start, end = bounds(size, ts_us)
        key: WindowKey = (topic, size, start)
        win = state.windows.get(key)
        if win is None or (wm is not None and wm >= end + grace_us + RETAIN_CLOSED_US):
            continue
        for figure, labels, value in rows:
            win.counters.add(figure, labels, value)
        win.amended = win.closed
        state.dirty_windows.add(key)


def close_due(state: PartitionState, topic: str, grace_us: int) -> list[tuple[WindowKey, Window]]:
    """Mark windows whose end + grace the watermark has passed; returns those to emit.

    A closed window that was changed again (a forwarded event, a restatement) is emitted
    again, also when this same batch end drops it: the amendment reaches the metrics topic.
    """
    wm = state.watermarks.get(topic)
    if wm is None:
        return []
    due: list[tuple[WindowKey, Window]] = []
    for key in list(state.windows):
        t, size, start = key
        if t != topic:
            continue
        end = bounds(size, start)[1]
        win = state.windows[key]
        if wm >= end + grace_us and (not win.closed or win.amended):
            win.closed = True
            win.amended = False
            state.dirty_windows.add(key)
            due.append((key, win))
        if wm >= end + grace_us + RETAIN_CLOSED_US:
            del state.windows[key]
            state.dirty_windows.add(key)
    return due


def window_record(partition: int, key: WindowKey, win: Window) -> tuple[bytes, dict[str, Any]]:
    """(key, value) of the metrics-topic record for a closed window."""
    topic, size, start = key
    start_dt = datetime.fromtimestamp(start / 1_000_000, tz=UTC)
    end_dt = datetime.fromtimestamp(bounds(size, start)[1] / 1_000_000, tz=UTC)
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
        "zone": _calendar.name,
        "local_date": local_date(start).isoformat(),
        "topic": topic,
        "partition": partition,
        "figures": figures,
    }
