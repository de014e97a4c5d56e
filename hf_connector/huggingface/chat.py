"""The chat operation's extras on the OpenAI wire: tools, tool choice and response format going out, and
the assistant message, its tool calls and its JSON answer coming back.

A process carries a conversation round a BPMN loop, so what comes back is shaped to be mapped straight
into the next request: `message` is appended to `messages` as it is, and `toolCalls` already has its
arguments parsed for gateways and mappings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from hf_connector.huggingface.contract import JobVariables, ResponseFormat, ToolChoice

INVALID_JSON_ANSWER = "INVALID_JSON_ANSWER"
# How much of a model's answer a failure message may quote: enough to recognise it, never a whole document.
ANSWER_EXCERPT_CHARS = 200
_LONG_VALUE_CHARS = 60
_REJECTED_STATUSES = frozenset({400, 422})


class InvalidJsonAnswerError(Exception):
    """JSON was asked for and the answer is not JSON, or not what the schema describes."""

    code = INVALID_JSON_ANSWER


@dataclass(frozen=True, slots=True)
class JsonAnswer:
    """What the answer must be: JSON, and with a schema, an instance of it."""

    schema: Mapping[str, Any] | None = None
    schema_name: str | None = None

    @classmethod
    def of(cls, response_format: ResponseFormat | None) -> JsonAnswer | None:
        if response_format is None or not response_format.asks_for_json:
            return None
        spec = response_format.json_schema
        return cls(spec.answer_schema, spec.name) if spec is not None else cls()


def chat_extras(job: JobVariables) -> dict[str, Any]:
    """`tools`, `tool_choice` and `response_format` for the request body, as OpenAI names them."""
    extras: dict[str, Any] = {}
    if job.tools:
        extras["tools"] = [tool.model_dump(exclude_none=True) for tool in job.tools]
        if job.tool_choice is not None:
            extras["tool_choice"] = _tool_choice(job.tool_choice)
    if job.response_format is not None:
        extras["response_format"] = job.response_format.model_dump(by_alias=True, exclude_none=True)
    return extras


def _tool_choice(choice: ToolChoice | str) -> str | dict[str, Any]:
    if isinstance(choice, ToolChoice):
        return choice.value
    return {"type": "function", "function": {"name": choice}}


def requested_features(job: JobVariables) -> tuple[str, ...]:
    """The extras a provider may not support, named as they appear in the request body."""
    features = ("tools",) if job.tools else ()
    return features + (("response_format",) if job.response_format is not None else ())


def rejection_advice(model: str, features: tuple[str, ...], status: int) -> str | None:
    """Why a provider may have refused the request, when it carried extras that not every provider serves."""
    if not features or status not in _REJECTED_STATUSES:
        return None
    base, _, suffix = model.partition(":")
    provider = f"provider suffix ':{suffix}'" if suffix else "no provider suffix (the router picked the provider)"
    return (
        f"The provider may not support {' and '.join(features)} for model '{base}' with {provider}: "
        "choose a model and provider that do (another ':provider' suffix), or leave them out."
    )


def chat_fields(body: Mapping[str, Any], json_answer: JsonAnswer | None) -> dict[str, Any]:
    """What the chat result adds to `{status, headers, body}`; raises InvalidJsonAnswerError."""
    choice = _first_choice(body)
    message = choice.get("message") if isinstance(choice.get("message"), Mapping) else None
    content = message.get("content") if message is not None else None
    tool_calls = _tool_calls(message)
    fields: dict[str, Any] = {
        "answer": content,
        "usage": body.get("usage"),
        "message": message,
        "toolCalls": tool_calls,
        "finishReason": choice.get("finish_reason"),
    }
    if json_answer is not None and not tool_calls:
        fields["json"] = _parsed_answer(content, json_answer, fields["finishReason"])
    return fields


def _first_choice(body: Mapping[str, Any]) -> Mapping[str, Any]:
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        return choices[0]
    return {}


def _tool_calls(message: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    calls = message.get("tool_calls") if message is not None else None
    if not isinstance(calls, list):
        return []
    return [_tool_call(call) for call in calls if isinstance(call, Mapping)]


def _tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function")
    function = function if isinstance(function, Mapping) else {}
    entry: dict[str, Any] = {"id": call.get("id"), "name": function.get("name")}
    raw = function.get("arguments")
    if not isinstance(raw, str):
        entry["arguments"] = raw  # a provider that already sends an object
        return entry
    try:
        # A function without parameters may come back with no argument text at all.
        entry["arguments"] = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        entry["arguments"] = None
        entry["argumentsText"] = raw
    return entry


def _parsed_answer(content: Any, json_answer: JsonAnswer, finish_reason: Any) -> Any:
    cut = (
        " The answer was cut at the token limit (finish_reason length): raise maxTokens."
        if finish_reason == "length"
        else ""
    )
    if not isinstance(content, str) or not content.strip():
        raise InvalidJsonAnswerError(f"JSON was asked for, but the model's answer is empty.{cut}")
    try:
        parsed = json.loads(content)
    except json.JSONDecodeError as exc:
        raise InvalidJsonAnswerError(
            f"JSON was asked for, but the model's answer is not JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}): {_excerpt(content)}.{cut}"
        ) from None
    if json_answer.schema is not None:
        _check_schema(parsed, json_answer, cut)
    return parsed


def _check_schema(answer: Any, json_answer: JsonAnswer, cut: str) -> None:
    schema = json_answer.schema
    assert schema is not None
    error = best_match(validator_for(schema)(schema).iter_errors(answer))
    if error is None:
        return
    name = f" '{json_answer.schema_name}'" if json_answer.schema_name else ""
    # jsonschema's messages start with the offending value; a long one would hide what is wrong with it.
    problem = error.message
    shown = repr(error.instance)
    if len(shown) > _LONG_VALUE_CHARS:
        problem = problem.replace(shown, "the value", 1)
    raise InvalidJsonAnswerError(
        f"The model's answer is JSON but does not match the schema{name}: at {error.json_path}, {_cut(problem)}.{cut}"
    )


def _excerpt(text: str) -> str:
    return repr(_cut(text))


def _cut(text: str) -> str:
    return text if len(text) <= ANSWER_EXCERPT_CHARS else text[:ANSWER_EXCERPT_CHARS] + "..."
