"""The Hugging Face stand-in, exercised with httpx against the running server."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devkit.hf_standin import (
    MIB,
    PNG_SIGNATURE,
    Fault,
    HfStandin,
    Oversized,
    Reply,
    tiny_png,
)

SUMMARIZER = "facebook/bart-large-cnn"
EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
CHAT_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
AUTH = {"Authorization": "Bearer hf_test_token"}


def task_path(model: str, task: str | None = None) -> str:
    return f"/hf-inference/models/{model}" + (f"/pipeline/{task}" if task else "")


@pytest.fixture(scope="module")
def hf() -> Iterator[HfStandin]:
    with HfStandin(trickle_interval=0.02) as standin:
        yield standin


@pytest.fixture(autouse=True)
def _fresh(hf: HfStandin) -> Iterator[None]:
    hf.reset()
    yield
    hf.latency = 0.0
    hf.reset()


@pytest.fixture
def client(hf: HfStandin) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hf.url, headers=AUTH, timeout=5.0) as http_client:
        yield http_client


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Decode our own RGB PNG enough to prove it is well formed (chunk CRCs, IHDR, IDAT size)."""
    assert data.startswith(PNG_SIGNATURE)
    offset, chunks = len(PNG_SIGNATURE), {}
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        tag, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(tag + body)
        chunks[tag] = body
        offset += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    raw = zlib.decompress(chunks[b"IDAT"])
    assert len(raw) == height * (1 + 3 * width)
    assert b"IEND" in chunks
    return width, height, raw


# ---- default shapes ----------------------------------------------------------------------------


