"""The load: N process instances run to completion through ``CreateProcessInstanceWithResult``, at most
C at a time (a closed loop).

Each of C coroutines starts an instance, waits until Zeebe reports it completed (with its result
variable), records the time from the create call to that answer, and starts the next one until N
have been started. With C above what the worker can have in flight, the worker always has work
waiting, so completed jobs per second is the worker's capacity; the latency then includes the
time an instance waits for the worker (Little's law: latency ~ C / throughput).

``SteadyLoad`` keeps C instances in flight without end instead, their starts spread over one model
latency, and measures windows of time in it: the steady state of a slow model with many jobs in flight.

Back pressure from the engine (RESOURCE_EXHAUSTED) is retried after a short pause, at most
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
_FAILURE_PAUSE_SECONDS = 0.1

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


@dataclass(frozen=True)
class Instances:
    """What each instance of a load is: the process, its variables, what to fetch and check at the end."""

    client: ZeebeClient
    process_id: str
    variables: dict[str, Any]
    fetch: list[str]
    check: Check | None = None
    timeout_s: float = 60.0

    async def run(self, on_backpressure: Callable[[], None]) -> float:
        """Runs one instance to completion; returns its latency in seconds, raises on any failure."""
        attempts = 0
        started = time.perf_counter()
        while True:
            try:
                response = await self.client.run_process_with_result(
                    self.process_id,
                    variables=self.variables,
                    timeout=int(self.timeout_s * 1000),
                    variables_to_fetch=self.fetch,
                )
                break
            except ZeebeBackPressureError:
                attempts += 1
                on_backpressure()
                if attempts > _MAX_BACKPRESSURE_RETRIES:
                    raise
                await asyncio.sleep(_BACKPRESSURE_PAUSE_SECONDS)
        elapsed = time.perf_counter() - started
        problem = self.check(dict(response.variables)) if self.check else None
        if problem:
            raise AssertionError(problem)
        return elapsed


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


async def drive(instances: Instances, *, n: int, concurrency: int) -> LoadResult:
    result = LoadResult()
    next_index = 0

    def backpressure() -> None:
        result.backpressure_retries += 1

    async def lane() -> None:
        nonlocal next_index
        while next_index < n:
            next_index += 1
            result.started += 1
            try:
                latency = await instances.run(backpressure)
            except Exception as exc:  # every failure is counted, the load goes on
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(_describe(exc))
                continue
            result.latencies.append(latency)
            result.completed += 1

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(max(1, min(concurrency, n)))))
    result.wall_seconds = time.perf_counter() - began
    return result


class SteadyLoad:
    """C instances kept in flight without end, the lanes' starts spread evenly over ``ramp_s``, so that
    instances arrive at a steady rate, as independent requests do, rather than in waves of C.

    ``window(start, end)`` describes the instances that completed between two ``time.perf_counter()``
    instants: a steady state measured over a fixed time, free of the ramp-up and the drain that a fixed
    count of instances would include (at 5 s per job, those alone take 10 s)."""

    def __init__(self, instances: Instances, *, concurrency: int, ramp_s: float) -> None:
        self._instances = instances
        self._concurrency = max(1, concurrency)
        self._ramp_s = ramp_s
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self.completions: list[tuple[float, float]] = []
        """(completed at, latency) of every instance that went through."""
        self.failures: list[tuple[float, str]] = []
        self.backpressure_retries = 0

    def _backpressure(self) -> None:
        self.backpressure_retries += 1

    def start(self) -> None:
        step = self._ramp_s / self._concurrency
        self._tasks = [asyncio.create_task(self._lane(index * step)) for index in range(self._concurrency)]

    async def _lane(self, delay: float) -> None:
        await asyncio.sleep(delay)
        while not self._stopping:
            try:
                latency = await self._instances.run(self._backpressure)
            except Exception as exc:  # every failure is counted, the load goes on
                self.failures.append((time.perf_counter(), _describe(exc)))
                # An engine that is gone fails every call at once: a pause keeps 1000 lanes from spinning.
                await asyncio.sleep(_FAILURE_PAUSE_SECONDS)
                continue
            self.completions.append((time.perf_counter(), latency))

    async def stop(self, timeout_s: float) -> None:
        """No new instances; waits up to ``timeout_s`` for those in flight, then counts the rest as failed."""
        self._stopping = True
        _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
            self.failures.append((time.perf_counter(), f"not finished {timeout_s:.0f} s after the load stopped"))

    def window(self, start: float, end: float) -> LoadResult:
        done = [latency for at, latency in self.completions if start <= at < end]
        failed = [message for at, message in self.failures if start <= at < end]
        return LoadResult(
            started=len(done) + len(failed),
            completed=len(done),
            errors=len(failed),
            wall_seconds=end - start,
            latencies=done,
            error_samples=failed[:5],
        )
