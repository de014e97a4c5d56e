"""Handing activatable jobs to the workers that wait for them: open job streams first, then long polls.

A stream asks for one job at a time and asks again only once the previous one is written to it, so a slow
stream consumer (whose HTTP/2 window is full) is simply not asking, and its jobs go to others instead of
piling up in its buffer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from devkit.engine.engine import ActivatedJob, Engine


@dataclass(eq=False)
class Waiter:
    job_type: str
    worker: str
    timeout_ms: int
    max_jobs: int
    fetch: list[str]
    future: asyncio.Future[list[ActivatedJob]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Dispatcher:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._streams: dict[str, deque[Waiter]] = {}
        self._polls: dict[str, deque[Waiter]] = {}
        self._scheduled: set[str] = set()
        engine.on_activatable = self.notify

    def notify(self, job_type: str) -> None:
        """Jobs of `job_type` became activatable: hand them out at the end of this loop turn, in one batch."""
        if job_type not in self._scheduled and (self._streams.get(job_type) or self._polls.get(job_type)):
            self._scheduled.add(job_type)
            asyncio.get_running_loop().call_soon(self._dispatch, job_type)

    def _dispatch(self, job_type: str) -> None:
        self._scheduled.discard(job_type)
        for waiters in (self._streams.get(job_type), self._polls.get(job_type)):
            while waiters and self.engine.activatable.get(job_type):
                waiter = waiters.popleft()
                if waiter.future.done():  # its request ended meanwhile
                    continue
                jobs = self.engine.activate(job_type, waiter.max_jobs, waiter.worker, waiter.timeout_ms, waiter.fetch)
                waiter.future.set_result(jobs)

    def wait(self, waiter: Waiter, stream: bool) -> None:
        (self._streams if stream else self._polls).setdefault(waiter.job_type, deque()).append(waiter)
        if self.engine.activatable.get(waiter.job_type):
            self.notify(waiter.job_type)

    def forget(self, waiter: Waiter) -> None:
        """The waiter's request ended: give back jobs it was handed but never sent."""
        for waiters in (self._streams.get(waiter.job_type), self._polls.get(waiter.job_type)):
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
        if not waiter.future.done():
            waiter.future.cancel()

    def has_stream(self, job_type: str) -> bool:
        return bool(self._streams.get(job_type))
