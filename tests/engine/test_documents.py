"""The engine's /v2/documents endpoints over real HTTP: upload, download, delete, and each refusal."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx

from devkit.engine.server import EngineServer
from devkit.hf_standin import tiny_png

PNG = tiny_png()


async def _upload(
    http: httpx.AsyncClient, content: bytes, metadata: dict[str, object] | None = None, **query: str
) -> httpx.Response:
    files: dict[str, tuple[str | None, bytes, str]] = {"file": ("picture.png", content, "image/png")}
    if metadata is not None:
        files["metadata"] = (None, json.dumps(metadata).encode(), "application/json")
    return await http.post("/v2/documents", files=files, params=query)


async def test_an_uploaded_document_comes_back_byte_for_byte_with_its_reference(engine: EngineServer) -> None:
    async with httpx.AsyncClient(base_url=engine.rest_url) as http:
        created = await _upload(http, PNG, {"processInstanceKey": "42"})
        assert created.status_code == 201
        reference = created.json()
        assert reference["camunda.document.type"] == "camunda"
        assert reference["contentHash"] == hashlib.sha256(PNG).hexdigest()
        assert reference["metadata"] == {
            "contentType": "image/png",
            "fileName": "picture.png",
            "processInstanceKey": "42",
            "size": len(PNG),
        }
        fetched = await http.get(
            f"/v2/documents/{reference['documentId']}",
            params={"storeId": reference["storeId"], "contentHash": reference["contentHash"]},
        )
    assert fetched.status_code == 200
    assert fetched.content == PNG
    assert fetched.headers["content-type"] == "image/png"


async def test_a_wrong_content_hash_is_refused(engine: EngineServer) -> None:
    async with httpx.AsyncClient(base_url=engine.rest_url) as http:
        reference = (await _upload(http, PNG)).json()
        answer = await http.get(f"/v2/documents/{reference['documentId']}", params={"contentHash": "0" * 64})
    assert answer.status_code == 400
    assert "content hash" in answer.json()["detail"]


async def test_a_deleted_or_expired_document_is_not_found(engine: EngineServer) -> None:
    async with httpx.AsyncClient(base_url=engine.rest_url) as http:
        deleted = (await _upload(http, PNG)).json()["documentId"]
        assert (await http.delete(f"/v2/documents/{deleted}")).status_code == 204
        expired = (await _upload(http, PNG, {"expiresAt": "2000-01-01T00:00:00Z"})).json()["documentId"]
        for document_id in (deleted, expired, "never-created"):
            answer = await http.get(f"/v2/documents/{document_id}")
            assert answer.status_code == 404, document_id
            assert answer.headers["content-type"].startswith("application/problem+json")


async def test_an_upload_over_the_limit_answers_413_and_keeps_nothing(tmp_path: Path) -> None:
    server = await EngineServer(tmp_path, memory=True, document_max_bytes=1000).start()
    try:
        async with httpx.AsyncClient(base_url=server.rest_url) as http:
            answer = await _upload(http, b"x" * 200_000, documentId="too-big")
            assert answer.status_code == 413
            assert "1000 bytes" in answer.json()["detail"]
            assert (await http.get("/v2/documents/too-big")).status_code == 404
    finally:
        await server.stop()


async def test_documents_live_in_the_data_directory_across_restarts(tmp_path: Path) -> None:
    first = await EngineServer(tmp_path, memory=True).start()
    try:
        async with httpx.AsyncClient(base_url=first.rest_url) as http:
            reference = (await _upload(http, PNG, documentId="kept")).json()
            assert (await _upload(http, PNG, documentId="kept")).status_code == 409
    finally:
        await first.stop()
    second = await EngineServer(tmp_path, memory=True).start()
    try:
        async with httpx.AsyncClient(base_url=second.rest_url) as http:
            fetched = await http.get("/v2/documents/kept", params={"contentHash": reference["contentHash"]})
    finally:
        await second.stop()
    assert fetched.content == PNG


async def test_a_document_id_cannot_name_a_path(engine: EngineServer) -> None:
    async with httpx.AsyncClient(base_url=engine.rest_url) as http:
        answer = await _upload(http, PNG, documentId="../escape")
    assert answer.status_code == 400
