"""``dfip query enterprise <uscc>``: one enterprise's exposure from the workers' query API.

Asks any worker (``--url``, default ``DFIP_QUERY_URL`` or http://127.0.0.1:6066): it answers
or forwards to the owner of the enterprise's partition. The bearer token comes from
``DFIP_QUERY_TOKEN_FILE``, ``DFIP_QUERY_TOKEN`` or the worker's own ``DFIP_WORKER_API_TOKEN``
(never from the command line, where process listings would show it). A 503 (rebalance) is
asked again after its Retry-After, up to ``--wait`` seconds.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from core.errors import DfipError
from core.files import read_regular_file
from dfip.i18n import LANG_HELP, Lang, amount, label, parse_lang, region_name
from schemas.uscc import check_uscc

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
            return read_regular_file(path).decode("utf-8").strip()
        except OSError as exc:
            raise DfipError(f"DFIP_QUERY_TOKEN_FILE={path}: {exc.strerror}", exit_code=2) from None
        except UnicodeDecodeError:
            raise DfipError(f"DFIP_QUERY_TOKEN_FILE={path}: not UTF-8 text", exit_code=2) from None
    return env.get("DFIP_QUERY_TOKEN") or env.get("DFIP_WORKER_API_TOKEN") or None


def fetch_enterprise(
    base_url: str, uscc: str, token: str | None, *, wait: float = 10.0
) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of ``GET /v1/enterprises/{uscc}``; 503s are retried up to
    ``wait`` seconds after their Retry-After."""
    if not base_url.startswith(("http://", "https://")):
        raise DfipError(
            f"{base_url}: not an http(s) URL", hint="e.g. --url http://worker:6066", exit_code=2
        )
    if "@" in base_url.split("//", 1)[1].split("/", 1)[0]:
        # user:password@ would be echoed by every error below; the API takes a bearer token
        raise DfipError(
            "the query URL holds user:password@ (not shown)",
            hint="give http://host:port and the token in DFIP_QUERY_TOKEN_FILE",
            exit_code=2,
        )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{base_url.rstrip('/')}/v1/enterprises/{urllib.parse.quote(uscc.strip())}"
    deadline = time.monotonic() + wait
    while True:
        req = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) checked
        try:
            with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310
                return int(r.status), _json(base_url, r.read(MAX_ANSWER_BYTES + 1))
        except urllib.error.HTTPError as e:
            status, body = int(e.code), _json(base_url, e.read(MAX_ANSWER_BYTES + 1) or b"{}")
            retry = _seconds(e.headers.get("Retry-After"))
            if status != 503 or time.monotonic() + retry > deadline:
                return status, body
            time.sleep(retry)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DfipError(f"{base_url}: {reason}", hint="is a worker running there?") from None


#: An enterprise's answer is some KiB; more is not the query API (and is not read for ever).
MAX_ANSWER_BYTES = 16 << 20


def _json(base_url: str, raw: bytes) -> dict[str, Any]:
    """The answer's JSON object; anything else (an HTML page of another server, a proxy's
    error) was a JSONDecodeError traceback."""
    try:
        if len(raw) > MAX_ANSWER_BYTES:
            raise ValueError(f"more than {MAX_ANSWER_BYTES >> 20} MiB")
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise DfipError(
            f"{base_url} answered, but not as the query API does ({exc})",
            hint="is this a dfip worker's web port (DFIP_WORKER_WEB_PORT)?",
        ) from None
    return body


def _seconds(retry_after: str | None) -> float:
    """Retry-After in seconds (an HTTP date or garbage: 1 s)."""
    try:
        seconds = float(retry_after or 1)
    except ValueError:
        return 1.0
    return min(max(seconds, 0.0), 30.0) if math.isfinite(seconds) else 1.0


