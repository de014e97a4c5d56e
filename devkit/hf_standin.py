"""Loopback stand-in for the Hugging Face inference router, for end-to-end tests and benchmarks.

``HfStandin`` runs a small asyncio HTTP/1.1 server (raw asyncio streams, no extra dependency) on
127.0.0.1 in a background thread with its own event loop::

    with HfStandin(latency=0.0) as hf:
        hf.url                                   # "http://127.0.0.1:PORT"
        hf.script("facebook/bart-large-cnn", Reply.loading(estimated_time=0.1), Fault.RESET)
        ...
        hf.wait_for_requests(3, timeout=5.0)

Default behaviour mimics ``router.huggingface.co`` with provider ``hf-inference``:

* ``POST /hf-inference/models/{org}/{name}``: a plausible task answer chosen from the model name and the
  request (text-to-image PNG when ``Accept: image/*`` or a diffusion model, text-to-speech FLAC,
  image-to-text, summarization, translation, classification, ...; fallback ``[{"generated_text": ...}]``).
  Root keys other than ``inputs``/``parameters`` (e.g. legacy ``options``) are rejected with 422.
* ``POST /hf-inference/models/{model}/pipeline/feature-extraction``: one deterministic vector per input
  (384 dims; 768 for ``base``/``mpnet`` models, 1024 for ``large``). A single string input also answers
  a list of vectors, ``[[...]]``. Root keys other than ``inputs``, ``normalize``, ``truncate``,
  ``truncation_direction`` and ``prompt_name`` are rejected with 422.
* ``POST /hf-inference/models/{model}/pipeline/sentence-similarity``: ``[float, ...]``.
* ``POST /v1/chat/completions``: OpenAI-compatible chat completion (``stream: true`` answers SSE). Offered
  ``tools`` are called (``finish_reason: tool_calls``) until a ``tool`` message answers; a ``json_schema``
  response format gets an instance of the schema, ``json_object`` a JSON object. ``Reply.chat`` scripts
  any other answer, e.g. text where JSON was asked for.
* ``/models/...`` and ``/pipeline/...`` (the legacy ``api-inference.huggingface.co`` layout): 410 Gone.
* any other ``POST`` path behaves like a dedicated Inference Endpoint (``{inputs, parameters}`` at its
  root, no strict key check).
* ``Authorization: Bearer <token>`` is required (401 otherwise) unless ``require_auth=False``; scripted
  replies are served before the auth check.

Every HTTP answer carries ``x-request-id``, ``x-inference-provider``, ``x-compute-time`` (seconds,
including the configured latency) and ``x-compute-type`` unless a scripted reply overrides them.
Recorded timestamps come from ``time.monotonic()``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import functools
import hashlib
import http
import json
import math
import os
import re
import socket
import struct
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

__all__ = [
    "MIB",
    "PNG_SIGNATURE",
    "Fault",
    "HfStandin",
    "Oversized",
    "RecordedRequest",
    "Reply",
    "Scripted",
    "embedding",
    "tiny_flac",
    "tiny_png",
]

MIB = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FLAC_SIGNATURE = b"fLaC"
LEGACY_GONE_MESSAGE = (
    "https://api-inference.huggingface.co is no longer supported. "
    "Please use https://router.huggingface.co/hf-inference instead."
)

_HF_PREFIX = "/hf-inference/models/"
_CHAT_PATH = "/v1/chat/completions"
_HEAD_LIMIT = MIB
_STREAM_CHUNK = 64 * 1024
_TASK_KEYS = frozenset({"inputs", "parameters"})
_EMBED_KEYS = frozenset({"inputs", "normalize", "truncate", "truncation_direction", "prompt_name"})
_SIMILARITY_KEYS = frozenset({"inputs", "parameters"})


# --------------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------------


class Fault(enum.Enum):
    """Misbehaviours a scripted reply can take instead of a normal HTTP answer."""

    RESET = "reset"  # close the connection abruptly (TCP RST) without a response
    TRUNCATED = "truncated"  # declare a Content-Length larger than the bytes sent, then close
    NEVER_ENDS = "never_ends"  # chunked body that trickles forever until the client disconnects
    HANG = "hang"  # read the request, never answer (until the client disconnects)
    INVALID_JSON = "invalid_json"  # 200, content-type application/json, broken JSON
    WRONG_CONTENT_TYPE = "wrong_content_type"  # 200 with a text/html proxy error page
    OVERSIZED = "oversized"  # a streamed body of HfStandin.oversized_bytes (see also Oversized)


@dataclass(frozen=True, slots=True)
class Oversized:
    """A large, valid body streamed in 64 KiB pieces (``Fault.OVERSIZED`` with an explicit size)."""

    size: int = 50 * MIB
    content_type: str = "application/json"
    chunked: bool = False


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the stand-in received it (header names lower-cased)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    json: Any
    timestamp: float
    model: str | None = None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def base_model(self) -> str | None:
        """The model id without a ``:provider`` / ``:fastest`` suffix."""
        return self.model.partition(":")[0] if self.model else None

    def matches(self, key: str) -> bool:
        return key in (self.path, self.model, self.base_model)


JsonFn = Callable[[RecordedRequest], Any]


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted HTTP answer. ``body`` wins over ``json_fn``, which wins over ``json``."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    json_fn: JsonFn | None = None

    @classmethod
    def loading(cls, estimated_time: float = 2.0, model: str | None = None) -> Reply:
        """503 ``{"error": "Model X is currently loading", "estimated_time": ...}`` (X = requested model)."""

        def payload(req: RecordedRequest) -> Any:
            name = model or req.base_model or "X"
            return {"error": f"Model {name} is currently loading", "estimated_time": estimated_time}

        return cls(status=503, json_fn=payload)

    @classmethod
    def rate_limited(cls, retry_after: float | None = None, ratelimit_header: bool = False) -> Reply:
        """429; ``Retry-After: <retry_after>`` or ``RateLimit: "api";r=0;t=<retry_after or 55>`` or neither."""
        headers: dict[str, str] = {}
        if ratelimit_header:
            window = math.ceil(retry_after) if retry_after is not None else 55
            headers["ratelimit"] = f'"api";r=0;t={window}'
            headers["ratelimit-policy"] = '"fixed window";"api";q=500;w=300'
        elif retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        return cls(status=429, json={"error": "Rate limit reached. Please retry later."}, headers=headers)

    @classmethod
    def error(cls, status: int, message: Any = "error", headers: Mapping[str, str] | None = None) -> Reply:
        """An HF-style error body ``{"error": message}``."""
        return cls(status=status, json={"error": message}, headers=dict(headers or {}))

    @classmethod
    def chat(cls, content: str | None, finish_reason: str = "stop", tool_calls: list[Any] | None = None) -> Reply:
        """A chat completion with exactly this content (e.g. not the JSON that was asked for) or these calls."""
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls is not None:
            message["tool_calls"] = tool_calls

        def payload(req: RecordedRequest) -> Any:
            completion = _chat_completion({}, req.model or "", [])
            completion["choices"][0] |= {"message": message, "finish_reason": finish_reason}
            return completion

        return cls(json_fn=payload)

    @classmethod
    def echo(cls, status: int = 200) -> Reply:
        """Echo the request (method, path, headers, body) back; with status >= 400 inside ``error`` too."""

        def payload(req: RecordedRequest) -> Any:
            request = {
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "headers": req.headers,
                "body": req.text,
            }
            if status < 400:
                return {"echo": request}
            return {"error": f"rejected request: headers={req.headers} body={req.text}", "echo": request}

        return cls(status=status, json_fn=payload)


Scripted = Reply | Fault | Oversized


# --------------------------------------------------------------------------------------------------
# Minimal HTTP/1.1 wire handling
# --------------------------------------------------------------------------------------------------


class _BadRequestError(Exception):
    pass


@dataclass(slots=True)
class _Incoming:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


@dataclass(slots=True)
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


async def _read_request(reader: asyncio.StreamReader) -> _Incoming | None:
    """Read one request; ``None`` on a clean end of stream between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _BadRequestError("incomplete request head") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise _BadRequestError("request head too large") from exc
    method, target, version, headers = _parse_head(head)
    body = await _read_body(reader, headers)
    return _Incoming(method, target, headers, body, _keep_alive(version, headers))


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.decode("latin-1").strip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequestError(f"bad request line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequestError(f"bad header line {line!r}")
        key, value = name.strip().lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return parts[0], parts[1], parts[2], headers


async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length = headers.get("content-length", "0").strip() or "0"
    if not length.isdigit():
        raise _BadRequestError(f"bad content-length {length!r}")
    return await reader.readexactly(int(length)) if int(length) else b""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError as exc:
            raise _BadRequestError("bad chunk size") from exc
        if size == 0:
            break
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
        pass
    return b"".join(parts)


def _keep_alive(version: str, headers: Mapping[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _encode_head(status: int, headers: Mapping[str, str], keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}", *(f"{k}: {v}" for k, v in headers.items())]
    if not keep_alive:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0) and without flushing anything."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def _send_truncated(writer: asyncio.StreamWriter) -> None:
    body = b'[{"generated_text": "this body is cut sh'
    headers = {"content-type": "application/json", "content-length": str(len(body) + 1000)}
    writer.write(_encode_head(200, headers, True) + body)
    await writer.drain()


async def _wait_for_eof(reader: asyncio.StreamReader) -> None:
    while await reader.read(_STREAM_CHUNK):
        pass


def _oversized_pieces(spec: Oversized) -> Iterator[bytes]:
    prefix, suffix = (b'[{"generated_text": "', b'"}]') if "json" in spec.content_type else (b"", b"")
    remaining = max(spec.size - len(prefix) - len(suffix), 0)
    filler = b"x" * _STREAM_CHUNK
    if prefix:
        yield prefix
    while remaining > 0:
        piece = filler if remaining >= _STREAM_CHUNK else filler[:remaining]
        remaining -= len(piece)
        yield piece
    if suffix:
        yield suffix


async def _stream_oversized(writer: asyncio.StreamWriter, spec: Oversized, keep_alive: bool) -> None:
    headers = {"content-type": spec.content_type, "x-inference-provider": "hf-inference"}
    if spec.chunked:
        headers["transfer-encoding"] = "chunked"
    else:
        headers["content-length"] = str(sum(len(p) for p in _oversized_pieces(spec)))
    writer.write(_encode_head(200, headers, keep_alive))
    for piece in _oversized_pieces(spec):
        writer.write(_chunk(piece) if spec.chunked else piece)
        await writer.drain()
    if spec.chunked:
        writer.write(b"0\r\n\r\n")
    await writer.drain()


# --------------------------------------------------------------------------------------------------
# Generated media
# --------------------------------------------------------------------------------------------------


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


@functools.lru_cache(maxsize=256)
def tiny_png(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    """A valid, uncompressed-colour (8-bit RGB) PNG filled with one colour."""
    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(row * height)
    return PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


@functools.lru_cache(maxsize=8)
def tiny_flac(sample_rate: int = 16_000) -> bytes:
    """A FLAC stream with a STREAMINFO block and no audio frames (mono, 16 bit, unknown length)."""
    packed = (sample_rate << 44) | (0 << 41) | (15 << 36)  # channels-1 = 0, bits-1 = 15, 0 samples
    info = struct.pack(">HH", 4096, 4096) + bytes(6) + packed.to_bytes(8, "big") + bytes(16)
    return FLAC_SIGNATURE + bytes([0x80]) + len(info).to_bytes(3, "big") + info


# --------------------------------------------------------------------------------------------------
# Default behaviour: helpers
# --------------------------------------------------------------------------------------------------


def _json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> _Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return _Response(status, body, {"content-type": "application/json", **(headers or {})})


def _error(status: int, message: Any) -> _Response:
    return _json_response(status, {"error": message})


def _digest(text: str, size: int = 32) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=size).digest()


def _scores(text: str, count: int) -> list[float]:
    """``count`` deterministic scores in descending order, summing to at most 1."""
    weights = sorted((b + 1 for b in _digest(text, max(count, 1))[:count]), reverse=True)
    weights[0] += sum(weights)  # make the top one clearly dominant
    total = sum(weights)
    return [round(w / total, 4) for w in weights]


def _is_json_declared(headers: Mapping[str, str]) -> bool:
    return "json" in headers.get("content-type", "")


def _parse_json(headers: Mapping[str, str], body: bytes) -> Any:
    if not body or (not _is_json_declared(headers) and body[:1] not in (b"{", b"[")):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _normalise_target(target: str) -> tuple[str, str]:
    if "://" in target:  # absolute-form request target
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    path, _, query = target.partition("?")
    return path, query


def _model_of(path: str, payload: Any) -> str | None:
    if path.startswith(_HF_PREFIX):
        return _split_hf_path(path)[0]
    if path == _CHAT_PATH and isinstance(payload, dict) and isinstance(payload.get("model"), str):
        return str(payload["model"])
    if path.startswith("/models/"):
        return path.removeprefix("/models/").strip("/")
    return None


def _split_hf_path(path: str) -> tuple[str, str | None]:
    model, _, task = path.removeprefix(_HF_PREFIX).partition("/pipeline/")
    return model.strip("/"), task.strip("/") or None


def _is_legacy_path(path: str) -> bool:
    return path.startswith(("/models/", "/pipeline/"))


def _check_root_keys(payload: Mapping[str, Any], allowed: frozenset[str] | None) -> str | None:
    prefix = "Failed to deserialize the JSON body into the target type"
    if "inputs" not in payload:
        return f"{prefix}: missing field `inputs`"
    unknown = sorted(set(payload) - allowed) if allowed is not None else []
    if unknown:
        expected = ", ".join(f"`{key}`" for key in sorted(allowed or ()))
        return f"{prefix}: unknown field `{unknown[0]}`, expected one of {expected}"
    return None


def _json_object(req: RecordedRequest, allowed: frozenset[str] | None) -> dict[str, Any] | _Response:
    """The JSON body as an object with ``inputs`` and only ``allowed`` root keys, or an error response."""
    if req.json is None and req.body.strip() and _is_json_declared(req.headers):
        return _error(400, "Invalid JSON body")
    if not isinstance(req.json, dict):
        return _error(422, "Failed to deserialize the JSON body into the target type: expected an object")
    problem = _check_root_keys(req.json, allowed)
    return _error(422, problem) if problem else req.json


# --------------------------------------------------------------------------------------------------
# Default behaviour: task calls (POST /hf-inference/models/{model})
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TaskContext:
    hint: str  # "/" + lower-cased model id and pipeline task, or the endpoint path
    req: RecordedRequest
    inputs: Any
    parameters: Mapping[str, Any]

    @property
    def text(self) -> str:
        if isinstance(self.inputs, str):
            return self.inputs
        if isinstance(self.inputs, list):
            return " ".join(str(item) for item in self.inputs)
        if isinstance(self.inputs, dict):
            return " ".join(str(value) for value in self.inputs.values())
        return ""

    @property
    def raw_media(self) -> str:
        """The content-type of a raw (non-JSON) body, else ``""``."""
        if self.req.json is not None or not self.req.body:
            return ""
        return self.req.headers.get("content-type", "application/octet-stream")

    def binary(self) -> bytes | None:
        """Raw body bytes, or the base64 ``inputs`` of a JSON body; ``None`` when neither."""
        if self.req.json is None:
            return self.req.body or None
        if not isinstance(self.inputs, str):
            return None
        try:
            return base64.b64decode(self.inputs, validate=True) or None
        except (binascii.Error, ValueError):
            return None


_Predicate = Callable[[_TaskContext], bool]
_Handler = Callable[[_TaskContext], _Response]


def _kw(*words: str) -> _Predicate:
    return lambda ctx: any(word in ctx.hint for word in words)


def _any(*predicates: _Predicate) -> _Predicate:
    return lambda ctx: any(predicate(ctx) for predicate in predicates)


def _accepts(prefix: str) -> _Predicate:
    return lambda ctx: prefix in ctx.req.headers.get("accept", "")


def _raw_media(prefix: str) -> _Predicate:
    return lambda ctx: ctx.raw_media.startswith(prefix)


def _has_param(name: str) -> _Predicate:
    return lambda ctx: name in ctx.parameters


def _question_input(ctx: _TaskContext) -> bool:
    return isinstance(ctx.inputs, dict) and "question" in ctx.inputs


def _mask_in_text(ctx: _TaskContext) -> bool:
    return "[MASK]" in ctx.text or "<mask>" in ctx.text


def _need_media(ctx: _TaskContext, kind: str) -> bytes | _Response:
    data = ctx.binary()
    if data is None:
        return _error(400, f"expected {kind} bytes: a raw body, or base64 in `inputs`")
    return data


def _media_kind(data: bytes) -> str:
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    return "image"


def _dimension(value: Any, default: int = 8) -> int:
    return max(1, min(int(value), 64)) if isinstance(value, int | float) else default


def _text_to_image(ctx: _TaskContext) -> _Response:
    r, g, b = _digest(ctx.text, 3)
    width, height = _dimension(ctx.parameters.get("width")), _dimension(ctx.parameters.get("height"))
    return _Response(200, tiny_png(width, height, (r, g, b)), {"content-type": "image/png"})


def _text_to_speech(ctx: _TaskContext) -> _Response:
    return _Response(200, tiny_flac(), {"content-type": "audio/flac"})


def _image_to_text(ctx: _TaskContext) -> _Response:
    image = _need_media(ctx, "image")
    if isinstance(image, _Response):
        return image
    caption = f"a small {_media_kind(image)} picture of {len(image)} bytes"
    return _json_response(200, [{"generated_text": caption}])


def _object_detection(ctx: _TaskContext) -> _Response:
    image = _need_media(ctx, "image")
    if isinstance(image, _Response):
        return image
    score = _scores(str(len(image)), 2)[0]
    box = {"xmin": 4, "ymin": 6, "xmax": 120, "ymax": 96}
    return _json_response(200, [{"label": "cat", "score": score, "box": box}])


def _speech_recognition(ctx: _TaskContext) -> _Response:
    audio = _need_media(ctx, "audio")
    if isinstance(audio, _Response):
        return audio
    return _json_response(200, {"text": f" a stand-in transcript of {len(audio)} bytes of audio"})


def _image_classification(ctx: _TaskContext) -> _Response:
    image = _need_media(ctx, "image")
    if isinstance(image, _Response):
        return image
    labels = ("tabby cat", "tiger cat", "Egyptian cat")
    scores = _scores(str(len(image)), len(labels))
    return _json_response(200, [{"label": lbl, "score": s} for lbl, s in zip(labels, scores, strict=True)])


def _candidate_labels(parameters: Mapping[str, Any]) -> list[str]:
    labels = parameters.get("candidate_labels")
    if isinstance(labels, str):
        return [label.strip() for label in labels.split(",") if label.strip()]
    return [str(label) for label in labels] if isinstance(labels, list) else []


def _zero_shot(ctx: _TaskContext) -> _Response:
    labels = _candidate_labels(ctx.parameters)
    if not labels:
        return _error(400, "`parameters.candidate_labels` is required for zero-shot classification")
    ranked = sorted(labels, key=lambda label: _digest(ctx.text + label))
    scores = _scores(ctx.text, len(ranked))
    return _json_response(200, [{"label": lbl, "score": s} for lbl, s in zip(ranked, scores, strict=True)])


def _question_answering(ctx: _TaskContext) -> _Response:
    inputs = ctx.inputs if isinstance(ctx.inputs, dict) else {}
    context = inputs.get("context")
    if not isinstance(context, str) or not isinstance(inputs.get("question"), str):
        return _error(400, '`inputs` must be {"question": str, "context": str}')
    answer = " ".join(context.split()[:3])
    start = context.find(answer)
    score = _scores(context, 2)[0]
    return _json_response(200, {"answer": answer, "score": score, "start": start, "end": start + len(answer)})


def _summarization(ctx: _TaskContext) -> _Response:
    words = ctx.text.split()
    summary = " ".join(words[: max(5, len(words) // 3)])
    return _json_response(200, [{"summary_text": summary}])


def _translation(ctx: _TaskContext) -> _Response:
    return _json_response(200, [{"translation_text": f"(translated) {ctx.text}"}])


def _token_classification(ctx: _TaskContext) -> _Response:
    groups = ("PER", "ORG", "LOC", "MISC")
    entities = [
        {
            "entity_group": groups[_digest(match.group())[0] % len(groups)],
            "score": _scores(match.group(), 2)[0],
            "word": match.group(),
            "start": match.start(),
            "end": match.end(),
        }
        for match in re.finditer(r"\b[A-Z][\w-]+", ctx.text)
    ]
    return _json_response(200, entities)


def _fill_mask(ctx: _TaskContext) -> _Response:
    mask = "[MASK]" if "[MASK]" in ctx.text else "<mask>"
    candidates = ("paris", "london", "berlin")
    scores = _scores(ctx.text, len(candidates))
    return _json_response(
        200,
        [
            {"sequence": ctx.text.replace(mask, token), "score": s, "token": 1000 + i, "token_str": token}
            for i, (token, s) in enumerate(zip(candidates, scores, strict=True))
        ],
    )


def _text_classification(ctx: _TaskContext) -> _Response:
    top = _scores(ctx.text, 2)[0]
    labels = ("POSITIVE", "NEGATIVE") if _digest(ctx.text)[0] % 2 == 0 else ("NEGATIVE", "POSITIVE")
    return _json_response(200, [[{"label": labels[0], "score": top}, {"label": labels[1], "score": 1 - top}]])


def _text_generation(ctx: _TaskContext) -> _Response:
    return _json_response(200, [{"generated_text": f"{ctx.text} ... and that is the stand-in's answer."}])


_RULES: tuple[tuple[_Predicate, _Handler], ...] = (
    (_any(_accepts("image/"), _kw("stable-diffusion", "flux", "sdxl", "text-to-image", "kandinsky")), _text_to_image),
    (_kw("tts", "speecht5", "bark", "kokoro", "text-to-speech", "musicgen"), _text_to_speech),
    (_kw("blip", "caption", "image-to-text", "vit-gpt2", "git-base", "git-large"), _image_to_text),
    (_kw("detr", "yolo", "object-detection", "owlvit"), _object_detection),
    (_any(_kw("whisper", "wav2vec", "speech-recognition", "hubert"), _raw_media("audio/")), _speech_recognition),
    (_any(_kw("image-classification", "/vit-", "resnet", "convnext"), _raw_media("image/")), _image_classification),
    (_any(_kw("mnli", "zero-shot", "xnli"), _has_param("candidate_labels")), _zero_shot),
    (_any(_kw("squad", "question-answering"), _question_input), _question_answering),
    (_kw("summar", "bart", "pegasus"), _summarization),
    (_kw("opus-mt", "translation", "nllb", "m2m100", "/t5-"), _translation),
    (_kw("-ner", "ner-", "/ner", "token-classification"), _token_classification),
    (_any(_kw("fill-mask"), _mask_in_text), _fill_mask),
    (_kw("sentiment", "sst", "emotion", "text-classification", "toxic", "finbert"), _text_classification),
)


def _pick_handler(ctx: _TaskContext) -> _Handler:
    return next((handler for predicate, handler in _RULES if predicate(ctx)), _text_generation)


def _task_call(req: RecordedRequest, hint: str, allowed: frozenset[str] | None) -> _Response:
    if req.json is None and req.body and not _is_json_declared(req.headers):
        ctx = _TaskContext("/" + hint.lower(), req, None, {})  # raw media input
        return _pick_handler(ctx)(ctx)
    payload = _json_object(req, allowed)
    if isinstance(payload, _Response):
        return payload
    parameters = payload.get("parameters")
    ctx = _TaskContext("/" + hint.lower(), req, payload["inputs"], parameters if isinstance(parameters, dict) else {})
    return _pick_handler(ctx)(ctx)


# --------------------------------------------------------------------------------------------------
# Default behaviour: embeddings and similarity
# --------------------------------------------------------------------------------------------------


def _embedding_dims(model: str) -> int:
    name = model.lower()
    if "large" in name:
        return 1024
    return 768 if "base" in name or "mpnet" in name else 384


@functools.lru_cache(maxsize=16_384)
def _word_vector(word: str, dims: int) -> tuple[float, ...]:
    raw = hashlib.shake_256(word.encode()).digest(dims * 2)
    return tuple(value / 32767.5 - 1.0 for value in struct.unpack(f"<{dims}H", raw))


@functools.lru_cache(maxsize=8192)
def embedding(text: str, dims: int = 384, normalize: bool = True) -> tuple[float, ...]:
    """Deterministic bag-of-words vector: texts sharing words get a positive cosine similarity."""
    words = re.findall(r"\w+", text.lower()) or [""]
    summed = [sum(column) for column in zip(*(_word_vector(w, dims) for w in words), strict=True)]
    norm = math.sqrt(sum(v * v for v in summed)) or 1.0
    scale = 1.0 / norm if normalize else 1.0 / len(words)
    return tuple(round(v * scale, 6) for v in summed)


def _string_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _feature_extraction(req: RecordedRequest, model: str) -> _Response:
    payload = _json_object(req, _EMBED_KEYS)
    if isinstance(payload, _Response):
        return payload
    texts = _string_list(payload["inputs"])
    if texts is None:
        return _error(422, "`inputs` must be a string or a non-empty list of strings")
    dims, normalize = _embedding_dims(model), payload.get("normalize", True) is not False
    return _json_response(200, [embedding(text, dims, normalize) for text in texts])


def _sentence_similarity(req: RecordedRequest, model: str) -> _Response:
    payload = _json_object(req, _SIMILARITY_KEYS)
    if isinstance(payload, _Response):
        return payload
    inputs = payload["inputs"]
    source = inputs.get("source_sentence") if isinstance(inputs, dict) else None
    sentences = _string_list(inputs.get("sentences")) if isinstance(inputs, dict) else None
    if not isinstance(source, str) or sentences is None:
        return _error(422, '`inputs` must be {"source_sentence": str, "sentences": [str, ...]}')
    dims = _embedding_dims(model)
    anchor = embedding(source, dims)
    similarities = [round(sum(a * b for a, b in zip(anchor, embedding(s, dims), strict=True)), 6) for s in sentences]
    return _json_response(200, similarities)


# --------------------------------------------------------------------------------------------------
# Default behaviour: OpenAI-compatible chat
# --------------------------------------------------------------------------------------------------


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _provider_of(model: str) -> str:
    suffix = model.partition(":")[2]
    return suffix if suffix and suffix not in ("fastest", "cheapest") else "hf-inference"


def _chat_completion(payload: Mapping[str, Any], model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    message, finish = _assistant_message(payload, messages)
    words = (message.get("content") or "").split()
    prompt_tokens = sum(len(_message_text(m).split()) for m in messages)
    return {
        "id": f"chatcmpl-{os.urandom(12).hex()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "hf-standin",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        },
    }


def _assistant_message(payload: Mapping[str, Any], messages: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """What the model says, decided by the request as the router's models tend to.

    Offered tools are called while no tool has answered yet (always when ``tool_choice`` requires it), with
    arguments built from each function's parameter schema; a ``json_schema`` response format is answered
    with an instance of the schema, ``json_object`` with a small object; otherwise plain text.
    """
    last_user = next((_message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    tool_answers = [_message_text(m) for m in messages if m.get("role") == "tool"]
    calls = _tool_calls_for(payload, last_user, answered=bool(tool_answers))
    if calls:
        return {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"
    text = f"Stand-in answer to: {last_user}" + (f" Using: {tool_answers[-1]}" if tool_answers else "")
    response_format = payload.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return {"role": "assistant", "content": json.dumps(_schema_instance(schema, last_user))}, "stop"
    if response_format.get("type") == "json_object":
        return {"role": "assistant", "content": json.dumps({"answer": text})}, "stop"
    words, finish = text.split(), "stop"
    limit = payload.get("max_tokens")
    if isinstance(limit, int) and 0 < limit < len(words):
        words, finish = words[:limit], "length"
    return {"role": "assistant", "content": " ".join(words)}, finish


def _tool_calls_for(payload: Mapping[str, Any], text: str, answered: bool) -> list[dict[str, Any]]:
    functions = [tool["function"] for tool in payload.get("tools") or ()]
    choice = payload.get("tool_choice", "auto")
    if not functions or choice == "none" or (answered and choice == "auto"):
        return []
    if isinstance(choice, dict):
        functions = [f for f in functions if f["name"] == choice["function"]["name"]]
    return [
        {
            "id": f"call_{os.urandom(6).hex()}",
            "type": "function",
            "function": {
                "name": function["name"],
                "arguments": json.dumps(_schema_instance(function.get("parameters") or {}, text)),
            },
        }
        for function in functions[:1]
    ]


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
_PERSON = re.compile(r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)+\b")


def _schema_instance(schema: Mapping[str, Any], text: str, key: str = "") -> Any:
    """A value matching ``schema``, taken from ``text`` where a field's name or type says what to look for."""
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: _schema_instance(sub, text, name) for name, sub in properties.items()}
    if kind == "array":
        return [_schema_instance(schema.get("items") or {}, text, key)]
    if kind in ("number", "integer"):
        found = _NUMBER.search(text)
        number = float(found.group().replace(",", ".")) if found else 0.0
        return int(number) if kind == "integer" else number
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string_for(key.lower(), schema.get("format"), text)


def _string_for(key: str, fmt: Any, text: str) -> str:
    if "email" in key or fmt == "email":
        found = _EMAIL.search(text)
        return found.group() if found else "someone@example.com"
    if "name" in key:
        found = _PERSON.search(text)
        return found.group() if found else "Jane Doe"
    return text


def _sse(completion: Mapping[str, Any]) -> bytes:
    choice = completion["choices"][0]
    base = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": word + " "} for word in (choice["message"]["content"] or "").split()]
    events = [base | {"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    final_choice = {"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}
    events.append(base | {"choices": [final_choice], "usage": completion["usage"]})
    lines = [f"data: {json.dumps(event)}\n\n" for event in events] + ["data: [DONE]\n\n"]
    return "".join(lines).encode()


def _chat(req: RecordedRequest) -> _Response:
    payload = req.json
    if not isinstance(payload, dict):
        return _error(400, "request body must be a JSON object")
    messages = payload.get("messages")
    if messages is None:
        return _error(422, "Failed to deserialize the JSON body into the target type: missing field `messages`")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return _error(422, "`messages` must be a non-empty list of message objects")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        return _error(422, "Failed to deserialize the JSON body into the target type: missing field `model`")
    problem = _tools_problem(payload, messages)
    if problem:
        return _error(422, problem)
    completion = _chat_completion(payload, model, messages)
    headers = {"x-inference-provider": _provider_of(model)}
    if payload.get("stream"):
        return _Response(200, _sse(completion), {"content-type": "text/event-stream", **headers})
    return _json_response(200, completion, headers)


def _is_function_tool(tool: Any) -> bool:
    return isinstance(tool, dict) and tool.get("type") == "function" and "name" in (tool.get("function") or {})


def _tools_problem(payload: Mapping[str, Any], messages: list[dict[str, Any]]) -> str | None:
    """What OpenAI's API refuses about tools, tool messages and response formats."""
    tools = payload.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(_is_function_tool(t) for t in tools)):
        return "`tools` must be a list of {type: function, function: {name, ...}}"
    names = {t["function"]["name"] for t in tools or ()}
    choice = payload.get("tool_choice")
    if choice is not None and not tools:
        return "`tool_choice` is only allowed when `tools` are given"
    if isinstance(choice, dict) and (choice.get("function") or {}).get("name") not in names:
        return "`tool_choice` names a function that is not in `tools`"
    if choice is not None and not isinstance(choice, dict) and choice not in ("auto", "none", "required"):
        return "`tool_choice` must be auto, none, required or {type: function, function: {name}}"
    called = {
        call.get("id")
        for m in messages
        if m.get("role") == "assistant"
        for call in m.get("tool_calls") or ()
        if isinstance(call.get("function", {}).get("arguments"), str)
    }
    for m in messages:
        if m.get("role") == "tool" and m.get("tool_call_id") not in called:
            return "a `tool` message must answer a tool call of an earlier assistant message (`tool_call_id`)"
    response_format = payload.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            return "`response_format.type` must be text, json_object or json_schema"
        if kind == "json_schema" and not isinstance((response_format.get("json_schema") or {}).get("schema"), dict):
            return "`response_format.json_schema.schema` must be a JSON schema object"
    return None


def _route_post(req: RecordedRequest, strict: bool) -> _Response:
    if req.path == _CHAT_PATH:
        return _chat(req)
    if req.path.startswith(_HF_PREFIX):
        model, task = _split_hf_path(req.path)
        if task == "feature-extraction":
            return _feature_extraction(req, model)
        if task == "sentence-similarity":
            return _sentence_similarity(req, model)
        return _task_call(req, f"{model} {task or ''}", _TASK_KEYS if strict else None)
    return _task_call(req, req.path, None)  # dedicated endpoint / TGI-style root contract


def _from_reply(reply: Reply, req: RecordedRequest) -> _Response:
    headers = {key.lower(): value for key, value in reply.headers.items()}
    if reply.body is not None:
        headers.setdefault("content-type", "application/octet-stream")
        return _Response(reply.status, reply.body, headers)
    payload = reply.json_fn(req) if reply.json_fn is not None else reply.json
    if payload is None:
        return _Response(reply.status, b"", headers)
    headers.setdefault("content-type", "application/json")
    return _Response(reply.status, json.dumps(payload).encode(), headers)


def _simple_fault(fault: Fault) -> _Response:
    if fault is Fault.INVALID_JSON:
        return _Response(200, b'[{"generated_text": "unterminated', {"content-type": "application/json"})
    page = b"<html><body><h1>502 Bad Gateway</h1><p>upstream sent garbage</p></body></html>"
    return _Response(200, page, {"content-type": "text/html; charset=utf-8"})


def _decorate(response: _Response, started: float) -> None:
    headers = response.headers
    headers.setdefault("x-request-id", f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()}")
    headers.setdefault("x-inference-provider", "hf-inference")
    headers.setdefault("x-compute-type", "cpu")
    headers.setdefault("x-compute-time", f"{time.monotonic() - started:.3f}")
    headers["content-length"] = str(len(response.body))


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class HfStandin:
    """A loopback stand-in for router.huggingface.co, running in a background thread.

    Thread-safe from the test thread: ``script``, ``pending``, ``requests``, ``requests_for``,
    ``wait_for_requests``, ``reset`` and the counters. ``latency`` may be changed at any time.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
        require_auth: bool = True,
        valid_tokens: Iterable[str] | None = None,
        strict: bool = True,
        oversized_bytes: int = 50 * MIB,
        trickle_interval: float = 0.05,
    ) -> None:
        self.latency = latency
        self.record = record
        self.require_auth = require_auth
        self.valid_tokens = frozenset(valid_tokens) if valid_tokens is not None else None
        self.strict = strict
        self.oversized_bytes = oversized_bytes
        self.trickle_interval = trickle_interval
        self._host, self._port = host, port
        self._scripts: dict[str, deque[Scripted]] = {}
        self._script_lock = threading.Lock()
        self._cond = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._count = 0
        self._outcomes: Counter[int | Fault] = Counter()
        self._in_flight = 0
        self._peak = 0
        self._connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ready = threading.Event()
        self._startup_error: Exception | None = None
        self._closing = False

    # ---- lifecycle ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("HfStandin already started")
        self._ready.clear()
        self._startup_error = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="hf-standin", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"HfStandin could not bind {self._host}:{self._port}") from self._startup_error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            if self._bind(loop):
                self._loop = loop
                self._ready.set()
                loop.run_forever()
        finally:
            self._ready.set()
            loop.close()

    def _bind(self, loop: asyncio.AbstractEventLoop) -> bool:
        start = asyncio.start_server(self._on_connection, self._host, self._port, limit=_HEAD_LIMIT, backlog=1024)
        try:
            self._server = loop.run_until_complete(start)
        except OSError as exc:
            self._startup_error = exc
            return False
        self._port = self._server.sockets[0].getsockname()[1]
        return True

    async def _shutdown(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # ---- scripting ------------------------------------------------------------------------------

    def script(self, key: str, *responses: Scripted) -> None:
        """Queue replies for a model id (``org/name``, with or without ``:provider``), a path, or ``*``."""
        with self._script_lock:
            self._scripts.setdefault(key, deque()).extend(responses)

    def pending(self, key: str) -> int:
        """How many scripted replies are still queued for ``key``."""
        with self._script_lock:
            return len(self._scripts.get(key, ()))

    def _next_action(self, req: RecordedRequest) -> Scripted | None:
        with self._script_lock:
            if not self._scripts:
                return None
            for key in (req.path, req.model or "", req.base_model or "", "*"):
                queue = self._scripts.get(key)
                if queue:
                    action = queue.popleft()
                    if not queue:
                        del self._scripts[key]
                    return action
        return None

    # ---- recording and counters -----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    def requests_for(self, key: str) -> list[RecordedRequest]:
        """Recorded requests whose model id (with or without suffix) or path equals ``key``."""
        return [req for req in self.requests if req.matches(key)]

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``n`` requests arrived since the last reset; ``TimeoutError`` otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._count >= n, timeout=timeout):
                raise TimeoutError(f"expected {n} request(s) within {timeout}s, got {self._count}")
            return list(self._requests)

    def reset(self) -> None:
        """Forget recorded requests, counters and every queued script."""
        with self._script_lock:
            self._scripts.clear()
        with self._cond:
            self._requests.clear()
            self._count = 0
            self._outcomes.clear()
            self._peak = self._in_flight

    @property
    def request_count(self) -> int:
        """Requests received since the last reset (counted even with ``record=False``)."""
        with self._cond:
            return self._count

    @property
    def outcomes(self) -> dict[int | Fault, int]:
        """How each request ended: by HTTP status, or by ``Fault`` for scripted faults."""
        with self._cond:
            return dict(self._outcomes)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """Most requests in progress at once since the last reset."""
        return self._peak

    @property
    def connections(self) -> int:
        """TCP connections accepted since start."""
        return self._connections

    def _register(self, incoming: _Incoming) -> RecordedRequest:
        path, query = _normalise_target(incoming.target)
        payload = _parse_json(incoming.headers, incoming.body)
        req = RecordedRequest(
            incoming.method,
            path,
            query,
            incoming.headers,
            incoming.body,
            payload,
            time.monotonic(),
            _model_of(path, payload),
        )
        with self._cond:
            self._count += 1
            if self.record:
                self._requests.append(req)
            self._cond.notify_all()
        return req

    def _count_outcome(self, outcome: int | Fault) -> None:
        with self._cond:
            self._outcomes[outcome] += 1

    # ---- serving --------------------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._connections += 1
        try:
            while await self._serve_one(reader, writer):
                pass
        except _BadRequestError as exc:
            with contextlib.suppress(ConnectionError):
                await self._send(writer, _error(400, str(exc)), time.monotonic(), keep_alive=False)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # Swallowed on shutdown: Python 3.11's stream callback logs cancelled handler tasks as errors.
        finally:
            self._tasks.discard(task)
            await _close(writer)

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; ``True`` when the connection stays open for the next one."""
        incoming = await _read_request(reader)
        if incoming is None:
            return False
        req = self._register(incoming)
        self._in_flight += 1
        self._peak = max(self._peak, self._in_flight)
        try:
            action = self._next_action(req)
            delay = self.latency + (action.delay if isinstance(action, Reply) else 0.0)
            if delay > 0:
                await asyncio.sleep(delay)
            return await self._answer(req, action, incoming.keep_alive, reader, writer)
        finally:
            self._in_flight -= 1

    async def _answer(
        self,
        req: RecordedRequest,
        action: Scripted | None,
        keep_alive: bool,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if action is None or isinstance(action, Reply):
            response = self._respond(req, action)
            self._count_outcome(response.status)
            await self._send(writer, response, req.timestamp, keep_alive)
            return keep_alive
        if action is Fault.OVERSIZED:
            action = Oversized(self.oversized_bytes)
        if isinstance(action, Oversized):
            self._count_outcome(Fault.OVERSIZED)
            await _stream_oversized(writer, action, keep_alive)
            return keep_alive
        self._count_outcome(action)
        if action in (Fault.INVALID_JSON, Fault.WRONG_CONTENT_TYPE):
            await self._send(writer, _simple_fault(action), req.timestamp, keep_alive)
            return keep_alive
        await self._connection_fault(action, reader, writer)
        return False

    def _respond(self, req: RecordedRequest, reply: Reply | None) -> _Response:
        try:
            return self._default(req) if reply is None else _from_reply(reply, req)
        except Exception as exc:  # a stand-in bug must show up as an answer, not a dead connection
            return _error(500, f"hf-standin internal error: {exc!r}")

    async def _send(self, writer: asyncio.StreamWriter, response: _Response, started: float, keep_alive: bool) -> None:
        _decorate(response, started)
        writer.write(_encode_head(response.status, response.headers, keep_alive) + response.body)
        await writer.drain()

    async def _connection_fault(self, fault: Fault, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        match fault:
            case Fault.RESET:
                _abort(writer)
            case Fault.TRUNCATED:
                await _send_truncated(writer)
            case Fault.NEVER_ENDS:
                await self._trickle(writer)
            case Fault.HANG:
                await _wait_for_eof(reader)

    async def _trickle(self, writer: asyncio.StreamWriter) -> None:
        headers = {"content-type": "application/json", "transfer-encoding": "chunked"}
        writer.write(_encode_head(200, headers, True) + _chunk(b'[{"generated_text": "'))
        while not writer.is_closing():
            await writer.drain()
            await asyncio.sleep(self.trickle_interval)  # the pace of the trickle, not synchronisation
            writer.write(_chunk(b"more "))

    def _default(self, req: RecordedRequest) -> _Response:
        if _is_legacy_path(req.path):
            return _error(410, LEGACY_GONE_MESSAGE)
        if req.method == "GET" and req.path in ("/", "/health"):
            return _json_response(200, {"status": "ok"})
        if req.method != "POST":
            return _error(405, f"Method {req.method} not allowed")
        denied = self._check_auth(req.headers)
        return denied if denied is not None else _route_post(req, self.strict)

    def _check_auth(self, headers: Mapping[str, str]) -> _Response | None:
        if not self.require_auth:
            return None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not token.strip():
            return _error(401, "Invalid username or password.")
        if self.valid_tokens is not None and token.strip() not in self.valid_tokens:
            return _error(401, "Invalid credentials in Authorization header")
        return None
