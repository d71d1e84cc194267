"""Grafana dashboards as code (grafana-foundation-sdk, Grafana 11).

``python -m deploy.grafana.dashboards_src`` writes deploy/grafana/dashboards/*.json (loaded by
the file provider in deploy/grafana/provisioning/) and docs/dashboards.md; ``--check`` exits 1
when a committed file differs from what the code generates (tests/unit/test_dashboards.py).
"""

from __future__ import annotations

from deploy.grafana.dashboards_src.render import (
    DASHBOARDS_DIR,
    DOCS_PATH,
    dashboards,
    main,
    render_dashboard_json,
    render_docs,
    rendered_files,
)

__all__ = [
    "DASHBOARDS_DIR",
    "DOCS_PATH",
    "dashboards",
    "main",
    "render_dashboard_json",
    "render_docs",
    "rendered_files",
]