def render_enterprise(body: dict[str, Any], console: Console, lang: Lang = "zh") -> None:
    """The answer as rich tables: bands, loans, totals by institution type, flows; labels
    and amounts (万元/亿元) in Chinese, or English with yuan."""
    zh = lang == "zh"
    current = body.get("current") or {}
    band = current.get("band", "unscored")
    console.print(
        f"[bold]{body['uscc']}[/]  {'地区' if zh else 'region'} "
        f"{region_name(body['region'], lang)}  {'分区' if zh else 'partition'} "
        f"{body['partition']}  {label('digitalization_band', lang)} {label(band, lang)}  "
        f"{'行业' if zh else 'sector'} {current.get('sector', 'unknown')}  "
        f"({'应答节点' if zh else 'served by'} {body.get('served_by', '?')})"
    )
    scores = Table(title="数字化评估（历史）" if zh else "Assessments (as-of join history)")
    for col in ("评估时间 (UTC)", "数字化水平", "行业") if zh else ("assessed at (UTC)", "band",
                                                              "sector"):  # fmt: skip
        scores.add_column(col)
    for s in body["scores"]:
        scores.add_row(s["assessed_at"], label(s["band"], lang), s["sector"])
    console.print(scores)
    cols = (
        ("贷款编号", "机构类型", "发放时水平", "币种", "余额（原币）", "余额", "逾期天数",
         "五级分类")
        if zh
        else ("loan", "institution", "band", "currency", "outstanding", "CNY", "DPD",
              "risk class")
    )  # fmt: skip
    loans = Table(title="存续贷款" if zh else "Active loans")
    for i, col in enumerate(cols):
        loans.add_column(col, justify="right" if i in (4, 5, 6) else "left")
    for ln in body["loans"]:
        loans.add_row(
            ln["loan_id"], label(ln["institution_type"], lang), label(ln["vintage_band"], lang),
            ln["currency"], ln["outstanding"], amount(ln["outstanding_fen"], lang),
            str(ln["days_past_due"]), label(ln["risk_class"], lang),
        )  # fmt: skip
    console.print(loans)
    totals = Table(title="按机构类型的存续贷款" if zh else "Active loans by institution type")
    for i, col in enumerate(
        ("机构类型", "笔数", "余额", "逾期余额") if zh else
        ("institution", "loans", "outstanding", "past due")
    ):  # fmt: skip
        totals.add_column(col, justify="left" if i == 0 else "right")
    for it, t in body["loan_totals"].items():
        totals.add_row(
            label(it, lang), str(t["loans"]),
            amount(t["outstanding_fen"], lang), amount(t["past_due_fen"], lang),
        )  # fmt: skip
    console.print(totals)
    flows = body.get("flows")
    if flows:
        span = f"{flows['first_day']} .. {flows['last_day']}"
        table = Table(
            title=f"资金流水 {span}（北京时间日期）" if zh else f"Flows {span} (Beijing days)"
        )
        for i, col in enumerate(
            ("方向", "笔数", "金额") if zh else ("direction", "transactions", "amount")
        ):
            table.add_column(col, justify="left" if i == 0 else "right")
        for d in ("credit", "debit"):
            table.add_row(label(d, lang), str(flows[d]["count"]), amount(flows[d]["fen"], lang))
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
    lang: Annotated[str, typer.Option(help=LANG_HELP)] = "zh",
) -> None:
    """Bands, active loans, loan totals and 30-day flows of one enterprise."""
    language = parse_lang(lang)
    try:  # a typo is said here, not as the worker's 400 (or a refused connection) later
        uscc = check_uscc(uscc)
    except ValueError as exc:
        raise DfipError(
            f"{uscc!r} is not a valid USCC: {exc}",
            hint="18 characters, e.g. 91330106MA2CDL8K41",
            exit_code=2,
        ) from None
    base = url or os.environ.get("DFIP_QUERY_URL") or DEFAULT_URL
    status, body = fetch_enterprise(base, uscc, _token(), wait=wait)
    out = Console(emoji=False, soft_wrap=True)
    if status != 200:
        raise DfipError(f"query answered {status}: {body.get('error', body)}")
    if as_json:
        out.print_json(data=body)
    else:
        render_enterprise(body, out, language)
