"""A job is a lease: activated with the job timeout and extended by it every third of it while the call
runs. A lease the engine refuses to extend cancels the call and reports nothing."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import pytest
from pyzeebe import create_insecure_channel

from hf_connector.config import Settings
from hf_connector.jobs import Complete, JobContext, JobHandler, Report
from hf_connector.lease import LeaseLost
from hf_connector.zeebe import _PatientAdapter, build_worker
from tests.support.gateway_double import GatewayDouble
from tests.unit.conftest import counted


def patient(gateway: GatewayDouble, lease_seconds: float) -> _PatientAdapter:
    return _PatientAdapter(create_insecure_channel(grpc_address=gateway.address), -1, lease_seconds)


async def test_a_lease_is_extended_by_the_job_timeout_every_third_of_it(gateway: GatewayDouble) -> None:
    adapter = patient(gateway, lease_seconds=0.9)
    lease = adapter.lease(1, granted_at=time.monotonic())
    first_expiry = lease.expires
    extended_before = counted("hf_connector_lease_extensions")

    async def long_call() -> str:
        await gateway.until("UpdateJobTimeout", 4)  # the fourth is sent once the third was answered
        return "answer"

    assert await lease.hold(long_call()) == "answer"
    assert {(call.jobKey, call.timeout) for call in gateway.calls["UpdateJobTimeout"]} == {(1, 900)}
    assert lease.expires > first_expiry
    assert counted("hf_connector_lease_extensions") >= extended_before + 3


async def test_a_job_that_waited_for_a_slot_is_extended_at_once(gateway: GatewayDouble) -> None:
    """A job held 25 s of its 30 s lease before its call starts: waiting a third (10 s) would lose it."""
    lease = patient(gateway, lease_seconds=30).lease(2, granted_at=time.monotonic() - 25)
    (extension,) = await lease.hold(gateway.until("UpdateJobTimeout", 1, timeout=5))
    assert extension.timeout == 30_000


async def test_an_engine_away_for_a_moment_does_not_cancel_the_call(gateway: GatewayDouble) -> None:
    gateway.fail_next("UpdateJobTimeout", grpc.StatusCode.UNAVAILABLE, times=2)
    lease = patient(gateway, lease_seconds=0.9).lease(3, granted_at=time.monotonic())

    async def call() -> str:
        await gateway.until("UpdateJobTimeout", 3)
        return "answer"

    assert await lease.hold(call()) == "answer"
    assert not lease.lost


@pytest.mark.parametrize("code", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION])
async def test_a_lease_the_engine_refuses_cancels_the_call(gateway: GatewayDouble, code: grpc.StatusCode) -> None:
    gateway.fail_next("UpdateJobTimeout", code)
    lease = patient(gateway, lease_seconds=0.9).lease(4, granted_at=time.monotonic())
    cancelled = asyncio.Event()

    async def call() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(LeaseLost):
        await asyncio.wait_for(lease.hold(call()), timeout=10)
    assert cancelled.is_set()


class SlowHandler:
    """Stands in for the Hugging Face handler: its call ends when `finish` is set (or never)."""

    def __init__(self) -> None:
        self.finish = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.started: list[int] = []

    async def handle(self, job: JobContext) -> Report:
        self.started.append(job.key)
        try:
            await self.finish.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return Report(Complete({"answer": f"for {job.key}"}))


@contextlib.asynccontextmanager
async def running_worker(gateway: GatewayDouble, handler: SlowHandler) -> AsyncIterator[None]:
    settings = Settings(zeebe_address=gateway.address, job_timeout_seconds=5, max_jobs=2)
    channel = create_insecure_channel(grpc_address=gateway.address)
    reports: list[Any] = []
    worker = build_worker(settings, channel, cast(JobHandler, handler), lambda *report: reports.append(report))
    work = asyncio.create_task(worker.work())
    try:
        yield
    finally:
        worker.close_intake()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await worker.stop()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        await channel.close()


async def test_a_call_longer_than_the_job_timeout_is_completed_once(gateway: GatewayDouble) -> None:
    handler = SlowHandler()
    async with running_worker(gateway, handler):
        gateway.offer(11)
        (activation, *_) = await gateway.until("ActivateJobs")
        assert activation.timeout == 5000, "activated with the job timeout"
        await gateway.until("UpdateJobTimeout", 4, timeout=15)  # past 5 s: longer than one job timeout
        handler.finish.set()
        (completion,) = await gateway.until("CompleteJob")
    assert completion.jobKey == 11 and "for 11" in completion.variables
    assert {call.timeout for call in gateway.calls["UpdateJobTimeout"]} == {5000}
    assert handler.started == [11] and not gateway.calls["FailJob"]


async def test_a_lost_lease_cancels_the_call_and_nothing_is_reported(
    gateway: GatewayDouble, caplog: pytest.LogCaptureFixture
) -> None:
    handler = SlowHandler()
    gateway.fail_next("UpdateJobTimeout", grpc.StatusCode.NOT_FOUND)
    lost_before = counted("hf_connector_leases_lost", when="call")
    async with running_worker(gateway, handler):
        gateway.offer(12)
        await asyncio.wait_for(handler.cancelled.wait(), timeout=15)
        gateway.offer(13)  # the worker goes on with other jobs
        await gateway.until("UpdateJobTimeout", 2, timeout=15)
        handler.finish.set()
        (completion,) = await gateway.until("CompleteJob")
    assert completion.jobKey == 13
    assert not gateway.calls["FailJob"] and not gateway.calls["ThrowError"]
    assert counted("hf_connector_leases_lost", when="call") == lost_before + 1
    assert "Job 12 is no longer this worker's" in caplog.text


async def test_a_finished_job_leaves_nothing_for_the_cycle_collector(gateway: GatewayDouble) -> None:
    """With a thousand jobs in flight, every object left to Python's cycle collector lengthens the
    collections that stall all of them: a finished job's lease, task and context are freed at once."""
    handler = SlowHandler()
    handler.finish.set()
    gc.collect()
    gc.disable()
    try:
        async with running_worker(gateway, handler):
            for key in range(21, 26):
                gateway.offer(key)
            await gateway.until("CompleteJob", 5)
            left = await _collected_after_the_jobs_end()
    finally:
        gc.enable()
    assert left == []


async def _collected_after_the_jobs_end() -> list[str]:
    """The worker's and pyzeebe's objects the cycle collector finds, once the jobs' tasks have ended."""
    async with asyncio.timeout(5):
        while any(task.get_coro().__qualname__.endswith("execute_one_job") for task in asyncio.all_tasks()):
            await asyncio.sleep(0.01)
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return [
            type(thing).__name__
            for thing in gc.garbage
            if type(thing).__module__.startswith(("hf_connector", "pyzeebe"))
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
