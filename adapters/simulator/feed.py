"""The event generator: a deterministic, time-ordered feed for one seeded province.

Simulated time starts at `start`; every *spontaneous* event (a payment, a new loan
application or a piece of bad input) advances it by `step`. Scheduled events (the next
steps of loan lifecycles), the daily FX batch and the assessment rounds are interleaved at
their own times, so every partition sees non-decreasing event time except for the
deliberately late records.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from adapters.simulator import badinput
from adapters.simulator.aml import FeedTx, feed_pattern
from adapters.simulator.loans import LoanOdds, LoanStep, LoanTerms, LoanTiming, lifecycle
from adapters.simulator.model import (
    FX,
    LOANS,
    SCORES,
    TRANSACTIONS,
    Anomaly,
    FxFact,
    LoanFact,
    Record,
    ScoreFact,
    TxFact,
)
from adapters.simulator.province import (
    BAND_WEIGHTS,
    Enterprise,
    Institution,
    Province,
    WeightedChoice,
    build_province,
    score_in_band,
)
from schemas import (
    USCC_PARTITIONS,
    DigitalizationScore,
    DimensionScores,
    FxRate,
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
    TransactionEvent,
    band_for_score,
    encode,
    make_event_id,
    partition_for,
    pseudonymise_account,
)

__all__ = ["FX_CURRENCIES", "Feed", "FeedConfig", "from_us", "to_us"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND_US = 1_000_000
DAY_US = 86_400 * SECOND_US
FX_CURRENCIES = ("USD", "EUR", "HKD")
# Central parity in 1e-4 CNY (4 decimals, as CFETS publishes) and the daily move limit.
_FX_START = {"USD": 71_000, "EUR": 77_500, "HKD": 9_130}
_FX_STEP = {"USD": 25, "EUR": 35, "HKD": 3}
# Supported currencies for which no rate is ever published: joins must dead-letter them.
_UNPUBLISHED = ("GBP", "SGD", "AUD")
_ACCOUNT_KEY = b"dfip-simulator-account-key-v1"

# Probability weights of the kinds of bad or unusual input (see docs/simulator.md).
_ANOMALIES: WeightedChoice[Anomaly] = WeightedChoice(
    (
        ("duplicate", 30),
        ("undecodable", 8),
        ("invalid_json", 8),
        ("invalid_shape", 8),
        ("unsupported_version", 8),
        ("invalid_field", 14),  # unknown currency or bad USCC check character
        ("fx_rate_missing", 8),
        ("unknown_loan", 6),
        ("late", 6),
        ("wrong_partition", 4),
    )
)
_COUNTRIES = WeightedChoice(
    (("US", 30), ("HK", 12), ("DE", 9), ("GB", 7), ("JP", 6), ("NL", 5), ("FR", 5),
     ("AU", 5), ("SG", 5), ("KR", 4), ("AE", 4), ("BR", 4), ("MY", 4))
)  # fmt: skip
_XB_CURRENCY = WeightedChoice((("USD", 72), ("EUR", 16), ("HKD", 6), ("CNY", 6)))
_CUSTOMS = WeightedChoice((("9610", 35), ("9710", 25), ("9810", 25), ("1210", 15)))
# (low, high, weight) in minor units: most payments are small, a few are very large.
_DOMESTIC_FEN = WeightedChoice(
    (((10_000, 100_000), 20), ((100_000, 1_000_000), 35), ((1_000_000, 10_000_000), 30),
     ((10_000_000, 100_000_000), 12), ((100_000_000, 1_000_000_000), 3))
)  # fmt: skip
_FOREIGN_CENTS = WeightedChoice(
    (((1_000, 10_000), 15), ((10_000, 100_000), 35), ((100_000, 1_000_000), 35),
     ((1_000_000, 10_000_000), 13), ((10_000_000, 100_000_000), 2))
)  # fmt: skip
_BANK_CHANNELS = WeightedChoice(
    (("online", 45), ("mobile", 20), ("api", 15), ("branch", 10), ("pos", 5), ("other", 5))
)
_FINTECH_CHANNELS = WeightedChoice((("mobile", 50), ("api", 30), ("pos", 20)))
_DESCRIPTIONS = {
    "credit": ("货款", "销售回款", "服务费收入", "电商平台结算", "Invoice settlement"),
    "debit": ("采购付款", "工资", "房租", "税费", "物流费", "Supplier payment"),
}
_LENDER_TYPES = {
    "micro": WeightedChoice((("bank", 35), ("fintech", 45), ("joint", 20))),
    "small": WeightedChoice((("bank", 55), ("fintech", 28), ("joint", 17))),
    "medium": WeightedChoice((("bank", 85), ("fintech", 5), ("joint", 10))),
}
# Principal range in yuan (and rounding step) by lender type and enterprise size.
_PRINCIPAL = {
    "bank": {"micro": (100_000, 2_000_000), "small": (500_000, 8_000_000),
             "medium": (2_000_000, 30_000_000)},
    "fintech": {"micro": (20_000, 1_000_000), "small": (50_000, 3_000_000),
                "medium": (200_000, 5_000_000)},
    "joint": {"micro": (50_000, 1_000_000), "small": (100_000, 3_000_000),
              "medium": (200_000, 8_000_000)},
}  # fmt: skip
_RATE_BP = {"bank": (345, 650), "fintech": (600, 1800), "joint": (450, 1200)}
_TERMS = {"bank": (6, 12, 24, 36), "fintech": (3, 6, 12), "joint": (6, 12, 24)}
_METHODS = {
    "bank": WeightedChoice(
        (("equal_principal", 35), ("equal_installment", 35), ("interest_only", 20),
         ("bullet", 10))
    ),
    "fintech": WeightedChoice((("equal_installment", 70), ("equal_principal", 20), ("bullet", 10))),
    "joint": WeightedChoice((("equal_installment", 80), ("equal_principal", 20))),
}  # fmt: skip
_COLLATERAL = {
    "bank": WeightedChoice((("credit", 30), ("guarantee", 25), ("mortgage", 35), ("pledge", 10))),
    "fintech": WeightedChoice((("credit", 1),)),
    "joint": WeightedChoice((("credit", 9), ("guarantee", 1))),
}
_CHANNELS = {
    "bank": WeightedChoice((("branch", 60), ("online", 40))),
    "fintech": WeightedChoice((("online", 70), ("platform", 30))),
    "joint": WeightedChoice((("platform", 1),)),
}
# Decision and drawdown delays in hundredths of a loan day: banks take days, fintechs minutes.
_DECISION = {"bank": (100, 1000), "fintech": (1, 10), "joint": (10, 200)}
_DRAWDOWN = {"bank": (50, 500), "fintech": (1, 5), "joint": (10, 100)}
_APPROVE = {"unscored": 520, "l0": 560, "l1": 640, "l2": 720, "l3": 800, "l4": 860}
_DISTRESS = {"unscored": 110, "l0": 100, "l1": 80, "l2": 60, "l3": 40, "l4": 25}
_BAND_RANK = {"unscored": 0, "l0": 0, "l1": 1, "l2": 2, "l3": 3, "l4": 4}
_INCLUSIVE_LIMIT = Decimal(10_000_000)  # PBOC: single credit line under CNY 10 million
_HUNDRED = Decimal(100)


def to_us(ts: datetime) -> int:
    """Microseconds since the epoch, exactly."""
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * SECOND_US + delta.microseconds


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """Everything that determines the feed; equal configs give byte-identical feeds."""

    seed: int = 7
    start: datetime = datetime(2025, 3, 3, tzinfo=UTC)
    # per mille of ticks that start a suspicious pattern for the rules (adapters/simulator/
    # aml.py feed_pattern), on a random stream of its own: 0 gives the feed without them
    aml_permille: int = 1
    step_us: int = SECOND_US
    grace_seconds: int = 600
    bad_rate: float = 0.01
    enterprises: int = 2000
    score_round_seconds: int = 6 * 3600
    loan_month_seconds: int = 3600
    application_permille: int = 12  # share of spontaneous events that are loan applications

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if self.step_us < 1 or self.loan_month_seconds < 30 or self.score_round_seconds < 1:
            raise ValueError("step, loan month and score round must be positive")
        if not 0 <= self.bad_rate <= 1:
            raise ValueError("bad_rate is a probability")


class _Loan:
    """A loan in flight: its fixed terms plus a counter for its event ids."""

    __slots__ = ("channel", "collateral", "ent", "inclusive_sme", "lender", "partner", "seq",
                 "terms")  # fmt: skip

    def __init__(
        self,
        ent: Enterprise,
        lender: Institution,
        terms: LoanTerms,
        *,
        channel: str,
        collateral: str,
        inclusive_sme: bool,
        partner: Decimal | None,
    ) -> None:
        self.ent, self.lender, self.terms = ent, lender, terms
        self.channel, self.collateral = channel, collateral
        self.inclusive_sme, self.partner = inclusive_sme, partner
        self.seq = 0


class Feed:
    """Iterate to get `Record`s in produce order (endless; the caller decides when to stop)."""

    def __init__(self, config: FeedConfig, province: Province | None = None) -> None:
        self.config = config
        self.province = province or build_province(config.seed, config.enterprises)
        self.rng = random.Random(f"dfip-feed-{config.seed}")
        self._start_us = to_us(config.start.astimezone(UTC))
        self._grace_us = config.grace_seconds * SECOND_US
        self._month_us = config.loan_month_seconds * SECOND_US
        self._agenda: list[tuple[int, int, LoanStep, Iterator[LoanStep], _Loan]] = []
        self._agenda_seq = 0
        self._score: dict[str, Decimal] = {}  # newest assessment per enterprise (truth)
        self._fx_units = dict(_FX_START)
        self._wm: dict[tuple[str, int], int] = {}  # max event time of processed events
        self._recent: deque[Record] = deque(maxlen=256)
        self._counts = {"tx": 0, "loan": 0, "bad": 0}
        self._accounts: dict[tuple[str, str], str] = {}
        self._pick_ent = WeightedChoice([(e, e.activity) for e in self.province.enterprises])
        self._lenders = {
            t: WeightedChoice([(i, i.weight) for i in self.province.institutions
                               if i.type == t and i.lends])
            for t in ("bank", "fintech", "joint")
        }  # fmt: skip
        self._xb_banks = [
            i for i in self.province.institutions if i.type == "bank" and i.crossborder
        ]
        # patterns planted for the rules: their own random stream, ids and time-ordered queue
        self._aml_rng = random.Random(f"dfip-aml-{config.seed}")
        self._aml: list[tuple[int, int, Enterprise, FeedTx]] = []
        self._aml_seq = 0

    # ---- the time-ordered loop ---------------------------------------------------------

    def __iter__(self) -> Iterator[Record]:
        start = self._start_us
        day = start - start % DAY_US
        yield from self._fx_batch(day)
        yield from self._score_round(start, initial=True)
        next_day, next_round = day + DAY_US, start + self.config.score_round_seconds * SECOND_US
        tick = 0
        while True:
            tick += 1
            now = start + tick * self.config.step_us
            while True:
                # Whatever is due next; ties: FX, then assessments, then loan steps.
                agenda_at = self._agenda[0][0] if self._agenda else now + 1
                at = min(next_day, next_round, agenda_at)
                if at > now:
                    break
                if at == next_day:
                    yield from self._fx_batch(next_day)
                    next_day += DAY_US
                elif at == next_round:
                    yield from self._score_round(next_round, initial=False)
                    next_round += self.config.score_round_seconds * SECOND_US
                else:
                    _, _, step, steps, loan = heapq.heappop(self._agenda)
                    yield self._processed(self._loan_record(loan, step))
                    self._schedule(loan, steps)
            if self.config.aml_permille:
                yield from self._planted(now)
            yield self._spontaneous(now)

    def _planted(self, now: int) -> Iterator[Record]:
        """Start a pattern now and then; emit its transactions that are due (in addition to
        the tick's spontaneous event, so the rest of the feed is the same with or without)."""
        rng = self._aml_rng
        if rng.randrange(1000) < self.config.aml_permille:
            ent = self._pick_ent.pick(rng)
            for tx in feed_pattern(rng, now + self.config.step_us):
                self._aml_seq += 1
                heapq.heappush(self._aml, (tx.at_us, self._aml_seq, ent, tx))
        while self._aml and self._aml[0][0] <= now:
            _, seq, ent, tx = heapq.heappop(self._aml)
            inst = self.province.institution(ent.bank)
            at = from_us(now)
            event_id = make_event_id(inst.id, f"sim{self.config.seed}", f"aml{seq}")
            event = TransactionEvent(
                event_id=event_id,
                source=inst.id,
                institution_type=inst.type,
                occurred_at=at,
                enterprise_uscc=ent.uscc,
                direction=tx.direction,
                amount=tx.amount,
                currency="CNY",
                booking_date=at.date(),
                value_date=at.date(),
                bank_tx_code=tx.code,
                counterparty_country="CN",
                channel="branch" if "CWDL" in tx.code else "online",
                account_ref=self._account(inst.id, ent.uscc),
            )
            fact = TxFact(
                event_id, ent.uscc, at, inst.type, tx.direction, tx.amount, "CNY", None, tx.code
            )
            # not booked in _processed: duplicates and late copies are drawn from the rest of
            # the feed, which stays the same; dated `now`, it never makes a later event late
            yield Record(TRANSACTIONS, ent.partition, ent.partition, fact, event)

    def _spontaneous(self, now: int) -> Record:
        rng = self.rng
        if rng.random() < self.config.bad_rate:
            record = self._anomaly(_ANOMALIES.pick(rng), now)
            if record is not None:
                return record
        if rng.randrange(1000) < self.config.application_permille:
            return self._processed(self._new_loan(now))
        ent = self._pick_ent.pick(rng)
        fact, event = self._transaction(ent, now)
        return self._processed(Record(TRANSACTIONS, ent.partition, ent.partition, fact, event))

    def _processed(self, record: Record) -> Record:
        """Book-keeping for a valid, first-seen event sent to its own partition."""
        fact = record.fact
        assert isinstance(fact, TxFact | LoanFact)
        key = (record.topic, record.partition)
        at = to_us(fact.occurred_at)
        self._wm[key] = max(self._wm.get(key, at), at)
        self._recent.append(record)
        return record

    # ---- reference data ----------------------------------------------------------------

    def _fx_batch(self, day_us: int) -> Iterator[Record]:
        rng, day = self.rng, from_us(day_us)
        for i, cur in enumerate(FX_CURRENCIES):
            if day_us > self._start_us - self._start_us % DAY_US:
                step = _FX_STEP[cur]
                self._fx_units[cur] += rng.randint(-step, step)
            rate = Decimal(self._fx_units[cur]).scaleb(-4)
            event_id = make_event_id("cfets", cur, day.date().isoformat())
            fact = FxFact(event_id, cur, day.date(), rate, day)
            event = FxRate(
                event_id=event_id,
                source="cfets",
                currency=cur,
                rate_date=day.date(),
                rate_to_cny=rate,
                published_at=day,
            )
            yield Record(FX, 0, 0, fact, event, barrier=i == len(FX_CURRENCIES) - 1)

    def _score_round(self, at_us: int, *, initial: bool) -> Iterator[Record]:
        """One assessment round, flushed as a whole before anything joined against it."""
        rng = self.rng
        batch: list[tuple[int, Enterprise, Decimal]] = []
        bands = WeightedChoice([(b, w) for b, w in BAND_WEIGHTS if b != "unscored"])
        for ent in self.province.enterprises:
            current = self._score.get(ent.uscc)
            if initial:
                if ent.initial_score is None:
                    continue
                # Earlier assessments, published together when the platform starts.
                assessed = at_us - rng.randint(1, 700) * DAY_US - rng.randrange(DAY_US)
                batch.append((assessed, ent, ent.initial_score))
            elif current is None:
                if rng.randrange(100) < 10:  # first assessment of a so-far unscored firm
                    batch.append((at_us, ent, score_in_band(rng, bands.pick(rng))))
            elif rng.randrange(100) < 12:  # re-assessment: firms mostly digitalise further
                drift = Decimal(rng.randint(-30, 100)) / 10
                batch.append((at_us, ent, min(max(current + drift, Decimal(0)), _HUNDRED)))
        batch.sort(key=lambda item: (item[0], item[1].uscc))
        out: list[Record] = []
        for assessed, ent, score in batch:
            self._score[ent.uscc] = score
            out.append(self._score_record(ent, assessed, score))
            if rng.random() < self.config.bad_rate:
                out.append(self._bad_score(ent, assessed, score))
        if out:
            out[-1] = replace(out[-1], barrier=True)
        yield from out

    def _score_event(
        self, ent: Enterprise, assessed_us: int, score: Decimal
    ) -> DigitalizationScore:
        rng = self.rng
        band = band_for_score(score).value
        industrial = ent.sector == "C"
        level = f"{_BAND_RANK[band]}.0" if industrial else f"L{_BAND_RANK[band]}"
        dims = [min(max(score + Decimal(rng.randint(-80, 80)) / 10, Decimal(0)), _HUNDRED)
                for _ in range(4)]  # fmt: skip
        source = "zj-jxt" if industrial else "miit-sme-eval"
        at = from_us(assessed_us)
        return DigitalizationScore(
            event_id=make_event_id(source, ent.uscc, at.isoformat()),
            source=source,
            institution_type="bank",  # assessments reach DFIP through the banks' credit files
            occurred_at=at,
            enterprise_uscc=ent.uscc,
            framework="zj_industrial" if industrial else "miit_sme_2022",
            overall_score=score,
            dimensions=DimensionScores(
                foundation=dims[0], operations=dims[1], management=dims[2], outcomes=dims[3]
            ),
            level=level,
            assessed_at=at,
            valid_until=at.date() + timedelta(days=730),
            industry_section=ent.sector,
        )

    def _score_record(self, ent: Enterprise, assessed_us: int, score: Decimal) -> Record:
        event = self._score_event(ent, assessed_us, score)
        fact = ScoreFact(event.event_id, ent.uscc, event.assessed_at, score, ent.sector)
        return Record(SCORES, ent.partition, ent.partition, fact, event)

    def _bad_score(self, ent: Enterprise, assessed_us: int, score: Decimal) -> Record:
        """A broken copy (fresh id) of an assessment: future version or bad USCC."""
        self._counts["bad"] += 1
        event = self._score_event(ent, assessed_us, score).model_copy(
            update={"event_id": make_event_id("sim-bad", str(self._counts["bad"]))}
        )
        valid = encode(event)
        if self.rng.randrange(2) == 0:
            return Record(SCORES, ent.partition, ent.partition, None,
                          raw=badinput.future_version(valid), key=ent.uscc.encode(),
                          anomaly="unsupported_version")  # fmt: skip
        wrong = badinput.bad_uscc(ent.uscc, self.rng)
        part = partition_for(wrong)
        return Record(SCORES, part, part, None, raw=badinput.with_uscc(valid, wrong),
                      key=wrong.encode(), anomaly="invalid_field")  # fmt: skip

    # ---- payments ----------------------------------------------------------------------

    def _account(self, inst: str, uscc: str) -> str:
        ref = self._accounts.get((inst, uscc))
        if ref is None:
            ref = self._accounts[(inst, uscc)] = pseudonymise_account(
                f"{inst}:{uscc}", _ACCOUNT_KEY
            )
        return ref

    def _transaction(
        self, ent: Enterprise, at_us: int, *, currency: str | None = None
    ) -> tuple[TxFact, TransactionEvent]:
        rng = self.rng
        crossborder = ent.exporter and rng.randrange(100) < 35
        direction = "credit" if rng.randrange(100) < (62 if crossborder else 50) else "debit"
        customs: str | None = None
        inst: Institution
        if crossborder:
            country = _COUNTRIES.pick(rng)
            cur = currency or ("HKD" if country == "HK" else _XB_CURRENCY.pick(rng))
            if direction == "credit" and rng.randrange(100) < 60:
                customs = _CUSTOMS.pick(rng)
            fintech = self.province.institution(ent.fintech) if ent.fintech else None
            if fintech is not None and fintech.crossborder and rng.randrange(2) == 0:
                inst = fintech
            else:
                bank = self.province.institution(ent.bank)
                inst = bank if bank.crossborder else rng.choice(self._xb_banks)
            channel = "api" if inst.type == "fintech" else "online"
            code = "PMNT-RCDT-XBCT" if direction == "credit" else "PMNT-ICDT-XBCT"
            low, high = _FOREIGN_CENTS.pick(rng) if cur != "CNY" else _DOMESTIC_FEN.pick(rng)
        else:
            country, cur = "CN", currency or "CNY"
            fintech = self.province.institution(ent.fintech) if ent.fintech else None
            if fintech is not None and not fintech.crossborder and rng.randrange(100) < 30:
                inst, channel = fintech, _FINTECH_CHANNELS.pick(rng)
            else:
                inst, channel = self.province.institution(ent.bank), _BANK_CHANNELS.pick(rng)
            code = "PMNT-RCDT-DMCT" if direction == "credit" else "PMNT-ICDT-DMCT"
            low, high = _DOMESTIC_FEN.pick(rng) if cur == "CNY" else _FOREIGN_CENTS.pick(rng)
        amount = Decimal(rng.randrange(low, high)).scaleb(-2)
        at = from_us(at_us)
        self._counts["tx"] += 1
        event_id = make_event_id(inst.id, f"sim{self.config.seed}", f"tx{self._counts['tx']}")
        description = rng.choice(_DESCRIPTIONS[direction]) if rng.randrange(100) < 20 else None
        value_date = at.date() + timedelta(days=1 if crossborder and rng.randrange(4) == 0 else 0)
        event = TransactionEvent(
            event_id=event_id,
            source=inst.id,
            institution_type=inst.type,
            occurred_at=at,
            enterprise_uscc=ent.uscc,
            direction=direction,
            amount=amount,
            currency=cur,
            booking_date=at.date(),
            value_date=value_date,
            bank_tx_code=code,
            counterparty_country=country,
            channel=channel,
            customs_mode=customs,
            account_ref=self._account(inst.id, ent.uscc),
            description=description,
        )
        fact = TxFact(event_id, ent.uscc, at, inst.type, direction, amount, cur, customs, code)
        return fact, event

    # ---- loans -------------------------------------------------------------------------

    def _band(self, uscc: str) -> str:
        return band_for_score(self._score.get(uscc)).value

    def _new_loan(self, now: int) -> Record:
        rng = self.rng
        ent = self._pick_ent.pick(rng)
        kind = _LENDER_TYPES[ent.size].pick(rng)
        lender = self._lenders[kind].pick(rng)
        band = self._band(ent.uscc)
        self._counts["loan"] += 1
        n = self._counts["loan"]
        usd = kind == "bank" and ent.exporter and rng.randrange(100) < 15
        if usd:
            # USD trade loans stay under USD 1 million (< CNY 10 million at any recent rate)
            # and in whole hundreds, so every instalment converts to fen without rounding.
            principal, quantum = Decimal(rng.randint(200, 10_000) * 100), _HUNDRED
        else:
            low, high = _PRINCIPAL[kind][ent.size]
            u = rng.randrange(1001)
            # Skewed towards small loans; whole thousands of yuan.
            principal = Decimal((low + (high - low) * u * u // 1_000_000) // 1000 * 1000)
            quantum = Decimal("0.01")
        lo_bp, hi_bp = _RATE_BP[kind]
        rate_bp = rng.randint(lo_bp, hi_bp) - 10 * _BAND_RANK[band]  # digital firms pay less
        terms = LoanTerms(
            loan_id=f"{lender.id}-L{self.config.seed}-{n:07d}",
            application_id=f"{lender.id}-A{self.config.seed}-{n:07d}",
            principal=principal,
            currency="USD" if usd else "CNY",
            annual_rate=Decimal(rate_bp).scaleb(-4),
            term_months=rng.choice(_TERMS[kind]),
            repayment_method=_METHODS[kind].pick(rng),
            quantum=quantum,
        )
        loan = _Loan(
            ent,
            lender,
            terms,
            channel=_CHANNELS[kind].pick(rng),
            collateral=_COLLATERAL[kind].pick(rng),
            inclusive_sme=usd or principal < _INCLUSIVE_LIMIT,
            partner=Decimal(rng.randint(30, 70)).scaleb(-2) if kind == "joint" else None,
        )
        day = self._month_us // 30
        timing = LoanTiming(
            month_us=self._month_us,
            decision_us=(_DECISION[kind][0] * day // 100, _DECISION[kind][1] * day // 100),
            disburse_us=(_DRAWDOWN[kind][0] * day // 100, _DRAWDOWN[kind][1] * day // 100),
        )
        bonus = -40 if kind == "fintech" else 0
        odds = LoanOdds(_APPROVE[band] + bonus, _DISTRESS[band] + (30 if kind == "fintech" else 0))
        steps = lifecycle(rng, terms, now, timing, odds)
        record = self._loan_record(loan, next(steps))
        self._schedule(loan, steps)
        return record

    def _schedule(self, loan: _Loan, steps: Iterator[LoanStep]) -> None:
        step = next(steps, None)
        if step is not None:
            self._agenda_seq += 1
            heapq.heappush(self._agenda, (step.at_us, self._agenda_seq, step, steps, loan))

    def _loan_record(self, loan: _Loan, step: LoanStep) -> Record:
        loan.seq += 1
        t, ent, at = loan.terms, loan.ent, from_us(step.at_us)
        common: dict[str, Any] = {
            "event_id": make_event_id(loan.lender.id, t.loan_id, step.event_type, str(loan.seq)),
            "source": loan.lender.id,
            "institution_type": loan.lender.type,
            "occurred_at": at,
            "enterprise_uscc": ent.uscc,
            "loan_id": t.loan_id,
            "application_id": t.application_id,
            "lender_id": loan.lender.id,
            "channel": loan.channel,
        }
        amount: Decimal | None = None
        event: LoanEventBase
        kind = step.event_type
        if kind == "application_submitted":
            amount = t.principal
            event = LoanApplicationSubmitted(
                **common, principal=amount, currency=t.currency, annual_rate=t.annual_rate,
                term_months=t.term_months, collateral=loan.collateral,
                inclusive_sme=loan.inclusive_sme,
            )  # fmt: skip
        elif kind == "approved":
            amount = t.principal
            event = LoanApproved(
                **common, principal=amount, currency=t.currency, annual_rate=t.annual_rate
            )
        elif kind == "rejected":
            event = LoanRejected(**common, reason=step.reason)
        elif kind == "withdrawn":
            event = LoanWithdrawn(**common)
        elif kind == "disbursed":
            amount = t.principal
            event = LoanDisbursed(
                **common, principal=amount, currency=t.currency, annual_rate=t.annual_rate,
                term_months=t.term_months, collateral=loan.collateral,
                inclusive_sme=loan.inclusive_sme, repayment_method=t.repayment_method,
                partner_share=loan.partner,
            )  # fmt: skip
        elif kind == "repayment":
            amount = step.amount
            event = LoanRepayment(
                **common, principal_amount=amount, interest_amount=step.interest,
                currency=t.currency,
            )  # fmt: skip
        elif kind == "delinquency_changed":
            event = LoanDelinquencyChanged(**common, days_past_due=step.days_past_due)
        elif kind == "risk_class_changed":
            event = LoanRiskClassChanged(**common, risk_class=step.risk_class)
        elif kind == "defaulted":
            event = LoanDefaulted(**common)
        elif kind == "written_off":
            amount = step.amount
            event = LoanWrittenOff(**common, amount=amount, currency=t.currency)
        else:
            event = LoanClosed(**common)
        fact = LoanFact(
            event_id=common["event_id"],
            uscc=ent.uscc,
            occurred_at=at,
            institution_type=loan.lender.type,
            event_type=kind,
            loan_id=t.loan_id,
            amount=amount,
            currency=t.currency if amount is not None else None,
            annual_rate=t.annual_rate if kind == "disbursed" else None,
            inclusive_sme=loan.inclusive_sme if kind == "disbursed" else None,
            days_past_due=step.days_past_due,
            risk_class=step.risk_class,
        )
        return Record(LOANS, ent.partition, ent.partition, fact, event)

    # ---- deliberate bad and unusual input ----------------------------------------------

    def _anomaly(self, kind: Anomaly, now: int) -> Record | None:
        """A record of the given kind, or None when it cannot be made right now."""
        rng = self.rng
        ent = self._pick_ent.pick(rng)
        topic = TRANSACTIONS if rng.randrange(10) < 7 else LOANS
        if kind == "duplicate":
            return self._duplicate()
        if kind == "late":
            return self._late(ent, now)
        if kind == "wrong_partition":
            return self._wrong_partition(ent)
        if kind in ("fx_rate_missing", "unknown_loan"):
            # At the partition's watermark: neither late nor moving it, whatever a reader's
            # view on whether dead letters move watermarks.
            topic = TRANSACTIONS if kind == "fx_rate_missing" else LOANS
            wm = self._wm.get((topic, ent.partition))
            if wm is None:
                return None
            if kind == "unknown_loan":
                return self._unknown_loan(ent, wm)
            fact, event = self._transaction(ent, wm, currency=rng.choice(_UNPUBLISHED))
            return Record(TRANSACTIONS, ent.partition, ent.partition, fact, event, anomaly=kind)
        return self._undecodable(kind, ent, topic, now)

    def _fresh_bytes(self, ent: Enterprise, topic: str, now: int) -> bytes:
        """A valid event that is never sent as such (its id is not in the truth)."""
        self._counts["bad"] += 1
        bad_id = make_event_id("sim-bad", str(self._counts["bad"]))
        if topic == TRANSACTIONS:
            event: TransactionEvent | LoanEventBase = self._transaction(ent, now)[1]
        else:
            event = self._unknown_loan_event(ent, now)
        return encode(event.model_copy(update={"event_id": bad_id}))

    def _undecodable(self, kind: Anomaly, ent: Enterprise, topic: str, now: int) -> Record:
        rng = self.rng
        key, part = ent.uscc.encode(), ent.partition
        if kind == "undecodable":
            raw = badinput.garbage(rng)
        else:
            valid = self._fresh_bytes(ent, topic, now)
            if kind == "invalid_json":
                raw = badinput.truncated_json(valid, rng)
            elif kind == "invalid_shape":
                raw = badinput.wrong_shape(valid, rng)
            elif kind == "unsupported_version":
                raw = badinput.future_version(valid)
            elif rng.randrange(2) == 0:
                raw = badinput.unknown_currency(valid, rng)
            else:
                wrong = badinput.bad_uscc(ent.uscc, rng)
                raw, key, part = (
                    badinput.with_uscc(valid, wrong),
                    wrong.encode(),
                    partition_for(wrong),
                )
        return Record(topic, part, part, None, raw=raw, key=key, anomaly=kind)

    def _unknown_loan_event(self, ent: Enterprise, at_us: int) -> LoanRepayment:
        self._counts["bad"] += 1
        lender = self._lenders["bank"].pick(self.rng)
        loan_id = f"{lender.id}-X{self.config.seed}-{self._counts['bad']:07d}"
        return LoanRepayment(
            event_id=make_event_id(lender.id, loan_id, "repayment", "1"),
            source=lender.id,
            institution_type=lender.type,
            occurred_at=from_us(at_us),
            enterprise_uscc=ent.uscc,
            loan_id=loan_id,
            application_id=loan_id.replace("-X", "-Y"),
            lender_id=lender.id,
            channel="branch",
            principal_amount=Decimal(self.rng.randint(1, 500) * 1000),
            interest_amount=Decimal(self.rng.randint(100, 99_999)).scaleb(-2),
            currency="CNY",
        )

    def _unknown_loan(self, ent: Enterprise, at_us: int) -> Record:
        event = self._unknown_loan_event(ent, at_us)
        fact = LoanFact(
            event_id=event.event_id, uscc=ent.uscc, occurred_at=event.occurred_at,
            institution_type=event.institution_type.value, event_type="repayment",
            loan_id=event.loan_id, amount=event.principal_amount, currency="CNY",
        )  # fmt: skip
        return Record(LOANS, ent.partition, ent.partition, fact, event, anomaly="unknown_loan")

    def _duplicate(self) -> Record | None:
        """An exact re-send of a recent event, still well inside the dedup horizon."""
        if not self._recent:
            return None
        original = self._recent[self.rng.randrange(len(self._recent))]
        fact = original.fact
        assert isinstance(fact, TxFact | LoanFact)
        wm = self._wm[(original.topic, original.partition)]
        if to_us(fact.occurred_at) < wm - self._grace_us:
            return None
        return Record(original.topic, original.partition, original.partition, fact,
                      original.event, anomaly="duplicate")  # fmt: skip

    def _late(self, ent: Enterprise, now: int) -> Record | None:
        """A payment reported long after it happened (beyond the grace period)."""
        wm = self._wm.get((TRANSACTIONS, ent.partition))
        if wm is None:
            return None
        at = wm - self._grace_us - self.rng.randint(60, 3 * 3600) * SECOND_US
        if at < self._start_us:
            return None  # no FX rates before the start: keep late events joinable
        fact, event = self._transaction(ent, at)
        return Record(TRANSACTIONS, ent.partition, ent.partition, fact, event, anomaly="late")

    def _wrong_partition(self, ent: Enterprise) -> Record | None:
        """A payment produced to another partition than its key's (a misconfigured
        partitioner); its time is its home partition's watermark, so it is on time at
        both ends and moves neither watermark in a way readers could disagree on."""
        home = ent.partition
        landing = (home + self.rng.randint(1, USCC_PARTITIONS - 1)) % USCC_PARTITIONS
        wm_home = self._wm.get((TRANSACTIONS, home))
        wm_landing = self._wm.get((TRANSACTIONS, landing))
        if wm_home is None or wm_landing is None or wm_home < wm_landing - self._grace_us:
            return None
        fact, event = self._transaction(ent, wm_home)
        self._wm[(TRANSACTIONS, landing)] = max(wm_landing, wm_home)
        return Record(TRANSACTIONS, landing, home, fact, raw=encode(event),
                      key=ent.uscc.encode(), anomaly="wrong_partition")  # fmt: skip
