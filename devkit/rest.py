"""The few calls of Camunda's Orchestration Cluster REST API (8.8+) the development tools make.

The development engine serves the same endpoints, so ``make example`` and ``make incidents`` work against
either. Keys travel as strings, as the API defines them.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any, Self

import httpx


class ApiError(RuntimeError):
    """The REST API refused a call or could not be reached; the message names the call and the reason."""


class OrchestrationApi:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise ApiError(f"{method} {self.base_url}{path}: {error or type(error).__name__}") from error
        if response.is_error:
            raise ApiError(f"{method} {self.base_url}{path}: {response.status_code} {_problem(response)}")
        return response.json() if response.content else None

    async def process_instance(self, key: int) -> dict[str, Any] | None:
        """The instance's state, or None while the API does not know it yet (search data lags on Camunda)."""
        try:
            response = await self._http.get(f"/v2/process-instances/{key}")
        except httpx.HTTPError as error:
            raise ApiError(f"GET {self.base_url}/v2/process-instances/{key}: {error}") from error
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        if response.is_error:
            raise ApiError(f"GET /v2/process-instances/{key}: {response.status_code} {_problem(response)}")
        answer: dict[str, Any] = response.json()
        return answer

    async def active_incidents(self, process_instance_key: int | None = None) -> list[dict[str, Any]]:
        criteria: dict[str, Any] = {"state": "ACTIVE"}
        if process_instance_key is not None:
            criteria["processInstanceKey"] = str(process_instance_key)
        answer = await self._call("POST", "/v2/incidents/search", {"filter": criteria})
        return list(answer.get("items", []))

    async def variables(self, process_instance_key: int) -> dict[str, Any]:
        """The instance's process-level variables, values decoded from their JSON text."""
        answer = await self._call(
            "POST", "/v2/variables/search", {"filter": {"processInstanceKey": str(process_instance_key)}}
        )
        found: dict[str, Any] = {}
        for item in answer.get("items", []):
            if str(item.get("scopeKey", process_instance_key)) != str(process_instance_key):
                continue  # a local variable of some element (input mappings), not a result
            if item.get("isTruncated"):  # Camunda shortens long values in search results
                item = await self._call("GET", f"/v2/variables/{item['variableKey']}")
            found[item["name"]] = json.loads(item["value"])
        return found

    async def upload_document(self, content: bytes, content_type: str, file_name: str) -> dict[str, Any]:
        """Stores a file in the document store; returns the reference a process variable holds."""
        path = "/v2/documents"
        try:
            response = await self._http.post(path, files={"file": (file_name, content, content_type)})
        except httpx.HTTPError as error:
            raise ApiError(f"POST {self.base_url}{path}: {error or type(error).__name__}") from error
        if response.is_error:
            raise ApiError(f"POST {self.base_url}{path}: {response.status_code} {_problem(response)}")
        reference: dict[str, Any] = response.json()
        return reference

    async def retry_incident(self, incident: dict[str, Any], retries: int = 1) -> None:
        """Gives the incident's job ``retries`` again (when it has a job), then resolves the incident."""
        job_key = incident.get("jobKey")
        if job_key:
            await self._call("PATCH", f"/v2/jobs/{job_key}", {"changeset": {"retries": retries}})
        await self._call("POST", f"/v2/incidents/{incident['incidentKey']}/resolution")


def _problem(response: httpx.Response) -> str:
    """RFC 9457 problem JSON as one line (title and detail), else the start of the body."""
    try:
        problem = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(problem, dict):
        return ": ".join(str(problem[k]) for k in ("title", "detail") if problem.get(k)) or str(problem)
    return str(problem)[:300]
