"""Every way the documents this project answers use Hugging Face, end to end on the real broker, with the
request the stand-in received compared against Hugging Face's documented contract."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyzeebe import ZeebeClient

from devkit.hf_standin import PNG_SIGNATURE, HfStandin, tiny_png
from tests.conftest import SUITE_SECRETS
from tests.support.bpmn import connector_process, feel_string, unique_process_id
from tests.support.connector import Connector
from tests.support.waiting import wait_until
from tests.support.zeebe_helpers import deploy_xml, run_to_end

pytestmark = pytest.mark.e2e

TOKEN = SUITE_SECRETS["HUGGING_FACE_TOKEN"]


async def _run(
    zeebe: ZeebeClient,
    connector: Connector,
    bpmn_dir: Path,
    inputs: dict[str, str],
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    process_id = unique_process_id()
    xml = connector_process(
        process_id,
        connector.job_type,
        inputs={"authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}", **inputs},
        headers={"resultVariable": "result", **(headers or {})},
    )
    await deploy_xml(zeebe, xml, bpmn_dir, process_id)
    return await run_to_end(zeebe, process_id, variables)


def _unique_model(prefix: str) -> str:
    return f"{prefix}-{unique_process_id()}"


async def test_chat_sends_the_openai_compatible_body_and_maps_answer_and_usage(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = _unique_model("meta-llama/Llama-3.1-8B-Instruct") + ":fastest"
    variables = await _run(
        zeebe,
        connector,
        bpmn_dir,
        {
            "operation": "chat",
            "model": feel_string(model),
            "messages": '=[{role: "system", content: "Be brief."}, {role: "user", content: question}]',
            "maxTokens": "=64",
            "temperature": "=0.2",
            "topP": "=0.9",
            "frequencyPenalty": "=0.1",
            "presencePenalty": "=0.3",
            "stop": '=["###"]',
            "seed": "=7",
        },
        {"question": "What is Zeebe?"},
        {"resultExpression": '={"answer": answer, "tokens": usage.total_tokens}'},
    )

    request = hf.requests_for(model)[-1]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json == {
        "model": model,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is Zeebe?"}],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.3,
        "stop": ["###"],
        "seed": 7,
        "stream": False,
    }
    assert variables["answer"] == variables["result"]["body"]["choices"][0]["message"]["content"]
    assert variables["tokens"] == variables["result"]["body"]["usage"]["total_tokens"] > 0


async def test_chat_with_a_single_prompt(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = _unique_model("Qwen/Qwen2.5-7B-Instruct")
    variables = await _run(
        zeebe,
        connector,
        bpmn_dir,
        {"operation": "chat", "model": feel_string(model), "prompt": "=question"},
        {"question": "Hi?"},
    )
    assert hf.requests_for(model)[-1].json["messages"] == [{"role": "user", "content": "Hi?"}]
    assert isinstance(variables["result"]["answer"], str)


async def test_embeddings_with_word_chunking_align_vectors_with_their_chunks(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = _unique_model("sentence-transformers/all-MiniLM-L6-v2")
    text = " ".join(f"w{i}" for i in range(25))
    variables = await _run(
        zeebe,
        connector,
        bpmn_dir,
        {
            "operation": "embeddings",
            "model": feel_string(model),
            "input": "=text",
            "normalize": "=true",
            "chunkingStrategy": "word",
            "maxChunkSize": "=10",
            "chunkOverlap": "=4",
        },
        {"text": text},
    )

    request = hf.requests_for(model)[-1]
    assert request.path == f"/hf-inference/models/{model}/pipeline/feature-extraction"
    chunks = request.json["inputs"]
    assert request.json == {"inputs": chunks, "normalize": True}, "embedding parameters sit at the root"
    assert chunks[0] == " ".join(f"w{i}" for i in range(10))
    assert chunks[1].startswith("w6 "), "neighbouring chunks share 4 words"
    body = variables["result"]["body"]
    assert [item["text"] for item in body] == chunks
    assert all(len(item["embedding"]) == 384 and item["inputIndex"] == 0 for item in body)
    assert [item["chunkIndex"] for item in body] == list(range(len(chunks)))


async def test_embeddings_of_a_list_without_chunking_return_one_vector_each(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = _unique_model("intfloat/e5-small-v2")
    variables = await _run(
        zeebe,
        connector,
        bpmn_dir,
        {"operation": "embeddings", "model": feel_string(model), "input": "=texts", "promptName": "query"},
        {"texts": ["query: first", "query: second"]},
    )
    assert hf.requests_for(model)[-1].json == {"inputs": ["query: first", "query: second"], "prompt_name": "query"}
    assert len(variables["result"]["body"]) == 2


async def test_an_image_data_url_goes_out_as_raw_bytes_with_its_media_type(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = _unique_model("Salesforce/blip-image-captioning-base")
    png = tiny_png()
    image = "data:image/png;base64," + base64.b64encode(png).decode()
    variables = await _run(
        zeebe,
        connector,
        bpmn_dir,
        {"model": feel_string(model), "input": "=image"},
        {"image": image},
        {"resultExpression": '={"caption": body[0].generated_text}'},
    )
    request = hf.requests_for(model)[-1]
    assert request.headers["content-type"] == "image/png"
    assert request.body == png
    assert isinstance(variables["caption"], str) and variables["caption"]


async def test_an_image_with_parameters_goes_out_as_base64_json(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = _unique_model("Salesforce/blip-image-captioning-large")
    png = tiny_png(rgb=(10, 20, 30))
    await _run(
        zeebe,
        connector,
        bpmn_dir,
        {
            "model": feel_string(model),
            "input": '={inputs: {data: image, contentType: "image/png"}, parameters: {max_new_tokens: 20}}',
        },
        {"image": base64.b64encode(png).decode()},
    )
    request = hf.requests_for(model)[-1]
    assert request.headers["content-type"] == "application/json"
    assert request.json == {"inputs": base64.b64encode(png).decode(), "parameters": {"max_new_tokens": 20}}


async def test_text_to_image_returns_the_png_as_base64_with_its_content_type(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = _unique_model("stabilityai/stable-diffusion-2")
    variables = await _run(
        zeebe,
        connector,
        bpmn_dir,
        {"model": feel_string(model), "task": "text-to-image", "input": '={inputs: "a lighthouse at dusk"}'},
    )
    assert hf.requests_for(model)[-1].headers["accept"] == "image/png"
    body = variables["result"]["body"]
    assert body["contentType"] == "image/png"
    assert base64.b64decode(body["data"]).startswith(PNG_SIGNATURE)
    assert body["size"] == len(base64.b64decode(body["data"]))


async def test_legacy_options_become_headers_and_bill_to_is_sent(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = _unique_model("facebook/bart-large-cnn")
    await _run(
        zeebe,
        connector,
        bpmn_dir,
        {
            "model": feel_string(model),
            "input": '={inputs: "Some text.", options: {wait_for_model: true, use_cache: false}}',
            "billTo": "my-org",
        },
    )
    request = hf.requests_for(model)[-1]
    assert request.json == {"inputs": "Some text."}, "the strict router rejects unknown keys"
    assert request.headers["x-wait-for-model"] == "true"
    assert request.headers["x-use-cache"] == "false"
    assert request.headers["x-hf-bill-to"] == "my-org"


async def test_a_legacy_inference_url_is_sent_to_the_router(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = _unique_model("facebook/bart-large-cnn")
    variables = await _run(
        zeebe,
        connector,
        bpmn_dir,
        {"model": feel_string(f"https://api-inference.huggingface.co/models/{model}"), "input": '="A text."'},
    )
    assert variables["result"]["status"] == 200
    assert hf.requests_for(model)[-1].path == f"/hf-inference/models/{model}"


@pytest.fixture(scope="module")
def token_worker(
    zeebe_address: str, hf: HfStandin, worker_id_suffix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Connector]:
    """A worker with a worker-wide HF_TOKEN and no task tokens."""
    worker = Connector(
        zeebe_address=zeebe_address,
        hf_url=hf.url,
        job_type=f"hf-default-token-{worker_id_suffix}",
        log_path=tmp_path_factory.mktemp("token-worker") / "worker.log",
        env={"HF_TOKEN": "hf_workerWideToken_5c2e"},
    ).start()
    yield worker
    worker.stop()


async def test_the_worker_token_goes_to_hugging_face_but_never_elsewhere(
    zeebe: ZeebeClient, token_worker: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    router_model = _unique_model("org/router-model")
    foreign_url = hf.url.replace("127.0.0.1", "localhost") + f"/{unique_process_id()}"
    for model in (router_model, foreign_url):
        process_id = unique_process_id()
        xml = connector_process(
            process_id, token_worker.job_type, inputs={"model": feel_string(model), "input": '="x"'}
        )
        await deploy_xml(zeebe, xml, bpmn_dir, process_id)
        await zeebe.run_process(process_id, {})

    foreign_path = "/" + foreign_url.rsplit("/", 1)[1]
    to_foreign = wait_until(lambda: hf.requests_for(foreign_path), 20, "the call to the foreign host")
    to_router = wait_until(lambda: hf.requests_for(router_model), 20, "the call to the router")
    assert to_router and to_router[0].headers["authorization"] == "Bearer hf_workerWideToken_5c2e"
    assert to_foreign and "authorization" not in to_foreign[0].headers
