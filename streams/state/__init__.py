"""Per-partition state: what it holds, how it is written to and restored from the changelog."""

from streams.state.partition import Counters, LoanState, PartitionState

__all__ = ["Counters", "LoanState", "PartitionState"]
