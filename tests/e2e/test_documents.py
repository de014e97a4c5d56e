"""Camunda documents end to end: a PNG uploaded to the engine's /v2/documents reaches Hugging Face byte for byte,
a generated image comes back as a document, and each document failure ends as the incident it should."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyzeebe import ZeebeClient

from devkit.engine.server import EngineServer
from devkit.engines import REST_ADDRESS_ENV
from devkit.hf_standin import PNG_SIGNATURE, HfStandin, tiny_png
from tests.support.bpmn import connector_process, feel_string, unique_process_id
from tests.support.connector import Connector
from tests.support.flaky_store import FlakyStore
from tests.support.records import ZeebeRecords
from tests.support.zeebe_helpers import deploy_xml, run_to_end

pytestmark = pytest.mark.e2e

PNG = tiny_png(12, 10, (10, 200, 90))
CAPTIONER = "Salesforce/blip-image-captioning-base"
PAINTER = "stabilityai/stable-diffusion-2"


@pytest.fixture(scope="session")
def rest_url(zeebe_address: str) -> str:
    url = os.environ.get(REST_ADDRESS_ENV, "").strip()
    if not url:
        pytest.fail(f"the session engine has no REST API ({REST_ADDRESS_ENV} is unset)", pytrace=False)
    return url


def _worker(zeebe_address: str, hf: HfStandin, log_dir: Path, name: str, rest: str) -> Connector:
    return Connector(
        zeebe_address=zeebe_address,
        hf_url=hf.url,
        job_type=f"hugging-face-documents-{name}-{unique_process_id('w')}",
        log_path=log_dir / f"{name}.log",
        env={"CAMUNDA_REST_ADDRESS": rest, "SECRET_HUGGING_FACE_TOKEN": "hf_documentsSuiteToken"},
    )


@pytest.fixture(scope="module")
def documents_worker(
    zeebe_address: str, hf: HfStandin, rest_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Connector]:
    worker = _worker(zeebe_address, hf, tmp_path_factory.mktemp("documents"), "store", rest_url).start()
    yield worker
    worker.stop()


async def upload(rest: str, content: bytes, content_type: str = "image/png") -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=rest) as http:
        answer = await http.post("/v2/documents", files={"file": ("upload.png", content, content_type)})
    assert answer.status_code == 201, answer.text
    reference: dict[str, Any] = answer.json()
    return reference


async def download(rest: str, reference: dict[str, Any]) -> bytes:
    async with httpx.AsyncClient(base_url=rest) as http:
        answer = await http.get(
            f"/v2/documents/{reference['documentId']}",
            params={"storeId": reference["storeId"], "contentHash": reference["contentHash"]},
        )
    assert answer.status_code == 200, answer.text
    return answer.content


async def _deploy_captioning(zeebe: ZeebeClient, worker: Connector, bpmn_dir: Path, model: str) -> str:
    process_id = unique_process_id("captioning")
    xml = connector_process(
        process_id,
        worker.job_type,
        inputs={
            "authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}",
            "model": feel_string(model),
            "task": "image-to-text",
            "input": "=image",
        },
        headers={"resultVariable": "result", "resultExpression": '{"caption": body[0].generated_text}'},
        retries=3,
    )
    await deploy_xml(zeebe, xml, bpmn_dir, process_id)
    return process_id


async def _deploy_painting(zeebe: ZeebeClient, worker: Connector, bpmn_dir: Path, binary_result: str) -> str:
    process_id = unique_process_id("painting")
    xml = connector_process(
        process_id,
        worker.job_type,
        inputs={
            "authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}",
            "model": feel_string(PAINTER),
            "task": "text-to-image",
            "input": "={inputs: prompt, parameters: {width: 64, height: 64}}",
        },
        headers={"resultVariable": "result", "binaryResult": binary_result},
    )
    await deploy_xml(zeebe, xml, bpmn_dir, process_id)
    return process_id


async def test_an_uploaded_png_reaches_hugging_face_byte_for_byte(
    zeebe: ZeebeClient, documents_worker: Connector, hf: HfStandin, rest_url: str, bpmn_dir: Path
) -> None:
    model = f"{CAPTIONER}-{unique_process_id('m')}"
    reference = await upload(rest_url, PNG)
    process_id = await _deploy_captioning(zeebe, documents_worker, bpmn_dir, model)

    variables = await run_to_end(zeebe, process_id, {"image": reference})

    request = hf.requests_for(model)[-1]
    assert request.body == PNG
    assert request.headers["content-type"] == "image/png"
    assert variables["caption"] == f"a small png picture of {len(PNG)} bytes"


async def test_a_generated_image_comes_back_as_a_document_with_the_standins_png(
    zeebe: ZeebeClient, documents_worker: Connector, rest_url: str, bpmn_dir: Path
) -> None:
    as_document = await _deploy_painting(zeebe, documents_worker, bpmn_dir, "document")
    inline = await _deploy_painting(zeebe, documents_worker, bpmn_dir, "inline")
    prompt = {"prompt": f"a lighthouse {unique_process_id('p')}"}

    stored = (await run_to_end(zeebe, as_document, prompt))["result"]["body"]
    inlined = (await run_to_end(zeebe, inline, prompt))["result"]["body"]

    assert stored["camunda.document.type"] == "camunda"
    assert stored["metadata"]["contentType"] == "image/png"
    assert stored["metadata"]["fileName"] == "stable-diffusion-2.png"
    assert stored["metadata"]["processDefinitionId"] == as_document
    content = await download(rest_url, stored)
    assert content.startswith(PNG_SIGNATURE)
    assert content == base64.b64decode(inlined["data"])


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        ({"documentId": "never-uploaded"}, "does not exist or has expired"),
        ({"contentHash": "0" * 64}, "contentHash of the reference"),
    ],
    ids=["missing", "hash-mismatch"],
)
async def test_a_bad_reference_raises_an_incident_at_once(
    zeebe: ZeebeClient,
    documents_worker: Connector,
    hf: HfStandin,
    records: ZeebeRecords,
    rest_url: str,
    bpmn_dir: Path,
    spoil: dict[str, str],
    expected: str,
) -> None:
    model = f"{CAPTIONER}-{unique_process_id('m')}"
    reference = {**(await upload(rest_url, PNG)), **spoil}
    process_id = await _deploy_captioning(zeebe, documents_worker, bpmn_dir, model)

    created = await zeebe.run_process(process_id, {"image": reference})

    incident = records.incident(created.process_instance_key)
    assert expected in incident["errorMessage"]
    assert len(records.job_failures(created.process_instance_key)) == 1, "no retry: the reference will not heal"
    assert not hf.requests_for(model), "nothing goes to Hugging Face without the document"
    assert base64.b64encode(PNG).decode() not in documents_worker.log_text()


async def _incident(records: ZeebeRecords, process_instance_key: int, timeout: float = 30.0) -> dict[str, Any]:
    """As `records.incident`, without blocking the event loop that serves the test's own document store."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = records.matching("INCIDENT", "CREATED", processInstanceKey=process_instance_key)
        if found:
            value: dict[str, Any] = found[0]["value"]
            return value
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no incident for process instance {process_instance_key} within {timeout} s")


