"""Camunda document references where a Hugging Face job takes binary input: the whole `input`, `input.inputs`,
or the image of a chat message part (`image_url` itself, or its `url`).

Each reference is replaced by its content in the form the request builder already sends (`{data, contentType}`
for inputs, a data URL for chat images), so a document travels exactly as an inline binary input does.
References elsewhere are left alone: they are ordinary JSON to Hugging Face.
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from hf_connector.documents import is_reference
from hf_connector.huggingface.binary import BinaryInput
from hf_connector.huggingface.contract import ChatMessage, JobVariables

Fetch = Callable[[Mapping[str, Any]], Coroutine[Any, Any, BinaryInput]]
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-]+")
# Where Python's table answers oddly or not at all for what Hugging Face returns.
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "audio/flac": ".flac",
    "audio/mpeg": ".mp3",
    "audio/wav": ".wav",
    "image/webp": ".webp",
}


def has_references(variables: JobVariables) -> bool:
    return bool(_input_references(variables.input)) or any(
        _image_reference(part) is not None for message in variables.messages or [] for part in _parts(message)
    )


async def with_documents(variables: JobVariables, fetch: Fetch) -> JobVariables:
    """The job with every reference replaced by its content; several references are fetched concurrently,
    and the first failure cancels the other downloads."""
    if not has_references(variables):
        return variables
    found: list[Mapping[str, Any]] = _input_references(variables.input)
    found += [
        ref for message in variables.messages or [] for part in _parts(message) if (ref := _image_reference(part))
    ]
    contents = await _fetch_all(found, fetch)
    changes: dict[str, Any] = {}
    if _input_references(variables.input):
        changes["input"] = _replace_input(variables.input, contents)
    if variables.messages:
        changes["messages"] = [_replace_message(message, contents) for message in variables.messages]
    return variables.model_copy(update=changes)


async def _fetch_all(found: list[Mapping[str, Any]], fetch: Fetch) -> dict[int, BinaryInput]:
    try:
        async with asyncio.TaskGroup() as group:
            tasks: dict[int, asyncio.Task[BinaryInput]] = {id(ref): group.create_task(fetch(ref)) for ref in found}
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return {key: task.result() for key, task in tasks.items()}


def _input_references(value: Any) -> list[Mapping[str, Any]]:
    if is_reference(value):
        return [value]
    if isinstance(value, Mapping) and is_reference(value.get("inputs")):
        return [value["inputs"]]
    return []


def _replace_input(value: Any, contents: dict[int, BinaryInput]) -> Any:
    if is_reference(value):
        return _inline(contents[id(value)])
    return {**value, "inputs": _inline(contents[id(value["inputs"])])}


def _inline(binary: BinaryInput) -> dict[str, str]:
    return {"data": binary.base64, "contentType": binary.content_type}


def _parts(message: ChatMessage) -> list[Any]:
    return message.content if isinstance(message.content, list) else []


def _image_reference(part: Any) -> Mapping[str, Any] | None:
    if not isinstance(part, Mapping) or part.get("type") != "image_url":
        return None
    image = part.get("image_url")
    if is_reference(image):
        return image
    if isinstance(image, Mapping) and is_reference(image.get("url")):
        return image["url"]  # type: ignore[no-any-return]
    return None


def _replace_message(message: ChatMessage, contents: dict[int, BinaryInput]) -> ChatMessage:
    parts = _parts(message)
    if not any(_image_reference(part) is not None for part in parts):
        return message
    replaced = []
    for part in parts:
        reference = _image_reference(part)
        if reference is None:
            replaced.append(part)
            continue
        binary = contents[id(reference)]
        url = f"data:{binary.content_type};base64,{binary.base64}"
        image = part["image_url"]
        kept = {k: v for k, v in image.items() if k != "url"} if not is_reference(image) else {}
        replaced.append({**part, "image_url": {**kept, "url": url}})
    return message.model_copy(update={"content": replaced})


def binary_answer(body: Any) -> BinaryInput | None:
    """The bytes of an answer the HTTP core kept as base64 (`{contentType, encoding, size, data}`), else None."""
    if not (isinstance(body, Mapping) and body.get("encoding") == "base64" and isinstance(body.get("data"), str)):
        return None
    return BinaryInput(base64.b64decode(body["data"]), str(body.get("contentType") or "application/octet-stream"))


def file_name(model: str, content_type: str) -> str:
    """`stable-diffusion-2.png` for stabilityai/stable-diffusion-2 answering image/png: what a person
    downloading the document from Operate or Tasklist expects. An endpoint URL gives no name: it may be a
    secret, and the store keeps names unmasked."""
    segment = "" if model.startswith(("https://", "http://")) else model.partition(":")[0].rsplit("/", 1)[-1]
    stem = _UNSAFE.sub("-", segment).strip("-.") or "hugging-face"
    extension = _EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or ".bin"
    return stem + extension
