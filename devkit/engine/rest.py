"""The REST side: the few Orchestration Cluster API (v2) endpoints that operations tests and people use to
look at and repair instances. Keys travel as strings, errors as RFC 9457 problem JSON, as Camunda's do."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import BodyPartReader, web

from devkit.engine.documents import DocumentError, DocumentStore
from devkit.engine.engine import Engine, EngineError

_STATUS = {
    "NOT_FOUND": 404,
    "FAILED_PRECONDITION": 409,
    "INVALID_ARGUMENT": 400,
    "ALREADY_EXISTS": 409,
    "PAYLOAD_TOO_LARGE": 413,
}
_CHUNK = 64 * 1024


def _problem(status: int, title: str, detail: str) -> web.Response:
    return web.json_response(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


@web.middleware
async def _problems(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    try:
        return await handler(request)
    except (EngineError, DocumentError) as error:
        status = _STATUS.get(error.code, 400)
        return _problem(status, error.code, str(error))
    except web.HTTPException as error:
        return _problem(error.status, error.reason, error.text or error.reason)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except json.JSONDecodeError as error:
        raise EngineError("INVALID_ARGUMENT", f"The request body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise EngineError("INVALID_ARGUMENT", "The request body must be a JSON object")
    return body


def _key(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise EngineError("INVALID_ARGUMENT", f"The {what} '{text}' is not a key (a number)") from None


def _page(items: list[dict[str, Any]]) -> web.Response:
    return web.json_response({"items": items, "page": {"totalItems": len(items)}})


def create_app(
    engine: Engine, topology: Callable[[], dict[str, Any]], documents: DocumentStore | None = None
) -> web.Application:
    async def search_incidents(request: web.Request) -> web.Response:
        wanted = (await _body(request)).get("filter", {})
        state = wanted.get("state", "ACTIVE")
        instance = wanted.get("processInstanceKey")
        incidents = [] if state != "ACTIVE" else list(engine.incidents.values())
        return _page(
            [
                {
                    "incidentKey": str(i.key),
                    "processInstanceKey": str(i.instance_key),
                    "processDefinitionId": i.bpmn_process_id,
                    "errorType": i.error_type,
                    "errorMessage": i.error_message,
                    "elementId": i.element_id,
                    "jobKey": str(i.job_key) if i.job_key >= 0 else None,
                    "state": i.state,
                    "creationTime": _iso(i.creation_time),
                }
                for i in incidents
                if instance is None or str(i.instance_key) == str(instance)
            ]
        )

    async def resolve_incident(request: web.Request) -> web.Response:
        engine.resolve_incident(_key(request.match_info["key"], "incident key"))
        await engine.store.durable()
        return web.Response(status=204)

    async def update_job(request: web.Request) -> web.Response:
        key = _key(request.match_info["key"], "job key")
        changes = (await _body(request)).get("changeset", {})
        if "retries" in changes:
            engine.update_retries(key, int(changes["retries"]))
        if "timeout" in changes:
            engine.update_timeout(key, int(changes["timeout"]))
        await engine.store.durable()
        return web.Response(status=204)

    async def process_instance(request: web.Request) -> web.Response:
        key = _key(request.match_info["key"], "process instance key")
        active = engine.instances.get(key)
        row = active.row() if active is not None else engine.store.row("instances", key)
        if row is None:
            raise EngineError("NOT_FOUND", f"Process instance with key '{key}' not found")
        return web.json_response(
            {
                "processInstanceKey": str(key),
                "processDefinitionId": row["bpmn_process_id"],
                "processDefinitionKey": str(row["process_key"]),
                "processDefinitionVersion": row["version"],
                "state": row["state"],
                "hasIncident": engine.incident_count(key) > 0,
            }
        )

    async def search_variables(request: web.Request) -> web.Response:
        wanted = (await _body(request)).get("filter", {})
        key = _key(str(wanted.get("processInstanceKey", "")), "processInstanceKey")
        active = engine.instances.get(key)
        row = active.row() if active is not None else engine.store.row("instances", key)
        items = []
        if row is not None:
            items = [
                {
                    "name": name,
                    "value": json.dumps(value),
                    "processInstanceKey": str(key),
                    "scopeKey": str(key),
                }
                for name, value in row["variables"].items()
                if wanted.get("name") in (None, name)
            ]
        return _page(items)

    async def get_topology(request: web.Request) -> web.Response:
        return web.json_response(topology())

    app = web.Application(middlewares=[_problems])
    app.add_routes(
        [
            web.post("/v2/incidents/search", search_incidents),
            web.post("/v2/incidents/{key}/resolution", resolve_incident),
            web.patch("/v2/jobs/{key}", update_job),
            web.get("/v2/process-instances/{key}", process_instance),
            web.post("/v2/variables/search", search_variables),
            web.get("/v2/topology", get_topology),
        ]
    )
    if documents is not None:
        app.add_routes(_document_routes(documents))
    return app


def _document_routes(store: DocumentStore) -> list[web.RouteDef]:
    """POST (multipart: `file`, optional JSON `metadata`), GET and DELETE of /v2/documents, as Camunda's."""

    async def create_document(request: web.Request) -> web.Response:
        content, metadata = await _read_upload(request, store.max_bytes)
        created = store.create(content, metadata, request.query.get("documentId") or None)
        return web.json_response(created, status=201)

    async def get_document(request: web.Request) -> web.Response:
        document = store.get(
            request.match_info["documentId"], request.query.get("storeId"), request.query.get("contentHash")
        )
        content_type = str(document.metadata.get("contentType") or "application/octet-stream")
        return web.Response(body=document.content, headers={"content-type": content_type})

    async def delete_document(request: web.Request) -> web.Response:
        store.delete(request.match_info["documentId"])
        return web.Response(status=204)

    return [
        web.post("/v2/documents", create_document),
        web.get("/v2/documents/{documentId}", get_document),
        web.delete("/v2/documents/{documentId}", delete_document),
    ]


