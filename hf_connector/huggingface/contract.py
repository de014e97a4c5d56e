"""The job contract: the variables and headers a `hugging-face` task carries.

These models are the single source of truth for two things: the worker validates every job with them,
and the element template is generated from them (see `hf_connector.template`). A field's `Ui` annotation is
what a modeller sees in Camunda Modeler; its pydantic constraints are what the worker enforces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from hf_connector.durations import parse_iso_duration


class Group(StrEnum):
    AUTHENTICATION = "authentication"
    OPERATION = "operation"
    MODEL = "model"
    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    ENDPOINT = "endpoint"
    OUTPUT = "output"
    ERRORS = "errors"
    RETRIES = "retries"


GROUP_LABELS: dict[Group, str] = {
    Group.AUTHENTICATION: "Authentication",
    Group.OPERATION: "Operation",
    Group.MODEL: "Model and input",
    Group.CHAT: "Chat parameters",
    Group.EMBEDDINGS: "Embedding parameters",
    Group.ENDPOINT: "Endpoint and timeouts",
    Group.OUTPUT: "Output mapping",
    Group.ERRORS: "Error handling",
    Group.RETRIES: "Retries",
}


class Operation(StrEnum):
    INFERENCE = "inference"
    CHAT = "chat"
    EMBEDDINGS = "embeddings"


class ToolChoice(StrEnum):
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"


class BinaryResult(StrEnum):
    """Where a binary answer (an image, audio) goes: Camunda's document store, or base64 in the variable."""

    DOCUMENT = "document"
    INLINE = "inline"


class ChunkingStrategy(StrEnum):
    NONE = "none"
    WORD = "word"
    SENTENCE = "sentence"


@dataclass(frozen=True)
class Ui:
    """How a field appears in the element template.

    `operations` limits the field to the named operations (a template condition); `feel` follows the
    template schema ("optional", "required" or None for plain text).
    """

    label: str
    group: Group
    description: str = ""
    feel: Literal["optional", "required"] | None = "optional"
    kind: Literal["String", "Text", "Dropdown", "Boolean", "Number", "Hidden"] = "String"
    operations: tuple[Operation, ...] = ()
    example: str | None = None
    pattern: tuple[str, str] | None = None  # (regex, message) checked by Modeler
    secret: bool = False
    # What the template writes when it differs from the worker's default, which keeps jobs modelled before
    # the field existed working as they did.
    template_value: str | None = None


# Accepted model ids: `org/name`, `name`, with an optional `:provider` / `:fastest` / `:cheapest` suffix
# (chat). Path traversal and whitespace are rejected so a model id can never escape its URL segment.
MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?(:[\w.\-]+)?$")
SECONDS_PATTERN = r"^(=.*|\{\{secrets\..+\}\}|<<secrets\..+>>|\d+(\.\d+)?)$"
DURATION_PATTERN = (
    r"^(=.*|\{\{secrets\..+\}\}|<<secrets\..+>>|P(?!$)(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?)?$"
)
EXAMPLE_MODEL = "facebook/bart-large-cnn"

# A modeller writes camelCase names (maxTokens), as every Camunda connector does; the worker reads them into
# snake_case fields, whose names are OpenAI's and Hugging Face's, so a request body is a plain `model_dump`.
# Validation errors are located by the name the job used, which is the modeller's.
MODELLED_NAMES = ConfigDict(
    extra="ignore", alias_generator=AliasGenerator(validation_alias=to_camel), populate_by_name=True
)


class Authentication(BaseModel):
    model_config = MODELLED_NAMES

    token: Annotated[
        str | None,
        Ui(
            "Hugging Face API key",
            Group.AUTHENTICATION,
            "A Hugging Face access token (hf_...) with the inference permission. Store it as a secret "
            "and reference it as {{secrets.HUGGING_FACE_TOKEN}}; never paste the token itself.",
            feel=None,
            kind="Text",  # wraps: the secret reference is wider than a 280 px properties panel
            example="{{secrets.HUGGING_FACE_TOKEN}}",
            secret=True,
        ),
    ] = None


