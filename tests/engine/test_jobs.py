"""Job RPCs against a real engine over gRPC: activation (polling and streaming), completion, failure with
retries and backoff, timeouts, thrown errors, and the rejections Zeebe's clients expect."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from pyzeebe import ZeebeClient, create_insecure_channel
from pyzeebe.proto import gateway_pb2 as pb
from pyzeebe.proto.gateway_pb2_grpc import GatewayStub

from devkit.engine.server import EngineServer
from tests.engine.conftest import activate, deploy_task

Records = Callable[..., list[dict[str, Any]]]


async def started_job(stub: GatewayStub, client: ZeebeClient, job_type: str, **options: Any) -> pb.ActivatedJob:
    process_id = await deploy_task(stub, job_type, **options)
    await client.run_process(process_id, {"topic": "cats"})
    (job,) = await activate(stub, job_type)
    return job


async def rejection(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_a_job_carries_process_variables_local_inputs_and_headers(stub: GatewayStub, client: ZeebeClient) -> None:
    job = await started_job(
        stub, client, "vars", inputs={"request.text": "=topic", "model": "gpt2"}, headers={"resultVariable": "out"}
    )
    assert json.loads(job.variables) == {"topic": "cats", "request": {"text": "cats"}, "model": "gpt2"}
    assert json.loads(job.customHeaders) == {"resultVariable": "out"}
    assert job.retries == 3 and job.worker == "test" and job.elementId == "task"
    assert job.key >= 2251799813685249


async def test_fetch_variable_limits_what_the_job_sees(stub: GatewayStub, client: ZeebeClient) -> None:
    process_id = await deploy_task(stub, "fetch")
    await client.run_process(process_id, {"a": 1, "b": 2})
    (job,) = await activate(stub, "fetch", fetchVariable=["b"])
    assert json.loads(job.variables) == {"b": 2}


async def test_completion_merges_variables_into_the_process_and_completes_it(
    stub: GatewayStub, client: ZeebeClient, records: Records
) -> None:
    process_id = await deploy_task(stub, "complete", inputs={"local": "=topic"})
    running = asyncio.ensure_future(client.run_process_with_result(process_id, {"topic": "cats"}, timeout=10_000))
    (job,) = await activate(stub, "complete")
    await stub.CompleteJob(pb.CompleteJobRequest(jobKey=job.key, variables=json.dumps({"answer": 42})))
    result = await running
    assert result.variables == {"topic": "cats", "answer": 42}  # the input stayed local to the task
    assert records("JOB", "COMPLETED", processInstanceKey=result.process_instance_key)
    assert records("PROCESS_INSTANCE", "ELEMENT_COMPLETED", bpmnElementType="PROCESS")


async def test_a_long_poll_answers_as_soon_as_a_job_arrives(stub: GatewayStub, client: ZeebeClient) -> None:
    process_id = await deploy_task(stub, "later")
    polling = asyncio.ensure_future(activate(stub, "later", requestTimeout=20_000))
    await asyncio.sleep(0)  # let the poll reach the engine and wait there
    assert not polling.done()
    await client.run_process(process_id)
    jobs = await asyncio.wait_for(polling, 10)
    assert len(jobs) == 1


async def test_a_poll_without_long_polling_answers_empty_at_once(stub: GatewayStub) -> None:
    assert await activate(stub, "nothing-here", requestTimeout=-1) == []


async def test_max_jobs_to_activate_bounds_a_batch(stub: GatewayStub, client: ZeebeClient, records: Records) -> None:
    process_id = await deploy_task(stub, "batch")
    for _ in range(3):
        await client.run_process(process_id)
    first = await activate(stub, "batch", maxJobsToActivate=2, worker="w1")
    second = await activate(stub, "batch", maxJobsToActivate=2, worker="w2")
    assert (len(first), len(second)) == (2, 1)
    (batch,) = records("JOB_BATCH", "ACTIVATED", worker="w2")
    assert batch["value"]["jobs"][0]["processInstanceKey"] == second[0].processInstanceKey


async def test_a_timed_out_job_is_activatable_again_with_the_same_key(
    stub: GatewayStub, client: ZeebeClient, records: Records
) -> None:
    process_id = await deploy_task(stub, "slow")
    await client.run_process(process_id)
    (first,) = await activate(stub, "slow", timeout=100, worker="first")
    (again,) = await activate(stub, "slow", worker="second", requestTimeout=10_000)
    assert again.key == first.key and again.worker == "second"
    assert records("JOB", "TIMED_OUT", processInstanceKey=first.processInstanceKey)
    # any holder may complete it while it is activated
    await stub.CompleteJob(pb.CompleteJobRequest(jobKey=first.key))


async def test_update_timeout_moves_the_deadline(stub: GatewayStub, client: ZeebeClient, records: Records) -> None:
    job = await started_job(stub, client, "extend")
    await stub.UpdateJobTimeout(pb.UpdateJobTimeoutRequest(jobKey=job.key, timeout=600_000))
    (updated,) = records("JOB", "TIMEOUT_UPDATED")
    assert updated["value"]["deadline"] > job.deadline


async def test_fail_with_retries_and_backoff_makes_the_job_activatable_after_the_backoff(
    stub: GatewayStub, client: ZeebeClient, records: Records
) -> None:
    job = await started_job(stub, client, "flaky")
    await stub.FailJob(pb.FailJobRequest(jobKey=job.key, retries=2, errorMessage="busy", retryBackOff=2_000))
    assert await activate(stub, "flaky", requestTimeout=-1) == []
    (again,) = await activate(stub, "flaky", requestTimeout=10_000)
    assert (again.key, again.retries) == (job.key, 2)
    (failed,) = records("JOB", "FAILED")
    assert (failed["value"]["retries"], failed["value"]["retryBackoff"], failed["value"]["errorMessage"]) == (
        2,
        2_000,
        "busy",
    )
    assert records("JOB", "RECURRED_AFTER_BACKOFF")


async def test_no_retries_left_raises_an_incident_that_retries_and_resolution_clear(
    stub: GatewayStub, client: ZeebeClient, records: Records
) -> None:
    job = await started_job(stub, client, "broken")
    await stub.FailJob(pb.FailJobRequest(jobKey=job.key, retries=0, errorMessage="model not found"))
    (incident,) = records("INCIDENT", "CREATED", processInstanceKey=job.processInstanceKey)
    assert incident["value"]["errorType"] == "JOB_NO_RETRIES"
    assert incident["value"]["errorMessage"] == "model not found"
    assert incident["value"]["jobKey"] == job.key

    refused = await rejection(stub.ResolveIncident(pb.ResolveIncidentRequest(incidentKey=incident["key"])))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION and "no retries" in (refused.details() or "")
    await stub.UpdateJobRetries(pb.UpdateJobRetriesRequest(jobKey=job.key, retries=1))
    await stub.ResolveIncident(pb.ResolveIncidentRequest(incidentKey=incident["key"]))
    (again,) = await activate(stub, "broken")
    assert (again.key, again.retries) == (job.key, 1)
    assert records("JOB", "RETRIES_UPDATED") and records("INCIDENT", "RESOLVED")


async def test_a_thrown_error_takes_the_matching_boundary_event(
    stub: GatewayStub, client: ZeebeClient, records: Records
) -> None:
    process_id = await deploy_task(stub, "throws", catch_error_code="MODEL_NOT_FOUND")
    running = asyncio.ensure_future(client.run_process_with_result(process_id, timeout=10_000))
    (job,) = await activate(stub, "throws")
    await stub.ThrowError(
        pb.ThrowErrorRequest(
            jobKey=job.key, errorCode="MODEL_NOT_FOUND", errorMessage="no model", variables='{"why": "404"}'
        )
    )
    result = await running
    assert result.variables["why"] == "404"
    assert records("PROCESS_INSTANCE", "ELEMENT_COMPLETED", elementId="caught")
    assert records("PROCESS_INSTANCE", "ELEMENT_TERMINATED", elementId="task")
    (thrown,) = records("JOB", "ERROR_THROWN")
    assert (thrown["value"]["errorCode"], thrown["value"]["errorMessage"]) == ("MODEL_NOT_FOUND", "no model")


async def test_an_uncaught_error_raises_zeebes_incident(
    stub: GatewayStub, client: ZeebeClient, records: Records
) -> None:
    job = await started_job(stub, client, "uncaught", catch_error_code="OTHER")
    await stub.ThrowError(pb.ThrowErrorRequest(jobKey=job.key, errorCode="BOOM", errorMessage="it broke"))
    (incident,) = records("INCIDENT", "CREATED", processInstanceKey=job.processInstanceKey)
    assert incident["value"]["errorType"] == "UNHANDLED_ERROR_EVENT"
    assert incident["value"]["errorMessage"] == (
        "Expected to throw an error event with the code 'BOOM' with message 'it broke', but it was not caught. "
        "No error events are available in the scope."
    )
    await stub.ResolveIncident(pb.ResolveIncidentRequest(incidentKey=incident["key"]))
    (again,) = await activate(stub, "uncaught")
    assert again.key == job.key


async def test_commands_on_unknown_jobs_answer_not_found(stub: GatewayStub) -> None:
    calls = {
        "complete": stub.CompleteJob(pb.CompleteJobRequest(jobKey=123)),
        "fail": stub.FailJob(pb.FailJobRequest(jobKey=123, retries=1)),
        "throw an error for": stub.ThrowError(pb.ThrowErrorRequest(jobKey=123, errorCode="X")),
        "update timeout of": stub.UpdateJobTimeout(pb.UpdateJobTimeoutRequest(jobKey=123, timeout=1)),
        "update retries for": stub.UpdateJobRetries(pb.UpdateJobRetriesRequest(jobKey=123, retries=1)),
    }
    for verb, call in calls.items():
        error = await rejection(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert f"Expected to {verb} job with key '123', but no such job was found" in (error.details() or "")


async def test_completing_a_job_that_is_not_activated_is_a_failed_precondition(
    stub: GatewayStub, client: ZeebeClient
) -> None:
    process_id = await deploy_task(stub, "idle")
    await client.run_process(process_id)
    (job,) = await activate(stub, "idle", timeout=100)
    (job,) = await activate(stub, "idle", requestTimeout=10_000)  # after its timeout
    await stub.FailJob(pb.FailJobRequest(jobKey=job.key, retries=0, errorMessage="x"))
    error = await rejection(stub.CompleteJob(pb.CompleteJobRequest(jobKey=job.key)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"Expected to complete job with key '{job.key}', but it is in state 'FAILED'" in (error.details() or "")


async def test_a_job_that_timed_out_cannot_be_completed_until_activated_again(
    stub: GatewayStub, client: ZeebeClient, records: Records
) -> None:
    process_id = await deploy_task(stub, "expired")
    await client.run_process(process_id)
    (job,) = await activate(stub, "expired", timeout=100)
    for _ in range(200):
        if records("JOB", "TIMED_OUT"):
            break
        await asyncio.sleep(0.02)
    error = await rejection(stub.CompleteJob(pb.CompleteJobRequest(jobKey=job.key)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "but it is not yet activated" in (error.details() or "")


async def test_invalid_activation_requests_are_refused(stub: GatewayStub) -> None:
    error = await rejection(activate(stub, "", requestTimeout=-1))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = await rejection(activate(stub, "x", maxJobsToActivate=0, requestTimeout=-1))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_completion_variables_must_be_a_json_object(stub: GatewayStub, client: ZeebeClient) -> None:
    job = await started_job(stub, client, "badvars")
    error = await rejection(stub.CompleteJob(pb.CompleteJobRequest(jobKey=job.key, variables="[1, 2]")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_stream_receives_jobs_as_they_become_activatable(
    stub: GatewayStub, client: ZeebeClient, records: Records
) -> None:
    process_id = await deploy_task(stub, "streamed")
    stream = stub.StreamActivatedJobs(pb.StreamActivatedJobsRequest(type="streamed", worker="pusher", timeout=30_000))
    await client.run_process(process_id)
    await client.run_process(process_id)
    first = await asyncio.wait_for(stream.read(), 10)
    second = await asyncio.wait_for(stream.read(), 10)
    assert first.key != second.key and first.worker == "pusher"
    stream.cancel()
    await stub.CompleteJob(pb.CompleteJobRequest(jobKey=first.key))
    assert len(records("JOB_BATCH", "ACTIVATED", worker="pusher")) == 2


async def test_a_stream_takes_no_more_jobs_than_its_window_and_the_rest_go_to_polls() -> None:
    """A stream consumer that stops reading holds at most its window; polls get the rest."""
    server = await EngineServer(None, memory=True, stream_window=2).start()
    channel = create_insecure_channel(grpc_address=server.address)
    try:
        stub, client = GatewayStub(channel), ZeebeClient(channel)
        process_id = await deploy_task(stub, "backlog")
        stream = stub.StreamActivatedJobs(pb.StreamActivatedJobsRequest(type="backlog", worker="stuck", timeout=30_000))
        await stream.wait_for_connection()
        for _ in range(5):
            await client.run_process(process_id)
        polled = await activate(stub, "backlog", requestTimeout=-1)
        assert len(polled) == 3
        first = await stream.read()
        await stub.CompleteJob(pb.CompleteJobRequest(jobKey=first.key))  # room for one more
        process = await client.run_process(process_id)
        pushed = [await stream.read(), await stream.read()]
        assert pushed[1].processInstanceKey == process.process_instance_key
        stream.cancel()
    finally:
        await channel.close()
        await server.stop()
