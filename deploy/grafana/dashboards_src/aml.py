"""The "大额与可疑交易 / Large-value and suspicious" dashboard: rule hits over the
transaction stream (docs/aml-rules.md) by rule, region, institution type and band, and the
hourly trend against the same hour a week before. No identifiers: those stay on dfip.alerts."""

from __future__ import annotations

from deploy.grafana.dashboards_src.layout import DashboardSpec, Row
from deploy.grafana.dashboards_src.panels import (
    CNY,
    Query,
    Step,
    bars,
    stat_panel,
    timeseries_panel,
)

__all__ = ["dashboard"]

_RULE = "{{rule}}"
_QUIET = (Step(None, "green"), Step(1, "orange"))


def _overview() -> Row:
    return Row(
        "概览 / Overview",
        [
            stat_panel(
                "命中 / Hits",
                "Rule hits written to dfip.alerts since the stream began, all rules.",
                Query("sum(dfip:alerts:sum_by_rule)"),
                unit="short",
                steps=_QUIET,
                width=6,
            ),
            stat_panel(
                "命中金额 / Amount in hits",
                "CNY amount of the transactions named by the hits (a transaction in two hits "
                "counts twice).",
                Query("sum(dfip:alert_amount_yuan:sum_by_rule)"),
                unit=CNY,
                width=6,
            ),
            stat_panel(
                "最近一小时 / Hits in the last hour",
                "Rule hits in the last hour, all rules; DfipAmlHitsSpike compares each rule "
                "with the same hour a week before.",
                Query("sum(dfip:alerts:increase1h_by_rule)"),
                unit="short",
                steps=_QUIET,
                width=6,
            ),
            stat_panel(
                "一周前同一小时 / Same hour last week",
                "Rule hits in the same hour a week ago, all rules.",
                Query("sum(dfip:alerts:increase1h_by_rule offset 1w)"),
                unit="short",
                width=6,
            ),
        ],
    )


def _trend() -> Row:
    return Row(
        "趋势 / Trend",
        [
            timeseries_panel(
                "每小时命中 / Hits per hour by rule",
                "Hits of each rule in the hour before each point, and (dashed in the legend as "
                "'last week') the same hour a week before.",
                [
                    Query("dfip:alerts:increase1h_by_rule", _RULE),
                    Query("dfip:alerts:increase1h_by_rule offset 1w", "last week {{rule}}"),
                ],
                unit="short",
                width=24,
            ),
        ],
    )


def _breakdowns() -> Row:
    return Row(
        "分布 / Breakdowns",
        [
            bars(
                "按规则金额 / Amount by rule",
                "CNY amount of the transactions named by each rule's hits.",
                Query("dfip:alert_amount_yuan:sum_by_rule", _RULE),
                unit=CNY,
                width=6,
            ),
            bars(
                "按地区 / Hits by rule and region",
                "Hits since the stream began by rule and the enterprise's prefecture city.",
                Query("dfip:alerts:sum_by_rule_region", "{{rule}} · {{region}}"),
                unit="short",
                width=6,
            ),
            bars(
                "按机构类型 / Hits by rule and institution type",
                "Hits by rule and the type of institution that reported the hit's first event.",
                Query(
                    "dfip:alerts:sum_by_rule_institution_type", "{{rule}} · {{institution_type}}"
                ),
                unit="short",
                width=6,
            ),
            bars(
                "按数字化等级 / Hits by rule and band",
                "Hits by rule and the enterprise's digitalisation band at its first event.",
                Query(
                    "dfip:alerts:sum_by_rule_digitalization_band",
                    "{{rule}} · {{digitalization_band}}",
                ),
                unit="short",
                width=6,
            ),
        ],
    )


def _overdue() -> Row:
    return Row(
        "报告逾期 / Overdue reports",
        [
            stat_panel(
                "逾期未确认 / Reports overdue",
                "Hits past their report-due date (5 China working days after the last event) "
                "with no acknowledgement on dfip.alerts.ack; DfipAmlReportsOverdue fires after "
                "30 minutes of any.",
                Query("sum(dfip:alerts_overdue:sum_by_rule_region) or vector(0)"),
                unit="short",
                steps=(Step(None, "green"), Step(1, "red")),
                width=6,
            ),
            bars(
                "按规则与地区逾期 / Overdue by rule and region",
                "Overdue, unacknowledged hits by rule and the enterprise's prefecture city.",
                Query("dfip:alerts_overdue:sum_by_rule_region", "{{rule}} · {{region}}"),
                unit="short",
                width=18,
            ),
        ],
    )


def dashboard() -> DashboardSpec:
    return DashboardSpec(
        uid="dfip-aml",
        title="DFIP · 大额与可疑交易 / Large-value and suspicious",
        description=(
            "Large-value and suspicious-pattern rule hits (PBOC Order [2016] No. 3 thresholds "
            "and pattern rules, docs/aml-rules.md): counts, amounts and trend by rule, region, "
            "institution type and band. Names and events stay on dfip.alerts."
        ),
        file_name="aml.json",
        rows=[_overview(), _overdue(), _trend(), _breakdowns()],
        time_from="now-24h",
        refresh="1m",
    )
