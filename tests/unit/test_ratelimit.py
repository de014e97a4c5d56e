"""The worker-wide request rate: a burst beyond the limit waits its turn instead of provoking 429s."""

from __future__ import annotations

import asyncio
import time

from worker.huggingface.ratelimit import RateLimiter


async def test_a_burst_beyond_the_limit_waits_for_capacity() -> None:
    limiter = RateLimiter(requests_per_minute=60)  # one request a second once the bucket is full
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire("https://router.huggingface.co/x") for _ in range(61)))
    assert time.monotonic() - started >= 0.9


async def test_each_endpoint_host_has_its_own_budget() -> None:
    limiter = RateLimiter(requests_per_minute=60)
    await asyncio.gather(*(limiter.acquire("https://router.huggingface.co/x") for _ in range(60)))
    started = time.monotonic()
    await limiter.acquire("https://my-endpoint.endpoints.huggingface.cloud/")
    assert time.monotonic() - started < 0.5


async def test_zero_turns_the_limit_off() -> None:
    limiter = RateLimiter(requests_per_minute=0)
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire("https://router.huggingface.co/x") for _ in range(5000)))
    assert time.monotonic() - started < 0.5
    assert limiter.max_wait_seconds == 0
