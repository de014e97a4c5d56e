"""Turning a validated job into the HTTP call Hugging Face expects, and its answer into the result.

Knows Hugging Face's routes and quirks (router paths, legacy hosts and options, binary inputs,
per-task Accept headers, where a worker-wide token may go); knows nothing of Zeebe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from hf_connector.http_core import HttpRequest, HttpResult
from hf_connector.huggingface.binary import BinaryInput, BinaryInputError, as_binary
from hf_connector.huggingface.chat import JsonAnswer, chat_extras, chat_fields, rejection_advice, requested_features
from hf_connector.huggingface.chunking import Chunk, chunk_texts
from hf_connector.huggingface.contract import ChunkingStrategy, JobVariables, Operation

LEGACY_HOST = "api-inference.huggingface.co"
# Not *.hf.space: Spaces are apps anyone can publish, so the worker's token must not go there.
_HF_HOST_SUFFIXES = (".huggingface.co", ".endpoints.huggingface.cloud")
_TASK_NAME = re.compile(r"^[a-z0-9][a-z0-9\-]*$")
_PIPELINE_TASKS = frozenset({"feature-extraction", "sentence-similarity"})
_ACCEPT_BY_TASK = {
    "text-to-image": "image/png",
    "image-to-image": "image/png",
    "text-to-speech": "audio/flac",
    "text-to-audio": "audio/flac",
}
# Contract fields named as OpenAI's chat completion and the embedding route name them, sent as they are.
_SAMPLING_PARAMETERS: Final = {
    "max_tokens",
    "temperature",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "stop",
    "seed",
}
_EMBEDDING_PARAMETERS: Final = {"normalize", "truncate", "prompt_name"}


class InvalidInputError(ValueError):
    """The job's input cannot become a Hugging Face request; the message says what to change."""


@dataclass(frozen=True, slots=True)
class HfDefaults:
    """Worker-wide Hugging Face settings a job falls back on."""

    router_url: str
    default_token: str | None
    read_timeout: float
    max_input_bytes: int


@dataclass(frozen=True, slots=True)
class HfCall:
    operation: Operation
    model: str
    request: HttpRequest
    chunks: tuple[Chunk, ...] = ()
    json_answer: JsonAnswer | None = None
    features: tuple[str, ...] = ()

    def result_variable(self, result: HttpResult) -> dict[str, Any]:
        """`{status, headers, body}`, plus what makes this operation's answer easy to map.

        Raises InvalidJsonAnswerError when JSON was asked for and the answer is not what was asked.
        """
        value = result.as_variable()
        if self.chunks and isinstance(result.body, list) and len(result.body) == len(self.chunks):
            value["body"] = [
                {"inputIndex": c.input_index, "chunkIndex": c.chunk_index, "text": c.text, "embedding": vector}
                for c, vector in zip(self.chunks, result.body, strict=True)
            ]
        if self.operation is Operation.CHAT and isinstance(result.body, dict):
            value.update(chat_fields(result.body, self.json_answer))
        return value

    def rejection_advice(self, status: int) -> str | None:
        """What a refusal of this call likely means, when the generic advice for the status would mislead."""
        return rejection_advice(self.model, self.features, status)


def build_call(job: JobVariables, defaults: HfDefaults) -> HfCall:
    headers: dict[str, str] = {}
    chunks: list[Chunk] = []
    if job.operation is Operation.CHAT:
        url, body = _chat(job, defaults), _chat_body(job)
    elif job.operation is Operation.EMBEDDINGS:
        url = _model_url(job, defaults, "/pipeline/feature-extraction")
        body, chunks = _embeddings_body(job)
    else:
        url, body, headers = _inference(job, defaults)
    headers.update(_auth_headers(job, defaults, url))
    if job.bill_to:
        headers["x-hf-bill-to"] = job.bill_to
    request = _request(url, body, headers, job, defaults)
    if job.operation is not Operation.CHAT:
        return HfCall(job.operation, job.model, request, tuple(chunks))
    return HfCall(job.operation, job.model, request, (), JsonAnswer.of(job.response_format), requested_features(job))


