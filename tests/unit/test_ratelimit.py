"""The worker-wide request rate: a burst beyond the limit waits its turn instead of provoking 429s."""

from __future__ import annotations

import asyncio
import time

from hf_connector.huggingface.ratelimit import RateLimiter

ROUTER = "https://router.huggingface.co/hf-inference/models/x"


async def _burst(limiter: RateLimiter, url: str, count: int) -> None:
    await asyncio.gather(*(limiter.acquire(url) for _ in range(count)))


async def test_a_burst_beyond_the_limit_waits_for_capacity() -> None:
    limiter = RateLimiter(requests_per_minute=60)  # one request a second once the bucket is used up
    started = time.monotonic()
    await _burst(limiter, ROUTER, 61)
    assert time.monotonic() - started >= 0.9


async def test_each_endpoint_host_has_its_own_budget() -> None:
    limiter = RateLimiter(requests_per_minute=60)
    await _burst(limiter, ROUTER, 60)
    # A shared budget would make these 60 wait a minute; separate ones let them through at once.
    await asyncio.wait_for(_burst(limiter, "https://my-endpoint.endpoints.huggingface.cloud/", 60), timeout=30)


async def test_zero_turns_the_limit_off() -> None:
    limiter = RateLimiter(requests_per_minute=0)
    await asyncio.wait_for(_burst(limiter, ROUTER, 5000), timeout=30)
