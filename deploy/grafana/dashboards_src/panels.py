"""Small typed helpers over grafana-foundation-sdk: every panel reads the provisioned
Prometheus datasource (uid ``prometheus``) and says what it means in its description, which
docs/dashboards.md is generated from."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge, common, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models.dashboard import DataSourceRef, Threshold, ThresholdsMode

__all__ = [
    "CNY",
    "CNY_PER_S",
    "DATASOURCE_UID",
    "DATASOURCE_VARIABLE",
    "FILTERS",
    "Query",
    "Step",
    "bars",
    "datasource",
    "filtered",
    "stat_panel",
    "timeseries_panel",
]

# deploy/grafana/provisioning/datasources/prometheus.yml provisions this uid; it is the
# default of the dashboards' `datasource` variable, which every panel reads through (so a
# Grafana with another Prometheus, e.g. kube-prometheus-stack's, can pick it).
DATASOURCE_UID = "prometheus"
DATASOURCE_VARIABLE = "datasource"

#: Dashboard variables (name, label) filtering the series of `*_by_<label>` recording rules:
#: a panel broken down by region shows the selected regions, and so on. Totals stay
#: province-wide (recording rules aggregate a single label, so a total cannot be filtered).
FILTERS: dict[str, tuple[str, str]] = {
    "digitalization_band": ("band", "Digitalisation band"),
    "region": ("region", "Region"),
    "institution_type": ("institution_type", "Institution type"),
}
_BY = re.compile(r"^(dfip:[a-z0-9_]+:[a-z0-9_]+_by_(" + "|".join(FILTERS) + r"))$")


def filtered(expr: str) -> str:
    """A bare `…_by_<label>` recording rule gets the matcher of its dashboard variable."""
    match = _BY.match(expr.strip())
    if match is None:
        return expr
    label = match.group(2)
    return f'{match.group(1)}{{{label}=~"${FILTERS[label][0]}"}}'


# Grafana custom units: "currency:" scales with K/M/B; amounts are in yuan (CNY).
CNY = "currency:¥"
CNY_PER_S = "currency:¥/s"

Panel = timeseries.Panel | stat.Panel | bargauge.Panel


def datasource() -> DataSourceRef:
    return DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Step:
    """A threshold: from `value` upwards (None = the base step) the colour is `color`."""

    value: float | None
    color: str


def _targets(queries: Sequence[Query], *, instant: bool) -> list[prometheus.Dataquery]:
    out = []
    for i, q in enumerate(queries):
        target = (
            prometheus.Dataquery()
            .expr(filtered(q.expr))
            .ref_id(chr(ord("A") + i))
            .datasource(datasource())
        )
        if q.legend:
            target = target.legend_format(q.legend)
        out.append(target.instant() if instant else target.range())
    return out


def _thresholds(steps: Sequence[Step]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=s.value, color=s.color) for s in steps])
    )


_DEFAULT_STEPS = (Step(None, "green"),)


def timeseries_panel(
    title: str,
    meaning: str,
    queries: Sequence[Query],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    reference_lines: Sequence[Step] = (),
    min_value: float | None = None,
) -> timeseries.Panel:
    """A time series; `reference_lines` are drawn as dashed threshold lines."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(meaning)
        .datasource(datasource())
        .unit(unit)
        .span(width)
        .height(height)
        .fill_opacity(30 if stacked else 10)
        .legend(
            common.VizLegendOptions()
            .display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    for target in _targets(queries, instant=False):
        panel = panel.with_target(target)
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(common_models.StackingMode.NORMAL))
    if reference_lines:
        panel = panel.thresholds(_thresholds((Step(None, "transparent"), *reference_lines)))
        panel = panel.thresholds_style(
            common.GraphThresholdsStyleConfig().mode(common_models.GraphThresholdsStyleMode.DASHED)
        )
    if min_value is not None:
        panel = panel.min(min_value)
    return panel


def stat_panel(
    title: str,
    meaning: str,
    query: Query,
    *,
    unit: str,
    steps: Sequence[Step] = _DEFAULT_STEPS,
    width: int = 4,
    height: int = 4,
    decimals: int | None = None,
) -> stat.Panel:
    """One current value (instant query), coloured by `steps`."""
    panel = (
        stat.Panel()
        .title(title)
        .description(meaning)
        .datasource(datasource())
        .unit(unit)
        .span(width)
        .height(height)
        .graph_mode(common_models.BigValueGraphMode.NONE)
        .color_mode(common_models.BigValueColorMode.VALUE)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(_thresholds(steps))
    )
    for target in _targets([query], instant=True):
        panel = panel.with_target(target)
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def bars(
    title: str,
    meaning: str,
    query: Query,
    *,
    unit: str,
    width: int = 8,
    height: int = 8,
    steps: Sequence[Step] = _DEFAULT_STEPS,
) -> bargauge.Panel:
    """Current values of one breakdown (instant query), one horizontal bar per series."""
    panel = (
        bargauge.Panel()
        .title(title)
        .description(meaning)
        .datasource(datasource())
        .unit(unit)
        .span(width)
        .height(height)
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .display_mode(common_models.BarGaugeDisplayMode.BASIC)
        .show_unfilled(True)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(_thresholds(steps))
        .min(0)
    )
    for target in _targets([query], instant=True):
        panel = panel.with_target(target)
    return panel
