"""Reference data joined against the event streams: digitalisation scores and FX rates."""

from streams.reference.fx import FxTable
from streams.reference.scores import ScoreTable

__all__ = ["FxTable", "ScoreTable"]
