"""The little HTTP/1.1 the supervisor speaks, on asyncio streams alone: a server for the
worker's port and a client for its processes' ports.

Not aiohttp: the supervisor is the one process of a worker that holds no state, and aiohttp
(with the pydantic settings it no longer reads) was 28 of its 50 MB; a worker of two
processes then passed 500 MB with a million scored enterprises (bench/RESULTS.md, "Score
table in flat arrays"). What it serves is small and fixed (GET /metrics, /health, /ready,
/state and the /v1 queries it passes on), so requests are read whole, with bounds, and
answered with a Content-Length; connections are kept alive as HTTP/1.1 clients expect.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import orjson

__all__ = ["Request", "Response", "fetch", "json_response", "serve"]

_HEAD_LIMIT = 64 * 1024  # request line and headers
_BODY_LIMIT = 1024 * 1024  # a query body; the worker takes none larger
_HEAD_SECONDS = 30.0  # to send a request's head once it started (or a kept connection idles)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n")  # tab is allowed
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token: methods, header names
_SINGLE = frozenset(("content-length", "host", "transfer-encoding"))
# not passed on (expect: a 100 Continue is not relayed either)
_HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade")
) | frozenset(("expect", "te", "trailer", "proxy-connection"))


class HttpError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    version: str = "HTTP/1.1"

    @property
    def keep_alive(self) -> bool:
        """HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only if asked."""
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def forwardable_headers(self) -> dict[str, str]:
        """The end-to-end headers (what a proxy passes on)."""
        return {k: v for k, v in self.headers.items() if k not in _HOP_BY_HOP}


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(
    value: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        status, orjson.dumps(value), {"Content-Type": "application/json", **(headers or {})}
    )


def _text(status: int, reason: str) -> Response:
    return Response(status, f"{status}: {reason}\n".encode(), {"Content-Type": "text/plain"})


Handler = Callable[[Request], Awaitable[Response]]


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """(method, target, version, headers) of a request head; HttpError if it is not one."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
        raise HttpError(400, "Bad Request") from None
    if _CONTROL.search(text):  # a bare CR or LF would split the line when passed on
        raise HttpError(400, "Bad Request")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if (
        len(parts) != 3
        or not _TOKEN.fullmatch(parts[0])
        or parts[2] not in ("HTTP/1.0", "HTTP/1.1")
        or not parts[1].startswith("/")
    ):
        raise HttpError(400, "Bad Request")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise HttpError(400, "Bad Request")
        key, value = name.lower(), value.strip(" \t")
        if key in headers and (key in _SINGLE or headers[key] != value):
            raise HttpError(400, "Bad Request")  # two lengths: which one ends the body?
        headers[key] = value
    return parts[0], parts[1], parts[2], headers


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request of a connection, None when the client closed it."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_SECONDS)
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise HttpError(400, "Bad Request") from None
        return None
    except asyncio.LimitOverrunError:
        raise HttpError(431, "Request Header Fields Too Large") from None
    method, target, version, headers = _parse_head(head[:-4])
    if "transfer-encoding" in headers:
        raise HttpError(501, "Not Implemented")  # no chunked request bodies here
    size = headers.get("content-length", "0")
    if not (size.isascii() and size.isdigit() and len(size) <= 10):
        raise HttpError(400, "Bad Request")
    if int(size) > _BODY_LIMIT:
        raise HttpError(413, "Payload Too Large")
    body = b""
    if int(size):
        body = await asyncio.wait_for(reader.readexactly(int(size)), _HEAD_SECONDS)
    return Request(method, target, headers, body, version)


def _encode(response: Response, *, head_only: bool, close: bool) -> bytes:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    lines += [f"{k}: {v}" for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP]
    lines.append(f"Content-Length: {len(response.body)}")
    if close:
        lines.append("Connection: close")
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return out if head_only else out + response.body


async def _connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handle: Handler
) -> None:
    try:
        while True:
            try:
                request = await _read_request(reader)
            except HttpError as exc:
                writer.write(_encode(_text(exc.status, str(exc)), head_only=False, close=True))
                await asyncio.wait_for(writer.drain(), _HEAD_SECONDS)
                return
            if request is None:
                return
            try:
                response = await handle(request)
            except Exception:  # a handler's defect must not cost the connection silently
                response = _text(500, "Internal Server Error")
            close = not request.keep_alive
            writer.write(_encode(response, head_only=request.method == "HEAD", close=close))
            # a client that does not read must not pin the connection
            await asyncio.wait_for(writer.drain(), _HEAD_SECONDS)
            if close:
                return
    except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
        return  # the client went away or idled past the limit
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def serve(host: str, port: int, handle: Handler) -> asyncio.Server:
    """Listen on ``host:port`` ("" or "0.0.0.0": every interface, as aiohttp did)."""
    return await asyncio.start_server(
        lambda r, w: _connection(r, w, handle),
        None if host == "" else host,
        port,
        limit=_HEAD_LIMIT,
        reuse_address=True,
    )


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readexactly(2)


async def _read_answer(
    reader: asyncio.StreamReader, *, head_only: bool
) -> tuple[int, dict[str, str], bytes]:
    while True:
        head = (await reader.readuntil(b"\r\n\r\n"))[:-4].decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ValueError(f"not an HTTP answer: {status_line[:40]!r}")
        status = int(parts[1])
        if not 100 <= status < 200:
            break  # an interim answer (100 Continue, 103) is followed by the real one
    got = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        got[name.strip().lower()] = value.strip()
    size = got.get("content-length", "")
    if head_only:
        data = b""
    elif got.get("transfer-encoding", "").lower() == "chunked":
        data = await _read_chunked(reader)
    elif size:
        if not (size.isascii() and size.isdigit()):
            raise ValueError(f"not an HTTP answer: Content-Length {size[:20]!r}")
        data = await reader.readexactly(int(size))
    else:
        data = await reader.read()
    return status, got, data


async def fetch(
    host: str,
    port: int,
    target: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of one request on a new connection.
    Raises OSError, TimeoutError or ValueError (not an HTTP answer) when there is none."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host.strip("[]"), port)
        try:
            lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
            lines += [
                f"{k}: {v}" for k, v in (headers or {}).items() if k.lower() not in _HOP_BY_HOP
            ]
            if body or method not in ("GET", "HEAD"):
                lines.append(f"Content-Length: {len(body)}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            try:
                return await _read_answer(reader, head_only=method == "HEAD")
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError) as exc:
                raise ValueError(f"not an HTTP answer: {type(exc).__name__}") from None
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
