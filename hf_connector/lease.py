"""Holding a job as a renewable lease while its work runs. Knows nothing of pyzeebe.

A job is activated for a modest timeout and renewed by that timeout every third of it, so that a
crashed worker's jobs return to other workers within one timeout while a live worker's call may run as
long as its own read timeout allows. When the engine says the job is no longer ours, the work is
cancelled: its answer could not be reported, and another worker may already be calling for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
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
    other error counts as the engine being unreachable for now and is tried again)."""

    def __init__(self, renew: Renew, seconds: float, granted_at: float) -> None:
        self._renew = renew
        self.seconds = seconds
        self.expires = granted_at + seconds  # time.monotonic() scale
        self.lost = False

    @property
    def remaining(self) -> float:
        return self.expires - time.monotonic()

    async def hold(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Runs `work` while keeping the lease; raises `LeaseLost` (with `work` cancelled) when it is lost."""
        task = asyncio.ensure_future(work)
        keeper = asyncio.create_task(self._keep(task))
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.lost and (current is None or not current.cancelling()):
                raise LeaseLost() from None
            raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep(self, task: asyncio.Future[Any]) -> None:
        third = self.seconds / 3
        due = self.expires - 2 * third
        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            sent = time.monotonic()
            try:
                async with asyncio.timeout(third):
                    await self._renew()
            except LeaseLost:
                self.lost = True
                task.cancel()
                return
            except Exception as exc:  # unreachable for now: try again soon, the lease may still hold
                logger.debug("Lease renewal failed (%s); trying again", type(exc).__name__)
                due = time.monotonic() + min(_RETRY_PAUSE_SECONDS, third)
            else:
                self.expires = sent + self.seconds
                due = sent + third
