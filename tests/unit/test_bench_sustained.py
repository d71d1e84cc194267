"""bench.sustained without Kafka: the kept-up criterion and the rate bisection."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from bench.latency import LatencyRun
from bench.sustained import bisect_rate, kept_up, main, majority


def _run(by_second: Sequence[float | None], late: float = 0.02, invisible: int = 0) -> LatencyRun:
    run = LatencyRun(10_000.0, 1000, invisible, 0.2, 0.4, 0.2, 0.4, 1.0, 3.0)
    run.by_second = list(by_second)
    run.late_by_second = [late] * len(by_second)
    return run


def test_a_steady_delay_is_kept_up_even_after_a_slow_warm_up() -> None:
    judged = kept_up(_run([3.0] * 5 + [0.4] * 30), warm=5)
    assert judged.ok, judged.why


def test_a_growing_delay_is_not_kept_up() -> None:
    # 30 ms more per second sent: 0.9 s over the measured 30 s
    judged = kept_up(_run([0.3 + 0.03 * i for i in range(35)]), warm=5)
    assert not judged.ok
    assert "grew" in judged.why


def test_a_late_producer_or_invisible_records_are_not_kept_up() -> None:
    assert not kept_up(_run([0.3] * 35, late=0.8), warm=5).ok
    one_stall = _run([0.3] * 35)
    one_stall.late_by_second[20] = 1.2  # the machine stalled once: caught up after
    assert kept_up(one_stall, warm=5).ok
    assert not kept_up(_run([0.3] * 34 + [math.inf], invisible=5), warm=5).ok


def test_a_round_shorter_than_two_windows_is_not_judged_kept_up() -> None:
    judged = kept_up(_run([0.3] * 20), warm=5)
    assert not judged.ok
    assert "too short" in judged.why


def test_bisection_finds_the_highest_rate_kept_up() -> None:
    tried: list[float] = []

    def ok(rate: float) -> bool:
        tried.append(rate)
        return rate <= 12_300

    assert bisect_rate(ok, 6000, 20_000, 500) == 12_000
    assert tried[0] == 6000
    assert len(tried) <= 7


def test_bisection_reaches_high_and_gives_up_below_low() -> None:
    assert bisect_rate(lambda r: True, 6000, 20_000, 500) == 20_000
    assert bisect_rate(lambda r: False, 6000, 20_000, 500) is None


def test_help_parses() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0


@pytest.mark.parametrize(
    ("results", "rounds", "expected", "calls"),
    [
        ([True, True], 3, True, 2),
        ([False, False], 3, False, 2),
        ([True, False, True], 3, True, 3),
        ([False, True, False], 3, False, 3),
        ([True], 1, True, 1),
        ([False], 1, False, 1),
        ([True, False], 2, False, 2),  # a tie is not "most"
    ],
)
def test_a_step_is_kept_up_when_most_of_its_rounds_are(
    results: list[bool], rounds: int, expected: bool, calls: int
) -> None:
    seen = iter(results)
    made: list[bool] = []

    def judge() -> bool:
        made.append(next(seen))
        return made[-1]

    assert majority(judge, rounds) is expected
    assert len(made) == calls
