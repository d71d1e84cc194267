"""Loan lifecycles as generators of timed steps: application to closure or write-off.

A lifecycle is sequential code (easy to read and to keep plausible); the feed interleaves
many of them by time. All times are integer microseconds since the epoch, all amounts are
`Decimal` in the loan's currency.
"""

from __future__ import annotations

import random
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

__all__ = [
    "DPD_STEPS",
    "LoanOdds",
    "LoanStep",
    "LoanTerms",
    "LoanTiming",
    "installment_schedule",
    "lifecycle",
]

MINUTE_US = 60_000_000
_CENT = Decimal("0.01")
_TWELVE = Decimal(12)

# Days past due at which lenders report delinquency (monthly and mid-month checks).
DPD_STEPS = (1, 15, 31, 45, 61, 75, 91, 120, 150, 181, 240, 271, 330, 361)
# Permille chance that a delinquent borrower pays up before the given DPD step is reached.
_CURE_BEFORE = {15: 400, 31: 250, 45: 150, 61: 150, 75: 100, 91: 100}
_REJECT_REASONS = (
    "insufficient cash flow",
    "credit history",
    "collateral value",
    "incomplete documents",
    "exposure limit",
)


@dataclass(frozen=True, slots=True)
class LoanTiming:
    """Simulated durations; a loan month is compressed so lifecycles finish within a run."""

    month_us: int
    decision_us: tuple[int, int]  # min, max delay from application to decision
    disburse_us: tuple[int, int]  # min, max delay from approval to drawdown

    @property
    def day_us(self) -> int:
        return self.month_us // 30


@dataclass(frozen=True, slots=True)
class LoanOdds:
    approve_permille: int
    distress_permille: int  # chance the loan ever goes past due


@dataclass(frozen=True, slots=True)
class LoanTerms:
    loan_id: str
    application_id: str
    principal: Decimal
    currency: str
    annual_rate: Decimal
    term_months: int
    repayment_method: str
    quantum: Decimal  # principal instalments are multiples of this (exact FX conversion)


@dataclass(frozen=True, slots=True)
class LoanStep:
    at_us: int
    event_type: str
    amount: Decimal | None = None  # repaid principal, or written-off amount
    interest: Decimal | None = None
    days_past_due: int | None = None
    risk_class: str | None = None
    reason: str | None = None


def _between(rng: random.Random, span: tuple[int, int]) -> int:
    return rng.randint(span[0], span[1])


def installment_schedule(terms: LoanTerms) -> list[tuple[Decimal, Decimal]]:
    """(principal, interest) per month; principal parts sum exactly to the principal."""
    n, p, q = terms.term_months, terms.principal, terms.quantum
    monthly = terms.annual_rate / _TWELVE
    parts: list[Decimal]
    if terms.repayment_method in ("bullet", "interest_only"):
        parts = [Decimal(0)] * (n - 1) + [p]
    elif terms.repayment_method == "equal_principal":
        each = (p / n / q).to_integral_value(ROUND_DOWN) * q
        parts = [each] * (n - 1) + [p - each * (n - 1)]
    else:  # equal_installment: annuity, principal share grows each month
        payment = p / n if monthly == 0 else p * monthly / (1 - (1 + monthly) ** -n)
        parts, left = [], p
        for _ in range(n - 1):
            part = ((payment - left * monthly) / q).to_integral_value(ROUND_DOWN) * q
            part = min(max(part, Decimal(0)), left)
            parts.append(part)
            left -= part
        parts.append(left)
    out: list[tuple[Decimal, Decimal]] = []
    left = p
    for part in parts:
        interest = (left * monthly).quantize(_CENT)
        out.append((part, interest))
        left -= part
    if terms.repayment_method == "bullet":
        # Everything, interest included, falls due at maturity.
        total = sum((i for _, i in out), Decimal(0))
        out = [(Decimal(0), Decimal(0))] * (n - 1) + [(p, total)]
    return out


def lifecycle(
    rng: random.Random, terms: LoanTerms, start_us: int, timing: LoanTiming, odds: LoanOdds
) -> Iterator[LoanStep]:
    """Application → decision → (drawdown → servicing → closed | written off)."""
    now = start_us
    yield LoanStep(now, "application_submitted")
    now += _between(rng, timing.decision_us)
    if rng.randrange(1000) >= odds.approve_permille:
        if rng.randrange(4) == 0:
            yield LoanStep(now, "withdrawn")
        else:
            yield LoanStep(now, "rejected", reason=rng.choice(_REJECT_REASONS))
        return
    yield LoanStep(now, "approved")
    if rng.randrange(100) < 4:
        return  # the approval lapses without a drawdown
    now += _between(rng, timing.disburse_us)
    yield LoanStep(now, "disbursed")
    yield from _servicing(rng, terms, now, timing, odds)


