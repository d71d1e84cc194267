"""One worker's /metrics from the expositions of its processes.

A worker running N processes is N members of the consumer group behind one port. Each
process exports the figures of the input partitions it owns, with a ``partition`` label, so
their series are disjoint; a series two processes both export (a partition that just moved
and is still in the old owner's last export, the same moment docs/metrics.md describes for
two workers) keeps the larger value, as the documented queries take the maximum per
partition. Series without a ``partition`` label are the processes' own health metrics and
add up (batches, records, histogram buckets, assigned partitions), except:

- ``dfip_worker_ready``: the smallest (the worker is ready when every process is);
- ``dfip_worker_last_restore_seconds``, ``dfip_build_info``: the largest;
- ``*_created`` (prometheus_client's creation time of a counter or histogram): the earliest.

Families keep the order of their first appearance; each keeps one ``# HELP`` and ``# TYPE``.
A value is copied as written (figures are exact decimals: never through a float) unless two
processes' values add up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation

__all__ = ["merge_expositions"]

_SMALLEST = frozenset({"dfip_worker_ready"})
_LARGEST = frozenset({"dfip_worker_last_restore_seconds", "dfip_build_info"})


def _number(raw: str) -> Decimal | None:
    """Exact (a float would tie yuan amounts that differ in their last fen); None for NaN
    or text that is no number, which loses to any number."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    return None if value.is_nan() else value


def _largest(a: str, b: str) -> str:
    x, y = _number(a), _number(b)
    return b if x is None or (y is not None and y > x) else a


def _smallest(a: str, b: str) -> str:
    x, y = _number(a), _number(b)
    return b if x is None or (y is not None and y < x) else a


def _add(a: str, b: str) -> str:
    # the exposition's spellings of the non-finite values; a finite sum as Python writes it
    # (not prometheus_client's formatter: importing it costs the lean supervisor 4 MB)
    total = float(a) + float(b)
    if math.isnan(total):
        return "NaN"
    if math.isinf(total):
        return "+Inf" if total > 0 else "-Inf"
    return repr(total)


def _rule(series: str) -> Callable[[str, str], str]:
    name = series.split("{", 1)[0]
    if 'partition="' in series or name in _LARGEST:
        return _largest
    if name in _SMALLEST or name.endswith("_created"):
        return _smallest
    return _add


class _Family:
    __slots__ = ("headers", "samples")

    def __init__(self) -> None:
        self.headers: list[str] = []
        self.samples: dict[str, str] = {}


def merge_expositions(texts: Iterable[str]) -> str:
    """The Prometheus text expositions ``texts`` as one (see the module's rules)."""
    families: dict[str, _Family] = {}
    for text in texts:
        family: _Family | None = None
        for line in text.splitlines():
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = families.setdefault(parts[2], _Family())
                    if len(family.headers) < 2 and line not in family.headers:
                        family.headers.append(line)
                continue
            # a sample: `name{labels} value` (no timestamps in DFIP's exposition); label
            # values may hold spaces, the value never does
            series, _, raw = line.rpartition(" ")
            if not series:
                continue
            if family is None:  # a sample before any header: a family of its own
                family = families.setdefault(series.split("{", 1)[0], _Family())
            seen = family.samples.get(series)
            family.samples[series] = raw if seen is None else _rule(series)(seen, raw)
    out: list[str] = []
    for family in families.values():
        out.extend(f"{h}\n" for h in family.headers)
        out.extend(f"{s} {v}\n" for s, v in family.samples.items())
    return "".join(out)
