"""A worker-wide request rate per endpoint host, applied before each call.

A burst of jobs then waits its turn inside the worker instead of provoking 429s from Hugging Face.
The default of 3000 requests per minute is Elasticsearch's for its Hugging Face service.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiolimiter import AsyncLimiter


class RateLimiter:
    def __init__(self, requests_per_minute: int) -> None:
        self.requests_per_minute = requests_per_minute
        self._limiters: dict[str, AsyncLimiter] = {}

    async def acquire(self, url: str) -> None:
        if not self.requests_per_minute:
            return
        host = urlsplit(url).netloc.lower()
        limiter = self._limiters.get(host)
        if limiter is None:
            limiter = self._limiters[host] = AsyncLimiter(self.requests_per_minute, 60)
        await limiter.acquire()
