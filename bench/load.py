"""The load: N process instances run to completion through ``CreateProcessInstanceWithResult``, at most
C at a time (a closed loop).

Each of C coroutines starts an instance, waits until Zeebe reports it completed (with its result
variable), records the time from the create call to that answer, and starts the next one until N
have been started. With C above what the worker can have in flight, the worker always has work
waiting, so completed jobs per second is the worker's capacity; the latency then includes the
time an instance waits for the worker (Little's law: latency ~ C / throughput).

Back pressure from the broker (RESOURCE_EXHAUSTED) is retried after a short pause, at most
``_MAX_BACKPRESSURE_RETRIES`` times per instance, and counted; anything else is an error.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyzeebe import ZeebeClient
from pyzeebe.errors import ZeebeBackPressureError

_MAX_BACKPRESSURE_RETRIES = 100
_BACKPRESSURE_PAUSE_SECONDS = 0.05

Check = Callable[[dict[str, Any]], str | None]
"""Looks at an instance's fetched variables; returns an error description, or None when it is right."""


@dataclass
class LoadResult:
    started: int = 0
    completed: int = 0
    errors: int = 0
    backpressure_retries: int = 0
    wall_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.completed / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on sorted values; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def mean_sd(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


async def drive(
    client: ZeebeClient,
    process_id: str,
    *,
    n: int,
    concurrency: int,
    variables: dict[str, Any],
    fetch: list[str],
    check: Check | None = None,
    instance_timeout_s: float = 60.0,
) -> LoadResult:
    result = LoadResult()
    next_index = 0

    async def one() -> None:
        attempts = 0
        started = time.perf_counter()
        while True:
            try:
                response = await client.run_process_with_result(
                    process_id,
                    variables=variables,
                    timeout=int(instance_timeout_s * 1000),
                    variables_to_fetch=fetch,
                )
                break
            except ZeebeBackPressureError:
                attempts += 1
                result.backpressure_retries += 1
                if attempts > _MAX_BACKPRESSURE_RETRIES:
                    raise
                await asyncio.sleep(_BACKPRESSURE_PAUSE_SECONDS)
        elapsed = time.perf_counter() - started
        problem = check(dict(response.variables)) if check else None
        if problem:
            raise AssertionError(problem)
        result.latencies.append(elapsed)
        result.completed += 1

    async def lane() -> None:
        nonlocal next_index
        while next_index < n:
            next_index += 1
            result.started += 1
            try:
                await one()
            except Exception as exc:  # every failure is counted, the load goes on
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(max(1, min(concurrency, n)))))
    result.wall_seconds = time.perf_counter() - began
    return result
