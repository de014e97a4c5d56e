"""Deployment, instances and the BPMN elements the engine runs (and those it refuses), over real gRPC."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from pyzeebe import ZeebeClient
from pyzeebe.proto import gateway_pb2 as pb
from pyzeebe.proto.gateway_pb2_grpc import GatewayStub

from devkit.engine.server import EngineServer
from tests.engine.conftest import activate, deploy, deploy_task
from tests.support.bpmn import unique_process_id

Records = Callable[..., list[dict[str, Any]]]
NS = 'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"'


def model(process_id: str, body: str, errors: str = "") -> str:
    process = f'<bpmn:process id="{process_id}" isExecutable="true">{body}</bpmn:process>'
    return f'<bpmn:definitions {NS} id="d">{errors}{process}</bpmn:definitions>'


def flow(flow_id: str, source: str, target: str, condition: str = "") -> str:
    inner = f"<bpmn:conditionExpression>{condition}</bpmn:conditionExpression>" if condition else ""
    return f'<bpmn:sequenceFlow id="{flow_id}" sourceRef="{source}" targetRef="{target}">{inner}</bpmn:sequenceFlow>'


def gateway_model(process_id: str, condition: str, low_condition: str = "") -> str:
    """start -> gateway -> `high` when `condition`, else `low` (the default flow, or when `low_condition`)."""
    default = "" if low_condition else 'default="toLow"'
    return model(
        process_id,
        f'<bpmn:startEvent id="start"/><bpmn:exclusiveGateway id="gw" {default}/>'
        '<bpmn:endEvent id="high"/><bpmn:endEvent id="low"/>'
        + flow("f0", "start", "gw")
        + flow("toHigh", "gw", "high", condition)
        + flow("toLow", "gw", "low", low_condition),
    )


async def rejection(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_topology_names_one_healthy_leader(stub: GatewayStub, engine: EngineServer) -> None:
    topology = await stub.Topology(pb.TopologyRequest())
    (broker,) = topology.brokers
    assert (broker.host, broker.port) == (engine.host, engine.port)
    assert broker.partitions[0].role == pb.Partition.PartitionBrokerRole.LEADER
    assert topology.gatewayVersion.startswith("8.") and "zeebe" not in topology.gatewayVersion.lower()


async def test_deployment_answers_process_metadata_and_redeploying_a_change_bumps_the_version(
    stub: GatewayStub,
) -> None:
    process_id = unique_process_id()
    first = await deploy(stub, gateway_model(process_id, "=x &gt; 5"), "p.bpmn")
    same = await deploy(stub, gateway_model(process_id, "=x &gt; 5"), "p.bpmn")
    changed = await deploy(stub, gateway_model(process_id, "=x &gt; 6"), "p.bpmn")
    versions = [r.deployments[0].process.version for r in (first, same, changed)]
    assert versions == [1, 1, 2]
    assert first.deployments[0].process.bpmnProcessId == process_id
    assert first.deployments[0].process.resourceName == "p.bpmn"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('<bpmn:startEvent id="s"/><bpmn:userTask id="approve"/>', "'approve' of type 'userTask'"),
        ('<bpmn:startEvent id="s"/><bpmn:parallelGateway id="fork"/>', "'fork' of type 'parallelGateway'"),
        (
            '<bpmn:startEvent id="s"><bpmn:timerEventDefinition/></bpmn:startEvent>',
            "'s' of type 'startEvent' with a timerEventDefinition",
        ),
        ('<bpmn:startEvent id="s"/><bpmn:serviceTask id="t"/>', "'t': a service task needs a zeebe:taskDefinition"),
        ('<bpmn:startEvent id="s"/><bpmn:exclusiveGateway id="g"/>' + flow("f", "s", "nowhere"), "'nowhere'"),
    ],
)
async def test_what_the_engine_cannot_run_is_refused_naming_the_element(
    stub: GatewayStub, body: str, named: str
) -> None:
    error = await rejection(deploy(stub, model(unique_process_id(), body)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in (error.details() or "")


async def test_a_broken_expression_is_refused_at_deployment(stub: GatewayStub) -> None:
    error = await rejection(deploy(stub, gateway_model(unique_process_id(), "=x &gt;")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "toHigh" in (error.details() or "")


async def test_creating_an_unknown_process_is_not_found(client: ZeebeClient, stub: GatewayStub) -> None:
    error = await rejection(stub.CreateProcessInstance(pb.CreateProcessInstanceRequest(bpmnProcessId="nope")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "process ID 'nope'" in (error.details() or "")


@pytest.mark.parametrize(("x", "end"), [(7, "high"), (3, "low")])
async def test_an_exclusive_gateway_follows_the_true_condition_or_the_default(
    stub: GatewayStub, client: ZeebeClient, records: Records, x: int, end: str
) -> None:
    process_id = unique_process_id()
    await deploy(stub, gateway_model(process_id, "=x &gt; 5"))
    result = await client.run_process_with_result(process_id, {"x": x}, timeout=5_000)
    assert records(
        "PROCESS_INSTANCE", "ELEMENT_COMPLETED", processInstanceKey=result.process_instance_key, elementId=end
    )


async def test_a_merging_gateway_takes_its_one_unconditioned_flow(stub: GatewayStub, client: ZeebeClient) -> None:
    """Loops join at an exclusive gateway with one outgoing flow and no condition, as Zeebe allows."""
    process_id = unique_process_id()
    body = '<bpmn:startEvent id="start"/><bpmn:exclusiveGateway id="merge"/><bpmn:endEvent id="end"/>'
    await deploy(stub, model(process_id, body + flow("f0", "start", "merge") + flow("f1", "merge", "end")))
    result = await client.run_process_with_result(process_id, {}, timeout=5_000)
    assert result.process_instance_key > 0


async def test_no_true_condition_and_no_default_raises_a_condition_incident(
    stub: GatewayStub, client: ZeebeClient, records: Records
) -> None:
    process_id = unique_process_id()
    await deploy(stub, gateway_model(process_id, "=x &gt; 5", low_condition="=x &lt; 0"))
    instance = await client.run_process(process_id, {"x": 3})
    (incident,) = records("INCIDENT", "CREATED", processInstanceKey=instance.process_instance_key)
    assert incident["value"]["errorType"] == "CONDITION_ERROR" and incident["value"]["elementId"] == "gw"
    await stub.SetVariables(
        pb.SetVariablesRequest(elementInstanceKey=instance.process_instance_key, variables='{"x": 9}')
    )
    await stub.ResolveIncident(pb.ResolveIncidentRequest(incidentKey=incident["key"]))
    assert records("PROCESS_INSTANCE", "ELEMENT_COMPLETED", elementId="high")
    assert records("PROCESS_INSTANCE", "ELEMENT_COMPLETED", bpmnElementType="PROCESS")


async def test_a_failing_input_mapping_raises_an_io_mapping_incident(
    stub: GatewayStub, client: ZeebeClient, records: Records
) -> None:
    process_id = await deploy_task(stub, "mapped", inputs={"shout": "=upper case(text)"})
    instance = await client.run_process(process_id, {"text": 5})
    (incident,) = records("INCIDENT", "CREATED", processInstanceKey=instance.process_instance_key)
    assert incident["value"]["errorType"] == "IO_MAPPING_ERROR"
    assert "upper case" in incident["value"]["errorMessage"]
    await stub.SetVariables(
        pb.SetVariablesRequest(elementInstanceKey=instance.process_instance_key, variables='{"text": "hi"}')
    )
    await stub.ResolveIncident(pb.ResolveIncidentRequest(incidentKey=incident["key"]))
    (job,) = await activate(stub, "mapped")
    assert json.loads(job.variables)["shout"] == "HI"


async def test_output_mappings_decide_what_reaches_the_process(stub: GatewayStub, client: ZeebeClient) -> None:
    process_id = unique_process_id()
    task = (
        '<bpmn:serviceTask id="task"><bpmn:extensionElements><zeebe:taskDefinition type="out" retries="1"/>'
        '<zeebe:ioMapping><zeebe:output source="=result.label" target="answer.label"/></zeebe:ioMapping>'
        "</bpmn:extensionElements></bpmn:serviceTask>"
    )
    await deploy(
        stub,
        model(
            process_id,
            '<bpmn:startEvent id="s"/>'
            + task
            + '<bpmn:endEvent id="e"/>'
            + flow("a", "s", "task")
            + flow("b", "task", "e"),
        ),
    )
    running = asyncio.ensure_future(client.run_process_with_result(process_id, {"answer": {"keep": 1}}, timeout=5_000))
    (job,) = await activate(stub, "out")
    await stub.CompleteJob(
        pb.CompleteJobRequest(jobKey=job.key, variables=json.dumps({"result": {"label": "POSITIVE"}}))
    )
    result = await running
    assert result.variables == {"answer": {"keep": 1, "label": "POSITIVE"}}


async def test_an_error_end_event_nobody_catches_raises_an_incident(
    stub: GatewayStub, client: ZeebeClient, records: Records
) -> None:
    process_id = unique_process_id()
    await deploy(
        stub,
        model(
            process_id,
            '<bpmn:startEvent id="s"/>'
            '<bpmn:endEvent id="fail"><bpmn:errorEventDefinition errorRef="e1"/></bpmn:endEvent>'
            + flow("a", "s", "fail"),
            '<bpmn:error id="e1" errorCode="NOPE"/>',
        ),
    )
    instance = await client.run_process(process_id)
    (incident,) = records("INCIDENT", "CREATED", processInstanceKey=instance.process_instance_key)
    assert incident["value"]["errorType"] == "UNHANDLED_ERROR_EVENT" and "'NOPE'" in incident["value"]["errorMessage"]


async def test_a_catch_all_boundary_event_catches_any_code(
    stub: GatewayStub, client: ZeebeClient, records: Records
) -> None:
    process_id = unique_process_id()
    body = (
        '<bpmn:startEvent id="s"/><bpmn:serviceTask id="task"><bpmn:extensionElements>'
        '<zeebe:taskDefinition type="anyerror"/></bpmn:extensionElements></bpmn:serviceTask>'
        '<bpmn:boundaryEvent id="any" attachedToRef="task"><bpmn:errorEventDefinition/></bpmn:boundaryEvent>'
        '<bpmn:endEvent id="e"/><bpmn:endEvent id="caught"/>'
    )
    await deploy(
        stub, model(process_id, body + flow("a", "s", "task") + flow("b", "task", "e") + flow("c", "any", "caught"))
    )
    instance = await client.run_process(process_id)
    (job,) = await activate(stub, "anyerror")
    await stub.ThrowError(pb.ThrowErrorRequest(jobKey=job.key, errorCode="WHATEVER"))
    assert records(
        "PROCESS_INSTANCE", "ELEMENT_COMPLETED", processInstanceKey=instance.process_instance_key, elementId="caught"
    )


async def test_cancel_terminates_the_instance_and_its_job(
    stub: GatewayStub, client: ZeebeClient, records: Records
) -> None:
    process_id = await deploy_task(stub, "cancelled")
    instance = await client.run_process(process_id)
    await client.cancel_process_instance(instance.process_instance_key)
    assert records("PROCESS_INSTANCE", "ELEMENT_TERMINATED", bpmnElementType="PROCESS")
    assert records("JOB", "CANCELED", processInstanceKey=instance.process_instance_key)
    assert await activate(stub, "cancelled", requestTimeout=-1) == []
    again = stub.CancelProcessInstance(
        pb.CancelProcessInstanceRequest(processInstanceKey=instance.process_instance_key)
    )
    assert (await rejection(again)).code() == grpc.StatusCode.NOT_FOUND


async def test_create_with_result_times_out_with_deadline_exceeded(stub: GatewayStub) -> None:
    process_id = await deploy_task(stub, "never")
    request = pb.CreateProcessInstanceWithResultRequest(
        request=pb.CreateProcessInstanceRequest(bpmnProcessId=process_id), requestTimeout=200
    )
    error = await rejection(stub.CreateProcessInstanceWithResult(request))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_create_with_result_returns_only_the_fetched_variables(stub: GatewayStub) -> None:
    process_id = unique_process_id()
    await deploy(stub, gateway_model(process_id, "=x &gt; 5"))
    request = pb.CreateProcessInstanceWithResultRequest(
        request=pb.CreateProcessInstanceRequest(bpmnProcessId=process_id, variables='{"x": 1, "y": 2}'),
        fetchVariables=["y"],
    )
    result = await stub.CreateProcessInstanceWithResult(request)
    assert json.loads(result.variables) == {"y": 2}


async def test_set_variables_on_an_unknown_element_is_not_found(stub: GatewayStub) -> None:
    error = await rejection(stub.SetVariables(pb.SetVariablesRequest(elementInstanceKey=1, variables="{}")))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_other_rpcs_answer_unimplemented_with_a_reason(stub: GatewayStub) -> None:
    error = await rejection(stub.PublishMessage(pb.PublishMessageRequest(name="m")))
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "development engine does not implement PublishMessage" in (error.details() or "")


async def test_past_the_in_flight_bound_requests_are_resource_exhausted() -> None:
    server = await EngineServer(None, memory=True, max_in_flight=0).start()
    channel = grpc.aio.insecure_channel(server.address)
    try:
        error = await rejection(GatewayStub(channel).Topology(pb.TopologyRequest()))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await channel.close()
        await server.stop()
