"""Chat for processes: tools, tool choice and response format on the wire, and the answer shaped for a BPMN loop."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from hf_connector.http_core import HttpResult
from hf_connector.huggingface.chat import ANSWER_EXCERPT_CHARS, InvalidJsonAnswerError
from hf_connector.huggingface.contract import JobVariables
from hf_connector.huggingface.requests import HfCall, HfDefaults, build_call

DEFAULTS = HfDefaults("https://router.huggingface.co", None, read_timeout=120.0, max_input_bytes=64 * 1024)
MODEL = "meta-llama/Llama-3.1-8B-Instruct:novita"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "email": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["name", "email", "amount"],
}


def _job(**variables: Any) -> JobVariables:
    return JobVariables.model_validate({"operation": "chat", "model": MODEL, "prompt": "hi", **variables})


def _call(**variables: Any) -> HfCall:
    return build_call(_job(**variables), DEFAULTS)


def _body(**variables: Any) -> dict[str, Any]:
    content = _call(**variables).request.content
    assert content is not None
    body: dict[str, Any] = json.loads(content)
    return body


def _refusal(**variables: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        _job(**variables)
    return str(caught.value)


def _completion(message: dict[str, Any], finish_reason: str = "stop") -> HttpResult:
    body = {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
    }
    return HttpResult(status=200, reason="OK", headers={}, body=body, elapsed_seconds=0.1)


def _answer(content: str | None, finish_reason: str = "stop") -> HttpResult:
    return _completion({"role": "assistant", "content": content}, finish_reason)


# --- the request ------------------------------------------------------------------------------------


def test_tools_and_tool_choice_go_out_as_openai_defines_them() -> None:
    body = _body(tools=[WEATHER], toolChoice="required")
    assert body["tools"] == [WEATHER]
    assert body["tool_choice"] == "required"


def test_a_function_name_as_tool_choice_forces_that_function() -> None:
    body = _body(tools=[WEATHER], toolChoice="get_weather")
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_without_tool_choice_the_provider_default_applies() -> None:
    assert "tool_choice" not in _body(tools=[WEATHER])


@pytest.mark.parametrize("choice", ["auto", "none"])
def test_a_tool_choice_without_tools_is_not_sent(choice: str) -> None:
    """The template writes `auto` into every chat task, tools or not."""
    body = _body(toolChoice=choice)
    assert "tool_choice" not in body and "tools" not in body


def test_a_chat_without_extras_sends_none_of_them() -> None:
    assert _body().keys() == {"model", "messages", "stream"}


@pytest.mark.parametrize(
    ("variables", "words"),
    [
        ({"toolChoice": "required"}, "needs tools"),
        ({"tools": [WEATHER], "toolChoice": "get_time"}, "not one of the tools (get_weather)"),
        ({"tools": [WEATHER], "toolChoice": "get weather!"}, "neither auto, none, required nor a function name"),
        ({"tools": [{"type": "retrieval"}]}, "tools.0.type"),
        ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools.0.function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "thing"}}}]},
            "not a valid JSON schema",
        ),
        ({"tools": '[{"type": "function",'}, "looks like JSON but does not parse"),
    ],
)
def test_tools_a_model_could_not_use_are_refused_before_any_call(variables: dict[str, Any], words: str) -> None:
    assert words in _refusal(**variables)


def test_tools_written_as_json_text_are_sent_as_json() -> None:
    assert _body(tools=json.dumps([WEATHER]))["tools"] == [WEATHER]


def test_a_json_schema_response_format_goes_out_unchanged() -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    assert _body(responseFormat=response_format)["response_format"] == response_format


def test_a_json_object_response_format_goes_out_unchanged() -> None:
    assert _body(responseFormat={"type": "json_object"})["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("response_format", "words"),
    [
        ({"type": "json_schema"}, "needs json_schema"),
        ({"type": "json_schema", "json_schema": {"name": "p"}}, "responseFormat.json_schema.schema"),
        ({"type": "json_schema", "json_schema": {"schema": {"type": 5}}}, "not a valid JSON schema"),
        ({"type": "yaml"}, "responseFormat.type"),
    ],
)
def test_a_response_format_that_cannot_work_is_refused(response_format: dict[str, Any], words: str) -> None:
    assert words in _refusal(responseFormat=response_format)


def test_a_conversation_with_tool_calls_goes_round_the_loop() -> None:
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
        ],
    }
    tool = {"role": "tool", "tool_call_id": "call_1", "content": "4 degrees, rain"}
    messages = [{"role": "user", "content": "Weather in Oslo?"}, assistant, tool]
    sent = _body(messages=messages, tools=[WEATHER])["messages"]
    assert sent == [messages[0], {k: v for k, v in assistant.items() if v is not None}, tool]


def test_tool_call_arguments_written_as_a_context_are_sent_as_json_text() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    sent = _body(messages=[{"role": "assistant", "tool_calls": [call]}])["messages"]
    assert sent[0]["tool_calls"][0]["function"]["arguments"] == '{"city":"Oslo"}'


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"role": "tool", "content": "4 degrees"}, "needs the tool_call_id"),
        ({"role": "user"}, "a user message needs content"),
        ({"role": "assistant", "content": None}, "an assistant message needs content"),
        ({"role": "assistant", "tool_calls": [{"id": "c", "function": {}}]}, "needs a name"),
    ],
)
def test_messages_the_provider_would_refuse_are_refused(message: dict[str, Any], words: str) -> None:
    assert words.split(" ", 1)[1] in _refusal(messages=[message])


# --- the answer -------------------------------------------------------------------------------------


def test_tool_calls_come_back_with_parsed_arguments_and_the_message_as_returned() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
        ],
    }
    value = _call(tools=[WEATHER]).result_variable(_completion(message, "tool_calls"))
    assert value["message"] == message
    assert value["toolCalls"] == [
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}},
        {"id": "call_2", "name": "now", "arguments": {}},
    ]
    assert value["finishReason"] == "tool_calls"
    assert value["answer"] is None
    assert value["usage"]["total_tokens"] == 13


def test_tool_call_arguments_that_are_not_json_are_kept_as_text() -> None:
    broken = '{"city": "Oslo"'
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": broken}}],
    }
    (call,) = _call(tools=[WEATHER]).result_variable(_completion(message, "tool_calls"))["toolCalls"]
    assert call == {"id": "c", "name": "get_weather", "arguments": None, "argumentsText": broken}


def test_a_plain_answer_has_no_tool_calls_and_no_json() -> None:
    value = _call().result_variable(_answer("Hello!"))
    assert (value["answer"], value["toolCalls"], value["finishReason"]) == ("Hello!", [], "stop")
    assert "json" not in value


def test_a_json_answer_is_parsed() -> None:
    value = _call(responseFormat={"type": "json_object"}).result_variable(_answer('{"ok": true, "n": [1, 2]}'))
    assert value["json"] == {"ok": True, "n": [1, 2]}
    assert value["answer"] == '{"ok": true, "n": [1, 2]}'


def test_a_json_answer_matching_the_schema_is_parsed() -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    answer = '{"name": "Ada Lovelace", "email": "ada@example.com", "amount": 120.5}'
    value = _call(responseFormat=response_format).result_variable(_answer(answer))
    assert value["json"] == {"name": "Ada Lovelace", "email": "ada@example.com", "amount": 120.5}


def test_an_answer_that_is_not_json_names_the_problem_and_quotes_at_most_200_characters() -> None:
    answer = "Sure! Here is the data you asked for: " + "x" * 1000
    with pytest.raises(InvalidJsonAnswerError) as caught:
        _call(responseFormat={"type": "json_object"}).result_variable(_answer(answer))
    message = str(caught.value)
    assert caught.value.code == "INVALID_JSON_ANSWER"
    assert "not JSON" in message and "line 1 column 1" in message
    assert answer[:ANSWER_EXCERPT_CHARS] in message
    assert answer[: ANSWER_EXCERPT_CHARS + 1] not in message


def test_an_answer_cut_at_the_token_limit_says_to_raise_max_tokens() -> None:
    with pytest.raises(InvalidJsonAnswerError) as caught:
        _call(responseFormat={"type": "json_object"}).result_variable(_answer('{"name": "Ad', "length"))
    assert "raise maxTokens" in str(caught.value)


def test_an_empty_answer_when_json_was_asked_for_fails() -> None:
    with pytest.raises(InvalidJsonAnswerError) as caught:
        _call(responseFormat={"type": "json_object"}).result_variable(_answer(None))
    assert "empty" in str(caught.value)


def test_an_answer_missing_the_schema_names_what_is_wrong_and_where() -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    answer = json.dumps({"name": "Ada", "email": "ada@example.com", "amount": "lots" * 200})
    with pytest.raises(InvalidJsonAnswerError) as caught:
        _call(responseFormat=response_format).result_variable(_answer(answer))
    message = str(caught.value)
    assert "does not match the schema 'person'" in message
    assert "at $.amount, the value is not of type 'number'" in message
    assert "lots" * 50 not in message


def test_a_missing_field_is_named() -> None:
    response_format = {"type": "json_schema", "json_schema": {"schema": PERSON}}
    with pytest.raises(InvalidJsonAnswerError) as caught:
        _call(responseFormat=response_format).result_variable(_answer('{"name": "Ada", "amount": 3}'))
    assert "does not match the schema: at $, 'email' is a required property" in str(caught.value)


def test_json_is_not_demanded_while_the_model_calls_tools() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
    }
    call = _call(tools=[WEATHER], responseFormat={"type": "json_object"})
    value = call.result_variable(_completion(message, "tool_calls"))
    assert len(value["toolCalls"]) == 1 and "json" not in value


# --- a provider that refuses the extras -------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 422])
def test_a_refusal_of_tools_names_the_model_and_the_provider_suffix(status: int) -> None:
    advice = _call(tools=[WEATHER], responseFormat={"type": "json_object"}).rejection_advice(status)
    assert advice is not None
    assert "tools and response_format" in advice
    assert "'meta-llama/Llama-3.1-8B-Instruct'" in advice and "':novita'" in advice


def test_without_a_provider_suffix_the_advice_says_the_router_picked_one() -> None:
    job = _job(model="meta-llama/Llama-3.1-8B-Instruct", tools=[WEATHER])
    advice = build_call(job, DEFAULTS).rejection_advice(422)
    assert advice is not None and "no provider suffix" in advice


def test_other_refusals_keep_their_usual_advice() -> None:
    assert _call().rejection_advice(422) is None
    assert _call(tools=[WEATHER]).rejection_advice(404) is None
