"""Event-time windows follow the calendar of the configured zone (Beijing by default)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from streams.aggregate import windows
from streams.aggregate.windows import bounds, configure_zone, local_date, to_us
from streams.settings import WorkerSettings


def us(*args: int) -> int:
    return to_us(datetime(*args, tzinfo=UTC))  # type: ignore[misc]


@pytest.fixture
def berlin() -> Iterator[None]:
    configure_zone("Europe/Berlin")
    try:
        yield
    finally:
        configure_zone(windows.DEFAULT_ZONE)


def test_beijing_days_start_at_16_utc_and_hours_are_utc_hours() -> None:
    assert bounds("1d", us(2026, 11, 30, 15, 59)) == (us(2026, 11, 29, 16), us(2026, 11, 30, 16))
    assert bounds("1d", us(2026, 11, 30, 16, 0)) == (us(2026, 11, 30, 16), us(2026, 12, 1, 16))
    assert bounds("1h", us(2026, 11, 30, 16, 30)) == (us(2026, 11, 30, 16), us(2026, 11, 30, 17))
    assert local_date(us(2026, 11, 30, 16, 0)) == date(2026, 12, 1)


def test_a_daylight_saving_zone_has_a_25_hour_day(berlin: None) -> None:
    start, end = bounds("1d", us(2026, 10, 25, 12))  # clocks go back that night
    assert (start, end) == (us(2026, 10, 24, 22), us(2026, 10, 25, 23))
    assert local_date(start) == date(2026, 10, 25)


def test_window_records_name_zone_and_local_date() -> None:
    from streams.state.partition import Window

    start = us(2026, 11, 30, 16)
    key, value = windows.window_record(3, ("dfip.transactions", "1d", start), Window())
    assert key == b"1d:2026-11-30T16:00:00+00:00:dfip.transactions:3"
    assert value["zone"] == "Asia/Shanghai"
    assert value["local_date"] == "2026-12-01"
    assert value["window_end"] == "2026-12-01T16:00:00+00:00"


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown IANA time zone"):
        WorkerSettings(window_zone="Mars/Olympus")
