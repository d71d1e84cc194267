"""`dfip top`: figures combined over workers like the recording rules do, per-worker health,
and the command itself against real HTTP endpoints (one of them down)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from dfip.top import Scrape, _quantile, build_frame, fetch, render, top_command


def _exposition(*samples: tuple[str, float, dict[str, str]]) -> str:
    lines = []
    for name, value, labels in samples:
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
        lines.append(f"{name}{{{inner}}} {value}" if inner else f"{name} {value}")
    return "\n".join(lines) + "\n"


def _tx(it: str, band: str, region: str, direction: str, p: str) -> dict[str, str]:
    return {
        "institution_type": it,
        "digitalization_band": band,
        "region": region,
        "direction": direction,
        "partition": p,
    }


def _loan(it: str, band: str, p: str, **more: str) -> dict[str, str]:
    return {"institution_type": it, "digitalization_band": band, **more, "partition": p}


AMOUNT = "dfip_transaction_amount_yuan_total"
DISBURSED = "dfip_loan_disbursed_principal_yuan_total"
WEIGHTED = "dfip_loan_disbursed_rate_weighted_yuan_total"
OUTSTANDING = "dfip_loan_outstanding_principal_yuan"
RECEIVED = "dfip_events_received_total"
TX = "dfip.transactions"

# Worker a owns partitions 0 and 1; worker b has just taken partition 1 over (same committed
# value, as during a hand-over) and owns 2. a still shows a stale lag for partition 2.
WORKER_A = _exposition(
    (AMOUNT, 300.0, _tx("bank", "l3", "hangzhou", "credit", "0")),
    (AMOUNT, 100.0, _tx("fintech", "l1", "ningbo", "debit", "1")),
    ("dfip_transactions_total", 3.0, _tx("bank", "l3", "hangzhou", "credit", "0")),
    ("dfip_transactions_total", 1.0, _tx("fintech", "l1", "ningbo", "debit", "1")),
    ("dfip_loan_decisions_total", 3.0, _loan("bank", "l3", "0", decision="approved")),
    ("dfip_loan_decisions_total", 1.0, _loan("bank", "l3", "0", decision="rejected")),
    ("dfip_loan_decisions_total", 5.0, _loan("bank", "l3", "0", decision="withdrawn")),
    (DISBURSED, 500.0, _loan("bank", "l3", "0", region="hangzhou")),
    (DISBURSED, 250.0, _loan("fintech", "l1", "1", region="ningbo")),
    (WEIGHTED, 20.0, _loan("bank", "l3", "0")),
    (WEIGHTED, 20.0, _loan("fintech", "l1", "1")),
    (OUTSTANDING, 300.0, _loan("bank", "l3", "0", risk_class="normal")),
    (OUTSTANDING, 100.0, _loan("bank", "l3", "0", risk_class="substandard")),
    ("dfip_borrowers_active", 3.0, {"partition": "0"}),
    ("dfip_borrowers_active", 2.0, {"partition": "1"}),
    (RECEIVED, 10.0, {"topic": TX, "partition": "0"}),
    (RECEIVED, 5.0, {"topic": TX, "partition": "1"}),
    (
        "dfip_events_deadlettered_total",
        2.0,
        {"topic": TX, "error_class": "invalid_json", "partition": "0"},
    ),
    ("dfip_worker_records_total", 15.0, {}),
    ("dfip_worker_records_created", 1.7e9, {}),
    ("dfip_worker_ready", 1.0, {}),
    ("dfip_worker_assigned_partitions", 2.0, {}),
    ("dfip_consumer_lag", 7.0, {"topic": TX, "partition": "0"}),
    ("dfip_consumer_lag", 900.0, {"topic": TX, "partition": "2"}),
    ("dfip_event_latency_seconds_bucket", 50.0, {"le": "0.1"}),
    ("dfip_event_latency_seconds_bucket", 100.0, {"le": "1.0"}),
    ("dfip_event_latency_seconds_bucket", 100.0, {"le": "+Inf"}),
    ("dfip_event_latency_seconds_count", 100.0, {}),
    ("dfip_event_latency_seconds_sum", 12.0, {}),
)

WORKER_B = _exposition(
    (AMOUNT, 100.0, _tx("fintech", "l1", "ningbo", "debit", "1")),
    (AMOUNT, 200.0, _tx("joint", "l4", "ningbo", "credit", "2")),
    (DISBURSED, 250.0, _loan("fintech", "l1", "1", region="ningbo")),
    (DISBURSED, 250.0, _loan("joint", "l3", "2", region="hangzhou")),
    (WEIGHTED, 20.0, _loan("fintech", "l1", "1")),
    (WEIGHTED, 10.0, _loan("joint", "l3", "2")),
    (OUTSTANDING, 100.0, _loan("fintech", "l1", "1", risk_class="loss")),
    (OUTSTANDING, 500.0, _loan("joint", "l4", "2", risk_class="normal")),
    ("dfip_borrowers_active", 2.0, {"partition": "1"}),
    ("dfip_borrowers_active", 4.0, {"partition": "2"}),
    (RECEIVED, 5.0, {"topic": TX, "partition": "1"}),
    (RECEIVED, 4.0, {"topic": "dfip.loans", "partition": "2"}),
    ("dfip_worker_ready", 0.0, {}),
    ("dfip_consumer_lag", 20.0, {"topic": TX, "partition": "2"}),
)


def test_figures_take_the_max_per_partition_then_sum() -> None:
    frame = build_frame([Scrape("a", WORKER_A), Scrape("b", WORKER_B)])
    f = frame.figures
    assert f["payments_yuan"] == 600  # partition 1 counted once
    assert f["transactions"] == 4
    assert f["payments_digital_share"] == 500 / 600  # l3 300 + l4 200
    assert f["approval_ratio"] == 0.75  # withdrawn left out
    assert f["disbursed_yuan"] == 1000
    assert f["weighted_rate"] == 0.05
    assert f["fintech_share"] == 0.25
    assert f["hhi_region"] == 0.75**2 + 0.25**2
    assert f["outstanding_yuan"] == 1000
    assert f["npl_ratio"] == 0.2  # substandard 100 + loss 100
    assert f["digital_credit_share"] == 0.9  # l3 400 + l4 500
    assert f["borrowers_active"] == 9
    assert f["received"] == 19
    assert f["deadlettered"] == 2
    assert frame.by_band["l3"]["npl_ratio"] == 0.25
    assert frame.by_band["l1"]["npl_ratio"] == 1.0
    assert frame.by_band["l0"]["npl_ratio"] is None  # nothing outstanding: no ratio


def test_worker_health_ignores_a_stale_lag_gauge() -> None:
    a, b = build_frame([Scrape("a", WORKER_A), Scrape("b", WORKER_B)]).workers
    assert a.up
    assert a.ready
    assert a.partitions == 2
    assert a.records == 15  # the _created sample is not a value
    assert a.lag == 7  # partition 2 moved to b; a's 900 is stale
    assert b.lag == 20
    assert b.ready is False
    assert a.latency_p99 == pytest.approx(0.1 + 0.9 * (99 - 50) / 50)


def test_no_data_gives_no_ratio_and_a_down_worker_is_a_row() -> None:
    frame = build_frame([Scrape("http://x/metrics", None, "connection refused")])
    assert not frame.any_up
    (worker,) = frame.workers
    assert not worker.up
    assert worker.error == "connection refused"
    assert frame.figures["npl_ratio"] is None
    assert frame.figures["hhi_region"] is None


def test_quantile_interpolates_like_histogram_quantile() -> None:
    buckets = {0.5: 10.0, 1.0: 20.0, float("inf"): 20.0}
    assert _quantile(0.5, buckets) == 0.5
    assert _quantile(0.75, buckets) == 0.75
    assert _quantile(0.99, {1.0: 0.0, float("inf"): 4.0}) == 1.0  # beyond the last bound
    assert _quantile(0.5, {}) is None


# ---------------------------------------------------------------------------- the command


class _Handler(BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, str]] = {"/a/metrics": WORKER_A, "/b/metrics": WORKER_B}

    def do_GET(self) -> None:
        body = self.pages.get(self.path)
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("top")(top_command)

    @app.command("noop")
    def noop() -> None:  # a second command keeps `top` a subcommand, as in dfip.cli
        pass

    return app


def test_fetch_reports_errors_instead_of_raising(server: str) -> None:
    ok = fetch(f"{server}/a/metrics")
    assert ok.text == WORKER_A
    assert ok.error is None
    missing = fetch(f"{server}/nope")
    assert missing.text is None
    assert missing.error
    down = fetch(f"http://127.0.0.1:{_closed_port()}/metrics", timeout=1)
    assert down.text is None
    assert down.error


def test_top_once_prints_one_frame(server: str) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}/metrics"
    result = CliRunner().invoke(
        _app(),
        [
            "top",
            "--once",
            "--url",
            f"{server}/a/metrics",
            "--url",
            f"{server}/b/metrics",
            "--url",
            dead,
        ],
        env={"COLUMNS": "200"},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "¥600.00" in out  # payments, partition 1 once
    assert "20.00 %" in out  # NPL ratio
    assert "6,250" in out  # HHI x 10,000
    assert "restoring" in out
    assert "ready" in out
    assert f"{server}/a/metrics" in out
    assert "down" in out  # the dead URL is a row, not a crash


def test_top_once_exits_1_when_no_worker_answers() -> None:
    dead = f"http://127.0.0.1:{_closed_port()}/metrics"
    result = CliRunner().invoke(
        _app(), ["top", "--once", "--url", dead], env={"COLUMNS": "200"}, catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "every worker is down" in result.output
    assert "¥" not in result.output  # no figures rather than ¥0.00


def test_render_says_every_worker_is_down_instead_of_zero_figures() -> None:
    dead = f"http://127.0.0.1:{_closed_port()}/metrics"
    frame = build_frame([fetch(dead, timeout=1)])
    console = Console(width=200, record=True)
    console.print(render(frame))
    out = console.export_text()
    assert "every worker is down" in out
    assert "¥" not in out


def test_an_oversized_answer_is_an_error_and_credentials_are_not_shown(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an endless answer was read for ever (the timeout bounds each read, not the whole);
    # a user:password@ in --url was printed with every error
    import dfip.top as top_module

    monkeypatch.setattr(top_module, "MAX_METRICS_BYTES", 100)
    big = fetch(f"{server}/a/metrics")
    assert big.text is None
    assert "not a worker's /metrics" in (big.error or "")
    port = _closed_port()
    down = fetch(f"http://u:S3cret@127.0.0.1:{port}/metrics", timeout=1)
    assert down.url == f"http://…@127.0.0.1:{port}/metrics"
    assert "S3cret" not in str(down)
