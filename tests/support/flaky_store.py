"""A document store that is down for a while: answers 503 to the first `failures` requests, then passes every
request on to a real store (the development engine's REST API). Records the requests it received."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx
from aiohttp import web


class FlakyStore:
    def __init__(self, upstream: str, failures: int) -> None:
        self.upstream = upstream.rstrip("/")
        self.failures = failures
        self.received: list[tuple[str, str]] = []
        self._runner: web.AppRunner | None = None
        self._http = httpx.AsyncClient()
        self.url = ""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
        await self._http.aclose()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append((request.method, request.path))
        if len(self.received) <= self.failures:
            return web.json_response({"title": "UNAVAILABLE", "detail": "the store is restarting"}, status=503)
        answer = await self._http.request(
            request.method,
            self.upstream + request.path_qs,
            content=await request.read(),
            headers={k: v for k, v in request.headers.items() if k.lower() in ("content-type", "authorization")},
        )
        return web.Response(
            status=answer.status_code,
            body=answer.content,
            headers={"content-type": answer.headers.get("content-type", "application/octet-stream")},
        )
