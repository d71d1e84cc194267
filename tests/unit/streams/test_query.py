"""The exposure query: recent flows by Beijing day, the answer, auth/routing decisions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from pydantic import SecretStr

from schemas.catalog import partition_for
from schemas.codec import encode
from schemas.uscc import make_uscc
from streams.aggregate import loans as book
from streams.processor import LOANS, SCORES, TRANSACTIONS
from streams.query import openapi, recent
from streams.query.answer import enterprise_answer, yuan
from streams.query.audit import pseudonymise_enterprise
from streams.query.http import FORWARDED_HEADER, EnterpriseQueries, advertised_url, owner_url
from streams.settings import WorkerSettings
from streams.state.changelog import apply_record, dirty_records, finish_restore
from streams.state.partition import PartitionState
from tests.unit.streams.helpers import (
    HANGZHOU,
    NINGBO,
    disbursed,
    feed,
    processor,
    record,
    repayment,
    score,
    tx,
)

P = partition_for(HANGZHOU)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


def test_flows_are_summed_by_beijing_day_and_direction() -> None:
    proc = processor()
    feed(
        proc,
        TRANSACTIONS,
        tx(at(5, 15, 59), "10.00"),  # Beijing 5 Jan 23:59
        tx(at(5, 16, 0), "20.00"),  # Beijing 6 Jan 00:00: the next day
        tx(at(5, 17, 0), "1.50", direction="debit"),
    )
    state = proc.states[P]
    days = [e[0] for e in recent.ENTRY.iter_unpack(state.recent_flows[HANGZHOU])]
    assert [recent.day_date(d).isoformat() for d in days] == ["2026-01-05", "2026-01-06"]
    got = recent.totals(state, HANGZHOU)
    assert got is not None
    assert (got.first.isoformat(), got.last.isoformat()) == ("2025-12-08", "2026-01-06")
    assert (got.credit_count, got.credit_fen, got.debit_count, got.debit_fen) == (2, 3000, 1, 150)


def test_days_before_the_floor_are_swept_and_not_recorded() -> None:
    proc = processor()
    feed(proc, TRANSACTIONS, tx(at(1, 1), "1.00"), tx(at(1, 2), "1.00", uscc=HANGZHOU))
    # 40 days later (event time): the watermark moves, the old day leaves on the next record
    later = datetime(2026, 2, 10, 1, tzinfo=UTC)
    feed(proc, TRANSACTIONS, tx(later, "5.00"), tx(later, "7.00"))
    state = proc.states[P]
    days = [recent.day_date(e[0]) for e in recent.ENTRY.iter_unpack(state.recent_flows[HANGZHOU])]
    assert [d.isoformat() for d in days] == ["2026-02-10"]
    got = recent.totals(state, HANGZHOU)
    assert got is not None
    assert (got.credit_count, got.credit_fen) == (2, 1200)
    # a late transaction before the floor is counted in the figures, not in recent flows
    feed(proc, TRANSACTIONS, tx(at(2, 1), "9.00"))
    got = recent.totals(state, HANGZHOU)
    assert got is not None
    assert got.credit_count == 2


def test_recent_flows_survive_the_changelog() -> None:
    proc = processor()
    feed(proc, TRANSACTIONS, tx(at(5, 1), "10.00"), tx(at(5, 2), "3.00", direction="debit"))
    feed(proc, TRANSACTIONS, tx(at(5, 3), "4.00", uscc=NINGBO), uscc=NINGBO)
    state = proc.states[P]
    rows = dirty_records(state)
    assert any(k == f"rf:{HANGZHOU}".encode() for k, _ in rows)
    assert not state.dirty_recent
    copy = PartitionState(P)
    for key, value in rows:
        apply_record(copy, key, value)
    finish_restore(copy)
    assert copy.recent_flows == state.recent_flows
    # an enterprise swept empty is a tombstone
    state.dirty_recent.add("91330106MA00000000")
    tomb = [v for k, v in dirty_records(state) if k == b"rf:91330106MA00000000"]
    assert tomb == [None]


def test_the_answer_has_versions_loans_totals_and_flows() -> None:
    proc = processor()
    for ev in (score(at(1, 0), "45.0", sector="C"), score(at(3, 0), "85.0", sector="C")):
        proc.process_score(record(SCORES, encode(ev)), counted=True)
    feed(
        proc,
        LOANS,
        disbursed(at(2, 0), "L-1", "1000.00"),
        disbursed(at(4, 0), "L-2", "500.00"),
        repayment(at(4, 1), "L-1", "250.50"),
    )
    feed(proc, TRANSACTIONS, tx(at(4, 2), "12.34"))
    state = proc.states[P]
    book.update_loan(state, "L-2", days_past_due=45)
    body = enterprise_answer(HANGZHOU, state, proc.scores[P])
    assert body["region"] == "hangzhou"
    assert body["partition"] == P
    assert [(s["band"], s["assessed_at"]) for s in body["scores"]] == [
        ("l2", "2026-01-01T00:00:00Z"),
        ("l4", "2026-01-03T00:00:00Z"),
    ]
    assert body["current"]["band"] == "l4"
    l1, l2 = body["loans"]
    assert (l1["loan_id"], l1["vintage_band"], l1["outstanding"]) == ("L-1", "l2", "749.50")
    assert (l1["outstanding_fen"], l1["outstanding_yuan"], l1["principal_fen"]) == (
        74950,
        "749.50",
        100000,
    )
    assert (l2["vintage_band"], l2["days_past_due"], l2["dpd_bucket"]) == ("l4", 45, "30_59")
    assert l2["risk_class"] == "special_mention"
    assert l2["reported_risk_class"] == "normal"
    assert l1["disbursed_at"] == "2026-01-02T00:00:00Z"
    assert body["loan_totals"] == {
        "fintech": {
            "loans": 2,
            "outstanding_fen": 124950,
            "outstanding_yuan": "1249.50",
            "past_due_fen": 50000,
            "past_due_yuan": "500.00",
        }
    }
    flows = body["flows"]
    assert flows["credit"] == {"count": 1, "fen": 1234, "yuan": "12.34"}
    assert flows["debit"] == {"count": 0, "fen": 0, "yuan": "0.00"}
    assert flows["last_day"] == "2026-01-04"


def test_yuan_is_exact() -> None:
    assert [yuan(v) for v in (0, 5, 123456, -7, -250)] == [
        "0.00",
        "0.05",
        "1234.56",
        "-0.07",
        "-2.50",
    ]


def test_owner_url_needs_exactly_one_owner() -> None:
    dist = {"http://a:1/": {"t.tx": [0, 1]}, "http://b:2": {"t.tx": [2], "t.loans": [1]}}
    assert owner_url(dist, "t.tx", 1) == "http://a:1"
    assert owner_url(dist, "t.tx", 2) == "http://b:2"
    assert owner_url(dist, "t.tx", 5) is None
    assert owner_url({**dist, "http://c:3": {"t.tx": [1]}}, "t.tx", 1) is None  # stale view


def test_advertised_url() -> None:
    assert advertised_url(WorkerSettings(web_host="10.0.0.5", web_port=7000)) == (
        "http://10.0.0.5:7000"
    )
    explicit = WorkerSettings(advertised_url="http://w-1.dfip:6066/")
    assert advertised_url(explicit) == "http://w-1.dfip:6066"


def test_pseudonyms_are_keyed_and_stable() -> None:
    a = pseudonymise_enterprise(HANGZHOU, b"k" * 16)
    assert a == pseudonymise_enterprise(f" {HANGZHOU.lower()} ", b"k" * 16)
    assert a != pseudonymise_enterprise(HANGZHOU, b"j" * 16)
    assert a.startswith("ent_")
    assert HANGZHOU not in a


# ---- the handler's decisions, with a stand-in worker -------------------------------------


class _Web:
    def json(self, body: Any, *, status: int = 200, headers: Any = None) -> Any:
        return status, body, headers or {}


class _Engine:
    """The engine's query-facing API (streams/engine/engine.py) over a plain processor."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.ready = asyncio.Event()
        self.lock = asyncio.Lock()
        self.broken: str | None = None

    @property
    def is_ready(self) -> bool:
        return self.ready.is_set()

    @property
    def serving(self) -> bool:
        return self.ready.is_set() and not self.broken

    def owns(self, partition: int) -> bool:
        return partition in self.processor.states

    async def settle(self) -> None:
        return None

    def partition_view(self, partition: int) -> tuple[Any, Any]:
        return self.processor.states[partition], self.processor.scores[partition]


