"""An independent client drives the session engine: zbctl, Camunda's Go command line (npm package `zbctl`,
a static Linux binary in tooling/node_modules), for status, deployment, instances and jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_engine_smoke import START_TO_END
from tests.support.bpmn import connector_process, unique_process_id
from tests.support.connector import REPO
from tests.support.records import ZeebeRecords
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the npm package's zbctl binary is for Linux"),
]

ZBCTL = REPO / "tooling" / "node_modules" / "zbctl" / "bin" / "zbctl-cli.linux"


def zbctl(address: str, *args: str) -> str:
    """Runs zbctl against ``address`` in plaintext, without any of the machine's Zeebe settings."""
    if not ZBCTL.is_file():
        pytest.fail(f"{ZBCTL} is missing: run `make tooling` (npm ci --prefix tooling)", pytrace=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZEEBE_", "CAMUNDA_"))}
    done = subprocess.run(
        [str(ZBCTL), "--insecure", "--address", address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, f"zbctl {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    return done.stdout


def zbctl_json(address: str, *args: str) -> Any:
    return json.loads(zbctl(address, *args))


def test_status_shows_a_leader_for_partition_one(zeebe_address: str) -> None:
    output = zbctl(zeebe_address, "status")
    assert "Partition 1 : Leader" in output, output


def test_deploy_and_create_an_instance_with_its_result(zeebe_address: str, tmp_path: Path) -> None:
    bpmn = tmp_path / "engine-smoke.bpmn"
    bpmn.write_text(START_TO_END, encoding="utf-8")
    deployed = zbctl_json(zeebe_address, "deploy", "resource", str(bpmn))
    assert [p["bpmnProcessId"] for p in _processes(deployed)] == ["engine-smoke"]

    result = zbctl_json(
        zeebe_address, "create", "instance", "engine-smoke", "--withResult", "--variables", '{"ping": "pong"}'
    )
    assert result["bpmnProcessId"] == "engine-smoke"
    assert json.loads(result["variables"]) == {"ping": "pong"}


def test_activate_and_complete_a_service_task_job(zeebe_address: str, tmp_path: Path, records: ZeebeRecords) -> None:
    process_id = unique_process_id("zbctl")
    job_type = f"zbctl-{process_id}"
    bpmn = tmp_path / f"{process_id}.bpmn"
    bpmn.write_text(connector_process(process_id, job_type, inputs={}), encoding="utf-8")
    zbctl(zeebe_address, "deploy", "resource", str(bpmn))

    created = zbctl_json(zeebe_address, "create", "instance", process_id, "--variables", '{"question": "42?"}')
    instance_key = int(created["processInstanceKey"])

    activated = zbctl_json(zeebe_address, "activate", "jobs", job_type, "--maxJobsToActivate", "5", "--timeout", "30s")
    [job] = activated["jobs"]
    assert (job["type"], int(job["processInstanceKey"]), job["bpmnProcessId"]) == (job_type, instance_key, process_id)
    assert json.loads(job["variables"]) == {"question": "42?"}

    zbctl(zeebe_address, "complete", "job", str(job["key"]), "--variables", '{"answer": "yes"}')
    wait_until(lambda: records.completed(instance_key), 30, f"process instance {instance_key} completed")


def _processes(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return [d["process"] for d in deployment.get("deployments", []) if "process" in d]