def _servicing(
    rng: random.Random, terms: LoanTerms, disbursed_us: int, timing: LoanTiming, odds: LoanOdds
) -> Iterator[LoanStep]:
    schedule = installment_schedule(terms)
    n = len(schedule)
    distress_at = -1
    if rng.randrange(1000) < odds.distress_permille:
        # A bullet loan has nothing to miss before maturity.
        distress_at = n - 1 if terms.repayment_method == "bullet" else rng.randrange(n)
    prepay_at = rng.randrange(n) if rng.randrange(100) < 4 else -1
    watch_at = rng.randrange(n) if rng.randrange(100) < 2 else -1
    outstanding = terms.principal
    last = disbursed_us
    k = 0
    while k < n:
        due = disbursed_us + (k + 1) * timing.month_us
        if k == distress_at:
            cured = yield from _delinquency(rng, schedule, k, due, outstanding, timing)
            if cured is None:
                return  # written off
            k, paid, last = cured
            outstanding -= paid
            continue
        # Pay on the due date or up to two days early, never before the previous step.
        at = max(last, due - rng.randint(0, 2 * timing.day_us))
        if k == watch_at:
            # A qualitative watch-list flag (no arrears): special mention, lifted later.
            yield LoanStep(at, "risk_class_changed", risk_class="special_mention")
        if k == prepay_at and k < n - 1:
            interest = schedule[k][1]
            yield LoanStep(at, "repayment", amount=outstanding, interest=interest)
            outstanding, last = Decimal(0), at
            break
        principal, interest = schedule[k]
        if principal or interest:
            yield LoanStep(at, "repayment", amount=principal, interest=interest)
            outstanding -= principal
        if watch_at >= 0 and k == watch_at + 2:
            yield LoanStep(at, "risk_class_changed", risk_class="normal")
        last = at
        k += 1
    yield LoanStep(last + rng.randint(1, 60) * MINUTE_US, "closed")


def _delinquency(
    rng: random.Random,
    schedule: list[tuple[Decimal, Decimal]],
    k: int,
    due: int,
    outstanding: Decimal,
    timing: LoanTiming,
) -> Generator[LoanStep, None, tuple[int, Decimal, int] | None]:
    """Instalment `k` is missed. Returns (next instalment, principal paid, time) on cure,
    None when the loan is written off."""
    day = timing.day_us
    reported = "normal"
    late_reporter = rng.randrange(100) < 30  # flags special mention only at 31 DPD
    conservative = rng.randrange(100) < 30  # classes doubtful early
    prev = 0
    at = due
    for d in DPD_STEPS:
        cure_chance = _CURE_BEFORE.get(d, 0)
        if cure_chance and rng.randrange(1000) < cure_chance:
            # Pays every instalment fallen due so far, some time before reaching `d`.
            at = max(at, due + rng.randint(prev + 1, d - 1) * day)
            n_due = sum(1 for j in range(k, len(schedule)) if due + (j - k) * timing.month_us <= at)
            principal = sum((p for p, _ in schedule[k : k + n_due]), Decimal(0))
            interest = sum((i for _, i in schedule[k : k + n_due]), Decimal(0))
            yield LoanStep(at, "repayment", amount=principal, interest=interest)
            yield LoanStep(at, "delinquency_changed", days_past_due=0)
            if reported != "normal":
                at += rng.randint(1, 3) * day
                yield LoanStep(at, "risk_class_changed", risk_class="normal")
            return k + n_due, principal, at
        at = max(at, due + d * day)
        yield LoanStep(at, "delinquency_changed", days_past_due=d)
        report: str | None = None
        if reported == "normal" and (d == 31 or (d == 1 and not late_reporter)):
            report = "special_mention"
        elif d == 91:
            report = "substandard"
        elif (d == 181 and conservative) or (d == 271 and reported != "doubtful"):
            report = "doubtful"
        elif d == 361:
            report = "loss"
        if report is not None:
            # Some lenders file the reclassification a few days after the DPD update.
            at += rng.randint(0, 5) * day
            yield LoanStep(at, "risk_class_changed", risk_class=report)
            reported = report
        if d == 91:
            yield LoanStep(at, "defaulted")
        if d >= 181 and rng.randrange(100) < 30:
            break
        prev = d
    yield LoanStep(at + rng.randint(1, 10) * day, "written_off", amount=outstanding)
    return None
