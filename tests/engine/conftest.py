"""An engine per test, in memory and in process, on free ports; clients talk real gRPC to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from pyzeebe import ZeebeClient, create_insecure_channel
from pyzeebe.proto import gateway_pb2 as pb
from pyzeebe.proto.gateway_pb2_grpc import GatewayStub

from devkit.engine.server import EngineServer
from tests.support.bpmn import connector_process, unique_process_id


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    server = await EngineServer(None, memory=True).start()
    yield server
    await server.stop()


@pytest.fixture
async def channel(engine: EngineServer) -> AsyncIterator[grpc.aio.Channel]:
    channel = create_insecure_channel(grpc_address=engine.address)
    yield channel
    await channel.close()


@pytest.fixture
def client(channel: grpc.aio.Channel) -> ZeebeClient:
    return ZeebeClient(channel)


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> GatewayStub:
    return GatewayStub(channel)


@pytest.fixture
def records(engine: EngineServer) -> Callable[..., list[dict[str, Any]]]:
    """The engine's records of one value type and intent whose value has the given fields."""

    def matching(value_type: str, intent: str, **value: Any) -> list[dict[str, Any]]:
        return [
            r
            for r in engine.engine.records.kept
            if r["valueType"] == value_type
            and r["intent"] == intent
            and all(r["value"].get(k) == v for k, v in value.items())
        ]

    return matching


async def deploy(stub: GatewayStub, xml: str, name: str = "process.bpmn") -> pb.DeployResourceResponse:
    request = pb.DeployResourceRequest(resources=[pb.Resource(name=name, content=xml.encode())])
    response: pb.DeployResourceResponse = await stub.DeployResource(request)
    return response


async def deploy_task(stub: GatewayStub, job_type: str, **options: Any) -> str:
    """Deploys start -> service task `task` of `job_type` -> end; returns the process id."""
    process_id = unique_process_id("engine")
    await deploy(stub, connector_process(process_id, job_type, inputs=options.pop("inputs", {}), **options))
    return process_id


async def activate(stub: GatewayStub, job_type: str, **fields: Any) -> list[pb.ActivatedJob]:
    request = pb.ActivateJobsRequest(
        type=job_type,
        worker=fields.pop("worker", "test"),
        timeout=fields.pop("timeout", 30_000),
        maxJobsToActivate=fields.pop("maxJobsToActivate", 10),
        requestTimeout=fields.pop("requestTimeout", 5_000),
        **fields,
    )
    return [job async for response in stub.ActivateJobs(request) for job in response.jobs]