@pytest.fixture
async def small_store() -> AsyncIterator[EngineServer]:
    store = await EngineServer(None, memory=True, document_max_bytes=100).start()
    yield store
    await store.stop()


async def test_a_store_answering_5xx_is_retried_and_an_oversized_upload_is_an_incident(
    zeebe: ZeebeClient,
    zeebe_address: str,
    hf: HfStandin,
    records: ZeebeRecords,
    small_store: EngineServer,
    bpmn_dir: Path,
    tmp_path: Path,
) -> None:
    async with FlakyStore(small_store.rest_url, failures=2) as flaky:
        worker = _worker(zeebe_address, hf, tmp_path, "flaky", flaky.url).start()
        try:
            caption = await _deploy_captioning(zeebe, worker, bpmn_dir, f"{CAPTIONER}-{unique_process_id('m')}")
            reference = small_store.documents.create(PNG, {"contentType": "image/png"})
            variables = await run_to_end(zeebe, caption, {"image": reference})
            assert [method for method, _ in flaky.received] == ["GET", "GET", "GET"]
            assert variables["caption"].endswith(f"{len(PNG)} bytes")

            painting = await _deploy_painting(zeebe, worker, bpmn_dir, "document")
            created = await zeebe.run_process(painting, {"prompt": "too big for this store"})
            incident = await _incident(records, created.process_instance_key)
        finally:
            worker.stop()
    assert "larger than the document store accepts" in incident["errorMessage"]
    assert len(records.job_failures(created.process_instance_key)) == 1
