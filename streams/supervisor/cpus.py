"""How many worker processes ``processes = auto`` starts: one per CPU this process may use."""

from __future__ import annotations

import math
import os
from pathlib import Path

from streams.settings import MAX_PROCESSES, WorkerSettings

__all__ = ["process_count", "usable_cpus"]

_CGROUP = Path("/sys/fs/cgroup")


def _cgroup_quota(root: Path = _CGROUP) -> float | None:
    """CPUs' worth of the cgroup's CPU quota (a container's --cpus), or None if unlimited."""
    try:  # cgroup v2: "max 100000" or "<quota> <period>"
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def usable_cpus(root: Path = _CGROUP) -> int:
    """CPUs this process may run on (its affinity), capped by a cgroup CPU quota."""
    count = len(os.sched_getaffinity(0))
    quota = _cgroup_quota(root)
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def process_count(settings: WorkerSettings) -> int:
    if settings.processes == "auto":
        return min(usable_cpus(), MAX_PROCESSES)
    return settings.processes
