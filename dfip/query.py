"""``dfip query enterprise <uscc>``: one enterprise's exposure from the workers' query API.

Asks any worker (``--url``, default ``DFIP_QUERY_URL`` or http://127.0.0.1:6066): it answers
or forwards to the owner of the enterprise's partition. The bearer token comes from
``DFIP_QUERY_TOKEN_FILE``, ``DFIP_QUERY_TOKEN`` or the worker's own ``DFIP_WORKER_API_TOKEN``
(never from the command line, where process listings would show it). A 503 (rebalance) is
asked again after its Retry-After, up to ``--wait`` seconds.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dfip.errors import DfipError

__all__ = ["fetch_enterprise", "query_app", "render_enterprise"]

query_app = typer.Typer(no_args_is_help=True, help="Ask the stream workers' query API.")
DEFAULT_URL = "http://127.0.0.1:6066"


@query_app.callback()
def _query() -> None:
    """Ask the stream workers' query API."""


def _token(env: dict[str, str] | None = None) -> str | None:
    env = dict(os.environ) if env is None else env
    if path := env.get("DFIP_QUERY_TOKEN_FILE"):
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DfipError(f"DFIP_QUERY_TOKEN_FILE={path}: {exc.strerror}") from None
    return env.get("DFIP_QUERY_TOKEN") or env.get("DFIP_WORKER_API_TOKEN") or None


def fetch_enterprise(
    base_url: str, uscc: str, token: str | None, *, wait: float = 10.0
) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of ``GET /v1/enterprises/{uscc}``; 503s are retried up to
    ``wait`` seconds after their Retry-After."""
    if not base_url.startswith(("http://", "https://")):
        raise DfipError(f"{base_url}: not an http(s) URL", hint="e.g. --url http://worker:6066")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{base_url.rstrip('/')}/v1/enterprises/{urllib.parse.quote(uscc.strip())}"
    deadline = time.monotonic() + wait
    while True:
        req = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) checked
        try:
            with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310
                return int(r.status), json.loads(r.read())
        except urllib.error.HTTPError as e:
            status, body = int(e.code), json.loads(e.read() or b"{}")
            retry = float(e.headers.get("Retry-After") or 1)
            if status != 503 or time.monotonic() + retry > deadline:
                return status, body
            time.sleep(retry)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DfipError(f"{base_url}: {reason}", hint="is a worker running there?") from None


def render_enterprise(body: dict[str, Any], console: Console) -> None:
    """The answer as rich tables: bands, loans, totals by institution type, flows."""
    current = body.get("current") or {}
    console.print(
        f"[bold]{body['uscc']}[/]  region {body['region']}  partition {body['partition']}  "
        f"band {current.get('band', 'unscored')}  sector {current.get('sector', 'unknown')}  "
        f"(served by {body.get('served_by', '?')})"
    )
    scores = Table(title="Assessments (as-of join history)")
    for col in ("assessed at (UTC)", "band", "sector"):
        scores.add_column(col)
    for s in body["scores"]:
        scores.add_row(s["assessed_at"], s["band"], s["sector"])
    console.print(scores)
    loans = Table(title="Active loans")
    for col in ("loan", "institution", "band", "currency", "outstanding", "CNY yuan", "DPD",
                "risk class"):  # fmt: skip
        loans.add_column(col, justify="right" if col in ("CNY yuan", "DPD") else "left")
    for ln in body["loans"]:
        loans.add_row(
            ln["loan_id"], ln["institution_type"], ln["vintage_band"], ln["currency"],
            ln["outstanding"], ln["outstanding_yuan"], str(ln["days_past_due"]), ln["risk_class"],
        )  # fmt: skip
    console.print(loans)
    totals = Table(title="Active loans by institution type")
    for col in ("institution", "loans", "outstanding yuan", "past due yuan"):
        totals.add_column(col, justify="left" if col == "institution" else "right")
    for it, t in body["loan_totals"].items():
        totals.add_row(it, str(t["loans"]), t["outstanding_yuan"], t["past_due_yuan"])
    console.print(totals)
    flows = body.get("flows")
    if flows:
        table = Table(title=f"Flows {flows['first_day']} .. {flows['last_day']} (Beijing days)")
        for col in ("direction", "transactions", "yuan"):
            table.add_column(col, justify="left" if col == "direction" else "right")
        for d in ("credit", "debit"):
            table.add_row(d, str(flows[d]["count"]), flows[d]["yuan"])
        console.print(table)


@query_app.command("enterprise")
def enterprise(
    uscc: Annotated[str, typer.Argument(help="Unified Social Credit Code of the enterprise.")],
    url: Annotated[
        str | None, typer.Option(help="Any worker's HTTP base URL (default DFIP_QUERY_URL).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    wait: Annotated[
        float, typer.Option(min=0, help="Keep asking this many seconds while answered 503.")
    ] = 10.0,
) -> None:
    """Bands, active loans, loan totals and 30-day flows of one enterprise."""
    base = url or os.environ.get("DFIP_QUERY_URL") or DEFAULT_URL
    status, body = fetch_enterprise(base, uscc, _token(), wait=wait)
    out = Console(soft_wrap=True)
    if status != 200:
        raise DfipError(f"query answered {status}: {body.get('error', body)}")
    if as_json:
        out.print_json(data=body)
    else:
        render_enterprise(body, out)
