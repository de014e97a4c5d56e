"""The REST side: the few Orchestration Cluster API (v2) endpoints that operations tests and people use to
look at and repair instances. Keys travel as strings, errors as RFC 9457 problem JSON, as Camunda's do."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from devkit.engine.engine import Engine, EngineError

_STATUS = {"NOT_FOUND": 404, "FAILED_PRECONDITION": 409, "INVALID_ARGUMENT": 400}


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
    except EngineError as error:
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


def create_app(engine: Engine, topology: Callable[[], dict[str, Any]]) -> web.Application:
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
    return app


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
