"""Camunda's document store (8.7+), reached through the Orchestration Cluster REST API. Knows nothing of
Zeebe or of Hugging Face.

A process variable holds a reference, `{"camunda.document.type": "camunda", storeId, documentId, contentHash,
metadata}`; the content stays in the store. Downloads are streamed and cut off at a size bound, which is why
this module uses httpx directly rather than Camunda's Python SDK (camunda-orchestration-sdk): its document
download reads the whole body into memory before the caller sees it, and it brings loguru, python-dotenv,
attrs and dateutil along for three calls.

Every failure is a `DocumentError` whose message a modeller can act on; it names the document, never its
content, and never a token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

REFERENCE_TYPE_KEY = "camunda.document.type"
_TOKEN_MARGIN_SECONDS = 30.0
_PROBLEM_CHARS = 200
_Answer = TypeVar("_Answer", bytes, httpx.Response, bytes | httpx.Response)


class DocumentError(Exception):
    """A document could not be read or written. `retryable` is true only when the store itself is
    (probably) transiently unavailable; `code` goes to logs, metrics and error expressions."""

    def __init__(self, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class DocumentReference:
    store_id: str | None
    document_id: str
    content_hash: str | None
    content_type: str
    size: int | None

    @property
    def name(self) -> str:
        """How messages name the document: its id and store, which the modeller can look up."""
        return f"document '{self.document_id}'" + (f" in store '{self.store_id}'" if self.store_id else "")


def store_address(rest_address: str | None, cluster_id: str | None, region: str) -> str | None:
    """The REST API's /v2 base: CAMUNDA_REST_ADDRESS as given (with /v2 added when missing, as Camunda's SDKs
    do), or Camunda SaaS's address from the cluster id and region; None turns documents off."""
    if rest_address and rest_address.strip():
        base = rest_address.strip().rstrip("/")
    elif cluster_id:
        base = f"https://{region}.zeebe.camunda.io/{cluster_id}"
    else:
        return None
    return base if base.endswith("/v2") else f"{base}/v2"


def is_reference(value: Any) -> bool:
    return isinstance(value, Mapping) and REFERENCE_TYPE_KEY in value


