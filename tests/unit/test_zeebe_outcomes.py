"""Outcomes survive an engine outage: complete, fail and throw-error are sent again while the engine is away
or overloaded, until the job's deadline; an engine that no longer knows the job ends it with one log line."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from pyzeebe import create_insecure_channel

from hf_connector.zeebe import _PatientAdapter
from tests.support.gateway_double import GatewayDouble
from tests.unit.conftest import counted

TRANSIENT = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED]
GONE = [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION]
Send = Callable[[_PatientAdapter, int], Awaitable[Any]]
COMMANDS: dict[str, tuple[str, Send]] = {
    "complete": ("CompleteJob", lambda adapter, key: adapter.complete_job(key, {"answer": 42})),
    "fail": ("FailJob", lambda adapter, key: adapter.fail_job(key, 2, "model overloaded", 1000, {})),
    "throw_error": ("ThrowError", lambda adapter, key: adapter.throw_error(key, "bad input", {}, "BAD")),
}


@pytest.fixture
async def adapter(gateway: GatewayDouble) -> AsyncIterator[_PatientAdapter]:
    channel = create_insecure_channel(grpc_address=gateway.address)
    yield _PatientAdapter(channel, max_connection_retries=-1, lease_seconds=30)
    await channel.close()


@pytest.mark.parametrize("code", TRANSIENT, ids=lambda code: code.name)
@pytest.mark.parametrize("command", COMMANDS)
async def test_an_outcome_is_sent_again_until_the_engine_takes_it(
    gateway: GatewayDouble, adapter: _PatientAdapter, command: str, code: grpc.StatusCode
) -> None:
    method, send = COMMANDS[command]
    gateway.fail_next(method, code, times=2)
    retries_before = counted("hf_connector_outcome_retries", command=command)

    await asyncio.wait_for(send(adapter, 7), timeout=20)

    assert [call.jobKey for call in gateway.calls[method]] == [7, 7, 7]
    assert counted("hf_connector_outcome_retries", command=command) == retries_before + 2


@pytest.mark.parametrize("code", GONE, ids=lambda code: code.name)
async def test_a_job_handed_out_again_ends_the_retry_with_one_log_line(
    gateway: GatewayDouble, adapter: _PatientAdapter, code: grpc.StatusCode, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.fail_next("CompleteJob", code)
    lost_before = counted("hf_connector_leases_lost", when="outcome")

    await adapter.complete_job(8, {"answer": 42})

    assert len(gateway.calls["CompleteJob"]) == 1
    (line,) = [record.getMessage() for record in caplog.records if "8" in record.getMessage()]
    assert line == "Job 8 was handed out again before its outcome (complete) reached Zeebe"
    assert counted("hf_connector_leases_lost", when="outcome") == lost_before + 1


async def test_an_outcome_is_dropped_once_the_jobs_deadline_has_passed(
    gateway: GatewayDouble, adapter: _PatientAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.fail_next("CompleteJob", grpc.StatusCode.UNAVAILABLE, times=1000)
    adapter.expiries[9] = time.monotonic() + 1.5

    await asyncio.wait_for(adapter.complete_job(9, {}), timeout=20)

    assert len(gateway.calls["CompleteJob"]) > 1, "retried while the lease lasted"
    assert gateway.failures["CompleteJob"], "and then gave up, not retrying forever"
    assert "Zeebe stayed unreachable" in caplog.text and "outcome (complete) is dropped" in caplog.text
    assert 9 not in adapter.expiries


async def test_an_answer_survives_an_engine_that_is_down_and_comes_back() -> None:
    """No engine listens at first (connection refused, as after a SIGKILL); it starts while the worker
    keeps trying, and the completion reaches it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = create_insecure_channel(grpc_address=f"127.0.0.1:{port}")
    adapter = _PatientAdapter(channel, max_connection_retries=-1, lease_seconds=30)
    retries_before = counted("hf_connector_outcome_retries", command="complete")
    completing = asyncio.create_task(adapter.complete_job(10, {"answer": "paid for"}))
    gateway = GatewayDouble()
    try:
        async with asyncio.timeout(20):
            while counted("hf_connector_outcome_retries", command="complete") < retries_before + 2:
                await asyncio.sleep(0.05)
        assert not completing.done()
        await gateway.start(port)
        await asyncio.wait_for(completing, timeout=20)
        (request,) = gateway.calls["CompleteJob"]
        assert request.jobKey == 10 and "paid for" in request.variables
    finally:
        completing.cancel()
        await gateway.stop()
        await channel.close()
