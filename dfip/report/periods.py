"""Report periods: a Beijing date, a month or a quarter (``--day``, ``--month``, ``--quarter``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

__all__ = ["Period", "month_of", "parse_period", "quarter_of"]

Kind = Literal["day", "month", "quarter"]


@dataclass(frozen=True, slots=True)
class Period:
    kind: Kind
    label: str  # 2026-11-30 · 2026-11 · 2026-Q4
    first: date
    last: date

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def months(self) -> list[Period]:
        """The months of the period (a quarter has three; a day, none)."""
        if self.kind == "day":
            return []
        out, d = [], self.first
        while d <= self.last:
            out.append(month_of(d))
            d = out[-1].last + timedelta(days=1)
        return out


def _month_end(year: int, month: int) -> date:
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def month_of(d: date) -> Period:
    return Period("month", f"{d.year}-{d.month:02d}", d.replace(day=1), _month_end(d.year, d.month))


def quarter_of(d: date) -> Period:
    q = (d.month - 1) // 3 + 1
    first = date(d.year, 3 * q - 2, 1)
    return Period("quarter", f"{d.year}-Q{q}", first, _month_end(d.year, 3 * q))


def parse_period(*, day: str | None, month: str | None, quarter: str | None) -> Period:
    """Exactly one of ``day`` (YYYY-MM-DD), ``month`` (YYYY-MM), ``quarter`` (YYYY-Qn)."""
    given = [x for x in (day, month, quarter) if x]
    if len(given) != 1:
        raise ValueError("give exactly one of --day, --month, --quarter")
    try:
        if day:
            d = date.fromisoformat(day)
            return Period("day", d.isoformat(), d, d)
        if month:
            m = re.fullmatch(r"(\d{4})-(\d{2})", month)
            if not m or not 1 <= int(m.group(2)) <= 12:
                raise ValueError
            return month_of(date(int(m.group(1)), int(m.group(2)), 1))
        assert quarter is not None
        q = re.fullmatch(r"(\d{4})-?[Qq]([1-4])", quarter)
        if not q:
            raise ValueError
        return quarter_of(date(int(q.group(1)), 3 * int(q.group(2)) - 2, 1))
    except ValueError:
        raise ValueError(
            f"{given[0]!r}: expected --day YYYY-MM-DD, --month YYYY-MM or --quarter YYYY-Qn"
        ) from None