def _worker(*, owned: bool = True, ready: bool = True, dist: Any = None) -> Any:
    proc = processor(partitions=(P,) if owned else (0,) if P != 0 else (1,))
    engine = _Engine(proc)
    if ready:
        engine.ready.set()
    app = SimpleNamespace(
        assignor=SimpleNamespace(external_topics_metadata=lambda: dist or {}),
    )
    settings = WorkerSettings(
        api_token=SecretStr("tok"), audit_key=SecretStr("a" * 16), web_port=6066
    )
    kafka = SimpleNamespace(topic=lambda name: name)
    return SimpleNamespace(settings=settings, engine=engine, app=app, kafka=kafka)


def _ask(worker: Any, uscc: str = HANGZHOU, **headers: str) -> Any:
    request = SimpleNamespace(headers=headers, remote="127.0.0.1", path=f"/v1/enterprises/{uscc}")

    async def run() -> Any:
        return await EnterpriseQueries(worker).handle(_Web(), request, uscc)

    return asyncio.run(run())


def test_auth_and_validation() -> None:
    w = _worker()
    assert _ask(w)[0] == 401
    assert _ask(w, Authorization="Bearer nope")[0] == 403
    assert _ask(w, Authorization="Bearer \x00")[0] == 400
    bad = HANGZHOU[:-1] + ("0" if HANGZHOU[-1] != "0" else "1")
    status, body, _ = _ask(w, bad, Authorization="Bearer tok")
    assert status == 400
    assert bad not in body["error"]


