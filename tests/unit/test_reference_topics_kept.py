"""The reference topics keep every record (docs/operations.md, Reference topics keep every
record), and `dfip topics create` sets an existing topic's configs back to the catalog's."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from core.errors import DfipError
from core.kafka_admin import _drift_note, _reconcile, config_drift
from schemas.catalog import ALL_TOPICS, FX, KEEP_FOREVER, SCORES
from streams.reference.fx import FxTable

FOREVER = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


@pytest.mark.parametrize("spec", [FX, SCORES], ids=lambda s: s.name)
def test_reference_topics_are_never_compacted_nor_deleted(spec: Any) -> None:
    assert spec.cleanup_policy == "delete"
    assert spec.retention_ms == KEEP_FOREVER
    assert spec.topic_config() == FOREVER


def test_only_state_like_topics_are_compacted() -> None:
    # a compacted topic is read as "the last record per key": none of them is a reference
    compacted = {s.name for s in ALL_TOPICS if "compact" in s.cleanup_policy}
    assert compacted == {"dfip.metrics", "dfip.ingested", "dfip.state"}


# ---- why: the FX rule over the whole log and over what compaction leaves -----------------


def _at(day: int, hh: int) -> datetime:
    return datetime(2026, 2, day, hh, tzinfo=UTC)


# Friday 13 Feb 2026: published 09:15 Beijing (01:15 UTC), corrected at 16:00 Beijing
LOG = [
    ("USD", date(2026, 2, 12), Decimal("6.9000"), _at(12, 1)),
    ("USD", date(2026, 2, 13), Decimal("7.0000"), _at(13, 1)),
    ("USD", date(2026, 2, 13), Decimal("7.0500"), _at(13, 8)),
]
BETWEEN = _at(13, 3)  # 11:00 Beijing: after the first publication, before the correction


def _table(log: list[tuple[str, date, Decimal, datetime]]) -> FxTable:
    table = FxTable()
    for offset, rec in enumerate(log):
        table.put(*rec, offset=offset)
    return table


def _last_per_key(log: list[tuple[str, date, Decimal, datetime]]) -> list[Any]:
    last = {(c, d): (c, d, r, p) for c, d, r, p in log}
    return list(last.values())


def test_a_restart_reading_the_whole_log_finds_the_live_rates() -> None:
    live = _table(LOG)
    assert live.rate_at("USD", BETWEEN) == Decimal("7.0500")  # corrected, in force since 09:15
    assert _table(LOG).rate_at("USD", BETWEEN) == live.rate_at("USD", BETWEEN)
    # re-reading (a restore rewinds the reader) changes nothing either
    for offset, rec in enumerate(LOG):
        assert not live.put(*rec, offset=offset)


def test_what_compaction_leaves_would_give_another_rate() -> None:
    # the defect the catalog change removes: after compaction a restarted worker saw only
    # the correction, in force from 16:00, and converted the 11:00 event at Thursday's rate
    compacted = _table(_last_per_key(LOG))
    assert compacted.rate_at("USD", BETWEEN) == Decimal("6.9000")
    assert _table(LOG).rate_at("USD", BETWEEN) != compacted.rate_at("USD", BETWEEN)


# ---- reconciling an existing topic --------------------------------------------------------


def test_drift_lists_only_declared_keys_that_differ() -> None:
    actual = {"cleanup.policy": "compact", "retention.ms": "604800000", "retention.bytes": "-1"}
    assert config_drift(FOREVER, actual) == {
        "cleanup.policy": ("compact", "delete"),
        "retention.ms": ("604800000", "-1"),
    }
    assert config_drift(FOREVER, FOREVER) == {}
    # a policy is a list: its order does not matter; an unreported key is a difference
    assert (
        config_drift({"cleanup.policy": "compact,delete"}, {"cleanup.policy": "delete,compact"})
        == {}
    )
    assert config_drift({"retention.ms": "-1"}, {}) == {"retention.ms": (None, "-1")}


def test_note_says_compacted_records_are_gone() -> None:
    note = _drift_note("dfip.fx", {"cleanup.policy": ("compact", "delete")})
    assert note.startswith("topic dfip.fx: set cleanup.policy compact → delete")
    assert "not restored" in note
    assert "not restored" not in _drift_note("t", {"retention.ms": ("1", "-1")})
    assert "\n" not in note


class _Admin:
    """What `_reconcile` asks of KafkaAdminClient: describe_configs and alter_configs."""

    def __init__(self, configs: dict[str, dict[str, str]], refuse: bool = False) -> None:
        self.configs = configs
        self.refuse = refuse
        self.altered: dict[str, dict[str, str]] = {}

    def describe_configs(self, resources: list[Any], config_filter: str) -> dict[str, Any]:
        assert config_filter == "all"  # broker defaults too: an unset key has a value
        return {
            "topic": {
                r.name: {k: {"value": self.configs[r.name].get(k)} for k in r.configs}
                if self.configs[r.name]
                else {}  # what kafka-python makes of an error (an ACL refusing it)
                for r in resources
            }
        }

    def alter_configs(self, resources: list[Any]) -> dict[str, Any]:
        out = {}
        for r in resources:
            if self.refuse:
                out[r.name] = "PolicyViolationError: not allowed"
            else:
                self.altered[r.name] = dict(r.configs)
                self.configs[r.name].update(r.configs)
                out[r.name] = "OK"
        return {"topic": out}


def test_reconcile_sets_back_what_differs_and_nothing_else() -> None:
    admin = _Admin(
        {
            "p-dfip.fx": {"cleanup.policy": "compact", "retention.bytes": "-1"},
            "p-dfip.scores": dict(FOREVER),
        }
    )
    wanted = {"p-dfip.fx": FX, "p-dfip.scores": SCORES}
    got = _reconcile(admin, wanted, list(wanted))  # type: ignore[arg-type]
    assert admin.altered == {"p-dfip.fx": {"cleanup.policy": "delete", "retention.ms": "-1"}}
    assert got == {"p-dfip.fx": ("cleanup.policy: compact → delete", "retention.ms: None → -1")}
    assert _reconcile(admin, wanted, list(wanted)) == {}  # type: ignore[arg-type]


def test_a_refused_change_is_one_line() -> None:
    admin = _Admin({"p-dfip.fx": {"cleanup.policy": "compact"}}, refuse=True)
    with pytest.raises(DfipError) as err:
        _reconcile(admin, {"p-dfip.fx": FX}, ["p-dfip.fx"])  # type: ignore[arg-type]
    text = str(err.value)
    assert "p-dfip.fx" in text
    assert "cleanup.policy=compact" in text
    assert "refused" in text
    assert "\n" not in text


def test_a_worker_will_not_start_on_a_compacted_reference_topic() -> None:
    from core.kafka_config import KafkaSettings
    from dfip.preflight import _wait_for_reference_configs

    settings = KafkaSettings(bootstrap_servers="127.0.0.1:9092", topic_prefix="p-")
    admin = _Admin({"p-dfip.fx": dict(FOREVER), "p-dfip.scores": dict(FOREVER)})
    _wait_for_reference_configs(admin, settings, timeout=0)  # as declared: no wait
    admin.configs["p-dfip.fx"]["cleanup.policy"] = "compact"
    with pytest.raises(DfipError) as err:
        _wait_for_reference_configs(admin, settings, timeout=0)
    text = str(err.value)
    assert text.startswith("topic p-dfip.fx has cleanup.policy=compact, the catalog says")
    assert "dfip topics create" in err.value.hint
    assert "\n" not in text


def test_configs_the_broker_will_not_show_are_not_compared(caplog: Any) -> None:
    admin = _Admin({"p-dfip.fx": {}})  # an authorization error: no configs at all
    assert _reconcile(admin, {"p-dfip.fx": FX}, ["p-dfip.fx"]) == {}  # type: ignore[arg-type]
    assert admin.altered == {}
    assert "cannot read the configs of topic p-dfip.fx" in caplog.text


def test_cli_lists_what_it_set_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import core.kafka_admin
    from core.kafka_admin import TopicResult
    from dfip.cli import app

    results = [
        TopicResult("dfip.fx", 1, False, ("cleanup.policy: compact → delete",)),
        TopicResult("dfip.loans", 12, False),
    ]
    monkeypatch.setattr(core.kafka_admin, "create_topics", lambda *a, **kw: results)
    out = CliRunner().invoke(app, ["topics", "create"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "reconfigured dfip.fx to the catalog: cleanup.policy: compact → delete" in out.output
    assert "as declared" in out.output
    assert "reconfigured dfip.loans" not in out.output
