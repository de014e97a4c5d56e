"""Documents through the worker's REST client against the development engine's /v2/documents (real HTTP on
loopback): references found where binary inputs go, downloads and uploads, and every refusal's message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest
from aiohttp import web

from devkit.engine.server import EngineServer
from devkit.hf_standin import HfStandin, tiny_png
from hf_connector.documents import ClientCredentials, DocumentClient, DocumentError, parse_reference, store_address
from hf_connector.http_core import HttpCore
from hf_connector.huggingface.binary import BinaryInput
from hf_connector.huggingface.contract import JobVariables
from hf_connector.huggingface.documents import file_name, with_documents
from hf_connector.huggingface.ratelimit import RateLimiter
from hf_connector.huggingface.requests import HfDefaults
from hf_connector.jobs import Complete, Fail, JobContext, JobHandler
from hf_connector.secrets import Masker, SecretResolver
from tests.support.flaky_store import FlakyStore

PNG = tiny_png(16, 16)
MAX_INPUT = 64 * 1024


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    server = await EngineServer(None, memory=True, document_max_bytes=100_000).start()
    yield server
    await server.stop()


@pytest.fixture
async def client(engine: EngineServer) -> AsyncIterator[DocumentClient]:
    documents = DocumentClient(store_address(engine.rest_url, None, "bru-2") or "", first_backoff_seconds=0.01)
    yield documents
    await documents.aclose()


@pytest.fixture(scope="module")
def hf() -> Iterator[HfStandin]:
    with HfStandin(require_auth=False) as standin:
        yield standin


async def _stored(client: DocumentClient, content: bytes = PNG, content_type: str = "image/png") -> dict[str, Any]:
    return await client.upload(content, {"contentType": content_type, "fileName": "in.png"})


# --- the client ---------------------------------------------------------------------------------------


async def test_an_uploaded_document_downloads_byte_for_byte(client: DocumentClient) -> None:
    reference = await _stored(client)
    assert reference["metadata"]["contentType"] == "image/png"
    assert await client.download(parse_reference(reference), MAX_INPUT, "LIMIT") == PNG


async def test_a_missing_document_is_named_and_not_retried(client: DocumentClient) -> None:
    reference = {**(await _stored(client)), "documentId": "gone-for-good"}
    with pytest.raises(DocumentError) as caught:
        await client.download(parse_reference(reference), MAX_INPUT, "LIMIT")
    assert caught.value.code == "DOCUMENT_NOT_FOUND"
    assert not caught.value.retryable
    assert "'gone-for-good'" in str(caught.value) and "does not exist or has expired" in str(caught.value)


async def test_a_reference_whose_hash_does_not_match_is_refused(client: DocumentClient) -> None:
    reference = {**(await _stored(client)), "contentHash": "0" * 64}
    with pytest.raises(DocumentError) as caught:
        await client.download(parse_reference(reference), MAX_INPUT, "LIMIT")
    assert (caught.value.code, caught.value.retryable) == ("DOCUMENT_HASH_MISMATCH", False)


@pytest.mark.parametrize("declared_size", [True, False], ids=["by-metadata", "by-content"])
async def test_a_download_over_the_input_limit_stops_and_names_the_setting(
    client: DocumentClient, declared_size: bool
) -> None:
    reference = await _stored(client, b"x" * 5000, "audio/flac")
    if not declared_size:
        reference["metadata"].pop("size")
    with pytest.raises(DocumentError) as caught:
        await client.download(parse_reference(reference), 1024, "HF_CONNECTOR_MAX_INPUT_BYTES")
    assert caught.value.code == "DOCUMENT_TOO_LARGE"
    assert "HF_CONNECTOR_MAX_INPUT_BYTES" in str(caught.value) and "1024" in str(caught.value)


async def test_an_upload_above_the_stores_limit_fails_without_retry(client: DocumentClient) -> None:
    with pytest.raises(DocumentError) as caught:
        await _stored(client, b"x" * 150_000, "image/png")
    assert (caught.value.code, caught.value.retryable) == ("DOCUMENT_TOO_LARGE", False)
    assert "150000 bytes" in str(caught.value) and "binaryResult to inline" in str(caught.value)


async def test_a_store_answering_5xx_is_retried_with_backoff(engine: EngineServer) -> None:
    async with FlakyStore(engine.rest_url, failures=2) as flaky:
        documents = DocumentClient(f"{flaky.url}/v2", attempts=3, first_backoff_seconds=0.01)
        try:
            reference = await _stored(documents)
        finally:
            await documents.aclose()
    assert [method for method, _ in flaky.received] == ["POST", "POST", "POST"]
    assert reference["metadata"]["size"] == len(PNG)


async def test_a_store_that_stays_down_is_a_retryable_failure(engine: EngineServer) -> None:
    async with FlakyStore(engine.rest_url, failures=100) as flaky:
        documents = DocumentClient(f"{flaky.url}/v2", attempts=2, first_backoff_seconds=0.01)
        try:
            with pytest.raises(DocumentError) as caught:
                await documents.download(parse_reference(await _reference_for(engine)), MAX_INPUT, "LIMIT")
        finally:
            await documents.aclose()
    assert (caught.value.code, caught.value.retryable) == ("DOCUMENT_STORE_UNAVAILABLE", True)
    assert "503" in str(caught.value) and "2 attempts" in str(caught.value)


async def _reference_for(engine: EngineServer) -> dict[str, Any]:
    return engine.documents.create(PNG, {"contentType": "image/png"})


def test_the_store_address_follows_the_settings() -> None:
    assert store_address("http://127.0.0.1:8080", None, "bru-2") == "http://127.0.0.1:8080/v2"
    assert store_address("https://camunda.example.com/v2/", "ignored", "bru-2") == "https://camunda.example.com/v2"
    assert store_address(None, "abc-123", "jfk-1") == "https://jfk-1.zeebe.camunda.io/abc-123/v2"
    assert store_address("  ", None, "bru-2") is None


def test_a_reference_of_another_kind_is_a_clear_modelling_error() -> None:
    with pytest.raises(DocumentError, match="only Camunda document references"):
        parse_reference({"camunda.document.type": "external", "url": "https://example.com/a.png"})
    with pytest.raises(DocumentError, match="no documentId"):
        parse_reference({"camunda.document.type": "camunda"})


def test_file_names_come_from_the_model_and_the_content_type() -> None:
    assert file_name("stabilityai/stable-diffusion-2", "image/png") == "stable-diffusion-2.png"
    assert file_name("facebook/mms-tts-eng", "audio/flac") == "mms-tts-eng.flac"
    assert file_name("https://secret-endpoint.example.com/models/x", "image/jpeg") == "hugging-face.jpg"


# --- where references are found ------------------------------------------------------------------------


def _reference(document_id: str) -> dict[str, Any]:
    return {"camunda.document.type": "camunda", "documentId": document_id, "metadata": {"contentType": "image/png"}}


async def test_references_are_replaced_wherever_binary_input_is_accepted() -> None:
    async def fetch(value: Mapping[str, Any]) -> BinaryInput:
        return BinaryInput(value["documentId"].encode(), "image/png")

    whole = JobVariables(model="m/n", input=_reference("whole"))
    inputs = JobVariables(model="m/n", input={"inputs": _reference("inner"), "parameters": {"x": 1}})
    chat = JobVariables(
        operation="chat",
        model="m/n",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": _reference("bare")},
                    {"type": "image_url", "image_url": {"url": _reference("wrapped"), "detail": "low"}},
                ],
            }
        ],
    )
    assert (await with_documents(whole, fetch)).input == {"data": "d2hvbGU=", "contentType": "image/png"}
    assert (await with_documents(inputs, fetch)).input == {
        "inputs": {"data": "aW5uZXI=", "contentType": "image/png"},
        "parameters": {"x": 1},
    }
    parts = (await with_documents(chat, fetch)).messages[0].content  # type: ignore[index]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,YmFyZQ=="}}
    assert parts[2] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,d3JhcHBlZA==", "detail": "low"},
    }


async def test_several_references_are_fetched_at_the_same_time() -> None:
    started: set[str] = set()
    both = asyncio.Event()

    async def fetch(value: Mapping[str, Any]) -> BinaryInput:
        started.add(value["documentId"])
        if len(started) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), timeout=5)  # one at a time would never see the other start
        return BinaryInput(b"x", "image/png")

    chat = JobVariables(
        operation="chat",
        model="m/n",
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": _reference(n)} for n in ("a", "b")]}],
    )
    await with_documents(chat, fetch)
    assert started == {"a", "b"}


# --- a job from reference to result ---------------------------------------------------------------------


def _handler(hf: HfStandin, documents: DocumentClient | None) -> JobHandler:
    masker = Masker([])
    return JobHandler(
        http=HttpCore(max_response_bytes=2 * 1024 * 1024),
        secrets=SecretResolver([], masker),
        masker=masker,
        defaults=HfDefaults(router_url=hf.url, default_token=None, read_timeout=10, max_input_bytes=MAX_INPUT),
        limiter=RateLimiter(0),
        max_message_chars=2000,
        max_retry_after_seconds=10,
        documents=documents,
    )


def _job(variables: dict[str, Any], binary_result: str = "inline") -> JobContext:
    return JobContext(
        key=1,
        retries=3,
        variables=variables,
        headers={"resultVariable": "result", "binaryResult": binary_result},
        process_instance_key=2251799813685249,
        bpmn_process_id="captioning",
    )


async def test_a_job_sends_the_documents_bytes_and_stores_a_binary_answer(
    hf: HfStandin, client: DocumentClient
) -> None:
    reference = await _stored(client)
    caption = await _handler(hf, client).handle(
        _job({"model": "Salesforce/blip-image-captioning-base", "task": "image-to-text", "input": reference})
    )
    assert isinstance(caption.outcome, Complete)
    assert hf.requests_for("Salesforce/blip-image-captioning-base")[-1].body == PNG

    generated = await _handler(hf, client).handle(
        _job({"model": "stabilityai/stable-diffusion-2", "task": "text-to-image", "input": "a cat"}, "document")
    )
    assert isinstance(generated.outcome, Complete)
    body = generated.outcome.variables["result"]["body"]
    assert body["metadata"] == {
        "contentType": "image/png",
        "fileName": "stable-diffusion-2.png",
        "size": body["metadata"]["size"],
        "processDefinitionId": "captioning",
        "processInstanceKey": "2251799813685249",
    }
    content = await client.download(parse_reference(body), MAX_INPUT, "LIMIT")
    assert content.startswith(b"\x89PNG") and len(content) == body["metadata"]["size"]


async def test_without_a_store_a_reference_fails_the_job_naming_the_setting(hf: HfStandin) -> None:
    for job in (
        _job({"model": "Salesforce/blip-image-captioning-base", "input": _reference("x")}),
        _job({"model": "stabilityai/stable-diffusion-2", "task": "text-to-image", "input": "a cat"}, "document"),
    ):
        outcome = (await _handler(hf, None).handle(job)).outcome
        assert isinstance(outcome, Fail)
        assert (outcome.retries, outcome.code) == (0, "DOCUMENTS_OFF")
        assert "CAMUNDA_REST_ADDRESS" in outcome.message


async def test_a_document_failure_fails_the_job_at_once_and_names_no_content(
    hf: HfStandin, client: DocumentClient
) -> None:
    reference = {**(await _stored(client)), "contentHash": "f" * 64}
    outcome = (await _handler(hf, client).handle(_job({"model": "Salesforce/blip", "input": reference}))).outcome
    assert isinstance(outcome, Fail)
    assert (outcome.retries, outcome.code) == (0, "DOCUMENT_HASH_MISMATCH")
    assert "contentHash" in outcome.message


# --- OAuth ----------------------------------------------------------------------------------------------


async def test_the_store_is_called_with_a_client_credentials_token_that_no_message_shows() -> None:
    tokens_issued: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        form = dict(await request.post())
        tokens_issued.append({k: str(v) for k, v in form.items()})
        if form.get("client_secret") != "right-secret":
            return web.json_response({"error": "invalid_client", "echo": form}, status=401)
        return web.json_response({"access_token": "token-abc-123", "expires_in": 300})

    async def document(request: web.Request) -> web.Response:
        if request.headers.get("authorization") != "Bearer token-abc-123":
            return web.json_response({"title": "UNAUTHORIZED"}, status=401)
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.add_routes([web.post("/token", token), web.get("/v2/documents/{id}", document)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    reference = parse_reference(_reference("doc-1"))
    try:
        for secret in ("right-secret", "wrong-secret"):
            credentials = ClientCredentials("worker", secret, f"{base}/token", "zeebe-api")
            documents = DocumentClient(f"{base}/v2", credentials=credentials)
            try:
                if secret == "right-secret":
                    assert await documents.download(reference, MAX_INPUT, "LIMIT") == PNG
                    assert await documents.download(reference, MAX_INPUT, "LIMIT") == PNG
                else:
                    with pytest.raises(DocumentError) as caught:
                        await documents.download(reference, MAX_INPUT, "LIMIT")
                    assert caught.value.code == "DOCUMENT_STORE_UNAUTHORIZED"
                    assert "CAMUNDA_CLIENT_SECRET" in str(caught.value) and secret not in str(caught.value)
            finally:
                await documents.aclose()
    finally:
        await runner.cleanup()
    assert [issued["client_secret"] for issued in tokens_issued] == ["right-secret", "wrong-secret"], (
        "one token serves both downloads"
    )
    assert tokens_issued[0] == {
        "grant_type": "client_credentials",
        "client_id": "worker",
        "client_secret": "right-secret",
        "audience": "zeebe-api",
    }
