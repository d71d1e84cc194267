"""The Kafka side of a worker (:class:`Engine`), split along its seams:

- ``engine.py``: the engine itself: rebalances, batches, recovery, the idle tick, the lock;
- ``restorer.py``: a partition's state from its dfip.state changelog;
- ``reference_sync.py``: the reference topics (scores, FX, acks) caught up into the processor;
- ``committer.py``: one Kafka transaction per batch (outputs, changelog, group offsets);
- ``hooks.py``: the callbacks the worker gives the engine; ``stats.py``: its counters.
"""

from streams.engine.committer import Commit, Committer
from streams.engine.engine import Engine, NeedsRecovery, Positions
from streams.engine.hooks import EngineHooks
from streams.engine.reference_sync import ReferenceSync
from streams.engine.restorer import Restorer
from streams.engine.stats import EngineStats, StageSeconds
from streams.export.view import CommittedView, Snapshot

__all__ = [
    "Commit",
    "CommittedView",
    "Committer",
    "Engine",
    "EngineHooks",
    "EngineStats",
    "NeedsRecovery",
    "Positions",
    "ReferenceSync",
    "Restorer",
    "Snapshot",
    "StageSeconds",
]
