"""Loopback HTTP/1.1 servers for tests of the worker's HTTP client, which always talks to a real socket.

`LoopbackServer` reads whole requests and answers each with the exact bytes its responder returns, so
framing, oversized heads, bombs and broken connections are precise. `httpx_responder` lets a test write
the answer as an `httpx.Response` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

import httpx


@dataclass(frozen=True)
class Received:
    connection: int
    """1 for the first connection the server accepted, 2 for the second, ..."""
    method: str
    target: str
    headers: httpx.Headers
    body: bytes


CLOSE = b""
"""A responder's answer that closes the connection without a response."""


class ThenClose(bytes):
    """A responder's answer after which the server closes the connection."""


Responder = Callable[[Received], Awaitable[bytes]]


def answer(body: bytes = b"ok", *headers: str, status: str = "200 OK") -> bytes:
    """A whole HTTP/1.1 answer, with a Content-Length unless a header already frames the body."""
    lines = [f"HTTP/1.1 {status}", *headers]
    if not any(line.lower().startswith(("content-length:", "transfer-encoding:")) for line in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class LoopbackServer:
    def __init__(self, responder: Responder, host: str = "127.0.0.1", port: int = 0) -> None:
        self.responder = responder
        self.host = host
        self.port = port
        self.received: list[Received] = []
        self._connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def requests_seen(self, count: int, timeout: float = 5.0) -> None:
        """Waits until `count` requests have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                await asyncio.sleep(0.01)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def __aenter__(self) -> LoopbackServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()  # responders that never answer, and connections waiting for a request
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._connections += 1
        connection = self._connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = httpx.Headers([tuple(line.split(": ", 1)) for line in lines if line])  # type: ignore[misc]
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                received = Received(connection, method, target, headers, body)
                self.received.append(received)
                reply = await self.responder(received)
                if reply == CLOSE:
                    return
                writer.write(reply)
                await writer.drain()
                if isinstance(reply, ThenClose):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the client closed or reset the connection
        except asyncio.CancelledError:
            return  # the server is closing
        finally:
            writer.close()
            self._tasks.discard(task)


def httpx_responder(handler: Callable[[httpx.Request], httpx.Response], base_url: Callable[[], str]) -> Responder:
    """Answers with the handler's `httpx.Response`; a handler that raises an httpx timeout never answers."""

    async def respond(received: Received) -> bytes:
        request = httpx.Request(
            received.method, base_url() + received.target, headers=received.headers, content=received.body
        )
        try:
            response = handler(request)
        except httpx.TimeoutException:
            await asyncio.Event().wait()  # until the client gives up and the server closes
            raise
        content = response.read()
        lines = [
            f"{name}: {value}" for name, value in response.headers.multi_items() if name.lower() != "content-length"
        ]
        return answer(content, *lines, status=f"{response.status_code} {response.reason_phrase}")

    return respond


@contextlib.asynccontextmanager
async def httpx_server(handler: Callable[[httpx.Request], httpx.Response]):  # type: ignore[no-untyped-def]
    """A loopback server answering with `handler`; yields it (`server.url()` is its base)."""
    server: LoopbackServer | None = None
    server = LoopbackServer(httpx_responder(handler, lambda: server.url("") if server else ""))
    async with server:
        yield server
