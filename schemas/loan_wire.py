"""Loan events decoded by `msgspec`, then made the models' own instances.

`decode_loan(raw)` parses a loan event's JSON bytes with msgspec in one call into one of the
wire structs below (a tagged union on ``event_type``), checks each field by the models'
rules, and returns the pydantic model the models' decode returns (same class, same
``__dict__`` in the same order, same ``model_fields_set``), built as ``model_construct``
builds one, without validating again. Downstream code (the loan handlers, FX parking,
restatement) keeps reading the models. It raises on anything it is not sure of; the caller
then decodes the record with `schemas.codec`, which decides and words the error (as for
transactions, `schemas.wire`).

Checks: enums, the currency literal, int bounds, string lengths and ``None`` by msgspec in C;
the envelope as `TransactionWire` checks it (event id by str methods, the time by msgspec's
RFC 3339 parser only in a form too short to hold a fraction finer than a microsecond and
only at a zero offset, USCC and source by the caches of values seen valid); loan,
application and lender ids by the models' pattern (``fullmatch``, no ``$``); amounts and
rates by the models' own field validators (`decimal_field`'s, which also bound them);
``partner_share`` only on joint lending, as `LoanDisbursed` checks it. Property tests:
tests/unit/schemas/test_loan_wire.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, Literal, get_args

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType
from pydantic import PlainValidator

from schemas.enums import (
    Collateral,
    InstitutionType,
    LoanChannel,
    LoanEventType,
    RepaymentMethod,
    RiskClass,
)
from schemas.events import (
    LoanApplicationSubmitted,
    LoanApproved,
    LoanClosed,
    LoanDefaulted,
    LoanDelinquencyChanged,
    LoanDisbursed,
    LoanEventBase,
    LoanRejected,
    LoanRepayment,
    LoanRiskClassChanged,
    LoanWithdrawn,
    LoanWrittenOff,
)
from schemas.fields import (
    EARLIEST,
    Amount,
    AnnualRate,
    Identifier,
    NonNegativeAmount,
    PartnerShare,
    seen_uscc,
)
from schemas.money import MAX_INTEGER_DIGITS, SUPPORTED_CURRENCIES
from schemas.versions import SCHEMA_VERSION
from schemas.wire import seen_source

__all__ = ["LoanWire", "decode_loan"]

_INT_LIMIT: Final = 10**MAX_INTEGER_DIGITS
_TIME: Final = msgspec.json.Decoder(Annotated[datetime, Meta(tz=True)]).decode
_TIME_MAX_JSON: Final = 29  # see schemas/wire.py: no fraction finer than a microsecond
_USCC: Final = seen_uscc()
_SOURCE: Final = seen_source()
# Identifier's pattern and lengths (^[A-Za-z0-9][A-Za-z0-9_.:/\-]*$, 1-64): fullmatch, so
# no trailing newline passes as `$` would let it
_ID_TEXT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]*").fullmatch
_ID_MAX: Final = 64
assert get_args(Identifier)[1].max_length == _ID_MAX


def _validator(field: Any) -> Callable[[object], Decimal]:
    """The model's own validator of a `decimal_field` (text or int → bounded Decimal)."""
    for meta in field.__metadata__:
        if isinstance(meta, PlainValidator):
            check: Callable[[object], Decimal] = meta.func  # type: ignore[assignment]
            return check
    raise TypeError(field)


_AMOUNT: Final = _validator(Amount)
_NON_NEGATIVE: Final = _validator(NonNegativeAmount)
_ANNUAL_RATE: Final = _validator(AnnualRate)
_PARTNER_SHARE: Final = _validator(PartnerShare)

if TYPE_CHECKING:
    _Currency = str
    _Raw = Any
    _Decimal = Decimal
else:
    _Currency = Literal[tuple(sorted(SUPPORTED_CURRENCIES))]
    _Raw = Raw
    # the wire's form (text, or an int of at most MAX_INTEGER_DIGITS digits; never a float),
    # made a Decimal by the model's validator in __post_init__
    _Decimal = str | Annotated[int, Meta(gt=-_INT_LIMIT, lt=_INT_LIMIT)]

