"""The whole loop: a process with a hugging-face task completes through the worker and the stand-in."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyzeebe import ZeebeClient

from devkit.hf_standin import HfStandin
from tests.support.bpmn import connector_process, feel_string, unique_process_id
from tests.support.connector import Connector
from tests.support.zeebe_helpers import deploy_xml, run_to_end

pytestmark = pytest.mark.e2e

JAVA_PARAGRAPH = (
    "Java is a high-level, class-based, object-oriented programming language that is designed to have as few "
    "implementation dependencies as possible. It is a general-purpose programming language intended to let "
    "programmers write once, run anywhere, meaning that compiled Java code can run on all platforms that "
    "support Java without the need to recompile."
)


async def test_camunda_documentation_scenario_completes_with_the_response(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    process_id = unique_process_id()
    xml = connector_process(
        process_id,
        connector.job_type,
        inputs={
            "authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}",
            "model": feel_string("facebook/bart-large-cnn"),
            "input": "={inputs: text, parameters: {max_length: 75}}",
        },
        headers={"resultVariable": "myHuggingFaceResponse"},
    )
    await deploy_xml(zeebe, xml, bpmn_dir, process_id)

    variables = await run_to_end(zeebe, process_id, {"text": JAVA_PARAGRAPH})

    response = variables["myHuggingFaceResponse"]
    assert response["status"] == 200
    assert response["headers"]["x-inference-provider"] == "hf-inference"
    assert isinstance(response["body"][0]["summary_text"], str)
    request = hf.requests_for("facebook/bart-large-cnn")[-1]
    assert request.path == "/hf-inference/models/facebook/bart-large-cnn"
    assert request.headers["authorization"] == "Bearer hf_suiteSecretToken_7f3a9c1e"
    assert request.json == {"inputs": JAVA_PARAGRAPH, "parameters": {"max_length": 75}}
