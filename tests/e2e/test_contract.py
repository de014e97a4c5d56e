"""The job contract as a Camunda user sees it, on the real broker: results, incidents, BPMN errors,
retries with backoff, secrets. Zeebe's own records (incidents, job failures) are the evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyzeebe import ZeebeClient

from devkit.hf_standin import HfStandin, Reply
from tests.conftest import SUITE_SECRETS
from tests.support.bpmn import connector_process, feel_string, unique_process_id
from tests.support.connector import Connector
from tests.support.records import ZeebeRecords
from tests.support.zeebe_helpers import deploy_xml, run_to_end

pytestmark = pytest.mark.e2e

TOKEN_INPUT = {"authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}"}


def _inputs(model: str, text: str = "Hello there.", **extra: str) -> dict[str, str]:
    return {**TOKEN_INPUT, "model": feel_string(model), "input": f"={{inputs: {feel_string(text)[1:]}}}", **extra}


async def _deploy(
    zeebe: ZeebeClient, connector: Connector, bpmn_dir: Path, inputs: dict[str, str], **options: Any
) -> str:
    process_id = unique_process_id()
    await deploy_xml(
        zeebe, connector_process(process_id, connector.job_type, inputs=inputs, **options), bpmn_dir, process_id
    )
    return process_id


async def _start(zeebe: ZeebeClient, process_id: str, variables: dict[str, Any] | None = None) -> int:
    return (await zeebe.run_process(process_id, variables or {})).process_instance_key


async def test_a_result_expression_maps_the_answer_into_process_variables(
    zeebe: ZeebeClient, connector: Connector, bpmn_dir: Path
) -> None:
    process_id = await _deploy(
        zeebe,
        connector,
        bpmn_dir,
        _inputs("facebook/bart-large-cnn", "The tower is 324 metres tall. It was the tallest structure."),
        headers={
            "resultVariable": "myHuggingFaceResponse",
            "resultExpression": '={"summary": body[0].summary_text, "provider": headers["x-inference-provider"]}',
        },
    )
    variables = await run_to_end(zeebe, process_id)
    assert variables["summary"] == variables["myHuggingFaceResponse"]["body"][0]["summary_text"]
    assert variables["provider"] == "hf-inference"


async def test_a_404_raises_an_incident_at_once_with_hugging_faces_words(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = f"missing/model-{unique_process_id()}"
    hf.script(model, Reply.error(404, f"Model {model} does not exist"))
    process_id = await _deploy(zeebe, connector, bpmn_dir, _inputs(model), retries=5)
    instance = await _start(zeebe, process_id)

    incident = ZeebeRecords.of_session().incident(instance)

    assert incident["errorType"] == "JOB_NO_RETRIES"
    assert f"Model {model} does not exist" in incident["errorMessage"]
    assert "check the model id" in incident["errorMessage"]
    failures = ZeebeRecords.of_session().job_failures(instance)
    assert [f["retries"] for f in failures] == [0], "a permanent error must not burn retries"
    assert len(hf.requests_for(model)) == 1


async def test_a_4xx_becomes_a_bpmn_error_that_a_boundary_event_catches(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = f"gated/model-{unique_process_id()}"
    hf.script(model, Reply.error(403, "Access to model is restricted"))
    process_id = await _deploy(
        zeebe,
        connector,
        bpmn_dir,
        _inputs(model),
        headers={
            "errorExpression": 'bpmnError("HF_FORBIDDEN", error.message, {"hfStatus": error.code}) '
            'if error.code == "403"'
        },
        catch_error_code="HF_FORBIDDEN",
    )
    instance = await _start(zeebe, process_id)

    records = ZeebeRecords.of_session()
    caught = records.wait_for("PROCESS_INSTANCE", "ELEMENT_COMPLETED", processInstanceKey=instance, elementId="caught")
    assert caught, "the error boundary event's path was taken"
    assert records.completed(instance)
    thrown = records.matching("JOB", "ERROR_THROWN", processInstanceKey=instance)
    assert thrown[0]["value"]["errorCode"] == "HF_FORBIDDEN"
    assert "restricted" in thrown[0]["value"]["errorMessage"]


async def test_a_loading_model_is_retried_after_its_estimated_time_and_then_completes(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = f"cold/model-{unique_process_id()}"
    hf.script(model, Reply.loading(estimated_time=1.0, model=model))
    process_id = await _deploy(
        zeebe, connector, bpmn_dir, _inputs(model), headers={"resultVariable": "r", "retryBackoff": "PT0S"}
    )
    instance_started = await zeebe.run_process_with_result(process_id, {}, timeout=30_000)

    assert instance_started.variables["r"]["status"] == 200
    failures = ZeebeRecords.of_session().job_failures(instance_started.process_instance_key)
    assert [(f["retries"], f["retryBackoff"]) for f in failures] == [(2, 1000)]
    assert "is currently loading" in failures[0]["errorMessage"]
    assert len(hf.requests_for(model)) == 2


async def test_a_missing_secret_raises_an_incident_naming_it_and_calls_nothing(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = f"org/model-{unique_process_id()}"
    inputs = {**_inputs(model), "authentication.token": "{{secrets.NOBODY_DEFINED_THIS}}"}
    process_id = await _deploy(zeebe, connector, bpmn_dir, inputs)
    instance = await _start(zeebe, process_id)

    incident = ZeebeRecords.of_session().incident(instance)

    assert "Secret with name 'NOBODY_DEFINED_THIS' is not available" in incident["errorMessage"]
    assert "SECRET_NOBODY_DEFINED_THIS" in incident["errorMessage"]
    assert hf.requests_for(model) == []


async def test_a_secret_echoed_by_the_server_never_reaches_the_incident_or_the_logs(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = f"echo/model-{unique_process_id()}"
    hf.script(model, Reply.echo(status=400))
    process_id = await _deploy(zeebe, connector, bpmn_dir, _inputs(model))
    instance = await _start(zeebe, process_id)

    incident = ZeebeRecords.of_session().incident(instance)

    secret = SUITE_SECRETS["HUGGING_FACE_TOKEN"]
    assert hf.requests_for(model)[0].headers["authorization"] == f"Bearer {secret}"
    assert "***" in incident["errorMessage"]
    assert secret not in incident["errorMessage"]
    assert secret not in connector.log_text()
