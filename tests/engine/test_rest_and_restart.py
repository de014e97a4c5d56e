"""The REST side a person or an operations test uses, and durability: SIGKILL, restart, nothing lost."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
from pyzeebe import ZeebeClient, create_insecure_channel
from pyzeebe.proto import gateway_pb2 as pb
from pyzeebe.proto.gateway_pb2_grpc import GatewayStub

from devkit.engine.process import EngineProcess
from devkit.engine.server import EngineServer
from tests.engine.conftest import activate, deploy_task
from tests.support.waiting import wait_until


async def test_incidents_jobs_and_instances_through_rest(
    engine: EngineServer, stub: GatewayStub, client: ZeebeClient
) -> None:
    process_id = await deploy_task(stub, "rest")
    instance = await client.run_process(process_id, {"topic": "cats"})
    pik = str(instance.process_instance_key)
    (job,) = await activate(stub, "rest")
    await stub.FailJob(pb.FailJobRequest(jobKey=job.key, retries=0, errorMessage="quota exceeded"))
    async with httpx.AsyncClient(base_url=engine.rest_url) as rest:
        found = (
            await rest.post("/v2/incidents/search", json={"filter": {"state": "ACTIVE", "processInstanceKey": pik}})
        ).json()
        (incident,) = found["items"]
        assert (incident["errorType"], incident["errorMessage"], incident["jobKey"]) == (
            "JOB_NO_RETRIES",
            "quota exceeded",
            str(job.key),
        )
        assert (await rest.get(f"/v2/process-instances/{pik}")).json()["hasIncident"] is True
        assert (await rest.patch(f"/v2/jobs/{job.key}", json={"changeset": {"retries": 2}})).status_code == 204
        assert (await rest.post(f"/v2/incidents/{incident['incidentKey']}/resolution")).status_code == 204
        (again,) = await activate(stub, "rest")
        await stub.CompleteJob(pb.CompleteJobRequest(jobKey=again.key, variables='{"answer": "meow"}'))
        state = (await rest.get(f"/v2/process-instances/{pik}")).json()
        assert (state["state"], state["hasIncident"], state["processDefinitionId"]) == ("COMPLETED", False, process_id)
        variables = (await rest.post("/v2/variables/search", json={"filter": {"processInstanceKey": pik}})).json()
        assert {v["name"]: json.loads(v["value"]) for v in variables["items"]} == {"topic": "cats", "answer": "meow"}
        missing = await rest.get("/v2/process-instances/123")
        assert missing.status_code == 404 and missing.json()["status"] == 404
        assert (await rest.get("/v2/topology")).json()["brokers"][0]["port"] == engine.port


async def test_a_killed_engine_restarts_with_its_instances_and_jobs(tmp_path: Path) -> None:
    engine = EngineProcess.start(tmp_path / "data")
    try:
        channel = create_insecure_channel(grpc_address=engine.address)
        stub, client = GatewayStub(channel), ZeebeClient(channel)
        process_id = await deploy_task(stub, "durable")
        waiting = await client.run_process(process_id, {"n": 1})
        held = await client.run_process(process_id, {"n": 2})
        (held_job,) = await activate(stub, "durable", maxJobsToActivate=1, timeout=600_000)
        await channel.close()

        engine.restart(kill=True)

        channel = create_insecure_channel(grpc_address=engine.address)
        stub, client = GatewayStub(channel), ZeebeClient(channel)
        (job,) = await activate(stub, "durable")  # the one not activated before the kill
        assert job.processInstanceKey in (waiting.process_instance_key, held.process_instance_key)
        assert job.key != held_job.key
        await stub.CompleteJob(pb.CompleteJobRequest(jobKey=job.key))
        await stub.CompleteJob(pb.CompleteJobRequest(jobKey=held_job.key))  # still activated after the restart
        again = await client.run_process(process_id)  # keys go on from where they were
        assert again.process_instance_key > held_job.key
        await channel.close()
    finally:
        engine.stop()
    completed = [
        record
        for record in map(json.loads, engine.records_path.read_text().splitlines())
        if record["intent"] == "ELEMENT_COMPLETED" and record["value"]["bpmnElementType"] == "PROCESS"
    ]
    assert {r["key"] for r in completed} == {waiting.process_instance_key, held.process_instance_key}
    positions = [json.loads(line)["position"] for line in engine.records_path.read_text().splitlines()]
    assert positions == sorted(set(positions))


async def test_activated_jobs_keep_their_deadline_across_a_restart(tmp_path: Path) -> None:
    engine = EngineProcess.start(tmp_path / "data")
    try:
        channel = create_insecure_channel(grpc_address=engine.address)
        stub, client = GatewayStub(channel), ZeebeClient(channel)
        process_id = await deploy_task(stub, "deadline")
        await client.run_process(process_id)
        (first,) = await activate(stub, "deadline", timeout=1_000)
        await channel.close()
        engine.restart(kill=True)
        channel = create_insecure_channel(grpc_address=engine.address)
        (again,) = await asyncio.wait_for(activate(GatewayStub(channel), "deadline", requestTimeout=20_000), 30)
        assert again.key == first.key
        await channel.close()
    finally:
        engine.stop()


def test_an_engine_goes_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    """A killed test session or `make run` leaves no engine behind holding its ports."""
    starter = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; from pathlib import Path; from devkit.engine.process import EngineProcess; "
            "print(EngineProcess.start(Path(sys.argv[1])).pid, flush=True); os.kill(os.getpid(), 9)",
            str(tmp_path / "engine"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    engine_pid = int(starter.stdout.strip())
    wait_until(lambda: not Path(f"/proc/{engine_pid}").exists(), 30, f"engine {engine_pid} to exit with its starter")
