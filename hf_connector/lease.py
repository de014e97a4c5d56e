"""Holding a job as a renewable lease while its work runs. Knows nothing of pyzeebe.

A job is activated for a modest timeout and renewed by that timeout every third of it, so that a
crashed worker's jobs return to other workers within one timeout while a live worker's call may run as
long as its own read timeout allows. When the engine says the job is no longer ours, the work is
cancelled: its answer could not be reported, and another worker may already be calling for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
# While the engine is unreachable a renewal is tried again this often (capped by a third of the lease),
# so that a short outage costs no more than a few seconds of the remaining lease.
_RETRY_PAUSE_SECONDS = 0.5


class LeaseLost(Exception):
    """The engine no longer holds the job for this worker: it timed out, was cancelled, or handed out again."""


Renew = Callable[[], Awaitable[None]]


class Lease:
    """One job's lease: `renew` extends it by `seconds` (raising `LeaseLost` when the job is gone; any
    other error counts as the engine being unreachable for now and is tried again).

    A held lease refers to its task and its timer, and they to it; `hold` breaks those references when
    the work ends, so that a finished job is freed at once by reference counting. Left to Python's
    cycle collector, a thousand jobs in flight make its collections long enough to delay every job.
    """

    def __init__(self, renew: Renew, seconds: float, granted_at: float) -> None:
        self._renew = renew
        self.seconds = seconds
        self.expires = granted_at + seconds  # time.monotonic() scale
        self.lost = False
        self._owner: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._renewal: asyncio.Task[None] | None = None

    @property
    def remaining(self) -> float:
        return self.expires - time.monotonic()

    async def hold(self, work: Awaitable[_T]) -> _T:
        """Runs `work` in the calling task while keeping the lease; raises `LeaseLost` (with `work`
        cancelled) when it is lost.

        A timer, not a task, waits for the first renewal: most calls end long before it, and a timer
        costs a fraction of a task to start and cancel.
        """
        owner = asyncio.current_task()
        assert owner is not None, "a lease is held from within a task"
        self._owner = owner
        self._renew_in(self.expires - 2 * self.seconds / 3 - time.monotonic())
        try:
            return await work
        except asyncio.CancelledError:
            if self.lost and owner.uncancel() == 0:
                raise LeaseLost() from None
            raise
        finally:
            if self._timer is not None:
                self._timer.cancel()
            if self._renewal is not None:
                self._renewal.cancel()
            self._owner = self._timer = self._renewal = None

    def _renew_in(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(max(0.0, delay), self._start_renewal)

    def _start_renewal(self) -> None:
        self._renewal = asyncio.get_running_loop().create_task(self._keep())

    async def _keep(self) -> None:
        third = self.seconds / 3
        sent = time.monotonic()
        try:
            async with asyncio.timeout(third):
                await self._renew()
        except LeaseLost:
            self.lost = True
            if self._owner is not None:
                self._owner.cancel()
            return
        except Exception as exc:  # unreachable for now: try again soon, the lease may still hold
            logger.debug("Lease renewal failed (%s); trying again", type(exc).__name__)
            self._renew_in(min(_RETRY_PAUSE_SECONDS, third))
        else:
            self.expires = sent + self.seconds
            self._renew_in(sent + third - time.monotonic())
