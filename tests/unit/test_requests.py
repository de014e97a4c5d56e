"""From a validated job to the HTTP call Hugging Face expects (URLs, headers, bodies, token policy)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import ValidationError

from hf_connector.http_core import HttpResult
from hf_connector.huggingface.contract import JobVariables
from hf_connector.huggingface.requests import HfCall, HfDefaults, InvalidInputError, build_call, is_hugging_face_host

ROUTER = "https://router.huggingface.co"
WORKER_TOKEN = "hf_workerDefaultToken"
TASK_TOKEN = "hf_taskOwnToken"
PNG = b"\x89PNG\r\n\x1a\nfake-image-bytes"
DEFAULTS = HfDefaults(router_url=ROUTER, default_token=WORKER_TOKEN, read_timeout=120.0, max_input_bytes=64 * 1024)


def _job(**variables: Any) -> JobVariables:
    variables.setdefault("model", "facebook/bart-large-cnn")
    if variables.get("operation") != "chat":
        variables.setdefault("input", {"inputs": "The tower is 324 metres tall."})
    return JobVariables.model_validate(variables)


def _call(defaults: HfDefaults = DEFAULTS, **variables: Any) -> HfCall:
    return build_call(_job(**variables), defaults)


def _body(call: HfCall) -> Any:
    assert call.request.content is not None
    return json.loads(call.request.content)


def _result(body: Any, status: int = 200) -> HttpResult:
    return HttpResult(status=status, reason="OK", headers={}, body=body, elapsed_seconds=0.1)


# --- inference --------------------------------------------------------------------------------------


def test_a_task_call_posts_the_input_to_the_router() -> None:
    call = _call(input={"inputs": "long text", "parameters": {"max_length": 75}})
    assert call.request.method == "POST"
    assert call.request.url == f"{ROUTER}/hf-inference/models/facebook/bart-large-cnn"
    assert call.request.headers["content-type"] == "application/json"
    assert _body(call) == {"inputs": "long text", "parameters": {"max_length": 75}}
    assert call.model == "facebook/bart-large-cnn"


def test_a_plain_string_input_becomes_inputs() -> None:
    assert _body(_call(input="Paris is the capital of France.")) == {"inputs": "Paris is the capital of France."}


def test_an_input_written_as_json_text_is_sent_as_json() -> None:
    assert _body(_call(input='{"inputs": "x", "parameters": {"top_k": 2}}')) == {
        "inputs": "x",
        "parameters": {"top_k": 2},
    }


def test_an_input_that_looks_like_json_but_is_broken_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        _job(input='{"inputs": "x",')
    assert "does not parse" in str(caught.value)


def test_a_model_without_organisation_is_fine() -> None:
    assert _call(model="gpt2").request.url == f"{ROUTER}/hf-inference/models/gpt2"


def test_legacy_options_become_headers_and_leave_the_body() -> None:
    call = _call(input={"inputs": "x", "options": {"wait_for_model": True, "use_cache": False}})
    assert call.request.headers["x-wait-for-model"] == "true"
    assert call.request.headers["x-use-cache"] == "false"
    assert _body(call) == {"inputs": "x"}


def test_default_options_add_no_header() -> None:
    call = _call(input={"inputs": "x", "options": {"wait_for_model": False, "use_cache": True}})
    assert "x-wait-for-model" not in call.request.headers
    assert "x-use-cache" not in call.request.headers
    assert _body(call) == {"inputs": "x"}


def test_options_that_are_not_an_object_are_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        _call(input={"inputs": "x", "options": "fast"})
    assert "input.options" in str(caught.value)


@pytest.mark.parametrize(
    ("task", "accept"),
    [("text-to-image", "image/png"), ("text-to-speech", "audio/flac"), ("summarization", None)],
)
def test_a_task_that_answers_binary_asks_for_it(task: str, accept: str | None) -> None:
    call = _call(model="black-forest-labs/FLUX.1-dev", input="a cat", task=task)
    assert call.request.headers.get("accept") == accept
    assert call.request.url == f"{ROUTER}/hf-inference/models/black-forest-labs/FLUX.1-dev"


@pytest.mark.parametrize("task", ["feature-extraction", "sentence-similarity"])
def test_pipeline_tasks_use_the_pipeline_path(task: str) -> None:
    call = _call(model="sentence-transformers/all-MiniLM-L6-v2", task=task)
    assert call.request.url == f"{ROUTER}/hf-inference/models/sentence-transformers/all-MiniLM-L6-v2/pipeline/{task}"


@pytest.mark.parametrize("task", ["Text To Image", "../admin", "text_to_image"])
def test_a_task_name_must_look_like_one(task: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        _call(task=task)
    assert "task" in str(caught.value)


def test_a_provider_suffix_is_only_for_chat() -> None:
    with pytest.raises(InvalidInputError) as caught:
        _call(model="meta-llama/Llama-3.1-8B-Instruct:novita")
    assert "chat" in str(caught.value)


@pytest.mark.parametrize("model", ["../../admin", "org/../x", "org/name/extra", "has space/x", "", "  ", "/x", "-a/b"])
def test_a_model_id_that_could_escape_its_url_segment_is_refused(model: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _job(model=model)
    assert "model" in str(caught.value)


def test_the_router_url_can_be_changed_worker_wide() -> None:
    defaults = HfDefaults("http://hf-proxy.internal:8080", None, 60.0, 1024)
    assert _call(defaults).request.url == "http://hf-proxy.internal:8080/hf-inference/models/facebook/bart-large-cnn"


# --- legacy URLs and endpoints ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("legacy", "expected"),
    [
        (
            "https://api-inference.huggingface.co/models/facebook/bart-large-cnn",
            f"{ROUTER}/hf-inference/models/facebook/bart-large-cnn",
        ),
        (
            "https://api-inference.huggingface.co/models/gpt2/",
            f"{ROUTER}/hf-inference/models/gpt2",
        ),
        (
            "https://api-inference.huggingface.co/pipeline/feature-extraction/sentence-transformers/all-MiniLM-L6-v2",
            f"{ROUTER}/hf-inference/models/sentence-transformers/all-MiniLM-L6-v2/pipeline/feature-extraction",
        ),
        (
            "https://API-INFERENCE.huggingface.co/pipeline/sentence-similarity/org/m",
            f"{ROUTER}/hf-inference/models/org/m/pipeline/sentence-similarity",
        ),
    ],
)
def test_a_legacy_inference_api_url_is_rewritten_to_the_router(legacy: str, expected: str) -> None:
    call = _call(model=legacy)
    assert call.request.url == expected
    assert call.request.headers["authorization"] == f"Bearer {WORKER_TOKEN}"


def test_a_legacy_url_without_a_model_is_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        _call(model="https://api-inference.huggingface.co/status")
    assert "/models/ORG/NAME" in str(caught.value)


def test_a_legacy_endpoint_means_the_router() -> None:
    call = _call(endpoint="https://api-inference.huggingface.co/")
    assert call.request.url == f"{ROUTER}/hf-inference/models/facebook/bart-large-cnn"


def test_a_legacy_model_url_for_embeddings_keeps_the_feature_extraction_pipeline() -> None:
    call = _call(operation="embeddings", model="https://api-inference.huggingface.co/models/org/embedder", input="x")
    assert call.request.url == f"{ROUTER}/hf-inference/models/org/embedder/pipeline/feature-extraction"


def test_a_legacy_model_url_for_chat_goes_to_the_router() -> None:
    call = _call(
        operation="chat",
        model="https://api-inference.huggingface.co/models/meta-llama/Llama-3.1-8B-Instruct",
        prompt="hi",
    )
    assert "api-inference.huggingface.co" not in call.request.url
    assert call.request.url.startswith(ROUTER)
    assert _body(call)["model"] == "meta-llama/Llama-3.1-8B-Instruct"


def test_a_dedicated_endpoint_url_as_model_is_called_as_it_is() -> None:
    url = "https://my-endpoint.us-east-1.aws.endpoints.huggingface.cloud"
    call = _call(model=url)
    assert call.request.url == url
    assert call.request.headers["authorization"] == f"Bearer {WORKER_TOKEN}"


def test_an_endpoint_replaces_the_router_base() -> None:
    call = _call(endpoint="http://127.0.0.1:8080/")
    assert call.request.url == "http://127.0.0.1:8080/hf-inference/models/facebook/bart-large-cnn"


@pytest.mark.parametrize("endpoint", ["ftp://files.example.com", "my-endpoint.example.com", "https://a b.example"])
def test_an_endpoint_must_be_an_http_url(endpoint: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        _call(endpoint=endpoint)
    assert "not an http(s) URL" in str(caught.value)


# --- token policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://router.huggingface.co/x",
        "https://huggingface.co/x",
        "https://x.us-east-1.aws.endpoints.huggingface.cloud",
        "https://api-inference.huggingface.co/models/x",
    ],
)
def test_hugging_face_hosts_are_recognised(url: str) -> None:
    assert is_hugging_face_host(url, ROUTER)


@pytest.mark.parametrize(
    "url",
    [
        "https://evilhuggingface.co/x",
        "https://huggingface.co.evil.example/x",
        "https://router.huggingface.co@evil.example/x",
        "http://localhost:8080/",
        "https://endpoints.huggingface.cloud.evil.example/",
    ],
)
def test_look_alike_hosts_are_not_hugging_face(url: str) -> None:
    assert not is_hugging_face_host(url, ROUTER)


def test_the_worker_token_goes_to_the_router() -> None:
    assert _call().request.headers["authorization"] == f"Bearer {WORKER_TOKEN}"


def test_the_worker_token_goes_to_a_configured_router_even_if_it_is_not_hugging_face() -> None:
    defaults = HfDefaults("http://hf-proxy.internal:8080", WORKER_TOKEN, 60.0, 1024)
    assert _call(defaults).request.headers["authorization"] == f"Bearer {WORKER_TOKEN}"


@pytest.mark.parametrize(
    "variables",
    [
        {"endpoint": "http://my-tgi.internal:8080"},
        {"model": "https://attacker.example.com/collect"},
        {"operation": "chat", "model": "https://my-tgi.internal", "prompt": "hi"},
    ],
)
def test_the_worker_token_never_goes_to_another_host(variables: dict[str, Any]) -> None:
    call = _call(**variables)
    assert "authorization" not in call.request.headers
    assert WORKER_TOKEN not in json.dumps(dict(call.request.headers))


def test_a_task_token_goes_wherever_the_task_says() -> None:
    call = _call(endpoint="http://my-tgi.internal:8080", authentication={"token": TASK_TOKEN})
    assert call.request.headers["authorization"] == f"Bearer {TASK_TOKEN}"
    assert _call(authentication={"token": TASK_TOKEN}).request.headers["authorization"] == f"Bearer {TASK_TOKEN}"


def test_without_any_token_no_authorization_is_sent() -> None:
    defaults = HfDefaults(ROUTER, None, 120.0, 64 * 1024)
    assert "authorization" not in _call(defaults).request.headers


def test_bill_to_an_organisation() -> None:
    assert _call(billTo="my-org").request.headers["x-hf-bill-to"] == "my-org"
    assert "x-hf-bill-to" not in _call().request.headers


# --- timeouts and size ------------------------------------------------------------------------------


def test_timeouts_come_from_the_job_or_the_worker_default() -> None:
    call = _call(connectionTimeoutInSeconds=5, readTimeoutInSeconds=300)
    assert (call.request.connect_timeout, call.request.read_timeout) == (5, 300)
    call = _call()
    assert (call.request.connect_timeout, call.request.read_timeout) == (30, 120.0)


def test_an_input_over_the_limit_is_refused_with_the_setting_to_change() -> None:
    with pytest.raises(InvalidInputError) as caught:
        _call(input={"inputs": "x" * 70_000})
    assert "HF_CONNECTOR_MAX_INPUT_BYTES" in str(caught.value)
    assert "65536" in str(caught.value)


def test_non_ascii_input_is_sent_as_utf8_json() -> None:
    call = _call(input={"inputs": "Größe: 東京"})
    assert call.request.content is not None
    assert "Größe: 東京".encode() in call.request.content


# --- binary inputs ----------------------------------------------------------------------------------


def test_a_data_url_input_is_sent_as_raw_bytes_with_its_media_type() -> None:
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    call = _call(model="Salesforce/blip-image-captioning-large", input=data_url)
    assert call.request.content == PNG
    assert call.request.headers["content-type"] == "image/png"


def test_a_data_url_without_media_type_is_octet_stream() -> None:
    call = _call(input="data:;base64," + base64.b64encode(b"\x01\x02").decode())
    assert call.request.headers["content-type"] == "application/octet-stream"


def test_a_binary_object_input_is_sent_as_raw_bytes() -> None:
    call = _call(input={"data": base64.b64encode(b"RIFFwav").decode(), "contentType": "audio/wav"})
    assert call.request.content == b"RIFFwav"
    assert call.request.headers["content-type"] == "audio/wav"


def test_a_binary_result_can_be_sent_back_as_input() -> None:
    previous = {
        "contentType": "image/png",
        "encoding": "base64",
        "size": len(PNG),
        "data": base64.b64encode(PNG).decode(),
    }
    assert _call(input=previous).request.content == PNG


def test_binary_inputs_without_parameters_are_raw() -> None:
    inner = {"data": base64.b64encode(PNG).decode(), "contentType": "image/png"}
    call = _call(input={"inputs": inner, "parameters": {}})
    assert call.request.content == PNG


def test_binary_inputs_with_parameters_are_json_with_base64() -> None:
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    call = _call(input={"inputs": data_url, "parameters": {"top_k": 3}})
    assert call.request.headers["content-type"] == "application/json"
    assert _body(call) == {"inputs": base64.b64encode(PNG).decode(), "parameters": {"top_k": 3}}


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("data:image/png;base64,not base64!!", "not valid base64"),
        ("data:image/png,rawtext", "data:<type>;base64,<data>"),
        ({"data": "AAAA", "contentType": "png"}, "media type"),
    ],
)
def test_broken_binary_inputs_are_refused_with_a_reason(value: Any, words: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        _call(input=value)
    assert words in str(caught.value)


# --- chat -------------------------------------------------------------------------------------------


def test_chat_maps_the_parameters_to_the_openai_names() -> None:
    call = _call(
        operation="chat",
        model="meta-llama/Llama-3.1-8B-Instruct:fastest",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi", "name": "ann"}],
        maxTokens=64,
        temperature=0.2,
        topP=0.9,
        frequencyPenalty=0.5,
        presencePenalty=-0.5,
        stop=["\n\n"],
        seed=7,
    )
    assert call.request.url == f"{ROUTER}/v1/chat/completions"
    assert _body(call) == {
        "model": "meta-llama/Llama-3.1-8B-Instruct:fastest",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi", "name": "ann"}],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "frequency_penalty": 0.5,
        "presence_penalty": -0.5,
        "stop": ["\n\n"],
        "seed": 7,
        "stream": False,
    }


def test_a_chat_prompt_is_one_user_message_and_unset_parameters_are_left_out() -> None:
    body = _body(_call(operation="chat", model="org/chat-model", prompt="What is 2+2?"))
    assert body == {
        "model": "org/chat-model",
        "messages": [{"role": "user", "content": "What is 2+2?"}],
        "stream": False,
    }


def test_chat_on_a_self_hosted_tgi_uses_its_openai_route() -> None:
    call = _call(operation="chat", model="http://tgi.internal:8080/", prompt="hi")
    assert call.request.url == "http://tgi.internal:8080/v1/chat/completions"
    assert _body(call)["model"] == "tgi"


def test_chat_needs_messages_or_a_prompt() -> None:
    with pytest.raises(ValidationError) as caught:
        _job(operation="chat", model="org/chat")
    assert "messages or a prompt" in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value"), [("temperature", 3), ("topP", 1.5), ("maxTokens", 0), ("presencePenalty", -3)]
)
def test_chat_parameters_out_of_range_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as caught:
        _job(operation="chat", model="org/chat", prompt="hi", **{field: value})
    assert field in str(caught.value)


def test_the_chat_result_carries_the_answer_and_usage() -> None:
    call = _call(operation="chat", model="org/chat", prompt="hi")
    body = {
        "id": "c1",
        "choices": [{"message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    value = call.result_variable(_result(body))
    assert value["answer"] == "Hello!"
    assert value["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert value["body"] == body
    assert call.result_variable(_result({"choices": []}))["answer"] is None


# --- embeddings -------------------------------------------------------------------------------------


def test_embeddings_use_the_feature_extraction_pipeline_with_parameters_at_the_root() -> None:
    call = _call(
        operation="embeddings",
        model="intfloat/multilingual-e5-small",
        input=["query: a", "query: b"],
        normalize=True,
        truncate=False,
        promptName="query",
    )
    assert (
        call.request.url == f"{ROUTER}/hf-inference/models/intfloat/multilingual-e5-small/pipeline/feature-extraction"
    )
    assert _body(call) == {
        "inputs": ["query: a", "query: b"],
        "normalize": True,
        "truncate": False,
        "prompt_name": "query",
    }
    assert call.chunks == ()


def test_a_single_embedding_text_stays_a_string() -> None:
    assert _body(_call(operation="embeddings", input="one text")) == {"inputs": "one text"}


def test_embeddings_accept_an_inputs_object() -> None:
    assert _body(_call(operation="embeddings", input={"inputs": ["a", "b"]})) == {"inputs": ["a", "b"]}


@pytest.mark.parametrize("value", [[1, 2], ["a", 3], {"inputs": []}, {"text": "x"}])
def test_embeddings_need_strings(value: Any) -> None:
    with pytest.raises(InvalidInputError) as caught:
        _call(operation="embeddings", input=value)
    assert "string" in str(caught.value)


def test_chunked_embeddings_align_each_chunk_with_its_vector() -> None:
    long_text = " ".join(f"w{i}" for i in range(25))
    call = _call(
        operation="embeddings",
        model="sentence-transformers/all-MiniLM-L6-v2",
        input=[long_text, "short one"],
        chunkingStrategy="word",
        maxChunkSize=10,
        chunkOverlap=0,
    )
    sent = _body(call)["inputs"]
    assert sent == [
        " ".join(f"w{i}" for i in range(10)),
        " ".join(f"w{i}" for i in range(10, 20)),
        " ".join(f"w{i}" for i in range(20, 25)),
        "short one",
    ]
    vectors = [[float(i), 0.5] for i in range(len(sent))]
    body = call.result_variable(_result(vectors))["body"]
    assert [(item["inputIndex"], item["chunkIndex"]) for item in body] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    for item, text, vector in zip(body, sent, vectors, strict=True):
        assert item["text"] == text
        assert item["embedding"] == vector


def test_a_vector_count_that_does_not_match_the_chunks_is_left_as_it_came() -> None:
    call = _call(operation="embeddings", input=["a b c"], chunkingStrategy="sentence", maxChunkSize=10)
    assert call.result_variable(_result([[0.1], [0.2]]))["body"] == [[0.1], [0.2]]
    assert call.result_variable(_result({"error": "x"}, status=500))["body"] == {"error": "x"}
