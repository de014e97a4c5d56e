"""CPU per request of the HTTP clients the worker could use, against a loopback server in another process.

``python -m bench.http_client_cpu [--requests N] [--concurrency C] [--latency S]``

Each client sends the same small JSON POST, `concurrency` at a time over kept-alive connections, and reads
the JSON answer, which the server holds back `latency` seconds (0: at once; 0.1: the benchmark's 100 ms
scenario, where each answer wakes the event loop on its own); the figure is this process's CPU time
(user + system) divided by the requests sent, so the server's own work is not in it. Loopback only,
bounded in count. The clients are aiohttp's own, the worker's HTTP core on it (`HttpCore`, with the
destination guard, redirects, the size cap and body decoding), httpx on its own transport and, when
httpx-aiohttp is installed (the worker does not need it: `pip install httpx-aiohttp`), httpx on aiohttp's
wire.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx

from hf_connector.http_core import HttpCore, HttpRequest

_ANSWER = json.dumps([{"generated_text": "x" * 200}]).encode()
_HEAD = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(_ANSWER)}\r\n\r\n".encode()
_PAYLOAD = {"inputs": "Hello", "parameters": {"max_new_tokens": 20}}


def _serve(sock: socket.socket, latency: float) -> None:
    """A keep-alive server that answers every request it reads with the same JSON after `latency` seconds;
    bodies are framed by length."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                if latency:
                    await asyncio.sleep(latency)
                writer.write(_HEAD + _ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=sock)
        await server.serve_forever()

    asyncio.run(main())


async def _drive(send: Callable[[], Awaitable[None]], requests: int, concurrency: int) -> float:
    """CPU seconds per request for `requests` calls, `concurrency` at once, after a warm-up round."""
    await asyncio.gather(*(send() for _ in range(concurrency)))
    remaining = requests

    async def lane() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await send()

    started = time.process_time()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return (time.process_time() - started) / requests


async def _measure(url: str, requests: int, concurrency: int) -> dict[str, float]:
    results: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session:

        async def via_aiohttp() -> None:
            async with session.post(url, json=_PAYLOAD) as response:
                json.loads(await response.read())

        results["aiohttp"] = await _drive(via_aiohttp, requests, concurrency)

    core = HttpCore(max_response_bytes=10 * 1024 * 1024, max_connections=concurrency)
    request = HttpRequest(url=url, headers={"Authorization": "Bearer hf_token"}, json_body=_PAYLOAD)

    async def via_http_core() -> None:
        await core.send(request)

    try:
        results["the worker's HttpCore on aiohttp"] = await _drive(via_http_core, requests, concurrency)
    finally:
        await core.aclose()

    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        results["httpx on aiohttp (httpx-aiohttp)"] = float("nan")  # not installed
    else:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with (
            aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session,
            httpx.AsyncClient(transport=AiohttpTransport(client=session)) as client,
        ):
            results["httpx on aiohttp (httpx-aiohttp)"] = await _drive(_httpx_post(client, url), requests, concurrency)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:
        results["httpx on its own transport"] = await _drive(_httpx_post(client, url), requests, concurrency)
    return results


def _httpx_post(client: httpx.AsyncClient, url: str) -> Callable[[], Awaitable[None]]:
    async def post() -> None:
        response = await client.post(url, json=_PAYLOAD)
        json.loads(response.content)

    return post


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds the server holds each answer")
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    server = multiprocessing.Process(target=_serve, args=(sock, args.latency), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/models/org/model"
        results = asyncio.run(_measure(url, args.requests, args.concurrency))
    finally:
        server.terminate()
        server.join()
    for name, seconds in results.items():
        figure = "not installed" if seconds != seconds else f"{seconds * 1000:.3f} ms CPU per request"
        print(f"{name:34} {figure}")


if __name__ == "__main__":
    main()
