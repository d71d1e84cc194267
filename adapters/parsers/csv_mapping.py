"""Per-bank column mappings for CSV statement exports (TOML files, see docs/adapters.md).

CSV exports have no standard: one bank writes GB18030 with a title block, separate 借方/贷方
columns and YYYYMMDD dates; another writes UTF-8 with one signed amount and DD/MM/YYYY. A
mapping says where each field is (column name or 1-based position) and how to read it.
"""

from __future__ import annotations

import codecs
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.files import read_regular_file
from schemas import TxChannel

__all__ = [
    "AccountSource",
    "Columns",
    "CsvMapping",
    "MappingError",
    "load_mapping",
    "shipped_mappings",
]

ColumnRef = str | int  # header name, or 1-based position
_STRICT = ConfigDict(extra="forbid", frozen=True)


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file and the field."""


class Columns(BaseModel):
    model_config = _STRICT

    booking_date: ColumnRef
    booking_time: ColumnRef | None = None
    value_date: ColumnRef | None = None
    amount: ColumnRef | None = None  # signed, or unsigned with an indicator column
    debit: ColumnRef | None = None
    credit: ColumnRef | None = None
    indicator: ColumnRef | None = None
    currency: ColumnRef | None = None
    description: list[ColumnRef] = Field(default_factory=list)
    reference: ColumnRef | None = None  # the bank's own serial number of the entry
    balance: ColumnRef | None = None
    counterparty_name: ColumnRef | None = None
    counterparty_account: ColumnRef | None = None  # read for its IBAN country only
    counterparty_bic: ColumnRef | None = None
    counterparty_country: ColumnRef | None = None
    customs_mode: ColumnRef | None = None
    channel: ColumnRef | None = None
    tx_code: ColumnRef | None = None

    @field_validator("description", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str | int) else value


class AccountSource(BaseModel):
    """Where the statement account comes from: a column, or a line above the table."""

    model_config = _STRICT

    column: ColumnRef | None = None
    preamble_pattern: str | None = None  # regex with a named group `account`

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.column is None) == (self.preamble_pattern is None):
            raise ValueError("give exactly one of column or preamble_pattern")
        if self.preamble_pattern is not None:
            try:
                pattern = re.compile(self.preamble_pattern)
            except re.error as exc:
                raise ValueError(f"preamble_pattern: {exc}") from None
            if "account" not in pattern.groupindex:
                raise ValueError("preamble_pattern needs a named group (?P<account>…)")
        return self


class CsvMapping(BaseModel):
    model_config = _STRICT

    name: str
    description: str = ""
    encoding: str = "utf-8"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    header_line: int | None = Field(default=None, ge=1)  # 1-based line of the header row
    header_marker: str | None = None  # or: the first line containing this text
    max_preamble_lines: int = Field(default=100, ge=1)
    stop_markers: list[str] = Field(default_factory=list)  # a row starting so ends the table
    amount_mode: Literal["signed", "debit_credit", "indicator"]
    thousands_separator: Literal[",", "'", " ", "."] | None = None  # None: reject 1,234.00
    decimal_separator: Literal[".", ","] = "."
    date_format: str | list[str] = "%Y-%m-%d"  # a list: tried in order (year-first only!)
    time_format: str = "%H:%M:%S"
    timezone: str = "Asia/Shanghai"
    currency: str | None = None  # when there is no currency column
    currency_aliases: dict[str, str] = Field(default_factory=dict)  # "人民币" → "CNY"
    indicator_values: dict[str, Literal["credit", "debit"]] = Field(default_factory=dict)
    channel_values: dict[str, TxChannel] = Field(default_factory=dict)  # "网上银行" → online
    account: AccountSource
    columns: Columns

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        c = self.columns
        needs = {
            "signed": ("amount",),
            "debit_credit": ("debit", "credit"),
            "indicator": ("amount", "indicator"),
        }[self.amount_mode]
        missing = [name for name in needs if getattr(c, name) is None]
        if missing:
            raise ValueError(f"amount_mode {self.amount_mode} needs columns: {', '.join(missing)}")
        if self.amount_mode == "indicator" and not self.indicator_values:
            raise ValueError("amount_mode indicator needs indicator_values")
        if c.currency is None and self.currency is None:
            raise ValueError("give a currency column or a fixed currency")
        if (
            self.thousands_separator is not None
            and self.thousands_separator == self.decimal_separator
        ):
            raise ValueError("thousands and decimal separators must differ")
        if self.header_line is not None and self.header_marker is not None:
            raise ValueError("give header_line or header_marker, not both")
        return self


def shipped_mappings() -> dict[str, Path]:
    """Mapping name → file, for the mappings shipped in adapters/mappings."""
    folder = Path(str(resources.files("adapters") / "mappings"))
    return {
        p.stem: p
        for p in sorted(folder.glob("*.toml"))
        if not p.stem.startswith("accounts")  # account maps live there too, as examples
    }


def load_mapping(ref: Path | str) -> CsvMapping:
    """Load a mapping by path, or by the name of a shipped mapping; raises `MappingError`."""
    path = Path(ref)
    if not path.exists():
        shipped = shipped_mappings()
        if str(ref) not in shipped:
            known = ", ".join(shipped) or "none"
            raise MappingError(f"mapping {str(ref)!r}: no such file or shipped mapping ({known})")
        path = shipped[str(ref)]
    try:
        doc = tomllib.loads(read_regular_file(path).decode("utf-8"))
    except OSError as exc:
        raise MappingError(f"{path}: cannot read mapping: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise MappingError(
            f"{path}:{line}: cannot read mapping: not UTF-8 ({exc.reason}; save it as UTF-8)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: cannot read mapping: {exc}") from None
    try:
        return CsvMapping.model_validate(doc)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(mapping)'}: "
            + str(e["msg"]).removeprefix("Value error, ")
            for e in exc.errors()[:5]
        ]
        raise MappingError(f"{path}: {'; '.join(problems)}") from None