def test_summarization_shape_and_router_headers(client: httpx.Client) -> None:
    response = client.post(task_path(SUMMARIZER), json={"inputs": "one two three four five six seven eight"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-inference-provider"] == "hf-inference"
    assert response.headers["x-compute-type"] == "cpu"
    assert float(response.headers["x-compute-time"]) >= 0.0
    assert response.headers["x-request-id"]
    [item] = response.json()
    assert isinstance(item["summary_text"], str) and item["summary_text"]


def test_text_to_image_returns_valid_png_by_accept_or_model_name(client: httpx.Client) -> None:
    by_accept = client.post(task_path("some-org/any-model"), json={"inputs": "a cat"}, headers={"Accept": "image/png"})
    by_name = client.post(
        task_path("black-forest-labs/FLUX.1-dev"), json={"inputs": "a cat", "parameters": {"width": 16}}
    )
    for response in (by_accept, by_name):
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(PNG_SIGNATURE)
    assert png_pixels(by_accept.content)[:2] == (8, 8)
    assert png_pixels(by_name.content)[:2] == (16, 8)


def test_text_to_speech_returns_flac(client: httpx.Client) -> None:
    response = client.post(task_path("espnet/kan-bayashi_ljspeech_vits-tts"), json={"inputs": "hello"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/flac"
    assert response.content.startswith(b"fLaC")


def test_image_to_text_accepts_raw_bytes_and_base64(client: httpx.Client) -> None:
    image = tiny_png()
    model = task_path("Salesforce/blip-image-captioning-large")
    raw = client.post(model, content=image, headers={"Content-Type": "image/png"})
    encoded = client.post(
        model, json={"inputs": base64.b64encode(image).decode(), "parameters": {"max_new_tokens": 20}}
    )
    for response in (raw, encoded):
        assert response.status_code == 200
        [item] = response.json()
        assert "png" in item["generated_text"]
    assert client.post(model, json={"inputs": "not base64!"}).status_code == 400


def test_other_task_shapes(client: httpx.Client) -> None:
    sentiment = client.post(
        task_path("distilbert/distilbert-base-uncased-finetuned-sst-2-english"), json={"inputs": "great"}
    ).json()
    assert {entry["label"] for entry in sentiment[0]} == {"POSITIVE", "NEGATIVE"}
    zero_shot = client.post(
        task_path("facebook/bart-large-mnli"),
        json={"inputs": "I love it", "parameters": {"candidate_labels": ["joy", "anger"]}},
    ).json()
    assert sorted(entry["label"] for entry in zero_shot) == ["anger", "joy"]
    answer = client.post(
        task_path("deepset/roberta-base-squad2"),
        json={"inputs": {"question": "Who?", "context": "Ada Lovelace wrote programs."}},
    ).json()
    assert set(answer) == {"answer", "score", "start", "end"}
    translation = client.post(task_path("Helsinki-NLP/opus-mt-en-fr"), json={"inputs": "hi"}).json()
    assert "translation_text" in translation[0]
    classified = client.post(
        task_path("google/vit-base-patch16-224"), content=tiny_png(), headers={"Content-Type": "image/png"}
    ).json()
    assert {"label", "score"} <= set(classified[0])


def test_generic_fallback_is_generated_text(client: httpx.Client) -> None:
    response = client.post(task_path("openai-community/gpt2"), json={"inputs": "Once upon a time"})
    assert response.status_code == 200
    assert response.json()[0]["generated_text"].startswith("Once upon a time")


def test_task_route_rejects_unknown_root_keys(client: httpx.Client) -> None:
    response = client.post(task_path(SUMMARIZER), json={"inputs": "x", "options": {"wait_for_model": True}})
    assert response.status_code == 422
    assert "options" in response.json()["error"]


def test_feature_extraction_single_and_batch(client: httpx.Client) -> None:
    path = task_path(EMBEDDER, "feature-extraction")
    single = client.post(path, json={"inputs": "hello world", "normalize": True, "truncate": True}).json()
    batch = client.post(path, json={"inputs": ["hello world", "something else"]}).json()
    assert len(single) == 1 and len(single[0]) == 384  # a single string still answers [[...]]
    assert len(batch) == 2
    assert batch[0] == single[0]  # deterministic
    assert batch[0] != batch[1]
    assert sum(value * value for value in single[0]) == pytest.approx(1.0, abs=1e-3)
    mpnet = client.post(
        task_path("sentence-transformers/all-mpnet-base-v2", "feature-extraction"), json={"inputs": "x"}
    )
    assert len(mpnet.json()[0]) == 768


@pytest.mark.parametrize("key", ["parameters", "options"])
def test_feature_extraction_rejects_unknown_root_keys(client: httpx.Client, key: str) -> None:
    response = client.post(task_path(EMBEDDER, "feature-extraction"), json={"inputs": "x", key: {}})
    assert response.status_code == 422
    assert key in response.json()["error"]


def test_sentence_similarity(client: httpx.Client) -> None:
    response = client.post(
        task_path(EMBEDDER, "sentence-similarity"),
        json={"inputs": {"source_sentence": "the cat sat", "sentences": ["the cat sat", "a dog ran", "cat"]}},
    )
    scores = response.json()
    assert response.status_code == 200 and len(scores) == 3
    assert scores[0] == pytest.approx(1.0, abs=1e-3)
    assert scores[2] > scores[1]


def test_chat_completion_shape(client: httpx.Client) -> None:
    body = {
        "model": f"{CHAT_MODEL}:novita",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "frequency_penalty": 0.0,
        "presence_penalty": 0.0,
        "stop": ["\n\n"],
        "seed": 7,
        "stream": False,
    }
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["x-inference-provider"] == "novita"
    data = response.json()
    assert data["object"] == "chat.completion" and data["id"] and isinstance(data["created"], int)
    assert data["model"] == f"{CHAT_MODEL}:novita"
    [choice] = data["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and "hello there" in choice["message"]["content"]
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_stream_and_validation(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": "hi"}]
    stream = client.post("/v1/chat/completions", json={"model": CHAT_MODEL, "messages": messages, "stream": True})
    assert stream.headers["content-type"] == "text/event-stream"
    assert stream.text.rstrip().endswith("data: [DONE]")
    missing = client.post("/v1/chat/completions", json={"model": CHAT_MODEL})
    assert missing.status_code == 422 and "messages" in missing.json()["error"]


SUMMARIZE_TOOL = {
    "type": "function",
    "function": {"name": "summarize", "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}},
}


def _chat(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": CHAT_MODEL, "stream": False, **body})


def test_offered_tools_are_called_until_a_tool_answers(client: httpx.Client) -> None:
    question = [{"role": "user", "content": "Summarize: the tower is tall."}]
    first = _chat(client, messages=question, tools=[SUMMARIZE_TOOL]).json()["choices"][0]
    assert first["finish_reason"] == "tool_calls" and first["message"]["content"] is None
    [call] = first["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "summarize"
    assert json.loads(call["function"]["arguments"]) == {"text": "Summarize: the tower is tall."}
    answered = [*question, first["message"], {"role": "tool", "tool_call_id": call["id"], "content": "Tall tower."}]
    final = _chat(client, messages=answered, tools=[SUMMARIZE_TOOL]).json()["choices"][0]
    assert final["finish_reason"] == "stop" and "Tall tower." in final["message"]["content"]
    forced = _chat(client, messages=answered, tools=[SUMMARIZE_TOOL], tool_choice="required").json()["choices"][0]
    assert forced["finish_reason"] == "tool_calls"
    none = _chat(client, messages=question, tools=[SUMMARIZE_TOOL], tool_choice="none").json()["choices"][0]
    assert none["finish_reason"] == "stop"


def test_a_json_schema_is_answered_with_an_instance_taken_from_the_text(client: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "email": {"type": "string"}, "amount": {"type": "number"}},
    }
    text = "Invoice from Ada Lovelace (ada@example.com) over 120.50 EUR."
    response_format = {"type": "json_schema", "json_schema": {"name": "invoice", "schema": schema}}
    messages = [{"role": "user", "content": text}]
    content = _chat(client, messages=messages, response_format=response_format).json()["choices"][0]["message"]
    assert json.loads(content["content"]) == {"name": "Ada Lovelace", "email": "ada@example.com", "amount": 120.5}
    json_object = _chat(client, messages=messages, response_format={"type": "json_object"}).json()
    assert isinstance(json.loads(json_object["choices"][0]["message"]["content"]), dict)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"tools": [{"type": "retrieval"}]}, "`tools`"),
        ({"tool_choice": "auto"}, "only allowed when `tools`"),
        ({"tools": [SUMMARIZE_TOOL], "tool_choice": {"type": "function", "function": {"name": "x"}}}, "not in"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}, "tool_call_id"),
    ],
)
def test_what_openai_refuses_about_tools_is_refused(client: httpx.Client, extra: dict[str, Any], words: str) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], **extra}
    response = _chat(client, **body)
    assert response.status_code == 422 and words in response.json()["error"]


def test_a_scripted_chat_answer_replaces_the_default(hf: HfStandin, client: httpx.Client) -> None:
    hf.script(CHAT_MODEL, Reply.chat("not JSON at all"))
    response = _chat(client, messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"})
    [choice] = response.json()["choices"]
    assert choice["message"] == {"role": "assistant", "content": "not JSON at all"}
    assert choice["finish_reason"] == "stop"


def test_legacy_layout_answers_410_with_router_hint(client: httpx.Client) -> None:
    response = client.post(f"/models/{SUMMARIZER}", json={"inputs": "x"})
    assert response.status_code == 410
    assert "router.huggingface.co" in response.json()["error"]


def test_auth_is_required(hf: HfStandin) -> None:
    response = httpx.post(hf.url + task_path(SUMMARIZER), json={"inputs": "x"})
    assert response.status_code == 401
    assert response.json()["error"]
    basic = httpx.post(hf.url + task_path(SUMMARIZER), json={"inputs": "x"}, headers={"Authorization": "Basic x"})
    assert basic.status_code == 401


def test_valid_tokens_restricts_accepted_tokens() -> None:
    with HfStandin(valid_tokens={"hf_good"}) as standin:
        path = standin.url + task_path(SUMMARIZER)
        bad = httpx.post(path, json={"inputs": "x"}, headers={"Authorization": "Bearer hf_bad"})
        good = httpx.post(path, json={"inputs": "x"}, headers={"Authorization": "Bearer hf_good"})
    assert (bad.status_code, good.status_code) == (401, 200)


# ---- scripting ---------------------------------------------------------------------------------


def test_scripted_replies_are_consumed_in_order_then_default(hf: HfStandin, client: httpx.Client) -> None:
    hf.script(
        SUMMARIZER,
        Reply.loading(estimated_time=1.5),
        Reply.rate_limited(retry_after=3),
        Reply.error(404, "Model not found"),
        Reply(json={"custom": True}, headers={"X-Extra": "1"}),
    )
    assert hf.pending(SUMMARIZER) == 4
    responses = [client.post(task_path(SUMMARIZER), json={"inputs": "x"}) for _ in range(5)]
    assert [r.status_code for r in responses] == [503, 429, 404, 200, 200]
    assert responses[0].json() == {"error": f"Model {SUMMARIZER} is currently loading", "estimated_time": 1.5}
    assert responses[1].headers["retry-after"] == "3"
    assert responses[2].json() == {"error": "Model not found"}
    assert responses[3].json() == {"custom": True} and responses[3].headers["x-extra"] == "1"
    assert "summary_text" in responses[4].json()[0]
    assert hf.pending(SUMMARIZER) == 0


def test_rate_limit_header_variants(hf: HfStandin, client: httpx.Client) -> None:
    hf.script(SUMMARIZER, Reply.rate_limited(ratelimit_header=True), Reply.rate_limited())
    with_ratelimit = client.post(task_path(SUMMARIZER), json={"inputs": "x"})
    bare = client.post(task_path(SUMMARIZER), json={"inputs": "x"})
    assert with_ratelimit.headers["ratelimit"] == '"api";r=0;t=55'
    assert "retry-after" not in with_ratelimit.headers
    assert bare.status_code == 429
    assert "retry-after" not in bare.headers and "ratelimit" not in bare.headers


def test_script_matches_chat_model_path_and_wildcard(hf: HfStandin, client: httpx.Client) -> None:
    hf.script(CHAT_MODEL, Reply.error(402, "credits exhausted"))
    hf.script("/custom/endpoint", Reply(status=504))
    hf.script("*", Reply(status=418, body=b"teapot", headers={"content-type": "text/plain"}))
    chat = client.post("/v1/chat/completions", json={"model": f"{CHAT_MODEL}:fastest", "messages": []})
    custom = client.post("/custom/endpoint", json={"inputs": "x"})
    anything = client.post(task_path("other/model"), json={"inputs": "x"})
    assert (chat.status_code, custom.status_code, anything.status_code) == (402, 504, 418)
    assert anything.text == "teapot" and anything.headers["content-type"] == "text/plain"


def test_echo_reply_returns_the_request_secret(hf: HfStandin, client: httpx.Client) -> None:
    hf.script(SUMMARIZER, Reply.echo(status=400))
    response = client.post(task_path(SUMMARIZER), json={"inputs": "secret-in-body"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "hf_test_token" in error and "secret-in-body" in error
    assert response.json()["echo"]["headers"]["authorization"] == "Bearer hf_test_token"


# ---- faults ------------------------------------------------------------------------------------


def test_fault_reset(hf: HfStandin, client: httpx.Client) -> None:
    hf.script(SUMMARIZER, Fault.RESET)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        client.post(task_path(SUMMARIZER), json={"inputs": "x"})
    assert client.post(task_path(SUMMARIZER), json={"inputs": "x"}).status_code == 200


def test_fault_truncated(hf: HfStandin, client: httpx.Client) -> None:
    hf.script(SUMMARIZER, Fault.TRUNCATED)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(task_path(SUMMARIZER), json={"inputs": "x"})


def test_fault_hang(hf: HfStandin) -> None:
    hf.script(SUMMARIZER, Fault.HANG)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(hf.url + task_path(SUMMARIZER), json={"inputs": "x"}, headers=AUTH, timeout=0.3)
    assert hf.outcomes == {Fault.HANG: 1}


def test_fault_never_ends_keeps_trickling(hf: HfStandin, client: httpx.Client) -> None:
    hf.script(SUMMARIZER, Fault.NEVER_ENDS)
    pieces: list[bytes] = []
    with client.stream("POST", task_path(SUMMARIZER), json={"inputs": "x"}, timeout=1.0) as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        for piece in response.iter_raw():
            pieces.append(piece)
            if len(pieces) == 5:
                break
    assert b"".join(pieces).startswith(b'[{"generated_text": "more')


async def test_fault_never_ends_defeats_a_read_timeout(hf: HfStandin) -> None:
    hf.script(SUMMARIZER, Fault.NEVER_ENDS)
    async with httpx.AsyncClient(base_url=hf.url, headers=AUTH, timeout=0.2) as client:
        with pytest.raises(TimeoutError):  # only an overall deadline stops it
            await asyncio.wait_for(client.post(task_path(SUMMARIZER), json={"inputs": "x"}), 0.5)


def test_fault_invalid_json_and_wrong_content_type(hf: HfStandin, client: httpx.Client) -> None:
    hf.script(SUMMARIZER, Fault.INVALID_JSON, Fault.WRONG_CONTENT_TYPE)
    invalid = client.post(task_path(SUMMARIZER), json={"inputs": "x"})
    assert invalid.status_code == 200 and invalid.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        invalid.json()
    wrong = client.post(task_path(SUMMARIZER), json={"inputs": "x"})
    assert wrong.status_code == 200 and wrong.headers["content-type"].startswith("text/html")


def test_fault_oversized_sizes(hf: HfStandin, client: httpx.Client) -> None:
    hf.script(SUMMARIZER, Oversized(3 * MIB), Oversized(MIB, content_type="image/png", chunked=True))
    full = client.post(task_path(SUMMARIZER), json={"inputs": "x"})
    assert len(full.content) == 3 * MIB and full.json()[0]["generated_text"].startswith("xxx")
    chunked = client.post(task_path(SUMMARIZER), json={"inputs": "x"})
    assert chunked.headers["transfer-encoding"] == "chunked" and len(chunked.content) == MIB


def test_fault_oversized_default_is_50_mib_and_can_be_abandoned(hf: HfStandin, client: httpx.Client) -> None:
    hf.script(SUMMARIZER, Fault.OVERSIZED)
    received = 0
    with client.stream("POST", task_path(SUMMARIZER), json={"inputs": "x"}) as response:
        assert int(response.headers["content-length"]) == 50 * MIB
        for piece in response.iter_raw():
            received += len(piece)
            if received >= MIB:
                break
    assert received >= MIB


# ---- latency, recording, lifecycle -------------------------------------------------------------


def test_latency_and_delay_are_applied(hf: HfStandin, client: httpx.Client) -> None:
    hf.latency = 0.15
    started = time.monotonic()
    client.post(task_path(SUMMARIZER), json={"inputs": "x"})
    assert time.monotonic() - started >= 0.15
    hf.latency = 0.0
    hf.script(SUMMARIZER, Reply(json=[], delay=0.15))
    started = time.monotonic()
    response = client.post(task_path(SUMMARIZER), json={"inputs": "x"})
    assert time.monotonic() - started >= 0.15
    assert float(response.headers["x-compute-time"]) >= 0.15


async def test_requests_are_served_concurrently(hf: HfStandin) -> None:
    hf.latency = 0.2
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=hf.url, headers=AUTH, limits=limits) as client:
        started = time.monotonic()
        calls = [client.post(task_path(SUMMARIZER), json={"inputs": str(i)}) for i in range(16)]
        responses = await asyncio.gather(*calls)
    assert all(r.status_code == 200 for r in responses)
    assert time.monotonic() - started < 0.8
    assert hf.peak_in_flight == 16


def test_recording(hf: HfStandin, client: httpx.Client) -> None:
    client.post(task_path(SUMMARIZER), json={"inputs": "a"}, headers={"X-Wait-For-Model": "true"})
    client.post(task_path(EMBEDDER, "feature-extraction"), json={"inputs": "b"})
    client.post("/v1/chat/completions?x=1", json={"model": f"{CHAT_MODEL}:cheapest", "messages": [{"role": "user"}]})
    recorded = hf.wait_for_requests(3, timeout=2.0)
    assert [r.model for r in recorded] == [SUMMARIZER, EMBEDDER, f"{CHAT_MODEL}:cheapest"]
    first = recorded[0]
    assert first.method == "POST" and first.path == task_path(SUMMARIZER)
    assert first.headers["x-wait-for-model"] == "true" and first.headers["authorization"] == AUTH["Authorization"]
    assert first.json == {"inputs": "a"} and json.loads(first.body) == {"inputs": "a"}
    assert recorded[0].timestamp <= recorded[1].timestamp <= recorded[2].timestamp
    assert recorded[2].query == "x=1"
    assert hf.requests_for(CHAT_MODEL) == [recorded[2]]
    assert hf.requests_for(task_path(EMBEDDER, "feature-extraction")) == [recorded[1]]
    assert hf.request_count == 3 and hf.outcomes == {200: 3}
    with pytest.raises(TimeoutError):
        hf.wait_for_requests(4, timeout=0.05)
    hf.reset()
    assert hf.requests == [] and hf.request_count == 0


def test_wait_for_requests_wakes_up_on_arrival(hf: HfStandin, client: httpx.Client) -> None:
    hf.script(SUMMARIZER, Fault.HANG)
    with httpx.Client(base_url=hf.url, headers=AUTH, timeout=0.5) as hanging:
        with pytest.raises(httpx.ReadTimeout):
            hanging.post(task_path(SUMMARIZER), json={"inputs": "recorded before the answer"})
        [recorded] = hf.wait_for_requests(1, timeout=0.1)
    assert recorded.json == {"inputs": "recorded before the answer"}


def test_record_false_only_counts() -> None:
    with HfStandin(record=False, require_auth=False) as standin, httpx.Client(base_url=standin.url) as client:
        for _ in range(3):
            client.post(task_path(SUMMARIZER), json={"inputs": "x"})
        assert standin.wait_for_requests(3, timeout=1.0) == []
        assert standin.request_count == 3 and standin.requests == []
        assert standin.connections == 1  # keep-alive


def test_stop_is_prompt_with_open_connections_and_frees_the_port() -> None:
    standin = HfStandin().start()
    standin.script("*", Fault.HANG)
    hanging = socket.create_connection(("127.0.0.1", standin.port))
    hanging.sendall(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
    standin.wait_for_requests(1, timeout=2.0)
    started = time.monotonic()
    standin.stop()
    assert time.monotonic() - started < 1.0
    assert hanging.recv(1) == b""  # the server closed the connection
    hanging.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", standin.port), timeout=1.0)
