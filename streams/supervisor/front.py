"""The worker's HTTP port when it runs several processes: /metrics merged, /health, /ready
and /state for all of them, enterprise queries passed on to a process (which forwards them
to the owner of the partition, as between workers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from streams.supervisor.children import Child
from streams.supervisor.http import Request, Response, fetch, json_response
from streams.supervisor.merge import merge_expositions

__all__ = ["Front"]

_EXPOSITION = "text/plain; version=0.0.4"
# a busy process renders its /metrics in a thread in ~150 ms; a stuck one must not hold
# every scrape for longer than Prometheus' default scrape timeout
_TIMEOUT_SECONDS = 10.0
# what a forwarded answer keeps of the process's headers
_KEEP_HEADERS = ("content-type", "retry-after", "www-authenticate")
_GET = ("GET", "HEAD")


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
        self._routes: dict[str, Callable[[Request], Awaitable[Response]]] = {
            "/metrics": self.metrics,
            "/health": self.health,
            "/ready": self.ready,
            "/state": self.state,
        }

    async def handle(self, request: Request) -> Response:
        """The worker's port: its own endpoints, and /v1/… passed on."""
        path = request.path
        if path.startswith("/v1/"):
            return await self.forward(request)
        route = self._routes.get(path)
        if route is None:
            return Response(404, b"404: Not Found\n", {"Content-Type": "text/plain"})
        if request.method not in _GET:
            return Response(
                405, b"405: Method Not Allowed\n", {"Content-Type": "text/plain", "Allow": "GET"}
            )
        return await route(request)

    async def _get(
        self, child: Child, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """(status, body) of a process's endpoint; (0, reason) when it does not answer."""
        try:
            status, _, body = await fetch(
                self.host, child.port, path, headers=headers, timeout=_TIMEOUT_SECONDS
            )
            return status, body
        except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
            return 0, type(exc).__name__.encode()

    async def gather(
        self, path: str, headers: dict[str, str] | None = None
    ) -> list[tuple[int, bytes]]:
        """Every process's (status, body) for ``path``, in process order."""
        return list(await asyncio.gather(*(self._get(c, path, headers) for c in self.children)))

    async def metrics(self, request: Request) -> Response:
        answers = await self.gather(request.target)
        missing = [
            c.index for c, (status, _) in zip(self.children, answers, strict=True) if status != 200
        ]
        if missing:
            # a partial exposition would show the missing processes' counters as resets
            return Response(
                503,
                f"worker processes {missing} did not answer /metrics\n".encode(),
                {"Content-Type": "text/plain; charset=utf-8"},
            )
        body = merge_expositions(b.decode() for _, b in answers)
        return Response(200, body.encode(), {"Content-Type": _EXPOSITION})

    async def health(self, request: Request) -> Response:
        ok = self.alive()
        body = {
            "status": "alive" if ok else "degraded",
            "worker": self.worker_id,
            "processes": len(self.children),
        }
        return json_response(body, status=200 if ok else 503)

    async def ready(self, request: Request) -> Response:
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
        return json_response(
            {"ready": ok, "partitions": union, "processes": parts}, status=200 if ok else 503
        )

    async def state(self, request: Request) -> Response:
        auth = {"Authorization": request.headers.get("authorization", "")}
        answers = await self.gather("/state", auth)
        for status, body in answers:
            if status in (400, 401):  # the processes check the token: pass their refusal on
                return Response(status, body, {"Content-Type": "application/json"})
        states: list[Any] = []
        for child, (status, body) in zip(self.children, answers, strict=True):
            try:
                states.append(
                    orjson.loads(body) if status == 200 else {"port": child.port, "error": status}
                )
            except orjson.JSONDecodeError:
                states.append({"port": child.port, "error": "not JSON"})
        return json_response({"worker": self.worker_id, "processes": states})

    async def forward(self, request: Request) -> Response:
        """An enterprise query: to the first process; it answers for its own partitions and
        forwards the rest to their owner, a sibling or another worker."""
        child = self.children[0]
        try:
            status, headers, body = await fetch(
                self.host,
                child.port,
                request.target,
                method=request.method,
                # identity bodies only: the answer is passed on without its Content-Encoding
                headers={
                    k: v for k, v in request.forwardable_headers().items() if k != "accept-encoding"
                },
                body=request.body,
                timeout=_TIMEOUT_SECONDS,
            )
        except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
            return json_response(
                {"error": "the worker process did not answer"},
                status=503,
                headers={"Retry-After": "2"},
            )
        kept = {k.title(): headers[k] for k in _KEEP_HEADERS if k in headers}
        return Response(status, body, kept)