def is_hugging_face_host(url: str, router_url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    router_host = (urlsplit(router_url).hostname or "").lower()
    return host == router_host or host == "huggingface.co" or host.endswith(_HF_HOST_SUFFIXES)


# --- URLs -------------------------------------------------------------------------------------------


def _base_url(job: JobVariables, defaults: HfDefaults) -> str:
    if not job.endpoint:
        return defaults.router_url
    endpoint = job.endpoint.strip().rstrip("/")
    if not endpoint.startswith(("https://", "http://")) or any(c.isspace() for c in endpoint):
        raise InvalidInputError(f"endpoint '{endpoint}' is not an http(s) URL")
    return defaults.router_url if _is_legacy(endpoint) else endpoint


def _model_url(job: JobVariables, defaults: HfDefaults, pipeline_suffix: str = "") -> str:
    if _is_url(job.model) and _is_legacy(job.model):
        return _legacy_to_router(job.model, defaults.router_url, pipeline_suffix)
    if _is_url(job.model):
        return job.model
    if ":" in job.model:
        raise InvalidInputError(f"model '{job.model}': a ':provider' suffix only applies to the chat operation")
    return f"{_base_url(job, defaults)}/hf-inference/models/{job.model}{pipeline_suffix}"


def _legacy_to_router(url: str, router_url: str, pipeline_suffix: str = "") -> str:
    """api-inference.huggingface.co answers 410 Gone; the same model lives on the router."""
    model, legacy_suffix = _legacy_model(url)
    return f"{router_url}/hf-inference/models/{model}{legacy_suffix or pipeline_suffix}"


def _legacy_model(url: str) -> tuple[str, str]:
    """The model id in a legacy URL, and the pipeline suffix its path asked for."""
    path = urlsplit(url).path
    for prefix in ("/models/", "/pipeline/feature-extraction/", "/pipeline/sentence-similarity/"):
        if path.startswith(prefix) and path[len(prefix) :].strip("/"):
            suffix = "" if prefix == "/models/" else "/pipeline/" + prefix.split("/")[2]
            return path[len(prefix) :].strip("/"), suffix
    raise InvalidInputError(f"'{url}' is a legacy Inference API URL without a model path (/models/ORG/NAME)")


def _is_url(value: str) -> bool:
    return value.startswith(("https://", "http://"))


def _is_legacy(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() == LEGACY_HOST


# --- Operations -------------------------------------------------------------------------------------


def _inference(job: JobVariables, defaults: HfDefaults) -> tuple[str, Any, dict[str, str]]:
    task = _task(job.task)
    url = _model_url(job, defaults, f"/pipeline/{task}" if task in _PIPELINE_TASKS else "")
    headers = {"accept": _ACCEPT_BY_TASK[task]} if task in _ACCEPT_BY_TASK else {}
    body = job.input
    if isinstance(body, Mapping) and "options" in body:
        body, option_headers = _options_to_headers(body)
        headers.update(option_headers)
    if isinstance(body, str) and not body.startswith("data:"):
        body = {"inputs": body}
    return url, body, headers


def _task(task: str | None) -> str | None:
    if task is None or task == "":
        return None
    if not _TASK_NAME.match(task):
        raise InvalidInputError(f"task '{task}' is not a Hugging Face task name such as text-to-image")
    return task


def _options_to_headers(body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Legacy `options` are headers on the router, whose strict routes reject unknown body keys."""
    options = body.get("options") or {}
    if not isinstance(options, Mapping):
        raise InvalidInputError("input.options must be an object such as {wait_for_model: true}")
    headers = {}
    if options.get("use_cache") is False:
        headers["x-use-cache"] = "false"
    if options.get("wait_for_model") is True:
        headers["x-wait-for-model"] = "true"
    return {k: v for k, v in body.items() if k != "options"}, headers


def _chat(job: JobVariables, defaults: HfDefaults) -> str:
    if _is_url(job.model) and not _is_legacy(job.model):
        return f"{job.model.rstrip('/')}/v1/chat/completions"  # a dedicated endpoint or TGI
    return f"{_base_url(job, defaults)}/v1/chat/completions"


def _chat_body(job: JobVariables) -> dict[str, Any]:
    messages = (
        [m.model_dump(exclude_none=True) for m in job.messages]
        if job.messages
        else [{"role": "user", "content": job.prompt}]
    )
    body: dict[str, Any] = {"model": _chat_model(job.model), "messages": messages}
    body.update(job.model_dump(include=_SAMPLING_PARAMETERS, exclude_none=True))
    body.update(chat_extras(job))
    body["stream"] = False
    return body


def _chat_model(model: str) -> str:
    if _is_url(model):
        return _legacy_model(model)[0] if _is_legacy(model) else "tgi"
    return model


def _embeddings_body(job: JobVariables) -> tuple[dict[str, Any], list[Chunk]]:
    texts = _texts(job.input)
    chunks: list[Chunk] = []
    inputs: str | list[str] = job.input if isinstance(job.input, str) else texts
    if job.chunking_strategy is not ChunkingStrategy.NONE:
        chunks = chunk_texts(
            texts, job.chunking_strategy.value, job.max_chunk_size, job.chunk_overlap, job.sentence_overlap
        )
        inputs = [chunk.text for chunk in chunks]
    # Embedding parameters sit at the JSON root, not under `parameters` (the route is strict).
    body: dict[str, Any] = {"inputs": inputs, **job.model_dump(include=_EMBEDDING_PARAMETERS, exclude_none=True)}
    return body, chunks


def _texts(value: Any) -> list[str]:
    if isinstance(value, Mapping) and "inputs" in value:
        value = value["inputs"]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    raise InvalidInputError("embeddings need a string or a non-empty list of strings as input")


# --- The request ------------------------------------------------------------------------------------


def _auth_headers(job: JobVariables, defaults: HfDefaults, url: str) -> dict[str, str]:
    """A task's own token goes where the task says; the worker-wide one only to Hugging Face."""
    token = job.authentication.token
    if not token and defaults.default_token and is_hugging_face_host(url, defaults.router_url):
        token = defaults.default_token
    return {"authorization": f"Bearer {token}"} if token else {}


def _request(url: str, body: Any, headers: dict[str, str], job: JobVariables, defaults: HfDefaults) -> HttpRequest:
    content, content_type = _encode_body(body)
    if len(content) > defaults.max_input_bytes:
        raise InvalidInputError(
            f"the input is {len(content)} bytes, over the limit of {defaults.max_input_bytes} "
            "(HF_CONNECTOR_MAX_INPUT_BYTES)"
        )
    return HttpRequest(
        url=url,
        headers={"content-type": content_type, **headers},
        content=content,
        connect_timeout=job.connection_timeout_in_seconds,
        read_timeout=job.read_timeout_in_seconds or defaults.read_timeout,
    )


def _encode_body(body: Any) -> tuple[bytes, str]:
    """Raw bytes for a binary input without parameters, JSON (binary as base64) otherwise."""
    try:
        binary = as_binary(body)
        if binary is not None:
            return binary.data, binary.content_type
        if isinstance(body, Mapping) and (inner := as_binary(body.get("inputs"))) is not None:
            return _binary_with_parameters(body, inner)
    except BinaryInputError as exc:
        raise InvalidInputError(str(exc)) from None
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(), "application/json"


def _binary_with_parameters(body: Mapping[str, Any], binary: BinaryInput) -> tuple[bytes, str]:
    if not body.get("parameters"):
        return binary.data, binary.content_type
    wire = {**body, "inputs": binary.base64}
    return json.dumps(wire, separators=(",", ":")).encode(), "application/json"