async def _read_upload(request: web.Request, max_bytes: int) -> tuple[bytes, dict[str, Any]]:
    """The `file` part, read in pieces and refused as soon as it passes the store's limit, and the metadata
    (the part's own content type and file name unless the `metadata` part says otherwise)."""
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        raise DocumentError("INVALID_ARGUMENT", "The upload must be multipart/form-data with a 'file' part") from None
    content: bytes | None = None
    metadata: dict[str, Any] = {}
    part_metadata: dict[str, Any] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file":
            content = await _read_bounded(part, max_bytes)
            part_metadata = {"contentType": part.headers.get("content-type", "application/octet-stream")}
            if part.filename:
                part_metadata["fileName"] = part.filename
        elif part.name == "metadata":
            try:
                metadata = json.loads(await part.text())
            except json.JSONDecodeError as error:
                raise DocumentError("INVALID_ARGUMENT", f"The metadata part is not JSON: {error}") from None
            if not isinstance(metadata, dict):
                raise DocumentError("INVALID_ARGUMENT", "The metadata part must be a JSON object")
    if content is None:
        raise DocumentError("INVALID_ARGUMENT", "The upload has no 'file' part")
    return content, {**part_metadata, **{k: v for k, v in metadata.items() if v is not None}}


async def _read_bounded(part: BodyPartReader, max_bytes: int) -> bytes:
    data = bytearray()
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size <= max_bytes:
            data += chunk
    # The rest of an oversized upload is read and dropped rather than cut off: a client still sending its
    # body would see a broken connection instead of the 413 that says why.
    if size > max_bytes:
        raise DocumentError(
            "PAYLOAD_TOO_LARGE", f"The document is {size} bytes, over the store's limit of {max_bytes} bytes"
        )
    return bytes(data)


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
