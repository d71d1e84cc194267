"""Assembling a dashboard from rows of panels, with stable panel ids (stable JSON)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models.dashboard import (
    Dashboard,
    RowPanel,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.dashboard import Panel as PanelModel

from deploy.grafana.dashboards_src.panels import (
    DATASOURCE_UID,
    DATASOURCE_VARIABLE,
    FILTERS,
    Panel,
    datasource,
)

__all__ = ["DashboardSpec", "Row", "assemble", "panels_of"]


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[Panel]


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    file_name: str  # under deploy/grafana/dashboards/
    rows: Sequence[Row]
    time_from: str = "now-6h"
    refresh: str = "30s"


#: The series each filter variable takes its values from (always present with data).
_VALUES_FROM = {
    "digitalization_band": "dfip:transactions:sum_by_digitalization_band",
    "region": "dfip:transactions:sum_by_region",
    "institution_type": "dfip:transactions:sum_by_institution_type",
}


def _used_labels(spec: DashboardSpec) -> list[str]:
    exprs = " ".join(
        str(getattr(t, "expr", ""))
        for row in spec.rows
        for panel in row.panels
        for t in (panel.build().targets or [])
    )
    return [label for label, (name, _) in FILTERS.items() if f"${name}" in exprs]


def variables(spec: DashboardSpec) -> list[Any]:
    """The datasource variable, then a filter variable for each label the panels filter by."""
    out: list[Any] = [
        dash.DatasourceVariable(DATASOURCE_VARIABLE)
        .label("Data source")
        .type("prometheus")
        .current(VariableOption(selected=True, text="Prometheus", value=DATASOURCE_UID))
    ]
    for label in _used_labels(spec):
        name, title = FILTERS[label]
        out.append(
            dash.QueryVariable(name)
            .label(title)
            .datasource(datasource())
            .query(f"label_values({_VALUES_FROM[label]}, {label})")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(VariableOption(selected=True, text="All", value="$__all"))
        )
    return out


def assemble(spec: DashboardSpec) -> Dashboard:
    board = (
        dash.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(["dfip"])
        .timezone("browser")
        .time(spec.time_from, "now")
        .refresh(spec.refresh)
        .readonly()  # provisioned from code: edit deploy/grafana/dashboards_src instead
    )
    for variable in variables(spec):
        board = board.with_variable(variable)
    next_id = 1
    for row in spec.rows:
        board = board.with_row(dash.Row(row.title).id(next_id))
        next_id += 1
        for panel in row.panels:
            board = board.with_panel(panel.id(next_id))
            next_id += 1
    return board.build()


def panels_of(board: Dashboard) -> Iterator[tuple[str, PanelModel]]:
    """(row title, panel) in dashboard order, rows' nested panels included."""
    row = ""
    for item in board.panels or []:
        if isinstance(item, RowPanel):
            row = item.title or ""
            for nested in item.panels:
                yield row, nested
        elif isinstance(item, PanelModel):
            yield row, item
