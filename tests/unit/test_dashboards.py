"""Grafana dashboards: the committed JSON and docs/dashboards.md match the dashboard code, and
every panel reads the provisioned Prometheus datasource with a real query."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.figures import FIGURES_BY_NAME

grafana = pytest.importorskip("grafana_foundation_sdk", reason="a dev dependency")

from deploy.grafana.dashboards_src import (  # noqa: E402  (after the importorskip)
    DASHBOARDS_DIR,
    dashboards,
    main,
)
from deploy.grafana.dashboards_src.financial_centre import (  # noqa: E402
    PROVINCE_DIGITAL_ECONOMY_TARGET,
)
from deploy.grafana.dashboards_src.zh import zh_file_name  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
RULES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))


def committed() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARDS_DIR.glob("*.json")
    }


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for item in board["panels"]:
        if item["type"] == "row":
            out.extend(item.get("panels", []))
        else:
            out.append(item)
    return out


def recorded_names() -> set[str]:
    names = set()
    for path in RULES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


def test_generated_files_are_current() -> None:
    assert main(["--check"]) == 0, "run `python -m deploy.grafana.dashboards_src`"


def test_no_stale_dashboard_files() -> None:
    names = {spec.file_name for spec in dashboards()}
    assert set(committed()) == names | {zh_file_name(n) for n in names}


def test_the_dashboards() -> None:
    boards = {b["uid"]: b for b in committed().values()}
    english = {"dfip-financial-centre", "dfip-platform-health", "dfip-aml"}
    assert set(boards) == english | {f"{uid}-zh" for uid in english}
    for board in boards.values():
        assert board["schemaVersion"] >= 39  # Grafana 11
        assert "dfip" in board["tags"]


def test_every_panel_reads_the_provisioned_prometheus() -> None:
    (datasource,) = yaml.safe_load(
        (PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    uid = datasource["uid"]
    assert uid == "prometheus"
    for name, board in committed().items():
        (variable,) = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
        assert variable["type"] == "datasource"
        assert variable["query"] == "prometheus"
        assert variable["current"]["value"] == uid
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels(board):
            where = f"{name}: {panel['title']}"
            # through the dashboard's datasource variable, whose default is the provisioned one
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel.get("description"), f"{where}: no meaning"
            assert panel["targets"], f"{where}: no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", where
                assert target["expr"].strip(), f"{where}: empty expr"
            pos = panel["gridPos"]
            assert pos["x"] >= 0, where
            assert pos["x"] + pos["w"] <= 24, where


def test_queries_use_recording_rules_that_exist() -> None:
    known = recorded_names()
    for name, board in committed().items():
        for panel in panels(board):
            for target in panel["targets"]:
                for used in re.findall(r"\bdfip:[a-z0-9_]+:[a-z0-9_]+\b", target["expr"]):
                    assert used in known, f"{name}: {panel['title']}: {used} is not recorded"


def test_no_panel_sums_raw_partition_series() -> None:
    """Business and flow figures are read through recording rules (max per partition first);
    the only raw use is the ownership filter of the lag panels."""
    for name, board in committed().items():
        for panel in panels(board):
            for target in panel["targets"]:
                expr = target["expr"].replace(
                    "and on (instance, partition) dfip_events_received_total", ""
                )
                raw = re.findall(r"(?<![:\w])dfip_[a-z0-9_]+", expr)
                assert not [n for n in raw if n in FIGURES_BY_NAME], (name, panel["title"])


def test_the_province_target_is_a_reference_line() -> None:
    board = committed()["financial-centre.json"]
    (panel,) = [p for p in panels(board) if "digital-economy target" in p["title"]]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert PROVINCE_DIGITAL_ECONOMY_TARGET == 0.55  # shared/DOMAIN.md: > 55 % of GDP by 2022
    assert {"color": "green", "value": 0.55} in steps
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"
    assert any(t["expr"] == "vector(0.55)" for t in panel["targets"])


def test_docs_list_every_panel_and_query() -> None:
    text = (REPO / "docs" / "dashboards.md").read_text(encoding="utf-8")
    for name, board in committed().items():
        if name.endswith(".zh.json"):
            continue  # the Chinese set: test_the_chinese_set_shows_the_same_queries
        for panel in panels(board):
            assert f"#### {panel['title']}" in text
            for target in panel["targets"]:
                assert target["expr"] in text


def test_dashboard_code_passes_mypy_strict() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "-p", "deploy.grafana.dashboards_src"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_filter_variables_apply_to_every_breakdown_by_their_label() -> None:
    """Band, region and institution type are dashboard variables (multi, "All" = .*); every
    panel query that is a breakdown by one of those labels filters by its variable."""
    board = committed()["financial-centre.json"]
    found = {v["name"]: v for v in board["templating"]["list"]}
    assert {"datasource", "band", "region", "institution_type"} <= set(found)
    known = recorded_names()
    for name, label in (
        ("band", "digitalization_band"),
        ("region", "region"),
        ("institution_type", "institution_type"),
    ):
        v = found[name]
        assert v["type"] == "query"
        assert v["multi"] is True
        assert v["includeAll"] is True
        assert v["allValue"] == ".*"
        assert v["datasource"]["uid"] == "${datasource}"
        series = re.fullmatch(rf"label_values\((\S+), {label}\)", v["query"])
        assert series is not None, v["query"]
        assert series.group(1) in known
    for panel in panels(board):
        for target in panel["targets"]:
            expr = target["expr"]
            for name, label in (
                ("band", "digitalization_band"),
                ("region", "region"),
                ("institution_type", "institution_type"),
            ):
                if re.fullmatch(rf"dfip:\w+:\w+_by_{label}(\{{.*\}})?", expr):
                    assert f'{label}=~"${name}"' in expr, (panel["title"], expr)


CJK = re.compile(r"[\u4e00-\u9fff]")


def test_the_chinese_set_shows_the_same_queries_in_chinese() -> None:
    """Each *.zh.json is its English dashboard with Chinese texts, amounts in 万元 (the same
    query / 10000), region names from GB/T 2260 and Beijing time; analysts.md lists it."""
    boards = committed()
    analysts = (REPO / "docs" / "analysts.md").read_text(encoding="utf-8")
    for name in ("financial-centre.json", "platform-health.json"):
        en, zh = boards[name], boards[zh_file_name(name)]
        assert zh["timezone"] == "Asia/Shanghai"
        assert CJK.search(zh["title"])
        pairs = list(zip(panels(en), panels(zh), strict=True))
        for p_en, p_zh in pairs:
            assert CJK.search(p_zh["title"]), p_en["title"]
            unit = p_en["fieldConfig"]["defaults"].get("unit", "")
            for t_en, t_zh in zip(p_en["targets"], p_zh["targets"], strict=True):
                if unit.startswith("currency:¥"):
                    assert t_zh["expr"] == f"({t_en['expr']}) / 10000"
                    assert "万元" in p_zh["fieldConfig"]["defaults"]["unit"]
                else:
                    assert t_zh["expr"] == t_en["expr"]
            if name == "financial-centre.json":
                assert CJK.search(p_zh["description"]), p_en["title"]
                assert f"#### {p_zh['title']} · {p_en['title']}" in analysts
                for t_en in p_en["targets"]:
                    assert t_en["expr"] in analysts
    (regions,) = [
        p for p in panels(boards["financial-centre.zh.json"]) if p["title"] == "按地区的支付金额"
    ]
    names = {
        o["matcher"]["options"]: o["properties"][0]["value"]
        for o in regions["fieldConfig"]["overrides"]
    }
    assert names["hangzhou"] == "杭州市"
    assert names["lishui"] == "丽水市"
