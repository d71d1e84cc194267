"""FX rates to CNY by (currency, UTC date) — the rate of the event's day, never a neighbour's."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

__all__ = ["FxTable"]


class FxTable:
    def __init__(self) -> None:
        self._rates: dict[tuple[str, date], Decimal] = {}

    def __len__(self) -> int:
        return len(self._rates)

    def put(self, currency: str, day: date, rate: Decimal) -> None:
        self._rates[(currency, day)] = rate

    def rate(self, currency: str, day: date) -> Decimal | None:
        if currency == "CNY":
            return Decimal(1)
        return self._rates.get((currency, day))
