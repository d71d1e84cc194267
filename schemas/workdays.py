"""China working days, for the report-due date of a rule hit.

Public holidays and the adjusted working weekends (调休) come from the `chinese-calendar`
package (pinned; it follows the State Council's yearly notice on holiday arrangements).
For years the installed version does not know yet, only weekends are days off: update the
pin when the State Council publishes the next year's arrangements (usually in November).
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import chinese_calendar

__all__ = ["REPORT_WORKING_DAYS", "add_working_days", "is_working_day"]

REPORT_WORKING_DAYS = 5
"""PBOC Order [2016] No. 3 art. 15: a large-value report within 5 working days."""


def is_working_day(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # a year the package does not cover yet
        return day.weekday() < 5


@lru_cache(maxsize=4096)
def add_working_days(day: date, n: int = REPORT_WORKING_DAYS) -> date:
    """The n-th working day after `day` (`day` itself does not count)."""
    left = n
    while left > 0:
        day += timedelta(days=1)
        if is_working_day(day):
            left -= 1
    return day