_ShortText = Annotated[str, Meta(min_length=1, max_length=140)]
_object_setattr: Final = object.__setattr__


class LoanWire(Struct, forbid_unknown_fields=True, gc=False, tag_field="event_type", kw_only=True):
    """The envelope and loan fields every loan event carries, checked as the models check
    them. A subclass per event type (its tag is the ``event_type`` value); not frozen only
    so that ``__post_init__`` can replace the raw fields."""

    # the model each subclass stands for, its field names in the model's order (the
    # ``__dict__`` of a model instance), a getter of those values, the amounts to check
    MODEL: ClassVar[type[LoanEventBase]]
    NAMES: ClassVar[tuple[str, ...]]
    VALUES: ClassVar[Callable[..., tuple[Any, ...]]]
    AMOUNTS: ClassVar[tuple[tuple[str, Callable[[object], Decimal]], ...]] = ()
    event_type: ClassVar[LoanEventType]

    kind: Literal["loan"]
    event_id: Annotated[str, Meta(min_length=1, max_length=128)]
    schema_version: Annotated[int, Meta(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)]
    source: str
    institution_type: InstitutionType
    occurred_at: _Raw  # the raw JSON until __post_init__ replaces it by the datetime
    enterprise_uscc: str
    loan_id: str
    application_id: str
    lender_id: str
    channel: LoanChannel

    def __post_init__(self) -> None:
        # any exception here fails the decode (the caller then runs the models' path)
        event_id = self.event_id
        if not event_id.isascii() or not event_id.isprintable() or " " in event_id:
            raise ValueError("event_id")
        raw = self.occurred_at
        if len(raw) > _TIME_MAX_JSON:
            raise ValueError("occurred_at")
        at = _TIME(raw)
        if at.tzinfo is not UTC or at < EARLIEST:  # UtcDatetime: from EARLIEST on, UTC
            raise ValueError("occurred_at")
        self.occurred_at = at
        self.enterprise_uscc = _USCC[self.enterprise_uscc]
        _SOURCE[self.source]
        for text in (self.loan_id, self.application_id, self.lender_id):
            if len(text) > _ID_MAX or _ID_TEXT(text) is None:
                raise ValueError("identifier")
        for name, check in self.AMOUNTS:
            setattr(self, name, check(getattr(self, name)))

    def model(self) -> LoanEventBase:
        """The model instance ``codec.decode`` gives for this payload (as
        ``model_construct`` makes one: the values are already the validated ones)."""
        cls = self.MODEL
        fields_set = self.fields_set()  # first: it sets a field left out to its default
        event = cls.__new__(cls)
        _object_setattr(event, "__dict__", dict(zip(self.NAMES, self.VALUES(self), strict=True)))
        _object_setattr(event, "__pydantic_fields_set__", fields_set)
        _object_setattr(event, "__pydantic_extra__", None)
        _object_setattr(event, "__pydantic_private__", None)
        return event

    def fields_set(self) -> set[str]:
        """The fields the payload carried (every one: loan events have no defaults but
        those overridden below)."""
        return set(self.NAMES)


class _Terms(LoanWire, kw_only=True):
    principal: _Decimal
    currency: _Currency
    annual_rate: _Decimal


class LoanApplicationSubmittedWire(_Terms, tag="application_submitted", kw_only=True):
    term_months: Annotated[int, Meta(ge=1, le=600)]
    collateral: Collateral
    inclusive_sme: bool


class LoanApprovedWire(_Terms, tag="approved", kw_only=True):
    pass


class LoanRejectedWire(LoanWire, tag="rejected", kw_only=True):
    reason: _ShortText | UnsetType | None = UNSET

    def fields_set(self) -> set[str]:
        names = set(self.NAMES)
        if self.reason is UNSET:
            self.reason = None
            names.discard("reason")
        return names


class LoanWithdrawnWire(LoanWire, tag="withdrawn", kw_only=True):
    pass


