"""``GET /v1/enterprises/{uscc}`` on every worker, and its OpenAPI description.

Any worker answers: the owner of the USCC's partition (schemas.catalog.partition_for) builds
the answer from its committed partition state; any other worker forwards the request to the
owner, found in the consumer group's assignment as Faust's assignor spread it to every
member (each member's web URL per assigned partition of ``dfip.transactions``: the state is
not in Faust Tables, so this routes by topic and partition as Faust's ``table_route`` does
by changelog partition). One hop only: a forwarded request that does not reach the owner
answers 503.

Never a partial or stale answer: during a rebalance (the partition is being restored or
moving), when the owner is unknown or unreachable, or when the state cannot be read within
``query_timeout_seconds``, the answer is 503 with ``Retry-After``. The owner answers with the
engine's lock held, after the batch in flight has committed, so the answer is exactly the
committed state (never half a batch).

Authentication: the worker's bearer token (``DFIP_WORKER_API_TOKEN``): none → 401, a wrong
one → 403, a malformed header → 400. A USCC that is not valid (check character) → 400. Every
access is audit-logged with a keyed pseudonym of the enterprise (streams/query/audit.py);
the id itself never reaches a log line or a metric.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, Any

import aiohttp

from schemas.catalog import TRANSACTIONS, partition_for
from schemas.uscc import check_uscc
from streams.faust_compat import assignment_distribution
from streams.query.answer import enterprise_answer
from streams.query.audit import audit, pseudonymise_enterprise
from streams.query.openapi import OPENAPI

if TYPE_CHECKING:
    from streams.app import Worker
    from streams.engine import Engine
    from streams.settings import WorkerSettings

__all__ = ["FORWARDED_HEADER", "advertised_url", "owner_url", "register"]

log = logging.getLogger(__name__)

FORWARDED_HEADER = "X-DFIP-Forwarded"
RETRY_AFTER_SECONDS = 2
_ROUTED_TOPIC = TRANSACTIONS.name


def advertised_url(settings: WorkerSettings) -> str:
    """The URL other workers reach this one at (Faust's ``canonical_url``)."""
    if settings.advertised_url:
        return settings.advertised_url.rstrip("/")
    host = settings.web_host
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - bound to every interface: use the host name
        host = socket.gethostname()
    return f"http://{host}:{settings.web_port}"


def owner_url(distribution: dict[str, Any], topic: str, partition: int) -> str | None:
    """The one member URL whose assignment holds ``topic``'s ``partition``; None if no
    member or (a stale, mixed view) several do."""
    owners = [url for url, topics in distribution.items() if partition in (topics.get(topic) or ())]
    return owners[0].rstrip("/") if len(owners) == 1 else None


class _Unavailable(Exception):
    """Answer 503 with Retry-After (the reason goes to the client, never an identifier)."""


class EnterpriseQueries:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.settings = worker.settings
        token = self.settings.api_token
        key = self.settings.audit_key or token
        self._key = key.get_secret_value().encode("utf-8") if key is not None else b""
        self._self_url = advertised_url(self.settings)
        self._topic = worker.kafka.topic(_ROUTED_TOPIC)
        # queries waiting for the partition state, answered together (_read_waiting)
        self._waiting: list[tuple[str, int, asyncio.Future[dict[str, Any] | None]]] = []
        self._reader: asyncio.Future[None] | None = None

    def _auth(self, header: str) -> int:
        from streams.app import auth_status  # not at import: streams.app registers us

        if not header:
            return 401
        status = auth_status(header, self.settings.api_token)
        return 403 if status == 401 else status

    def _pseudonym(self, raw: str) -> str:
        # without any key (no token either) nothing is answered, but the access is logged
        return pseudonymise_enterprise(raw, self._key) if self._key else "ent_unkeyed"

    async def handle(self, web: Any, request: Any, raw: str) -> Any:
        status, body, served = await self._answer(request, raw)
        audit(self._pseudonym(raw), status, served=served, client=request.remote)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
        return web.json(body, status=status, headers=headers)

    async def _answer(self, request: Any, raw: str) -> tuple[int, Any, str]:
        auth = self._auth(request.headers.get("Authorization", ""))
        if auth == 400:
            return 400, {"error": "malformed Authorization header"}, "refused"
        if auth == 401:
            return 401, {"error": "bearer token required"}, "refused"
        if auth == 403:
            return 403, {"error": "bearer token not accepted"}, "refused"
        try:
            uscc = check_uscc(raw)
        except ValueError as exc:  # the reason names the check, never echoes the value
            return 400, {"error": f"invalid USCC: {exc}"}, "refused"
        partition = partition_for(uscc)
        forwarded = request.headers.get(FORWARDED_HEADER) == "1"
        try:
            if self.worker.engine.owns(partition):
                body = await self._local(uscc, partition)
                if body is None:
                    return 404, {"error": "no data for this enterprise"}, "local"
                return 200, body, "local"
            if forwarded:  # the sender's view of the assignment is not ours: no second hop
                raise _Unavailable("partition is not owned here (rebalance in progress)")
            status, body = await self._forward(request, partition)
            return status, body, "forwarded"
        except _Unavailable as exc:
            return 503, {"error": str(exc)}, "unavailable"

    async def _local(self, uscc: str, partition: int) -> dict[str, Any] | None:
        if not self.worker.engine.serving:
            raise _Unavailable("partition state is being restored (rebalance in progress)")
        fut: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((uscc, partition, fut))
        if self._reader is None or self._reader.done():
            self._reader = asyncio.ensure_future(self._read_waiting())
        try:
            async with asyncio.timeout(self.settings.query_timeout_seconds):
                body = await asyncio.shield(fut)
        except TimeoutError:
            fut.cancel()  # the reader skips it
            raise _Unavailable("partition state busy") from None
        if body is not None:
            body = {**body, "served_by": self.settings.worker_id}
        return body

    async def _read_waiting(self) -> None:
        """Answer every query waiting, in one hold of the engine's lock after the batch in
        flight has committed (so concurrent queries share one wait instead of queueing
        behind each other and the batches)."""
        engine = self.worker.engine
        while self._waiting:
            waiting, self._waiting = self._waiting, []
            try:
                async with asyncio.timeout(self.settings.query_timeout_seconds):
                    await engine.lock.acquire()
            except TimeoutError:
                _fail(waiting, "partition state busy")
                continue
            try:
                if not engine.serving:
                    _fail(waiting, "partition moved (rebalance in progress)")
                    continue
                try:
                    # the batch applied last must be committed: answer committed state only
                    await engine.settle()
                except Exception:
                    _fail(waiting, "last batch did not commit; recovering")
                    continue
                for uscc, partition, fut in waiting:
                    if fut.done():
                        continue  # its client gave up
                    if not engine.owns(partition):
                        fut.set_exception(_Unavailable("partition moved (rebalance in progress)"))
                        continue
                    try:
                        fut.set_result(_answer(uscc, engine, partition))
                    except Exception as exc:  # never leave a client waiting; no identifier
                        log.error("building an enterprise answer failed: %s", type(exc).__name__)
                        fut.set_exception(_Unavailable("answer could not be built"))
            finally:
                engine.lock.release()

    async def _forward(self, request: Any, partition: int) -> tuple[int, Any]:
        engine = self.worker.engine
        if not engine.is_ready:
            raise _Unavailable("rebalance in progress")
        try:
            distribution = assignment_distribution(self.worker.app)
        except Exception:
            distribution = {}
        owner = owner_url(distribution, self._topic, partition)
        if owner is None or owner == self._self_url:
            raise _Unavailable("owner of the partition not known (rebalance in progress)")
        headers = {FORWARDED_HEADER: "1"}
        if auth := request.headers.get("Authorization"):
            headers["Authorization"] = auth
        timeout = aiohttp.ClientTimeout(total=self.settings.query_timeout_seconds)
        try:
            session = self.worker.app.http_client
            async with session.get(
                f"{owner}{request.path}", headers=headers, timeout=timeout
            ) as resp:
                body = await resp.json(content_type=None)
                return resp.status, body
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("forwarding an enterprise query failed: %s", type(exc).__name__)
            raise _Unavailable("owner of the partition not reachable") from None


def _answer(uscc: str, engine: Engine, partition: int) -> dict[str, Any] | None:
    """The answer from the partition's state; None when nothing is held for ``uscc``."""
    state, scores = engine.partition_view(partition)
    body = enterprise_answer(uscc, state, scores)
    flows = body["flows"]
    recent = flows is not None and flows["credit"]["count"] + flows["debit"]["count"]
    return body if body["scores"] or body["loans"] or recent else None


def _fail(waiting: list[tuple[str, int, asyncio.Future[Any]]], why: str) -> None:
    for _, _, fut in waiting:
        if not fut.done():
            fut.set_exception(_Unavailable(why))


def register(worker: Worker) -> None:
    """Serve ``/v1/enterprises/{uscc}`` and ``/v1/openapi.json`` on the worker's web port."""
    queries = EnterpriseQueries(worker)
    app = worker.app

    @app.page("/v1/enterprises/{uscc}")
    async def enterprise(web: Any, request: Any, uscc: str) -> Any:
        return await queries.handle(web, request, uscc)

    @app.page("/v1/openapi.json")
    async def openapi(web: Any, request: Any) -> Any:
        return web.json(OPENAPI)
