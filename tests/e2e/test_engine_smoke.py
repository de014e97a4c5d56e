"""The session's engine answers topology through pyzeebe and runs a trivial process."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyzeebe import ZeebeClient, create_insecure_channel
from pyzeebe.grpc_internals.types import DeployResourceResponse

pytestmark = pytest.mark.e2e

PROCESS_ID = "engine-smoke"
START_TO_END = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  id="engine-smoke-definitions" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="{PROCESS_ID}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>to-end</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="to-end" sourceRef="start" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>to-end</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


async def test_session_engine_answers_topology_and_runs_a_process(zeebe_address: str, tmp_path: Path) -> None:
    channel = create_insecure_channel(grpc_address=zeebe_address)  # inside the running loop
    try:
        client = ZeebeClient(channel)

        topology = await client.topology()
        leaders = [
            partition.partition_id
            for broker in topology.brokers
            for partition in broker.partitions
            if partition.role == partition.PartitionBrokerRole.LEADER
        ]
        assert 1 in leaders, topology

        bpmn = tmp_path / f"{PROCESS_ID}.bpmn"
        bpmn.write_text(START_TO_END, encoding="utf-8")
        deployment = await client.deploy_resource(bpmn)
        processes = [
            resource.bpmn_process_id
            for resource in deployment.deployments
            if isinstance(resource, DeployResourceResponse.ProcessMetadata)
        ]
        assert processes == [PROCESS_ID]

        result = await client.run_process_with_result(PROCESS_ID, variables={"ping": "pong"}, timeout=30_000)
        assert result.bpmn_process_id == PROCESS_ID
        assert result.variables == {"ping": "pong"}
    finally:
        await channel.close()