def parse_reference(value: Mapping[str, Any]) -> DocumentReference:
    """The reference `value` stands for; a malformed one is a modelling error, refused at once."""
    if value.get(REFERENCE_TYPE_KEY) != "camunda":
        raise DocumentError(
            "INVALID_DOCUMENT_REFERENCE",
            f"a document reference of type '{value.get(REFERENCE_TYPE_KEY)}' is not supported: only Camunda "
            'document references ("camunda.document.type": "camunda") can be read',
        )
    document_id = value.get("documentId")
    if not isinstance(document_id, str) or not document_id:
        raise DocumentError("INVALID_DOCUMENT_REFERENCE", "the document reference has no documentId")
    metadata = value.get("metadata") if isinstance(value.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    size = metadata.get("size")
    return DocumentReference(
        store_id=_text_or_none(value.get("storeId")),
        document_id=document_id,
        content_hash=_text_or_none(value.get("contentHash")),
        content_type=_text_or_none(metadata.get("contentType")) or "application/octet-stream",
        size=size if isinstance(size, int) else None,
    )


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """OAuth client credentials: the same ones the worker's gRPC channel uses."""

    client_id: str
    client_secret: str
    token_url: str
    audience: str


class _TokenSource:
    """Bearer tokens by the client-credentials grant, reused until shortly before they expire."""

    def __init__(self, http: httpx.AsyncClient, credentials: ClientCredentials) -> None:
        self._http = http
        self._credentials = credentials
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def header(self) -> dict[str, str]:
        async with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                await self._refresh()
            return {"authorization": f"Bearer {self._token}"}

    def forget(self) -> None:
        self._token = None

    async def _refresh(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._credentials.client_id,
            "client_secret": self._credentials.client_secret,
            "audience": self._credentials.audience,
        }
        try:
            response = await self._http.post(self._credentials.token_url, data=form)
        except httpx.HTTPError as exc:
            raise DocumentError(
                "DOCUMENT_STORE_UNAVAILABLE", f"the OAuth server could not be reached ({type(exc).__name__})", True
            ) from None
        if response.status_code >= 500:
            raise DocumentError(
                "DOCUMENT_STORE_UNAVAILABLE", f"the OAuth server answered {response.status_code}", retryable=True
            )
        # The answer's body is never quoted: it is where a token would be.
        if response.is_error:
            raise DocumentError(
                "DOCUMENT_STORE_UNAUTHORIZED",
                f"the OAuth server refused the worker's client credentials ({response.status_code}): check "
                "CAMUNDA_CLIENT_ID, CAMUNDA_CLIENT_SECRET and CAMUNDA_OAUTH_URL",
            )
        try:
            answer = response.json()
            self._token = str(answer["access_token"])
            lifetime = float(answer.get("expires_in", 300))
        except (ValueError, KeyError, TypeError):
            raise DocumentError(
                "DOCUMENT_STORE_UNAUTHORIZED", "the OAuth server's answer holds no access_token"
            ) from None
        self._expires = time.monotonic() + max(lifetime - _TOKEN_MARGIN_SECONDS, 0.0)


class DocumentClient:
    """Downloads and uploads documents; a store answering 5xx (or unreachable) is retried with backoff."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: ClientCredentials | None = None,
        attempts: int = 3,
        first_backoff_seconds: float = 0.5,
        timeout_seconds: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.attempts = max(attempts, 1)
        self.first_backoff_seconds = first_backoff_seconds
        self._http = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)
        self._tokens = _TokenSource(self._http, credentials) if credentials is not None else None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def download(self, reference: DocumentReference, max_bytes: int, limit_name: str) -> bytes:
        """The document's bytes, at most `max_bytes` (the setting `limit_name` bounds them)."""
        if reference.size is not None and reference.size > max_bytes:
            raise _too_large(reference, reference.size, max_bytes, limit_name)
        params = {k: v for k, v in (("storeId", reference.store_id), ("contentHash", reference.content_hash)) if v}
        url = f"{self.base_url}/documents/{reference.document_id}"

        async def once() -> bytes | httpx.Response:
            request = self._http.build_request("GET", url, params=params, headers=await self._auth())
            response = await self._http.send(request, stream=True)
            try:
                if response.is_error:
                    await response.aread()
                    return response
                return await _read_bounded(response, reference, max_bytes, limit_name)
            finally:
                await response.aclose()

        answer = await self._with_retries(once, f"reading {reference.name}")
        if isinstance(answer, bytes):
            return answer
        raise _download_error(reference, answer)

    async def upload(self, content: bytes, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """Stores `content` and returns the reference the store answers with."""
        url = f"{self.base_url}/documents"
        content_type = str(metadata.get("contentType") or "application/octet-stream")
        file_name = str(metadata.get("fileName") or "document")

        async def once() -> httpx.Response:
            files = {
                "file": (file_name, content, content_type),
                "metadata": (None, json.dumps(dict(metadata)).encode(), "application/json"),
            }
            return await self._http.post(url, files=files, headers=await self._auth())

        response = await self._with_retries(once, "storing the answer as a document")
        if response.status_code == httpx.codes.REQUEST_ENTITY_TOO_LARGE:
            raise DocumentError(
                "DOCUMENT_TOO_LARGE",
                f"the answer ({len(content)} bytes, {content_type}) is larger than the document store accepts "
                f"({_problem(response)}); raise the store's upload limit or set binaryResult to inline",
            )
        if response.is_error:
            raise _refused(response, "storing the answer as a document")
        try:
            reference: dict[str, Any] = response.json()
        except ValueError:
            raise DocumentError(
                "DOCUMENT_STORE_ERROR", "the document store's answer to an upload is not JSON"
            ) from None
        if not is_reference(reference):
            raise DocumentError("DOCUMENT_STORE_ERROR", "the document store's answer to an upload is no reference")
        return reference

    async def _auth(self) -> dict[str, str]:
        return await self._tokens.header() if self._tokens is not None else {}

    async def _with_retries(self, once: Callable[[], Awaitable[_Answer]], what: str) -> _Answer:
        delay = self.first_backoff_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                answer = await once()
            except httpx.HTTPError as exc:
                failure = f"the document store at {self.base_url} could not be reached ({type(exc).__name__})"
            else:
                if not isinstance(answer, httpx.Response) or answer.status_code < 500:
                    if isinstance(answer, httpx.Response) and answer.status_code == 401 and self._tokens:
                        self._tokens.forget()  # an expired or revoked token: the next job fetches a new one
                    return answer
                failure = f"the document store answered {answer.status_code} ({_problem(answer)})"
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        raise DocumentError(
            "DOCUMENT_STORE_UNAVAILABLE", f"{what}: {failure}, {self.attempts} attempts", retryable=True
        )


async def _read_bounded(
    response: httpx.Response, reference: DocumentReference, max_bytes: int, limit_name: str
) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(reference, int(declared), max_bytes, limit_name)
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) > max_bytes:
            raise _too_large(reference, None, max_bytes, limit_name)
    return bytes(data)


def _too_large(reference: DocumentReference, size: int | None, max_bytes: int, limit_name: str) -> DocumentError:
    actual = f"{size} bytes" if size is not None else f"more than {max_bytes} bytes"
    return DocumentError(
        "DOCUMENT_TOO_LARGE", f"{reference.name} is {actual}, over the limit of {max_bytes} bytes ({limit_name})"
    )


def _download_error(reference: DocumentReference, response: httpx.Response) -> DocumentError:
    if response.status_code == httpx.codes.NOT_FOUND:
        return DocumentError(
            "DOCUMENT_NOT_FOUND",
            f"{reference.name} does not exist or has expired: upload it again and pass the new reference",
        )
    problem = _problem(response)
    if response.status_code in (400, 409, 412) and "hash" in problem.lower():
        return DocumentError(
            "DOCUMENT_HASH_MISMATCH",
            f"the contentHash of the reference to {reference.name} does not match the stored content: "
            "pass the reference exactly as the store returned it",
        )
    return _refused(response, f"reading {reference.name}")


def _refused(response: httpx.Response, what: str) -> DocumentError:
    if response.status_code in (401, 403):
        return DocumentError(
            "DOCUMENT_STORE_UNAUTHORIZED",
            f"{what}: the document store refused the worker ({response.status_code}); check CAMUNDA_CLIENT_ID, "
            "CAMUNDA_CLIENT_SECRET and the client's permissions",
        )
    return DocumentError(
        "DOCUMENT_STORE_ERROR", f"{what}: the store answered {response.status_code} ({_problem(response)})"
    )


def _problem(response: httpx.Response) -> str:
    """The title and detail of an RFC 9457 problem; never the body otherwise, which may be document content."""
    try:
        problem = response.json()
    except ValueError:
        return response.reason_phrase or "no details"
    if not isinstance(problem, dict):
        return response.reason_phrase or "no details"
    text = ": ".join(str(problem[k]) for k in ("title", "detail") if problem.get(k)) or response.reason_phrase
    return text[:_PROBLEM_CHARS]