class LoanDisbursedWire(_Terms, tag="disbursed", kw_only=True):
    term_months: Annotated[int, Meta(ge=1, le=600)]
    collateral: Collateral
    inclusive_sme: bool
    repayment_method: RepaymentMethod
    partner_share: _Decimal | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        super().__post_init__()
        share: Any = self.partner_share
        if share is not UNSET and share is not None:
            # LoanDisbursed._joint_only: a partner share only in joint lending
            if self.institution_type is not InstitutionType.joint:
                raise ValueError("partner_share")
            self.partner_share = _PARTNER_SHARE(share)

    def fields_set(self) -> set[str]:
        names = set(self.NAMES)
        if self.partner_share is UNSET:
            self.partner_share = None
            names.discard("partner_share")
        return names


class LoanRepaymentWire(LoanWire, tag="repayment", kw_only=True):
    principal_amount: _Decimal
    interest_amount: _Decimal
    currency: _Currency


class LoanDelinquencyChangedWire(LoanWire, tag="delinquency_changed", kw_only=True):
    days_past_due: Annotated[int, Meta(ge=0, le=100_000)]


class LoanRiskClassChangedWire(LoanWire, tag="risk_class_changed", kw_only=True):
    risk_class: RiskClass


class LoanDefaultedWire(LoanWire, tag="defaulted", kw_only=True):
    pass


class LoanWrittenOffWire(LoanWire, tag="written_off", kw_only=True):
    amount: _Decimal
    currency: _Currency


class LoanClosedWire(LoanWire, tag="closed", kw_only=True):
    pass


_WIRES: Final[dict[type[LoanWire], tuple[type[LoanEventBase], tuple[tuple[str, Any], ...]]]] = {
    LoanApplicationSubmittedWire: (
        LoanApplicationSubmitted,
        (("principal", _AMOUNT), ("annual_rate", _ANNUAL_RATE)),
    ),
    LoanApprovedWire: (LoanApproved, (("principal", _AMOUNT), ("annual_rate", _ANNUAL_RATE))),
    LoanRejectedWire: (LoanRejected, ()),
    LoanWithdrawnWire: (LoanWithdrawn, ()),
    LoanDisbursedWire: (
        LoanDisbursed,
        (("principal", _AMOUNT), ("annual_rate", _ANNUAL_RATE)),
    ),
    LoanRepaymentWire: (
        LoanRepayment,
        (("principal_amount", _NON_NEGATIVE), ("interest_amount", _NON_NEGATIVE)),
    ),
    LoanDelinquencyChangedWire: (LoanDelinquencyChanged, ()),
    LoanRiskClassChangedWire: (LoanRiskClassChanged, ()),
    LoanDefaultedWire: (LoanDefaulted, ()),
    LoanWrittenOffWire: (LoanWrittenOff, (("amount", _AMOUNT),)),
    LoanClosedWire: (LoanClosed, ()),
}


def _bind() -> None:
    """Each wire class's model, field names in the model's order and amount checks; and a
    check that its fields are the model's (names; the tag stands for ``event_type``)."""
    for wire, (model, amounts) in _WIRES.items():
        names = tuple(model.model_fields)
        own = {*wire.__struct_fields__, "event_type"}
        if own != set(names):
            raise TypeError(f"{wire.__name__}: fields {sorted(own ^ set(names))} differ")
        wire.MODEL = model
        wire.NAMES = names
        wire.VALUES = attrgetter(*names)
        wire.AMOUNTS = amounts
        (tag,) = get_args(model.model_fields["event_type"].annotation)
        if wire.__struct_config__.tag != tag.value:
            raise TypeError(f"{wire.__name__}: tag is not {tag.value}")
        wire.event_type = tag


_bind()

AnyLoanWire = (
    LoanApplicationSubmittedWire
    | LoanApprovedWire
    | LoanRejectedWire
    | LoanWithdrawnWire
    | LoanDisbursedWire
    | LoanRepaymentWire
    | LoanDelinquencyChangedWire
    | LoanRiskClassChangedWire
    | LoanDefaultedWire
    | LoanWrittenOffWire
    | LoanClosedWire
)
_DECODE: Final = msgspec.json.Decoder(AnyLoanWire).decode


def decode_loan(raw: bytes) -> LoanEventBase:
    """Bytes → the loan event's model instance; raises (any exception) on anything it does
    not accept, and the caller then decodes with `schemas.codec.decode`, which decides and
    words the error."""
    wire: LoanWire = _DECODE(raw)
    return wire.model()
