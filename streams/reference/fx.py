"""FX rates to CNY as a central bank publishes them (the CFETS central parity).

The rate in force for an event at instant ``t`` is, among the rates of its currency whose
``published_at <= t``, the one with the latest ``rate_date`` on or before ``t``'s calendar
date in Asia/Shanghai (UTC+8, no daylight saving since 1991), provided that date is at most
``max_age_days`` before it. So a Saturday, a Monday morning before 09:15 or a holiday week
takes the last business day's rate, and the result does not depend on whether a rate that was
published after the event was read before or after it. A re-published rate (same currency and
date) is a correction: its value replaces the earlier one, in force from the *first*
publication's ``published_at`` (so a correction never leaves an event without a rate).
That first time is kept only here, in memory: it survives a restart because dfip.fx keeps
every record, never compacted (schemas/catalog.py, checked by the worker's preflight), so a
worker reading the topic from offset 0 meets the first publication again.

Every change is logged (``changes``), so each partition can restate exactly the events a new
rate concerns (streams/aggregate/fx_book.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

__all__ = ["DEFAULT_MAX_AGE_DAYS", "SHANGHAI_OFFSET", "FxTable"]

SHANGHAI_OFFSET = timedelta(hours=8)
# Spring Festival and National Day close the market for 7-8 days (National Day 2025: the
# rate of 30 Sep served until 9 Oct, 9 days), so 10 days covers the longest closure with a
# day to spare; a gap longer than that is a missing feed, not a holiday.
DEFAULT_MAX_AGE_DAYS = 10
_ONE = Decimal(1)


class FxTable:
    def __init__(self, max_age_days: int = DEFAULT_MAX_AGE_DAYS) -> None:
        self.max_age_days = max_age_days
        # (currency, rate_date) → (rate, published_at of its first publication)
        self._rates: dict[tuple[str, date], tuple[Decimal, datetime]] = {}
        # every (currency, rate_date) whose entry changed, in reading order: a partition that
        # has reconciled with the first n changes looks only at the ones after
        self.changes: list[tuple[str, date]] = []
        self._offsets: dict[tuple[str, date], int] = {}  # last dfip.fx offset applied

    def __len__(self) -> int:
        return len(self._rates)

    @property
    def version(self) -> int:
        return len(self.changes)

    def put(
        self,
        currency: str,
        day: date,
        rate: Decimal,
        published_at: datetime,
        offset: int | None = None,
    ) -> bool:
        """Add or correct a rate; True if the table changed (a re-sent record does not).

        ``offset``: the record's dfip.fx offset. A record at or before the last one applied
        for this currency and date is a re-read (a restore rewinds the reader) and changes
        nothing: re-applying an older publication would flip a corrected rate back and forth.
        """
        key = (currency, day)
        if offset is not None:
            if offset <= self._offsets.get(key, -1):
                return False
            self._offsets[key] = offset
        old = self._rates.get(key)
        if old is not None:
            published_at = min(old[1], published_at)
            if old[0] == rate and old[1] == published_at:
                return False
        self._rates[key] = (rate, published_at)
        self.changes.append(key)
        return True

    def rate_at(self, currency: str, at: datetime) -> Decimal | None:
        """The rate in force at ``at`` (timezone-aware), or None."""
        if currency == "CNY":
            return _ONE
        local = (at.astimezone(UTC) + SHANGHAI_OFFSET).date()
        rates = self._rates
        for back in range(self.max_age_days + 1):
            entry = rates.get((currency, local - timedelta(days=back)))
            if entry is not None and entry[1] <= at:
                return entry[0]
        return None
