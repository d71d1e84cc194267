"""Rule hits on `dfip.alerts`, their acknowledgements on `dfip.alerts.ack`, and the
rule-set configuration both the stream worker and the simulator's oracle read.

A hit names an enterprise (USCC) and the events involved: `dfip.alerts` is for the
reporting institution's compliance staff only (docs/aml-rules.md, ACL example); metrics
and logs carry none of it.
"""

from __future__ import annotations

import tomllib
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.events import Record, _required_on_wire
from schemas.fields import EventId, Identifier, Uscc, UtcDatetime

__all__ = [
    "DEFAULT_RULESET",
    "MAX_ALERT_EVENTS",
    "Alert",
    "AlertAck",
    "AlertRule",
    "RuleSet",
    "load_ruleset",
]

DEFAULT_RULESET = Path(__file__).with_name("aml_rules.toml")
"""The rule set shipped with DFIP (versioned; DFIP_WORKER_RULES_FILE picks another)."""

MAX_ALERT_EVENTS = 500
"""At most this many event ids (and amounts) on one hit; `event_count` has the true number."""


class AlertRule(StrEnum):
    """What a hit found (docs/aml-rules.md)."""

    large_value = "large_value"
    large_value_daily = "large_value_daily"
    cash = "cash"
    structuring = "structuring"
    velocity = "velocity"
    pass_through = "pass_through"  # noqa: S105 (a rule name, not a password)
    round_amounts = "round_amounts"
    dormant_reactivation = "dormant_reactivation"


class Alert(Record):
    """One rule hit: written once to `dfip.alerts` (key = enterprise USCC)."""

    kind: Literal["alert"] = _required_on_wire("alert")
    rule: AlertRule
    ruleset_version: Identifier
    enterprise_uscc: Uscc
    institution_type: Identifier = Field(description="Of the hit's first event")
    band: Identifier = Field(description="Digitalisation band of the hit's first event")
    region: Identifier
    event_ids: Annotated[list[EventId], Field(min_length=1, max_length=MAX_ALERT_EVENTS)]
    amounts_fen: Annotated[
        list[Annotated[int, Field(strict=True, ge=0)]],
        Field(min_length=1, max_length=MAX_ALERT_EVENTS),
    ] = Field(description="CNY fen of each event, in the order of event_ids")
    event_count: Annotated[int, Field(strict=True, ge=1)]
    total_fen: Annotated[int, Field(strict=True, ge=0)]
    window_start: UtcDatetime
    window_end: UtcDatetime = Field(description="Exclusive")
    detected_at: UtcDatetime = Field(description="Wall clock of the worker that decided it")
    report_due: date = Field(
        description="5th China working day after the Beijing date of the last event"
    )


class AlertAck(Record):
    """An institution's acknowledgement that it reported (or dismissed) a hit."""

    kind: Literal["alert_ack"] = _required_on_wire("alert_ack")
    alert_id: EventId
    enterprise_uscc: Uscc
    outcome: Literal["reported", "dismissed"]
    acknowledged_at: UtcDatetime


# ---- configuration ---------------------------------------------------------------------

_CFG = ConfigDict(frozen=True, extra="forbid")
Fen = Annotated[int, Field(strict=True, gt=0)]
Pct = Annotated[int, Field(strict=True, ge=0, le=100)]
Hours = Annotated[int, Field(strict=True, ge=1, le=24 * 31)]


class LargeValue(BaseModel):
    """PBOC Order [2016] No. 3 art. 5: non-natural-person transfers."""

    model_config = _CFG
    cny_fen: Fen = 200_000_000
    usd_cents: Fen = 20_000_000


class Cash(BaseModel):
    """PBOC Order [2016] No. 3 art. 5: cash deposits/withdrawals, per transaction or per day."""

    model_config = _CFG
    cny_fen: Fen = 5_000_000
    usd_cents: Fen = 1_000_000


class Structuring(BaseModel):
    model_config = _CFG
    threshold_fen: Fen = 5_000_000
    band_low_pct: Pct = 90
    band_high_pct: Pct = 100
    min_count: Annotated[int, Field(strict=True, ge=2)] = 3
    window_hours: Hours = 24

    @model_validator(mode="after")
    def _band(self) -> Structuring:
        if not self.band_low_pct < self.band_high_pct:
            raise ValueError("band_low_pct must be below band_high_pct")
        return self


class Velocity(BaseModel):
    model_config = _CFG
    baseline_hours: Hours = 168
    min_count: Annotated[int, Field(strict=True, ge=1)] = 20
    factor: Annotated[int, Field(strict=True, ge=1)] = 5


class PassThrough(BaseModel):
    model_config = _CFG
    window_hours: Hours = 6
    min_credit_fen: Fen = 10_000_000
    tolerance_pct: Pct = 10


class RoundAmounts(BaseModel):
    model_config = _CFG
    unit: Annotated[int, Field(strict=True, ge=1)] = 10_000
    """Round = a whole multiple of this many major units of the event's currency."""
    min_count: Annotated[int, Field(strict=True, ge=1)] = 3


class Dormant(BaseModel):
    model_config = _CFG
    days: Annotated[int, Field(strict=True, ge=1, le=3650)] = 180


class RuleSet(BaseModel):
    """The rule set: its version goes on every hit. Omitted sections take the defaults."""

    model_config = _CFG
    version: Identifier
    large_value: LargeValue = LargeValue()
    cash: Cash = Cash()
    structuring: Structuring = Structuring()
    velocity: Velocity = Velocity()
    pass_through: PassThrough = PassThrough()
    round_amounts: RoundAmounts = RoundAmounts()
    dormant: Dormant = Dormant()
    disabled: list[AlertRule] = Field(default_factory=list)

    def enabled(self, rule: AlertRule) -> bool:
        return rule not in self.disabled


def load_ruleset(path: Path | None = None) -> RuleSet:
    """Read and validate a rule-set TOML file (ValueError naming the file on bad content)."""
    path = path or DEFAULT_RULESET
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    except UnicodeDecodeError as exc:  # a ValueError too, but one that names no file
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from None
    try:
        return RuleSet.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ValueError(f"{path}: {where}: {first['msg']}{more}") from None
