"""Handing activatable jobs to the workers that wait for them: open job streams first, then long polls.

A stream asks for one job at a time, and only while fewer than its window of pushed jobs are still held by
its worker (not yet completed, failed, thrown or timed out). gRPC's transport buffers whatever is written
whether or not the client application reads it, so this window is what keeps a slow stream consumer from
collecting jobs it cannot start before they time out: past it, jobs go to long polls and other streams.
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


class JobStream:
    """One open StreamActivatedJobs call: the keys of the jobs pushed to it that its worker still holds."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.held: set[int] = set()
        self.room = asyncio.Event()

    async def wait_for_room(self) -> None:
        while len(self.held) >= self.window:
            self.room.clear()
            await self.room.wait()


class Dispatcher:
    def __init__(self, engine: Engine, stream_window: int) -> None:
        self.engine = engine
        self.stream_window = stream_window
        self._streams: dict[str, deque[Waiter]] = {}
        self._polls: dict[str, deque[Waiter]] = {}
        self._scheduled: set[str] = set()
        self._pushed: dict[int, JobStream] = {}
        engine.on_activatable = self.notify
        engine.on_released = self._released

    def open_stream(self) -> JobStream:
        return JobStream(self.stream_window)

    def pushed(self, stream: JobStream, jobs: list[ActivatedJob]) -> None:
        for activated in jobs:
            stream.held.add(activated.job.key)
            self._pushed[activated.job.key] = stream

    def close_stream(self, stream: JobStream) -> None:
        for key in stream.held:
            self._pushed.pop(key, None)

    def _released(self, job_key: int) -> None:
        stream = self._pushed.pop(job_key, None)
        if stream is not None:
            stream.held.discard(job_key)
            stream.room.set()

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
