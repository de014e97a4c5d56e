"""Every process in bpmn-examples/ deploys as it is and runs to completion through the worker.

One worker subscribes to the real `hugging-face` job type here; `--dist loadfile` keeps these tests in
one test process, so no other worker of the session competes for those jobs.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pyzeebe import ZeebeClient

from devkit.engines import REST_ADDRESS_ENV
from devkit.examples import IMAGE, default_variables, describe, run_example
from devkit.hf_standin import PNG_SIGNATURE, HfStandin, Reply, tiny_png
from devkit.rest import OrchestrationApi
from tests.conftest import SUITE_SECRETS
from tests.support.connector import REPO, Connector
from tests.support.records import ZeebeRecords
from tests.support.zeebe_helpers import run_to_end
from tests.unit.test_bpmn_examples import SCENARIOS

pytestmark = pytest.mark.e2e

EXAMPLES = sorted((REPO / "bpmn-examples").glob("*.bpmn"))


@pytest.fixture(scope="module")
def examples_worker(zeebe_address: str, hf: HfStandin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Connector]:
    worker = Connector(
        zeebe_address=zeebe_address,
        hf_url=hf.url,
        job_type="hugging-face",
        log_path=tmp_path_factory.mktemp("examples-worker") / "worker.log",
        env={
            "SECRET_HUGGING_FACE_TOKEN": SUITE_SECRETS["HUGGING_FACE_TOKEN"],
            "CAMUNDA_REST_ADDRESS": os.environ[REST_ADDRESS_ENV],
        },
    ).start()
    yield worker
    worker.stop()


@pytest.fixture
async def deployed(zeebe: ZeebeClient, examples_worker: Connector) -> ZeebeClient:
    await zeebe.deploy_resource(*EXAMPLES)
    return zeebe


def test_there_is_an_example_per_scenario() -> None:
    names = {path.stem for path in EXAMPLES}
    assert set(SCENARIOS) <= names


async def _run(zeebe: ZeebeClient, name: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return await run_to_end(zeebe, f"hf-example-{name}", variables)


async def test_summarization_as_in_camundas_documentation(deployed: ZeebeClient, hf: HfStandin) -> None:
    paragraph = (
        "Java is a high-level, class-based, object-oriented programming language that is designed to have as "
        "few implementation dependencies as possible."
    )
    variables = await _run(deployed, "summarization", {"text": paragraph})
    assert variables["summary"] == variables["myHuggingFaceResponse"]["body"][0]["summary_text"]
    request = hf.requests_for("facebook/bart-large-cnn")[-1]
    assert request.json == {"inputs": paragraph, "parameters": {"max_length": 75}}


async def test_embeddings_as_in_elasticsearchs_integration(deployed: ZeebeClient) -> None:
    text = " ".join(f"word{i}" for i in range(150))
    variables = await _run(deployed, "embeddings", {"text": text})
    chunks = variables["embeddings"]
    assert len(chunks) == 2
    assert all(len(chunk["embedding"]) == 384 for chunk in chunks)


async def test_image_captioning_from_a_binary_image(deployed: ZeebeClient) -> None:
    image = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    variables = await _run(deployed, "image-captioning", {"image": image})
    assert isinstance(variables["caption"], str) and variables["caption"]


async def test_image_captioning_as_make_example_runs_it_with_the_bundled_png(
    deployed: ZeebeClient, hf: HfStandin
) -> None:
    async with OrchestrationApi(os.environ[REST_ADDRESS_ENV]) as api:
        outcome = await run_example(deployed, api, "image-captioning", default_variables("image-captioning"))
    assert outcome.ok, describe(outcome, 60)
    assert hf.requests_for("Salesforce/blip-image-captioning-base")[-1].body == IMAGE.read_bytes()


async def test_text_to_image_returns_a_document_holding_the_image(deployed: ZeebeClient) -> None:
    variables = await _run(deployed, "text-to-image", {"imagePrompt": "a lighthouse at dusk"})
    reference = variables["image"]
    assert reference["metadata"]["contentType"] == "image/png"
    async with httpx.AsyncClient(base_url=os.environ[REST_ADDRESS_ENV]) as http:
        content = (await http.get(f"/v2/documents/{reference['documentId']}")).content
    assert content.startswith(PNG_SIGNATURE)
    assert len(content) == reference["metadata"]["size"]


async def test_chat_with_sampling_parameters(deployed: ZeebeClient, hf: HfStandin) -> None:
    variables = await _run(deployed, "chat", {"question": "What is BPMN?"})
    assert variables["answer"]
    request = hf.requests_for("meta-llama/Llama-3.1-8B-Instruct:fastest")[-1]
    assert (request.json["temperature"], request.json["top_p"], request.json["max_tokens"]) == (0.2, 0.9, 200)


async def test_error_handling_classifies_a_known_model(deployed: ZeebeClient) -> None:
    variables = await _run(
        deployed,
        "error-handling",
        {"modelId": "distilbert/distilbert-base-uncased-finetuned-sst-2-english", "text": "I love it"},
    )
    assert isinstance(variables["label"], str)


async def test_error_handling_catches_a_missing_model_as_a_bpmn_error(deployed: ZeebeClient, hf: HfStandin) -> None:
    hf.script("nobody/no-such-model", Reply.error(404, "Model nobody/no-such-model does not exist"))
    response = await deployed.run_process_with_result(
        "hf-example-error-handling", {"modelId": "nobody/no-such-model", "text": "x"}, timeout=30_000
    )
    records = ZeebeRecords.of_session()
    records.wait_for(
        "PROCESS_INSTANCE",
        "ELEMENT_COMPLETED",
        processInstanceKey=response.process_instance_key,
        elementId="ModelNotFoundEnd",
    )


EXTRACTION_MODEL = "Qwen/Qwen3-32B:cerebras"
PAYMENT_TEXT = "Hello, this is Ada Lovelace (ada@example.com). I transferred 120.50 EUR for the workshop."


async def test_structured_extraction_maps_the_json_answer(deployed: ZeebeClient, hf: HfStandin) -> None:
    variables = await _run(deployed, "structured-extraction", {"text": PAYMENT_TEXT})
    assert (variables["name"], variables["email"], variables["amount"]) == ("Ada Lovelace", "ada@example.com", 120.5)
    assert variables["extraction"]["json"] == {"name": "Ada Lovelace", "email": "ada@example.com", "amount": 120.5}
    sent = [r for r in hf.requests_for(EXTRACTION_MODEL) if r.json["messages"][-1]["content"] == PAYMENT_TEXT]
    response_format = sent[-1].json["response_format"]
    assert response_format["type"] == "json_schema" and response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["schema"]["required"] == ["name", "email", "amount"]
    assert "tools" not in sent[-1].json and "tool_choice" not in sent[-1].json


async def test_structured_extraction_raises_an_incident_for_an_answer_that_is_not_json(
    deployed: ZeebeClient, hf: HfStandin
) -> None:
    text = "A payment text the stand-in answers in prose."
    hf.script(EXTRACTION_MODEL, Reply.chat("Sorry, I found no payment in this text."))
    response = await deployed.run_process("hf-example-structured-extraction", {"text": text})
    records = ZeebeRecords.of_session()
    message = records.incident(response.process_instance_key)["errorMessage"]
    assert "not JSON" in message and "INVALID_JSON_ANSWER" in message
    assert "Sorry, I found no payment" in message
    failures = records.job_failures(response.process_instance_key)
    assert [f["retries"] for f in failures] == [0], "no retry: one request, then the incident"
    assert len([r for r in hf.requests_for(EXTRACTION_MODEL) if r.json["messages"][-1]["content"] == text]) == 1


async def test_tool_loop_calls_the_tool_and_answers_from_its_result(deployed: ZeebeClient, hf: HfStandin) -> None:
    question = "Summarize this: The tower is 324 metres tall, about the same height as an 81-storey building."
    variables = await _run(deployed, "tool-loop", {"question": question})
    assert variables["toolRounds"] == 1
    assert variables["toolCalls"] == []
    conversation = variables["conversation"]
    assert [m["role"] for m in conversation] == ["system", "user", "assistant", "tool", "assistant"]
    call = conversation[2]["tool_calls"][0]
    assert call["function"]["name"] == "summarize"
    assert conversation[3]["tool_call_id"] == call["id"]
    summary = conversation[3]["content"]
    assert summary and summary in variables["answer"]
    summarized = [r for r in hf.requests_for("facebook/bart-large-cnn") if r.json["inputs"] == question]
    assert len(summarized) == 1
    chats = [r for r in hf.requests_for(EXTRACTION_MODEL) if r.json["messages"][1]["content"] == question]
    assert len(chats) == 2
    assert chats[0].json["tools"][0]["function"]["name"] == "summarize" and chats[0].json["tool_choice"] == "auto"
    assert chats[1].json["messages"][3] == {"role": "tool", "tool_call_id": call["id"], "content": summary}


async def test_tool_loop_stops_after_three_rounds(deployed: ZeebeClient, hf: HfStandin) -> None:
    def tool_call(n: int) -> Reply:
        arguments = json.dumps({"text": f"round {n} text"})
        call = {"id": f"call_{n}", "type": "function", "function": {"name": "summarize", "arguments": arguments}}
        return Reply.chat(None, "tool_calls", [call])

    hf.script(EXTRACTION_MODEL, *(tool_call(n) for n in range(1, 5)))
    response = await deployed.run_process_with_result(
        "hf-example-tool-loop", {"question": "Loop forever"}, timeout=30_000
    )
    assert response.variables["toolRounds"] == 3
    assert len(response.variables["conversation"]) == 2 + 3 * 2 + 1
    ZeebeRecords.of_session().wait_for(
        "PROCESS_INSTANCE",
        "ELEMENT_COMPLETED",
        processInstanceKey=response.process_instance_key,
        elementId="LimitEnd",
    )
