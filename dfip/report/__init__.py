"""Period reports from the closed event-time windows on ``dfip.metrics`` (docs/reports.md)."""
