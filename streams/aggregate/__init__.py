"""Figure updates: transactions and loan events (apply), the loan book, event-time windows."""

from streams.aggregate.apply import Join, Rejected, apply_loan_event, apply_transaction

__all__ = ["Join", "Rejected", "apply_loan_event", "apply_transaction"]
