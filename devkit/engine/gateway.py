"""The gateway gRPC service: requests in, engine commands, answers out once the change is committed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc
from pyzeebe.proto import gateway_pb2 as pb
from pyzeebe.proto.gateway_pb2_grpc import GatewayServicer

from devkit.engine.dispatch import Dispatcher, Waiter
from devkit.engine.engine import ActivatedJob, Engine, EngineError, parse_variables
from devkit.engine.records import TENANT

# A version string in the 8.x line, so clients that show or compare it see the protocol they speak.
VERSION = "8.6.0-devkit"
DEFAULT_REQUEST_TIMEOUT_MS = 10_000

Context: TypeAlias = grpc.aio.ServicerContext  # grpc ships no types: Any
Request = TypeVar("Request")
Response = TypeVar("Response")
Handler = Callable[["Gateway", Request, Context], Awaitable[Response]]


def command(method: Handler[Request, Response]) -> Handler[Request, Response]:
    """Counts the request as in flight (refusing it past the bound) and turns rejections into statuses."""

    async def handle(self: Gateway, request: Request, context: Context) -> Response:
        if self.in_flight >= self.max_in_flight:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"Expected to handle the request, but {self.in_flight} requests are in flight already "
                f"(--max-in-flight {self.max_in_flight}); retry with a backoff",
            )
        self.in_flight += 1
        try:
            return await method(self, request, context)
        except EngineError as error:
            await context.abort(grpc.StatusCode[error.code], str(error))
            raise  # abort raises; this line keeps the type checker informed
        finally:
            self.in_flight -= 1

    return handle


class Gateway(GatewayServicer):
    def __init__(self, engine: Engine, dispatcher: Dispatcher, host: str, port: int, max_in_flight: int) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.host, self.port = host, port
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def _committed(self) -> None:
        await self.engine.store.durable()

    @command
    async def Topology(self, request: pb.TopologyRequest, context: Context) -> pb.TopologyResponse:
        partition = pb.Partition(
            partitionId=1,
            role=pb.Partition.PartitionBrokerRole.LEADER,
            health=pb.Partition.PartitionBrokerHealth.HEALTHY,
        )
        broker = pb.BrokerInfo(nodeId=0, host=self.host, port=self.port, partitions=[partition], version=VERSION)
        return pb.TopologyResponse(
            brokers=[broker], clusterSize=1, partitionsCount=1, replicationFactor=1, gatewayVersion=VERSION
        )

    @command
    async def DeployResource(self, request: pb.DeployResourceRequest, context: Context) -> pb.DeployResourceResponse:
        if not request.resources:
            raise EngineError("INVALID_ARGUMENT", "Expected to deploy at least one resource, but none given")
        key, processes = self.engine.deploy((r.name, r.content) for r in request.resources)
        await self._committed()
        return pb.DeployResourceResponse(
            key=key,
            deployments=[
                pb.Deployment(
                    process=pb.ProcessMetadata(
                        bpmnProcessId=p.bpmn_process_id,
                        version=p.version,
                        processDefinitionKey=p.key,
                        resourceName=p.resource_name,
                        tenantId=TENANT,
                    )
                )
                for p in processes
            ],
            tenantId=TENANT,
        )

    def _create(self, request: pb.CreateProcessInstanceRequest) -> Any:
        if request.startInstructions:
            raise EngineError("INVALID_ARGUMENT", "The development engine does not support start instructions")
        process = self.engine.find_process(request.bpmnProcessId, request.version, request.processDefinitionKey)
        return self.engine.create_instance(process, parse_variables(request.variables))

    @command
    async def CreateProcessInstance(
        self, request: pb.CreateProcessInstanceRequest, context: Context
    ) -> pb.CreateProcessInstanceResponse:
        instance = self._create(request)
        await self._committed()
        return pb.CreateProcessInstanceResponse(
            processDefinitionKey=instance.process_key,
            bpmnProcessId=instance.bpmn_process_id,
            version=instance.version,
            processInstanceKey=instance.key,
            tenantId=TENANT,
        )

    @command
    async def CreateProcessInstanceWithResult(
        self, request: pb.CreateProcessInstanceWithResultRequest, context: Context
    ) -> pb.CreateProcessInstanceWithResultResponse:
        instance = self._create(request.request)
        if instance.state == "ACTIVE":
            waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self.engine.result_waiters.setdefault(instance.key, []).append(waiter)
        await self._committed()
        timeout_ms = request.requestTimeout if request.requestTimeout > 0 else DEFAULT_REQUEST_TIMEOUT_MS
        if instance.state == "ACTIVE":
            try:
                variables = await asyncio.wait_for(waiter, timeout_ms / 1000)
            except TimeoutError:
                raise EngineError(
                    "DEADLINE_EXCEEDED",
                    f"Expected the process instance with key '{instance.key}' to complete within {timeout_ms} ms, "
                    "but it did not (it goes on running)",
                ) from None
            await self._committed()
        else:
            variables = instance.variables
        if request.fetchVariables:
            variables = {name: variables[name] for name in request.fetchVariables if name in variables}
        return pb.CreateProcessInstanceWithResultResponse(
            processDefinitionKey=instance.process_key,
            bpmnProcessId=instance.bpmn_process_id,
            version=instance.version,
            processInstanceKey=instance.key,
            variables=json.dumps(variables),
            tenantId=TENANT,
        )

    @command
    async def CancelProcessInstance(
        self, request: pb.CancelProcessInstanceRequest, context: Context
    ) -> pb.CancelProcessInstanceResponse:
        self.engine.cancel_instance(request.processInstanceKey)
        await self._committed()
        return pb.CancelProcessInstanceResponse()

    @command
    async def SetVariables(self, request: pb.SetVariablesRequest, context: Context) -> pb.SetVariablesResponse:
        variables = parse_variables(request.variables)
        key = self.engine.set_variables(request.elementInstanceKey, variables, request.local)
        await self._committed()
        return pb.SetVariablesResponse(key=key)

    @command
    async def ResolveIncident(self, request: pb.ResolveIncidentRequest, context: Context) -> pb.ResolveIncidentResponse:
        self.engine.resolve_incident(request.incidentKey)
        await self._committed()
        return pb.ResolveIncidentResponse()

    # ------------------------------------------------------------------------------------------- jobs

    async def ActivateJobs(
        self, request: pb.ActivateJobsRequest, context: Context
    ) -> AsyncIterator[pb.ActivateJobsResponse]:
        try:
            _check_job_request(request.type, request.timeout, request.maxJobsToActivate)
        except EngineError as error:
            await context.abort(grpc.StatusCode[error.code], str(error))
        fetch = list(request.fetchVariable)
        jobs = self.engine.activate(request.type, request.maxJobsToActivate, request.worker, request.timeout, fetch)
        if not jobs and request.requestTimeout >= 0:
            wait_ms = request.requestTimeout or DEFAULT_REQUEST_TIMEOUT_MS
            waiter = Waiter(request.type, request.worker, request.timeout, request.maxJobsToActivate, fetch)
            jobs = await self._wait(waiter, wait_ms / 1000, stream=False)
        if jobs:
            delivered = False
            try:
                await self._committed()
                yield pb.ActivateJobsResponse(jobs=[_activated(job) for job in jobs])
                delivered = True
            finally:
                if not delivered:
                    self.engine.give_back(jobs)

    async def StreamActivatedJobs(
        self, request: pb.StreamActivatedJobsRequest, context: Context
    ) -> AsyncIterator[pb.ActivatedJob]:
        try:
            _check_job_request(request.type, request.timeout, 1)
        except EngineError as error:
            await context.abort(grpc.StatusCode[error.code], str(error))
        fetch = list(request.fetchVariable)
        await context.send_initial_metadata(())  # the client learns at once that its stream is open
        stream = self.dispatcher.open_stream()
        try:
            while True:
                await stream.wait_for_room()
                waiter = Waiter(request.type, request.worker, request.timeout, 1, fetch)
                jobs = await self._wait(waiter, None, stream=True)
                self.dispatcher.pushed(stream, jobs)
                sent = 0
                try:
                    await self._committed()
                    for job in jobs:
                        yield _activated(job)
                        sent += 1
                finally:
                    self.engine.give_back(jobs[sent:])
        finally:
            self.dispatcher.close_stream(stream)

    async def _wait(self, waiter: Waiter, timeout: float | None, stream: bool) -> list[ActivatedJob]:
        """Waits for the dispatcher to hand this waiter jobs; a request that ends meanwhile gives them back."""
        self.dispatcher.wait(waiter, stream)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.engine.give_back(waiter.future.result())
            raise
        finally:
            self.dispatcher.forget(waiter)
        return [] if waiter.future.cancelled() else waiter.future.result()

    @command
    async def CompleteJob(self, request: pb.CompleteJobRequest, context: Context) -> pb.CompleteJobResponse:
        self.engine.complete_job(request.jobKey, parse_variables(request.variables))
        await self._committed()
        return pb.CompleteJobResponse()

    @command
    async def FailJob(self, request: pb.FailJobRequest, context: Context) -> pb.FailJobResponse:
        variables = parse_variables(request.variables)
        self.engine.fail_job(request.jobKey, request.retries, request.errorMessage, request.retryBackOff, variables)
        await self._committed()
        return pb.FailJobResponse()

    @command
    async def ThrowError(self, request: pb.ThrowErrorRequest, context: Context) -> pb.ThrowErrorResponse:
        if not request.errorCode:
            raise EngineError("INVALID_ARGUMENT", "Expected to throw an error with an errorCode, but it is empty")
        variables = parse_variables(request.variables)
        self.engine.throw_error(request.jobKey, request.errorCode, request.errorMessage, variables)
        await self._committed()
        return pb.ThrowErrorResponse()

    @command
    async def UpdateJobTimeout(
        self, request: pb.UpdateJobTimeoutRequest, context: Context
    ) -> pb.UpdateJobTimeoutResponse:
        self.engine.update_timeout(request.jobKey, request.timeout)
        await self._committed()
        return pb.UpdateJobTimeoutResponse()

    @command
    async def UpdateJobRetries(
        self, request: pb.UpdateJobRetriesRequest, context: Context
    ) -> pb.UpdateJobRetriesResponse:
        self.engine.update_retries(request.jobKey, request.retries)
        await self._committed()
        return pb.UpdateJobRetriesResponse()

    # ---------------------------------------------------------------------------------- unimplemented

    async def EvaluateDecision(self, request: Any, context: Context) -> Any:
        await _unimplemented(context, "EvaluateDecision")

    async def DeployProcess(self, request: Any, context: Context) -> Any:
        await _unimplemented(context, "DeployProcess", "use DeployResource")

    async def PublishMessage(self, request: Any, context: Context) -> Any:
        await _unimplemented(context, "PublishMessage")

    async def ModifyProcessInstance(self, request: Any, context: Context) -> Any:
        await _unimplemented(context, "ModifyProcessInstance")

    async def MigrateProcessInstance(self, request: Any, context: Context) -> Any:
        await _unimplemented(context, "MigrateProcessInstance")

    async def DeleteResource(self, request: Any, context: Context) -> Any:
        await _unimplemented(context, "DeleteResource")

    async def BroadcastSignal(self, request: Any, context: Context) -> Any:
        await _unimplemented(context, "BroadcastSignal")


async def _unimplemented(context: Context, name: str, hint: str = "") -> None:
    await context.abort(
        grpc.StatusCode.UNIMPLEMENTED,
        f"The development engine does not implement {name}{f' ({hint})' if hint else ''}; it serves the jobs and "
        "process instances of this project's processes. Point ZEEBE_ADDRESS at a Camunda 8 cluster for the rest.",
    )


def _check_job_request(job_type: str, timeout: int, max_jobs: int) -> None:
    if not job_type.strip():
        raise EngineError("INVALID_ARGUMENT", "Expected to activate jobs of a type, but the type is blank")
    if timeout < 1:
        raise EngineError("INVALID_ARGUMENT", f"Expected a job timeout of at least 1 ms, but got {timeout}")
    if max_jobs < 1:
        raise EngineError(
            "INVALID_ARGUMENT", f"Expected to activate at least 1 job, but maxJobsToActivate is {max_jobs}"
        )


def _activated(activated: ActivatedJob) -> pb.ActivatedJob:
    job = activated.job
    return pb.ActivatedJob(
        key=job.key,
        type=job.job_type,
        processInstanceKey=job.instance_key,
        bpmnProcessId=job.bpmn_process_id,
        processDefinitionVersion=job.version,
        processDefinitionKey=job.process_definition_key,
        elementId=job.element_id,
        elementInstanceKey=job.element_instance_key,
        customHeaders=json.dumps(job.custom_headers),
        worker=job.worker,
        retries=job.retries,
        deadline=job.deadline,
        variables=json.dumps(activated.variables),
        tenantId=TENANT,
    )