def test_owner_answers_and_unknown_enterprise_is_404() -> None:
    w = _worker()
    feed(w.engine.processor, TRANSACTIONS, tx(at(5, 1), "10.00"))
    status, body, _ = _ask(w, Authorization="Bearer tok")
    assert status == 200
    assert body["flows"]["credit"]["fen"] == 1000
    assert body["served_by"] == w.settings.worker_id
    other = next(
        u for i in range(1000) if partition_for(u := make_uscc("330106", f"MA{i:06d}")) == P
    )
    assert _ask(w, other, Authorization="Bearer tok")[0] == 404


def test_rebalance_and_unknown_owner_are_503_with_retry_after() -> None:
    status, _, headers = _ask(_worker(ready=False), Authorization="Bearer tok")
    assert status == 503
    assert headers["Retry-After"] == "2"
    # not owned here, nobody known to own it
    assert _ask(_worker(owned=False), Authorization="Bearer tok")[0] == 503
    # not owned here and already forwarded once: no second hop
    w = _worker(owned=False, dist={"http://x:1": {TRANSACTIONS: [P]}})
    assert _ask(w, Authorization="Bearer tok", **{FORWARDED_HEADER: "1"})[0] == 503
    # the assignment (stale) says this worker owns it, but it does not
    me = advertised_url(w.settings)
    w = _worker(owned=False, dist={me: {TRANSACTIONS: [P]}})
    assert _ask(w, Authorization="Bearer tok")[0] == 503


def test_openapi_is_current() -> None:
    assert openapi.main(["--check"]) == 0, "run `python -m streams.query.openapi`"


def test_queries_waiting_together_share_one_wait_for_the_commit() -> None:
    w = _worker()
    settles = []

    async def settle() -> None:
        settles.append(1)
        await asyncio.sleep(0.01)

    w.engine.settle = settle  # type: ignore[method-assign]
    feed(w.engine.processor, TRANSACTIONS, tx(at(5, 1), "10.00"))
    queries = EnterpriseQueries(w)
    request = SimpleNamespace(
        headers={"Authorization": "Bearer tok"}, remote="127.0.0.1", path="/v1/x"
    )

    async def run() -> list[Any]:
        async with w.engine.lock:  # a batch is being applied: the queries queue up
            asks = [
                asyncio.ensure_future(queries.handle(_Web(), request, HANGZHOU)) for _ in range(5)
            ]
            await asyncio.sleep(0.01)
        return list(await asyncio.gather(*asks))

    answers = asyncio.run(run())
    assert [a[0] for a in answers] == [200] * 5
    assert len(settles) == 1


def test_a_query_that_cannot_get_the_state_in_time_is_503() -> None:
    w = _worker()
    w.settings.query_timeout_seconds = 0.05
    request = SimpleNamespace(
        headers={"Authorization": "Bearer tok"}, remote="127.0.0.1", path="/v1/x"
    )

    async def run() -> Any:
        async with w.engine.lock:  # held longer than the query may wait
            answer = await EnterpriseQueries(w).handle(_Web(), request, HANGZHOU)
        await asyncio.sleep(0.01)  # the reader gets the lock afterwards and skips it
        return answer

    status, _, headers = asyncio.run(run())
    assert status == 503
    assert headers["Retry-After"] == "2"
