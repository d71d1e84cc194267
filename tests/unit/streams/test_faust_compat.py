"""The Faust/aiokafka internals the record path uses are checked before a worker starts."""

from __future__ import annotations

import pytest

from core.errors import DfipError
from streams.faust_compat import ALLOW_ENV, WRITTEN_FOR, batch_cap, check_versions, is_behind
from streams.settings import WorkerSettings


def test_the_installed_releases_are_the_ones_written_for() -> None:
    check_versions()  # constraints.txt pins them: this is what CI and the image run


def test_another_release_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    installed = {**{n: s + ".0" for n, s in WRITTEN_FOR.items()}, "aiokafka": "0.15.1"}
    with pytest.raises(DfipError) as refused:
        check_versions(installed)
    assert refused.value.exit_code == 2
    assert "aiokafka 0.15.1 is installed" in str(refused.value)
    assert "aiokafka 0.14.x" in str(refused.value)
    monkeypatch.setenv(ALLOW_ENV, "1")
    check_versions(installed)  # the operator checked and allows it


def test_a_series_prefix_is_not_a_longer_version() -> None:
    installed = {**{n: s + ".2" for n, s in WRITTEN_FOR.items()}, "faust-streaming": "0.150.0"}
    with pytest.raises(DfipError, match=r"faust-streaming 0\.150\.0"):
        check_versions(installed)


def test_batch_cap_grows_when_the_oldest_record_is_old() -> None:
    s = WorkerSettings(batch_size=2000, batch_size_behind=6000, batch_behind_ms=500)
    now = 1_000_000.0
    assert batch_cap(None, now, s) == 2000  # no timestamp: as caught up
    assert batch_cap(int(now) - 100, now, s) == 2000
    assert batch_cap(int(now) - 500, now, s) == 2000  # at the threshold: still caught up
    assert batch_cap(int(now) - 501, now, s) == 6000
    # a behind cap below the caught-up one never shrinks batches
    assert batch_cap(0, now, WorkerSettings(batch_size=3000, batch_size_behind=100)) == 3000


def test_behind_means_the_oldest_record_is_older_than_the_setting() -> None:
    # batch pacing (batch_interval_ms) applies only while caught up
    s = WorkerSettings(batch_behind_ms=500, batch_interval_ms=100)
    now = 1_000_000.0
    assert not is_behind(None, now, s)
    assert not is_behind(int(now) - 500, now, s)
    assert is_behind(int(now) - 501, now, s)
    assert WorkerSettings(_env_file=None).batch_interval_ms == 0  # type: ignore[call-arg]
