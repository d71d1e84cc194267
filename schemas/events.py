"""Canonical event models (pydantic v2): what adapters produce and stream workers consume.

All models are frozen and reject unknown fields. Python construction is lenient about
input types (`channel="online"`, `booking_date="2024-05-01"`); the wire is strict
(`schemas.codec` validates JSON in strict mode). `kind`, `event_type` and
`schema_version` fill themselves in when constructing in Python, but are required on
the wire.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, TypeVar, cast, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from schemas.enums import (
    Collateral,
    CustomsMode,
    DeadLetterStage,
    DigitalizationBand,
    Direction,
    DpdBucket,
    InstitutionType,
    LoanChannel,
    LoanEventType,
    Region,
    RepaymentMethod,
    RiskClass,
    Sector,
    TxChannel,
    band_for_score,
    dpd_bucket,
)
from schemas.errors import SchemaError, schema_error_from_validation
from schemas.fields import (
    AccountRef,
    Amount,
    AnnualRate,
    CountryCode,
    Currency,
    EventId,
    Identifier,
    NonNegativeAmount,
    PartnerShare,
    Rate,
    Score,
    ShortText,
    Uscc,
    UtcDatetime,
)
from schemas.ids import dead_letter_id, make_event_id
from schemas.uscc import region_of
from schemas.versions import SCHEMA_VERSION

__all__ = [
    "LOAN_EVENT_CLASSES",
    "SCHEMA_VERSION",
    "DeadLetter",
    "DigitalizationScore",
    "DimensionScores",
    "Event",
    "EventEnvelope",
    "FxRate",
    "LoanApplicationSubmitted",
    "LoanApproved",
    "LoanClosed",
    "LoanDefaulted",
    "LoanDelinquencyChanged",
    "LoanDisbursed",
    "LoanEvent",
    "LoanEventBase",
    "LoanRejected",
    "LoanRepayment",
    "LoanRiskClassChanged",
    "LoanWithdrawn",
    "LoanWrittenOff",
    "Record",
    "TransactionEvent",
]

T = TypeVar("T")

_CONFIG = ConfigDict(frozen=True, extra="forbid", validate_default=False)


class _Model(BaseModel):
    """Frozen, closed model whose Python constructor raises `SchemaError`."""

    model_config = _CONFIG

    def __init__(self, /, **data: Any) -> None:
        # Adapters build events in Python: give them the same structured error (field
        # paths, masked values) the decode path gives, not a raw pydantic error.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise schema_error_from_validation(exc) from None

    # Mark this __init__ as pydantic's own (as RootModel does) so that validation paths
    # (`model_validate*`, the codec) do not route through it: it would cost time, and
    # Record's would fill in `kind` / `schema_version`, which the wire must carry.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


def _required_on_wire(value: T) -> T:
    """A constant field that Python constructors fill in but every payload must carry.

    At runtime the field has no default, so validation (the wire) requires it;
    `Record.__init__` supplies `value` for Python construction. Type checkers see a
    default, so adapters may leave it out.
    """
    del value  # recovered from the Literal annotation by __pydantic_init_subclass__
    return cast(T, Field())


class Record(_Model):
    """Base of every record on a DFIP topic: `kind`, `event_id`, `schema_version`."""

    # Declared first so that `kind` leads every JSON payload; subclasses narrow it.
    kind: str
    event_id: EventId
    schema_version: Annotated[int, Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION, strict=True)] = (
        _required_on_wire(SCHEMA_VERSION)
    )

    _wire_constants: ClassVar[dict[str, Any]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        constants: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for name in ("kind", "event_type"):
            info = cls.model_fields.get(name)
            if info is not None and get_origin(info.annotation) is Literal:
                (constants[name],) = get_args(info.annotation)
        cls._wire_constants = constants

    def __init__(self, /, **data: Any) -> None:
        for name, value in self._wire_constants.items():
            data.setdefault(name, value)
        super().__init__(**data)

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class EventEnvelope(Record):
    """Envelope of every enterprise-keyed event (key = `enterprise_uscc`)."""

    source: Identifier = Field(description="Institution id of the producing bank or fintech")
    institution_type: InstitutionType
    occurred_at: UtcDatetime = Field(description="Event time; an offset is required, kept in UTC")
    enterprise_uscc: Uscc

    @property
    def region(self) -> Region:
        """Zhejiang prefecture city of the enterprise (or `other`), from its USCC."""
        return region_of(self.enterprise_uscc)


class TransactionEvent(EventEnvelope):
    """One booked statement entry of an enterprise account."""

    kind: Literal["transaction"] = _required_on_wire("transaction")
    direction: Direction
    amount: NonNegativeAmount = Field(
        description="(>= 0) Zero where the statement entry says zero; the sign is in `direction`"
    )
    currency: Currency
    booking_date: date
    value_date: date
    bank_tx_code: Annotated[str, Field(min_length=1, max_length=35)] | None = Field(
        default=None, description="ISO 20022 Domn/Fmly/SubFmly, MT940 type code or proprietary"
    )
    counterparty_country: CountryCode | None = None
    channel: TxChannel = TxChannel.other
    customs_mode: CustomsMode | None = Field(
        default=None, description="Cross-border e-commerce customs mode, where known"
    )
    account_ref: AccountRef | None = Field(
        default=None, description="pseudonymise_account() of the enterprise account"
    )
    description: ShortText | None = Field(
        default=None,
        description="The bank's free text; adapters replace account and card numbers "
        "in it by `<masked>`",
    )


class LoanEventBase(EventEnvelope):
    """Fields of every loan lifecycle event; `enterprise_uscc` is the borrower."""

    kind: Literal["loan"] = _required_on_wire("loan")
    event_type: LoanEventType
    loan_id: Identifier
    application_id: Identifier
    lender_id: Identifier
    channel: LoanChannel


class LoanApplicationSubmitted(LoanEventBase):
    """An enterprise applied for a loan."""

    event_type: Literal[LoanEventType.application_submitted] = _required_on_wire(
        LoanEventType.application_submitted
    )
    principal: Amount
    currency: Currency
    annual_rate: AnnualRate
    term_months: Annotated[int, Field(strict=True, ge=1, le=600)]
    collateral: Collateral
    inclusive_sme: bool


class LoanApproved(LoanEventBase):
    """The application was approved (approved terms may differ from those applied for)."""

    event_type: Literal[LoanEventType.approved] = _required_on_wire(LoanEventType.approved)
    principal: Amount
    currency: Currency
    annual_rate: AnnualRate


class LoanRejected(LoanEventBase):
    """The lender declined the application."""

    event_type: Literal[LoanEventType.rejected] = _required_on_wire(LoanEventType.rejected)
    reason: ShortText | None = None


class LoanWithdrawn(LoanEventBase):
    """The applicant withdrew the application."""

    event_type: Literal[LoanEventType.withdrawn] = _required_on_wire(LoanEventType.withdrawn)


class LoanDisbursed(LoanEventBase):
    """Principal was paid out; the loan becomes outstanding."""

    event_type: Literal[LoanEventType.disbursed] = _required_on_wire(LoanEventType.disbursed)
    principal: Amount
    currency: Currency
    annual_rate: AnnualRate
    term_months: Annotated[int, Field(strict=True, ge=1, le=600)]
    collateral: Collateral
    inclusive_sme: bool
    repayment_method: RepaymentMethod
    partner_share: PartnerShare | None = Field(
        default=None, description="Joint lending only: share funded by the partner (>= 0.3)"
    )

    @field_validator("partner_share")
    @classmethod
    def _joint_only(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        if value is not None and info.data.get("institution_type") not in (
            None,
            InstitutionType.joint,
        ):
            raise ValueError("only joint lending has a partner share")
        return value


class LoanRepayment(LoanEventBase):
    """A repayment of principal and/or interest."""

    event_type: Literal[LoanEventType.repayment] = _required_on_wire(LoanEventType.repayment)
    principal_amount: NonNegativeAmount
    interest_amount: NonNegativeAmount
    currency: Currency


class LoanDelinquencyChanged(LoanEventBase):
    """Days past due changed (0 = current again)."""

    event_type: Literal[LoanEventType.delinquency_changed] = _required_on_wire(
        LoanEventType.delinquency_changed
    )
    days_past_due: Annotated[int, Field(strict=True, ge=0, le=100_000)]

    @property
    def dpd_bucket(self) -> DpdBucket:
        return dpd_bucket(self.days_past_due)


class LoanRiskClassChanged(LoanEventBase):
    """The five-category risk classification changed."""

    event_type: Literal[LoanEventType.risk_class_changed] = _required_on_wire(
        LoanEventType.risk_class_changed
    )
    risk_class: RiskClass


class LoanDefaulted(LoanEventBase):
    """The loan is in default (> 90 days past due or unlikely to pay)."""

    event_type: Literal[LoanEventType.defaulted] = _required_on_wire(LoanEventType.defaulted)


class LoanWrittenOff(LoanEventBase):
    """An amount of principal was written off."""

    event_type: Literal[LoanEventType.written_off] = _required_on_wire(LoanEventType.written_off)
    amount: Amount
    currency: Currency


class LoanClosed(LoanEventBase):
    """The loan is fully settled or otherwise closed."""

    event_type: Literal[LoanEventType.closed] = _required_on_wire(LoanEventType.closed)


LoanEvent = Annotated[
    LoanApplicationSubmitted
    | LoanApproved
    | LoanRejected
    | LoanWithdrawn
    | LoanDisbursed
    | LoanRepayment
    | LoanDelinquencyChanged
    | LoanRiskClassChanged
    | LoanDefaulted
    | LoanWrittenOff
    | LoanClosed,
    Field(discriminator="event_type"),
]
"""A loan lifecycle event, discriminated on `event_type`."""

LOAN_EVENT_CLASSES: dict[LoanEventType, type[LoanEventBase]] = {
    LoanEventType.application_submitted: LoanApplicationSubmitted,
    LoanEventType.approved: LoanApproved,
    LoanEventType.rejected: LoanRejected,
    LoanEventType.withdrawn: LoanWithdrawn,
    LoanEventType.disbursed: LoanDisbursed,
    LoanEventType.repayment: LoanRepayment,
    LoanEventType.delinquency_changed: LoanDelinquencyChanged,
    LoanEventType.risk_class_changed: LoanRiskClassChanged,
    LoanEventType.defaulted: LoanDefaulted,
    LoanEventType.written_off: LoanWrittenOff,
    LoanEventType.closed: LoanClosed,
}


class DimensionScores(_Model):
    """MIIT dimension sub-scores, each 0–100 where the framework reports it."""

    foundation: Score | None = None
    operations: Score | None = None
    management: Score | None = None
    outcomes: Score | None = None


class DigitalizationScore(EventEnvelope):
    """One digitalisation assessment of an enterprise; every version is kept."""

    kind: Literal["digitalization_score"] = _required_on_wire("digitalization_score")
    framework: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")] = Field(
        description='Assessment framework, e.g. "miit_sme_2022", "zj_industrial"'
    )
    overall_score: Score
    dimensions: DimensionScores = DimensionScores()
    level: Annotated[str, Field(min_length=1, max_length=16)] = Field(
        description='Level as the framework states it, e.g. "L2" or "2.0"'
    )
    assessed_at: UtcDatetime = Field(description="Equal to occurred_at")
    valid_until: date | None = None
    industry_section: Sector

    @field_validator("assessed_at")
    @classmethod
    def _equals_occurred_at(cls, value: Any, info: ValidationInfo) -> Any:
        occurred = info.data.get("occurred_at")
        if occurred is not None and value != occurred:
            raise ValueError("must equal occurred_at")
        return value

    @field_validator("valid_until")
    @classmethod
    def _not_before_assessment(cls, value: date | None, info: ValidationInfo) -> date | None:
        assessed = info.data.get("assessed_at")
        if value is not None and assessed is not None and value < assessed.date():
            raise ValueError("must not be before assessed_at")
        return value

    @property
    def band(self) -> DigitalizationBand:
        return band_for_score(self.overall_score)


class FxRate(Record):
    """Reference rate: CNY per one unit of `currency`, effective for `rate_date`."""

    kind: Literal["fx_rate"] = _required_on_wire("fx_rate")
    source: Identifier
    currency: Currency
    rate_date: date
    rate_to_cny: Rate
    published_at: UtcDatetime

    @property
    def key(self) -> str:
        """Message key on the fx topic (kept whole, never compacted: schemas/catalog.py)."""
        return f"{self.currency}:{self.rate_date.isoformat()}"


class DeadLetter(Record):
    """A record that could not be processed, kept with where and why it failed."""

    kind: Literal["dead_letter"] = _required_on_wire("dead_letter")
    original_b64: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$")] = Field(
        description="The original bytes, base64 (standard alphabet, padded)"
    )
    original_key_b64: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$")] | None = None
    topic: Annotated[str, Field(min_length=1, max_length=249)] | None = None
    partition: Annotated[int, Field(strict=True, ge=0)] | None = None
    offset: Annotated[int, Field(strict=True, ge=0)] | None = None
    source_location: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None, description="file:line or file#xpath for adapter input"
    )
    stage: DeadLetterStage
    error_class: Annotated[str, Field(pattern=r"^[a-z_]{1,40}$")]
    reason: Annotated[str, Field(max_length=4000)]
    first_seen: UtcDatetime

    MAX_REASON: ClassVar[int] = 4000

    @classmethod
    def build(
        cls,
        original: bytes,
        *,
        error_class: str,
        reason: str,
        stage: DeadLetterStage | str,
        first_seen: datetime,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
        source_location: str | None = None,
        id_location: str | None = None,
    ) -> DeadLetter:
        """The one way to make a dead letter (stream workers, adapters, `from_failure`).

        The id is deterministic: from topic/partition/offset, else from `id_location` (a
        location that does not change between runs, e.g. a file name without its folder),
        else `source_location`, else a hash of the bytes; so re-processing after a crash or
        a re-run gives the same id. A reason longer than `MAX_REASON` is cut with "…"."""
        if topic is not None and partition is not None and offset is not None:
            event_id = dead_letter_id(topic, partition, offset)
        elif id_location or source_location:
            event_id = dead_letter_id(source_location=id_location or source_location)
        else:
            event_id = make_event_id("deadletter", "sha256", hashlib.sha256(original).hexdigest())
        if len(reason) > cls.MAX_REASON:
            reason = reason[: cls.MAX_REASON - 1] + "…"
        return cls(
            event_id=event_id,
            original_b64=base64.b64encode(original).decode("ascii"),
            original_key_b64=None if key is None else base64.b64encode(key).decode("ascii"),
            topic=topic,
            partition=partition,
            offset=offset,
            source_location=source_location,
            stage=stage,
            error_class=error_class,
            reason=reason,
            first_seen=first_seen,
        )

    @classmethod
    def from_failure(
        cls,
        original: bytes,
        error: BaseException,
        *,
        stage: DeadLetterStage | str,
        first_seen: datetime,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
        source_location: str | None = None,
    ) -> DeadLetter:
        """`build` for `original` that failed with `error`: `error_class` is the
        `SchemaError` code, or `processing_error` for anything else."""
        return cls.build(
            original,
            error_class=error.error_class if isinstance(error, SchemaError) else "processing_error",
            reason=str(error) or type(error).__name__,
            stage=stage,
            first_seen=first_seen,
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            source_location=source_location,
        )

    @property
    def original(self) -> bytes:
        """The original record bytes."""
        return base64.b64decode(self.original_b64)


Event = Annotated[
    TransactionEvent | LoanEvent | DigitalizationScore | FxRate,
    Field(discriminator="kind"),
]
"""Any event on an ingress topic, discriminated on `kind` (loans then on `event_type`)."""
