"""The supervisor's own HTTP/1.1 (streams/supervisor/http.py) on loopback sockets: requests
read whole and bounded, answers with a Content-Length, connections kept alive, and a client
that reads what aiohttp (the processes' web server) writes, chunked included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from streams.supervisor.http import Request, Response, fetch, json_response, serve


async def _echo(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("a defect")
    return json_response(
        {
            "method": request.method,
            "target": request.target,
            "path": request.path,
            "auth": request.headers.get("authorization"),
            "body": request.body.decode(),
            "forwarded": sorted(request.forwardable_headers()),
        },
        headers={"Retry-After": "2"},
    )


@asynccontextmanager
async def _server(
    handle: Callable[[Request], Awaitable[Response]] = _echo,
) -> AsyncIterator[int]:
    server = await serve("127.0.0.1", 0, handle)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@asynccontextmanager
async def _scripted(answer: Callable[[], bytes]) -> AsyncIterator[int]:
    """A server that reads a request head, writes ``answer()`` as it is, and closes."""

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(reply, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def _raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return out


def test_a_request_and_its_answer() -> None:
    async def go() -> None:
        async with _server() as port:
            status, headers, body = await fetch(
                "127.0.0.1",
                port,
                "/v1/enterprises/X?as_of=2026",
                method="POST",
                headers={"Authorization": "Bearer t", "Connection": "keep-alive"},
                body=b"hello",
            )
            assert status == 200
            assert headers["retry-after"] == "2"
            assert headers["content-type"] == "application/json"
            got = __import__("orjson").loads(body)
            assert got == {
                "method": "POST",
                "target": "/v1/enterprises/X?as_of=2026",
                "path": "/v1/enterprises/X",
                "auth": "Bearer t",
                "body": "hello",
                "forwarded": ["authorization"],  # hop-by-hop headers are not passed on
            }

    asyncio.run(go())


def test_a_kept_alive_connection_serves_several_requests() -> None:
    async def go() -> None:
        async with _server() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for i in range(3):
                writer.write(f"GET /n{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                assert head.startswith("HTTP/1.1 200 OK\r\n")
                size = int(head.split("Content-Length: ")[1].split("\r\n")[0])
                assert f'"/n{i}"' in (await reader.readexactly(size)).decode()
            writer.write(b"HEAD /h HTTP/1.1\r\nConnection: close\r\n\r\n")
            rest = await asyncio.wait_for(reader.read(), 5)  # closed after it
            assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
            assert rest.endswith(b"\r\n\r\n")  # HEAD: the length, no body
            assert b"Connection: close" in rest
            writer.close()

    asyncio.run(go())


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET relative HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /boom HTTP/1.1\r\nConnection: close\r\n\r\n", 500),
        # what would split the line when passed on to a process (request smuggling)
        (b"GET /v1/x\nX-Injected: 1 HTTP/1.1\r\n\r\n", 400),
        (b"GET /v1/x HTTP/1.1\r\nX-A: 1\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"GET /v1/x HTTP/1.1\r\nX-A: 1\x00\r\n\r\n", 400),
        (b"G\xc3T / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: \u00b2\r\n\r\n".encode(), 400),
        (b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 11 + b"\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    ],
)
def test_a_bad_request_gets_its_status(request_bytes: bytes, status: int) -> None:
    async def go() -> bytes:
        async with _server() as port:
            return await _raw(port, request_bytes)

    answer = asyncio.run(go())
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]


def test_the_client_reads_chunked_and_unsized_answers() -> None:
    """What a web server may send back: chunked (with a trailer), or a body up to EOF."""

    async def go() -> None:
        answers = [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\n",
            b"HTTP/1.0 503 Service Unavailable\r\n\r\nbusy",
            b"not http at all\r\n\r\n",
        ]

        async with _scripted(lambda: answers.pop(0)) as port:
            assert (await fetch("127.0.0.1", port, "/"))[::2] == (200, b"hello world")
            assert (await fetch("127.0.0.1", port, "/"))[::2] == (503, b"busy")
            with pytest.raises(ValueError, match="not an HTTP answer"):
                await fetch("127.0.0.1", port, "/")

    asyncio.run(go())


def test_the_client_gives_up_on_a_silent_or_absent_server() -> None:
    async def go() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(5)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(TimeoutError):
                await fetch("127.0.0.1", port, "/", timeout=0.2)
        finally:
            server.close()
        with pytest.raises(OSError):
            await fetch("127.0.0.1", port, "/")  # nothing listens there now

    asyncio.run(go())


def test_an_http_1_0_request_is_answered_and_closed() -> None:
    async def go() -> bytes:
        async with _server() as port:
            return await _raw(port, b"GET /old HTTP/1.0\r\n\r\n")  # read to EOF: it closes

    answer = asyncio.run(go())
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close" in answer


def test_the_client_skips_an_interim_answer() -> None:
    """A 100 Continue (or 103) before the real answer is not the answer."""

    async def go() -> None:
        interim = b"HTTP/1.1 100 Continue\r\n\r\n"
        answer = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
        async with _scripted(lambda: interim + answer) as port:
            assert (await fetch("127.0.0.1", port, "/"))[::2] == (201, b"ok")

    asyncio.run(go())
