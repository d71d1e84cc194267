"""The worker's garbage-collector policy: state that survives a batch is frozen, not rescanned.

Python's cyclic collector rescans every tracked object that survived into its oldest
generation each time that generation grows by a quarter. A worker's state grows with what
it processes (the rules keep one tuple per recent transaction, the score table one object
per version), so on the bench feed a full collection ran every ~0.8 s and took 35-100 ms,
longer as the state grew; with the young collections, the collector took ~13 % of the
worker's CPU (bench/RESULTS.md, "The collector", issue 18).

:class:`HeapFreezer` moves what is alive after each batch to the permanent generation
(``gc.freeze``: O(1), nothing is scanned), so the collector only ever scans what the current
batch made. Frozen objects are still freed by reference counting the moment they are
unreferenced; only a *cycle* that becomes garbage after it was frozen waits: every
``full_every_seconds`` (and at each rebalance, :func:`freeze_heap`) everything is unfrozen,
collected once and frozen again, which bounds what such cycles can hold.
"""

from __future__ import annotations

import ctypes
import gc
import time
from collections.abc import Callable

__all__ = ["HeapFreezer", "freeze_heap", "trim_heap"]


def freeze_heap() -> int:
    """Collect everything once, then move what survives to the permanent GC generation.

    A worker's heap after start-up is mostly code (modules, Faust, pydantic: ~140,000
    tracked objects) and restored state that lives as long as the partition. Each automatic
    full (gen-2) collection scanned all of it again, 110-220 ms every 3-5 s on the bench
    feed, holding every record in flight (issue 18); frozen, a full collection scans only
    what came later (20-30 ms). Frozen objects are still freed by reference counting; the
    unfreeze + collect first gives cycles frozen at the previous rebalance (e.g. the state of
    a partition that moved away) back to the collector. Returns how many objects are frozen.
    """
    gc.unfreeze()
    gc.collect()
    trim_heap()
    gc.freeze()
    return gc.get_freeze_count()


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc (musl has none): nothing to trim
        return None


_TRIM = _malloc_trim()


def trim_heap() -> bool:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``): a restore
    or a partition that moved away frees tens of MB that glibc otherwise keeps mapped, so
    the worker's RSS stays at its peak (bench/RESULTS.md, "Score table in flat arrays").
    False where there is no such call."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


class HeapFreezer:
    """Freeze after each batch; unfreeze, collect and freeze again every ``full_every_seconds``.

    Disabled (``enabled=False``, the ``gc_freeze`` setting off): does nothing, and Python's
    collector works as it does by default.
    """

    def __init__(
        self,
        *,
        enabled: bool,
        full_every_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.full_every_seconds = full_every_seconds
        self._clock = clock
        self._last_full = clock()
        self.full_collections = 0  # full collections this freezer ran (not counting resets)

    def reset(self) -> int:
        """A full collection now (start-up, rebalance): :func:`freeze_heap` (which trims the
        C heap, :func:`trim_heap`; disabled, only the trim); the next periodic one is
        ``full_every_seconds`` from now. Returns the frozen count (0 when disabled)."""
        if not self.enabled:
            trim_heap()  # what a restore or a dropped partition freed goes back regardless
            return 0
        self._last_full = self._clock()
        return freeze_heap()

    def after_batch(self) -> None:
        """A batch was applied: freeze what it left alive, or run the periodic full
        collection when it is due."""
        if not self.enabled:
            return
        if self._clock() - self._last_full >= self.full_every_seconds:
            self.reset()
            self.full_collections += 1
        else:
            gc.freeze()
