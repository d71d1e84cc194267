"""The worker's HTTP port when it runs several processes: /metrics merged, /health, /ready
and /state for all of them, enterprise queries passed on to a process (which forwards them
to the owner of the partition, as between workers)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiohttp import ClientError, ClientSession, ClientTimeout, web

from streams.supervisor.children import Child
from streams.supervisor.merge import merge_expositions

__all__ = ["Front"]

_EXPOSITION = "text/plain; version=0.0.4"
# a busy process renders its /metrics in a thread in ~150 ms; a stuck one must not hold
# every scrape for longer than Prometheus' default scrape timeout
_TIMEOUT = ClientTimeout(total=10)
# what a forwarded answer keeps of the process's headers
_KEEP_HEADERS = ("Content-Type", "Retry-After", "WWW-Authenticate")


class Front:
    def __init__(
        self,
        worker_id: str,
        children: Sequence[Child],
        alive: Callable[[], bool],
        host: str = "127.0.0.1",
    ) -> None:
        self.worker_id = worker_id
        self.host = host  # where the processes listen (children.connect_host)
        self.children = list(children)
        self.alive = alive
        self.session: ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/health", self.health)
        app.router.add_get("/ready", self.ready)
        app.router.add_get("/state", self.state)
        app.router.add_route("*", "/v1/{tail:.*}", self.forward)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, app: web.Application) -> None:
        self.session = ClientSession(timeout=_TIMEOUT)

    async def _close(self, app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def _get(
        self, child: Child, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """(status, body) of a process's endpoint; (0, reason) when it does not answer."""
        assert self.session is not None
        try:
            async with self.session.get(
                f"http://{self.host}:{child.port}{path}", headers=headers or {}
            ) as r:
                return r.status, await r.read()
        except (ClientError, TimeoutError, OSError) as exc:
            return 0, type(exc).__name__.encode()

    async def gather(
        self, path: str, headers: dict[str, str] | None = None
    ) -> list[tuple[int, bytes]]:
        """Every process's (status, body) for ``path``, in process order."""
        return list(await asyncio.gather(*(self._get(c, path, headers) for c in self.children)))

    async def metrics(self, request: web.Request) -> web.Response:
        path = request.rel_url.path_qs
        answers = await self.gather(path)
        missing = [
            c.index for c, (status, _) in zip(self.children, answers, strict=True) if status != 200
        ]
        if missing:
            # a partial exposition would show the missing processes' counters as resets
            return web.Response(
                status=503,
                text=f"worker processes {missing} did not answer /metrics\n",
            )
        body = merge_expositions(b.decode() for _, b in answers)
        return web.Response(
            body=body.encode(), content_type=None, headers={"Content-Type": _EXPOSITION}
        )

    async def health(self, request: web.Request) -> web.Response:
        ok = self.alive()
        body = {
            "status": "alive" if ok else "degraded",
            "worker": self.worker_id,
            "processes": len(self.children),
        }
        return web.json_response(body, status=200 if ok else 503)

    async def ready(self, request: web.Request) -> web.Response:
        answers = await self.gather("/ready")
        parts: list[dict[str, Any]] = []
        for child, (status, body) in zip(self.children, answers, strict=True):
            try:
                partitions = list(orjson.loads(body).get("partitions", [])) if status else []
            except (orjson.JSONDecodeError, AttributeError):
                partitions = []
            parts.append({"port": child.port, "ready": status == 200, "partitions": partitions})
        ok = all(p["ready"] for p in parts)
        union = sorted({p for part in parts for p in part["partitions"]})
        return web.json_response(
            {"ready": ok, "partitions": union, "processes": parts}, status=200 if ok else 503
        )

    async def state(self, request: web.Request) -> web.Response:
        auth = {"Authorization": request.headers.get("Authorization", "")}
        answers = await self.gather("/state", auth)
        for status, body in answers:
            if status in (400, 401):  # the processes check the token: pass their refusal on
                return web.Response(status=status, body=body, content_type="application/json")
        states: list[Any] = []
        for child, (status, body) in zip(self.children, answers, strict=True):
            try:
                states.append(
                    orjson.loads(body) if status == 200 else {"port": child.port, "error": status}
                )
            except orjson.JSONDecodeError:
                states.append({"port": child.port, "error": "not JSON"})
        return web.json_response({"worker": self.worker_id, "processes": states})

    async def forward(self, request: web.Request) -> web.StreamResponse:
        """An enterprise query: to the first process; it answers for its own partitions and
        forwards the rest to their owner, a sibling or another worker."""
        assert self.session is not None
        child = self.children[0]
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        try:
            async with self.session.request(
                request.method,
                f"http://{self.host}:{child.port}{request.rel_url.path_qs}",
                headers=headers,
                data=await request.read(),
            ) as r:
                body = await r.read()
                kept = {k: r.headers[k] for k in _KEEP_HEADERS if k in r.headers}
                return web.Response(status=r.status, body=body, headers=kept)
        except (ClientError, TimeoutError, OSError):
            return web.json_response(
                {"error": "the worker process did not answer"},
                status=503,
                headers={"Retry-After": "2"},
            )
