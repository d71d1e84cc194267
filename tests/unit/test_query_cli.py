"""`dfip query enterprise`: token from the environment, 503 asked again, tables printed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from core.errors import DfipError
from dfip.query import query_app

ANSWER: dict[str, Any] = {
    "uscc": "91330106MA2B3C4D5D",
    "region": "hangzhou",
    "partition": 3,
    "scores": [{"assessed_at": "2026-01-01T00:00:00Z", "band": "l2", "sector": "C"}],
    "current": {"assessed_at": "2026-01-01T00:00:00Z", "band": "l2", "sector": "C"},
    "loans": [
        {
            "loan_id": "L-1", "institution_type": "bank", "vintage_band": "l2",
            "currency": "CNY", "outstanding": "749.50", "outstanding_fen": 74950,
            "outstanding_yuan": "749.50", "principal_fen": 100000, "principal_yuan": "1000.00",
            "days_past_due": 45, "dpd_bucket": "30_59", "risk_class": "special_mention",
            "reported_risk_class": "normal", "defaulted": False, "disbursed_at": None,
        }
    ],
    "loan_totals": {
        "bank": {"loans": 1, "outstanding_fen": 74950, "outstanding_yuan": "749.50",
                 "past_due_fen": 74950, "past_due_yuan": "749.50"}
    },
    "flows": {
        "zone": "Asia/Shanghai", "first_day": "2025-12-08", "last_day": "2026-01-06",
        "credit": {"count": 2, "fen": 3000, "yuan": "30.00"},
        "debit": {"count": 1, "fen": 150, "yuan": "1.50"},
    },
    "served_by": "w1",
}  # fmt: skip


@pytest.fixture
def server() -> Iterator[tuple[str, list[Any]]]:
    seen: list[Any] = []
    busy = [1]  # the first request meets a rebalance

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            if busy[0]:
                busy[0] -= 1
                self._reply(503, {"error": "rebalance in progress"}, {"Retry-After": "0"})
            elif self.headers.get("Authorization") != "Bearer tok":
                self._reply(401, {"error": "bearer token required"})
            else:
                self._reply(200, ANSWER)

        def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_prints_the_answer_after_a_503(server: tuple[str, list[Any]]) -> None:
    url, seen = server
    result = CliRunner().invoke(
        query_app,
        ["enterprise", "91330106MA2B3C4D5D", "--url", url],
        env={"DFIP_QUERY_TOKEN": "tok", "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "关注" in result.output  # special mention, in Chinese by default
    assert "0.07万元" in result.output  # 749.50 yuan
    assert "杭州市" in result.output
    english = CliRunner().invoke(
        query_app,
        ["enterprise", "91330106MA2B3C4D5D", "--url", url, "--lang", "en"],
        env={"DFIP_QUERY_TOKEN": "tok", "COLUMNS": "200"},
    )
    assert "special mention" in english.output
    assert "749.50" in english.output
    assert len(seen) == 3
    assert seen[-1] == ("/v1/enterprises/91330106MA2B3C4D5D", "Bearer tok")


def test_a_refusal_is_one_line(server: tuple[str, list[Any]]) -> None:
    url, _ = server
    result = CliRunner().invoke(
        query_app,
        ["enterprise", "91330106MA2B3C4D5D", "--url", url, "--json"],
        env={"DFIP_QUERY_TOKEN": "", "DFIP_WORKER_API_TOKEN": ""},
    )
    assert result.exit_code != 0
    assert "401" in str(result.exception)


def test_an_invalid_uscc_is_one_line_before_any_request() -> None:
    result = CliRunner().invoke(
        query_app, ["enterprise", "91330106MA2B3C4D5E", "--url", "http://127.0.0.1:9"]
    )
    error = result.exception
    assert isinstance(error, DfipError)
    assert error.exit_code == 2
    assert "'91330106MA2B3C4D5E' is not a valid USCC: USCC check character" in str(error)


def test_credentials_in_the_url_are_refused_and_never_echoed() -> None:
    # "http://u:S3cret@host: Name or service not known" printed the password
    from dfip.query import fetch_enterprise

    with pytest.raises(DfipError) as info:
        fetch_enterprise("http://u:S3cret@127.0.0.1:1", "91330106MA2CDL8K41", None)
    assert info.value.exit_code == 2
    assert "S3cret" not in str(info.value)
    assert "user:password@" in str(info.value)


@pytest.mark.parametrize(
    ("status", "payload", "retry_after"),
    [(404, b"<html>Not Found</html>", None), (200, b"[1, 2]", None), (503, b"oops", "0")],
)
def test_an_answer_that_is_not_the_query_api_is_one_line(status, payload, retry_after) -> None:
    # another server's HTML page was a JSONDecodeError traceback
    from dfip.query import fetch_enterprise

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            if retry_after:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        with pytest.raises(DfipError, match="answered, but not as the query API does"):
            fetch_enterprise(url, "91330106MA2CDL8K41", None, wait=0)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_retry_after_that_is_no_number_waits_one_second() -> None:
    from dfip.query import _seconds

    assert [_seconds(v) for v in ("soon", "nan", "-5", "1e9", None, "2")] == [1, 1, 0, 30, 1, 2]
