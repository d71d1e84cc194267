"""Assembling a dashboard from rows of panels, with stable panel ids (stable JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models.dashboard import Dashboard

from deploy.grafana.dashboards_src.panels import Panel

__all__ = ["DashboardSpec", "Row", "assemble"]


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
    next_id = 1
    for row in spec.rows:
        board = board.with_row(dash.Row(row.title).id(next_id))
        next_id += 1
        for panel in row.panels:
            board = board.with_panel(panel.id(next_id))
            next_id += 1
    return board.build()