# OpenAI's rule for function names; the same name must come back in a tool call, so it is checked early.
FUNCTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"


def check_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema the worker can validate answers with: a broken one fails the job before any call."""
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = exc.json_path if exc.path else "its root"
        raise ValueError(f"not a valid JSON schema at {where}: {exc.message[:200]}") from None
    return schema


class ToolCall(BaseModel):
    """A tool call inside an assistant message that goes back to the model."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: Literal["function"] = "function"
    function: dict[str, Any]

    @field_validator("function")
    @classmethod
    def _arguments_are_json_text(cls, value: dict[str, Any]) -> dict[str, Any]:
        # OpenAI wants the arguments as JSON text; a FEEL context written by the modeller is encoded for them.
        if not isinstance(value.get("name"), str):
            raise ValueError("a tool call's function needs a name")
        arguments = value.get("arguments", "{}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
        return {**value, "arguments": arguments}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool"]
    content: Any = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _role_has_what_it_needs(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content")
        return self


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None

    @field_validator("parameters")
    @classmethod
    def _parameters_are_a_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_json_schema(value)


class Tool(BaseModel):
    """An OpenAI tool: only functions exist."""

    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    function: FunctionDefinition


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str | None = Field(default=None, pattern=FUNCTION_NAME)
    # `schema` would shadow a BaseModel attribute, hence the alias.
    answer_schema: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None

    @field_validator("answer_schema")
    @classmethod
    def _is_a_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json_schema(value)


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_goes_with_its_type(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError('type "json_schema" needs json_schema: {name, schema, strict}')
        return self

    @property
    def asks_for_json(self) -> bool:
        return self.type != "text"


class JobVariables(BaseModel):
    """Input variables of a `hugging-face` job (written by the template as `zeebe:input`)."""

    model_config = MODELLED_NAMES

    operation: Annotated[
        Operation,
        Ui(
            "Operation",
            Group.OPERATION,
            "Raw inference sends the input to any model; chat uses the OpenAI-compatible router; "
            "embeddings use the feature-extraction pipeline.",
            feel=None,
            kind="Dropdown",
        ),
    ] = Operation.INFERENCE
    authentication: Authentication = Field(default_factory=Authentication)
    model: Annotated[
        str,
        Ui(
            "Model",
            Group.MODEL,
            "A model id such as facebook/bart-large-cnn (chat: optionally with :provider, :fastest or "
            ":cheapest), or the https URL of a dedicated Inference Endpoint.",
            kind="Text",  # wraps: long model ids and endpoint URLs are wider than the properties panel
            example=EXAMPLE_MODEL,
        ),
    ]
    input: Annotated[
        Any,
        Ui(
            "Input",
            Group.MODEL,
            "The request body as a FEEL expression, e.g. ={inputs: text, parameters: {max_length: 75}}. "
            'Binary inputs (images, audio): a data URL or {data: base64, contentType: "image/png"}.',
            feel="required",
            kind="Text",
            operations=(Operation.INFERENCE, Operation.EMBEDDINGS),
            example='={inputs: "The tower is 324 metres tall.", parameters: {max_length: 75}}',
        ),
    ] = None
    task: Annotated[
        str | None,
        Ui(
            "Task",
            Group.MODEL,
            "Optional Hugging Face task (e.g. text-to-image, text-to-speech, sentence-similarity); "
            "chooses the path and Accept header the task needs.",
            operations=(Operation.INFERENCE,),
            example="text-to-image",
        ),
    ] = None
    messages: Annotated[
        list[ChatMessage] | None,
        Ui(
            "Messages",
            Group.CHAT,
            'Chat messages as a FEEL list, e.g. =[{role: "user", content: question}]. Leave empty to '
            "send the prompt as a single user message.",
            feel="required",
            kind="Text",
            operations=(Operation.CHAT,),
        ),
    ] = None
    prompt: Annotated[
        str | None,
        Ui("Prompt", Group.CHAT, "A single user message.", kind="Text", operations=(Operation.CHAT,)),
    ] = None
    max_tokens: Annotated[
        int | None,
        Ui("Max tokens", Group.CHAT, "Upper bound of generated tokens.", kind="Number", operations=(Operation.CHAT,)),
    ] = Field(default=None, ge=1)
    temperature: Annotated[
        float | None,
        Ui("Temperature", Group.CHAT, "Sampling temperature, 0 to 2.", kind="Number", operations=(Operation.CHAT,)),
    ] = Field(default=None, ge=0, le=2)
    top_p: Annotated[
        float | None,
        Ui("Top P", Group.CHAT, "Nucleus sampling probability, 0 to 1.", kind="Number", operations=(Operation.CHAT,)),
    ] = Field(default=None, ge=0, le=1)
    frequency_penalty: Annotated[
        float | None,
        Ui("Frequency penalty", Group.CHAT, "-2 to 2.", kind="Number", operations=(Operation.CHAT,)),
    ] = Field(default=None, ge=-2, le=2)
    presence_penalty: Annotated[
        float | None,
        Ui("Presence penalty", Group.CHAT, "-2 to 2.", kind="Number", operations=(Operation.CHAT,)),
    ] = Field(default=None, ge=-2, le=2)
    stop: Annotated[
        list[str] | str | None,
        Ui("Stop sequences", Group.CHAT, "A string or a FEEL list of strings.", operations=(Operation.CHAT,)),
    ] = None
    seed: Annotated[
        int | None,
        Ui("Seed", Group.CHAT, "Makes sampling repeatable.", kind="Number", operations=(Operation.CHAT,)),
    ] = None
    tools: Annotated[
        list[Tool] | None,
        Ui(
            "Tools",
            Group.CHAT,
            'Functions the model may call, as a FEEL list of OpenAI tools (quote the key "function", a FEEL '
            "keyword), e.g. "
            '=[{type: "function", "function": {name: "get_weather", description: "Current weather of a city", '
            'parameters: {type: "object", properties: {city: {type: "string"}}, required: ["city"]}}}]. '
            "Calls come back in toolCalls [{id, name, arguments}]; append message and one "
            '{role: "tool", tool_call_id: id, content: ...} per call to messages and chat again.',
            feel="required",
            kind="Text",
            operations=(Operation.CHAT,),
        ),
    ] = None
    tool_choice: Annotated[
        ToolChoice | str | None,
        Ui(
            "Tool choice",
            Group.CHAT,
            "auto: the model decides; none: no tool calls; required: at least one call. Sent only with "
            "tools. The worker also takes the name of one of the functions as toolChoice, which forces that one.",
            feel=None,
            kind="Dropdown",
            operations=(Operation.CHAT,),
            template_value=ToolChoice.AUTO.value,
        ),
    ] = None
    response_format: Annotated[
        ResponseFormat | None,
        Ui(
            "Response format",
            Group.CHAT,
            'JSON answers: ={type: "json_object"}, or a JSON schema the answer must match, e.g. '
            '={type: "json_schema", json_schema: {name: "person", schema: {type: "object", properties: '
            '{name: {type: "string"}}, required: ["name"]}, strict: true}}. The parsed answer lands in json; '
            "an answer that is not JSON or misses the schema fails with INVALID_JSON_ANSWER.",
            feel="required",
            kind="Text",
            operations=(Operation.CHAT,),
        ),
    ] = None
    normalize: Annotated[
        bool | None,
        Ui("Normalize", Group.EMBEDDINGS, "Normalize vectors to unit length.", operations=(Operation.EMBEDDINGS,)),
    ] = None
    truncate: Annotated[
        bool | None,
        Ui(
            "Truncate",
            Group.EMBEDDINGS,
            "Truncate inputs longer than the model allows.",
            operations=(Operation.EMBEDDINGS,),
        ),
    ] = None
    prompt_name: Annotated[
        str | None,
        Ui(
            "Prompt name", Group.EMBEDDINGS, "The model's named prompt, e.g. query.", operations=(Operation.EMBEDDINGS,)
        ),
    ] = None
    chunking_strategy: Annotated[
        ChunkingStrategy,
        Ui(
            "Chunking",
            Group.EMBEDDINGS,
            "Split long texts into chunks before embedding (as Elasticsearch).",
            feel=None,
            kind="Dropdown",
            operations=(Operation.EMBEDDINGS,),
        ),
    ] = ChunkingStrategy.NONE
    max_chunk_size: Annotated[
        int,
        Ui(
            "Max chunk size (words)",
            Group.EMBEDDINGS,
            "Words per chunk.",
            kind="Number",
            operations=(Operation.EMBEDDINGS,),
        ),
    ] = Field(default=250, ge=10, le=10_000)
    chunk_overlap: Annotated[
        int,
        Ui(
            "Chunk overlap (words)",
            Group.EMBEDDINGS,
            "Word strategy: words shared by neighbouring chunks.",
            kind="Number",
            operations=(Operation.EMBEDDINGS,),
        ),
    ] = Field(default=100, ge=0)
    sentence_overlap: Annotated[
        int,
        Ui(
            "Sentence overlap",
            Group.EMBEDDINGS,
            "Sentence strategy: sentences shared by neighbours (0 or 1).",
            kind="Number",
            operations=(Operation.EMBEDDINGS,),
        ),
    ] = Field(default=1, ge=0, le=1)
    endpoint: Annotated[
        str | None,
        Ui(
            "Endpoint URL",
            Group.ENDPOINT,
            "Optional base URL that replaces the Hugging Face router for this task (a proxy or gateway "
            "that serves the router's paths). For a dedicated Inference Endpoint, TGI or TEI, give its "
            "URL as the model instead.",
            example="https://hf-gateway.example.com",
        ),
    ] = None
    bill_to: Annotated[
        str | None,
        Ui("Bill to organisation", Group.ENDPOINT, "Sent as X-HF-Bill-To: bills an organisation you belong to."),
    ] = None
    connection_timeout_in_seconds: Annotated[
        float,
        Ui(
            "Connection timeout (s)",
            Group.ENDPOINT,
            "Seconds to wait for the connection to be established.",
            example="30",
            pattern=(SECONDS_PATTERN, "Must be a number of seconds, a FEEL expression or a secret."),
        ),
    ] = Field(default=30, gt=0, le=3600)
    read_timeout_in_seconds: Annotated[
        float | None,
        Ui(
            "Read timeout (s)",
            Group.ENDPOINT,
            "Seconds to wait for the answer; long generations need more. Empty: the worker default.",
            example="120",
            pattern=(SECONDS_PATTERN, "Must be a number of seconds, a FEEL expression or a secret."),
        ),
    ] = Field(default=None, gt=0, le=3600)

    @field_validator("model")
    @classmethod
    def _model_is_an_id_or_https_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the model is empty: give a model id such as facebook/bart-large-cnn")
        if value.startswith(("https://", "http://")):
            if any(ch.isspace() for ch in value):
                raise ValueError("the model URL contains whitespace")
            return value
        if ".." in value or not MODEL_ID.match(value):
            raise ValueError(
                f"'{value}' is not a model id: use 'org/name' (letters, digits, '.', '-', '_'), "
                "optionally ':provider', or an https URL"
            )
        return value

    @field_validator("input", "tools", "response_format", mode="before")
    @classmethod
    def _json_text_must_parse(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"the value looks like JSON but does not parse: {exc}") from None
        return value

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice_is_a_mode_or_a_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value in {choice.value for choice in ToolChoice}:
                return ToolChoice(value)
            if not re.match(FUNCTION_NAME, value):
                raise ValueError(f"'{value}' is neither auto, none, required nor a function name")
        return value

    @model_validator(mode="after")
    def _operation_has_what_it_needs(self) -> JobVariables:
        if self.operation is Operation.CHAT and not self.messages and not self.prompt:
            raise ValueError("a chat needs messages or a prompt")
        if self.operation is not Operation.CHAT and self.input is None and "input" in self.model_fields_set:
            # Zeebe sets a mapped variable to null when its FEEL expression reads a variable that is not there.
            raise ValueError(
                "the input mapping produced nothing (null): the FEEL expression of the Input field reads a "
                "variable that is not set, such as a start variable the process instance was not given"
            )
        if self.operation is Operation.EMBEDDINGS and not self.input:
            raise ValueError("embeddings need an input: a string or a list of strings")
        if self.operation is not Operation.CHAT and self.input is None:
            raise ValueError("the input is empty: give the request body, e.g. ={inputs: text}")
        self._tool_choice_fits_the_tools()
        return self

    def _tool_choice_fits_the_tools(self) -> None:
        names = [tool.function.name for tool in self.tools or ()]
        choice = self.tool_choice
        if choice is None or choice in (ToolChoice.AUTO, ToolChoice.NONE):
            return  # without tools there is nothing to choose, and the template writes auto for every chat
        if not names:
            raise ValueError(f"toolChoice '{choice}' needs tools: give the functions the model may call")
        if choice is not ToolChoice.REQUIRED and choice not in names:
            raise ValueError(f"toolChoice '{choice}' is not one of the tools ({', '.join(names)})")


class TaskHeaders(BaseModel):
    """Task headers of a `hugging-face` job (written by the template as `zeebe:taskHeader`)."""

    model_config = MODELLED_NAMES

    result_variable: Annotated[
        str | None,
        Ui(
            "Result variable",
            Group.OUTPUT,
            "Name of the process variable that receives {status, headers, body}.",
            feel=None,
            example="myHuggingFaceResponse",
        ),
    ] = None
    result_expression: Annotated[
        str | None,
        Ui(
            "Result expression (Jinja2)",
            Group.OUTPUT,
            "A Jinja2 expression over response, status, headers and body that returns a mapping merged "
            'into the process variables, e.g. {"summary": body[0].summary_text}.',
            feel=None,
            kind="Text",
            example='{"summary": body[0].summary_text}',
        ),
    ] = None
    error_expression: Annotated[
        str | None,
        Ui(
            "Error expression (Jinja2)",
            Group.ERRORS,
            "A Jinja2 expression over error, response and job that may return bpmnError(code, message), "
            "jobError(message, variables, retries, retryBackoff) or ignoreError(variables).",
            feel=None,
            kind="Text",
            example='bpmnError("MODEL_NOT_FOUND", error.message) if error.code == "404"',
        ),
    ] = None
    binary_result: Annotated[
        BinaryResult,
        Ui(
            "Binary result",
            Group.OUTPUT,
            "An image or audio answer: stored in Camunda's document store with a document reference in body "
            "(the worker needs CAMUNDA_REST_ADDRESS), or inline as base64 in body, which Zeebe keeps in its "
            "state.",
            feel=None,
            kind="Dropdown",
            operations=(Operation.INFERENCE,),
            template_value=BinaryResult.DOCUMENT.value,
        ),
    ] = BinaryResult.INLINE
    retry_backoff: Annotated[
        str | None,
        Ui(
            "Retry backoff",
            Group.RETRIES,
            "ISO-8601 duration to wait before a failed job is retried, e.g. PT30S.",
            feel=None,
            example="PT0S",
            pattern=(DURATION_PATTERN, "Must be an ISO-8601 duration such as PT30S"),
        ),
    ] = None
    element_template_id: str | None = None
    element_template_version: str | None = None

    @field_validator("retry_backoff")
    @classmethod
    def _backoff_is_a_duration(cls, value: str | None) -> str | None:
        if value:
            parse_iso_duration(value)
        return value

    @property
    def retry_backoff_seconds(self) -> float | None:
        return parse_iso_duration(self.retry_backoff) if self.retry_backoff else None


def ui_of(model: type[BaseModel], field_name: str) -> Ui | None:
    """The `Ui` annotation of a field, if it has one."""
    for item in model.model_fields[field_name].metadata:
        if isinstance(item, Ui):
            return item
    return None


def modelled_name(model: type[BaseModel], field_name: str) -> str:
    """The name a process uses for a field: its validation alias (`maxTokens` for `max_tokens`)."""
    alias = model.model_fields[field_name].validation_alias
    return alias if isinstance(alias, str) else field_name


def fetched_variable_names() -> list[str]:
    """Variables the worker asks Zeebe for: only the contract's, so large process state stays put."""
    return [modelled_name(JobVariables, name) for name in JobVariables.model_fields]
