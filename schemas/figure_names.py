"""Figure names as constants, so that a misspelt name is an import error, not a series that
is counted and changelogged but never exported. `schemas.figures` checks at import that these
are exactly the names of `FIGURES` and `HEALTH_FIGURES`."""

from typing import Final

__all__ = [
    "ALERTS_OVERDUE",
    "ALERTS_TOTAL",
    "ALERT_AMOUNT_YUAN_TOTAL",
    "BORROWERS_ACTIVE",
    "CROSSBORDER_ECOMMERCE_AMOUNT_YUAN_TOTAL",
    "CROSSBORDER_ECOMMERCE_PAYMENTS_TOTAL",
    "ENTERPRISES_SCORED",
    "EVENTS_DEADLETTERED_TOTAL",
    "EVENTS_DUPLICATE_TOTAL",
    "EVENTS_LATE_TOTAL",
    "EVENTS_PROCESSED_TOTAL",
    "EVENTS_RECEIVED_TOTAL",
    "FX_PENDING_EVENTS",
    "LOANS_ACTIVE",
    "LOAN_APPLICATIONS_TOTAL",
    "LOAN_DECISIONS_TOTAL",
    "LOAN_DISBURSED_PRINCIPAL_YUAN_TOTAL",
    "LOAN_DISBURSED_RATE_WEIGHTED_YUAN_TOTAL",
    "LOAN_DISBURSEMENTS_TOTAL",
    "LOAN_INCLUSIVE_SME_DISBURSED_PRINCIPAL_YUAN_TOTAL",
    "LOAN_OUTSTANDING_PRINCIPAL_YUAN",
    "LOAN_PAST_DUE_PRINCIPAL_YUAN",
    "LOAN_REPAID_PRINCIPAL_YUAN_TOTAL",
    "LOAN_WRITTEN_OFF_PRINCIPAL_YUAN_TOTAL",
    "RESTATED_EVENTS_TOTAL",
    "SCORES_BEYOND_RESTATEMENT_TOTAL",
    "TRANSACTIONS_BY_SECTOR_TOTAL",
    "TRANSACTIONS_TOTAL",
    "TRANSACTION_AMOUNT_YUAN_TOTAL",
]


ALERT_AMOUNT_YUAN_TOTAL: Final = "dfip_alert_amount_yuan_total"
ALERTS_OVERDUE: Final = "dfip_alerts_overdue"
ALERTS_TOTAL: Final = "dfip_alerts_total"
BORROWERS_ACTIVE: Final = "dfip_borrowers_active"
CROSSBORDER_ECOMMERCE_AMOUNT_YUAN_TOTAL: Final = "dfip_crossborder_ecommerce_amount_yuan_total"
CROSSBORDER_ECOMMERCE_PAYMENTS_TOTAL: Final = "dfip_crossborder_ecommerce_payments_total"
ENTERPRISES_SCORED: Final = "dfip_enterprises_scored"
EVENTS_DEADLETTERED_TOTAL: Final = "dfip_events_deadlettered_total"
EVENTS_DUPLICATE_TOTAL: Final = "dfip_events_duplicate_total"
EVENTS_LATE_TOTAL: Final = "dfip_events_late_total"
EVENTS_PROCESSED_TOTAL: Final = "dfip_events_processed_total"
EVENTS_RECEIVED_TOTAL: Final = "dfip_events_received_total"
FX_PENDING_EVENTS: Final = "dfip_fx_pending_events"
LOAN_APPLICATIONS_TOTAL: Final = "dfip_loan_applications_total"
LOAN_DECISIONS_TOTAL: Final = "dfip_loan_decisions_total"
LOAN_DISBURSED_PRINCIPAL_YUAN_TOTAL: Final = "dfip_loan_disbursed_principal_yuan_total"
LOAN_DISBURSED_RATE_WEIGHTED_YUAN_TOTAL: Final = "dfip_loan_disbursed_rate_weighted_yuan_total"
LOAN_DISBURSEMENTS_TOTAL: Final = "dfip_loan_disbursements_total"
LOAN_INCLUSIVE_SME_DISBURSED_PRINCIPAL_YUAN_TOTAL: Final = (
    "dfip_loan_inclusive_sme_disbursed_principal_yuan_total"
)
LOAN_OUTSTANDING_PRINCIPAL_YUAN: Final = "dfip_loan_outstanding_principal_yuan"
LOAN_PAST_DUE_PRINCIPAL_YUAN: Final = "dfip_loan_past_due_principal_yuan"
LOAN_REPAID_PRINCIPAL_YUAN_TOTAL: Final = "dfip_loan_repaid_principal_yuan_total"
LOAN_WRITTEN_OFF_PRINCIPAL_YUAN_TOTAL: Final = "dfip_loan_written_off_principal_yuan_total"
LOANS_ACTIVE: Final = "dfip_loans_active"
RESTATED_EVENTS_TOTAL: Final = "dfip_restated_events_total"
SCORES_BEYOND_RESTATEMENT_TOTAL: Final = "dfip_scores_beyond_restatement_total"
TRANSACTION_AMOUNT_YUAN_TOTAL: Final = "dfip_transaction_amount_yuan_total"
TRANSACTIONS_BY_SECTOR_TOTAL: Final = "dfip_transactions_by_sector_total"
TRANSACTIONS_TOTAL: Final = "dfip_transactions_total"
