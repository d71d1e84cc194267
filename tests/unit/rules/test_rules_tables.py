"""The cash code table and China working days."""

from __future__ import annotations

from datetime import date

import pytest

from schemas.txcodes import is_cash
from schemas.workdays import add_working_days, is_working_day


@pytest.mark.parametrize(
    ("code", "cash"),
    [
        ("PMNT-CNTR-CWDL", True),
        ("PMNT-CNTR-CDPT", True),
        ("PMNT-CCRD-CWDL", True),
        ("CAMT-CASH-OTHR", True),
        ("pmnt-cntr-bcdp", True),
        ("PMNT/CNTR/CDPT", True),  # the slash spelling of docs/events.md's example
        (" pmnt/ccrd/cwdl ", True),
        ("PMNT/RCDT/XBCT", False),
        ("PMNT-RCDT-DMCT", False),
        ("PMNT-ICDT-CWDL", False),  # a cash sub-family outside the counter/card families
        ("NTRF", False),
        ("NCSH", True),
        ("现金", True),
        ("取现", True),
        ("", False),
        (None, False),
    ],
)
def test_cash_codes(code: str | None, cash: bool) -> None:
    assert is_cash(code) is cash


def test_working_days_follow_the_holiday_calendar() -> None:
    assert not is_working_day(date(2025, 10, 1))  # National Day
    assert is_working_day(date(2025, 10, 11))  # a Saturday worked in exchange
    # 30 Sep 2025: 9, 10, 11 (Sat, worked), 13, 14 October
    assert add_working_days(date(2025, 9, 30)) == date(2025, 10, 14)
    assert add_working_days(date(2025, 9, 1)) == date(2025, 9, 8)
