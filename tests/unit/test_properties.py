"""Property tests: secret resolution and masking, request building, and a bounded fuzz of the expression sandbox."""

from __future__ import annotations

import builtins
import copy
import json
import math
import types
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hf_connector.expressions import ExpressionError, evaluate
from hf_connector.huggingface.contract import MODEL_ID, JobVariables
from hf_connector.huggingface.requests import HfDefaults, InvalidInputError, build_call
from hf_connector.secrets import PLACEHOLDER, EnvironmentSecrets, Masker, MissingSecretError, SecretResolver

ROUTER = "https://router.huggingface.co"
DEFAULTS = HfDefaults(ROUTER, "hf_default", read_timeout=60.0, max_input_bytes=16 * 1024 * 1024)
FAST = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# --- secret resolution ------------------------------------------------------------------------------

# Plain text never contains placeholder brackets, so every placeholder in a string is one the test put there.
plain_text = st.text(st.characters(blacklist_characters="{}<>*", blacklist_categories=("Cs",)), max_size=12)
secret_names = st.from_regex(r"[A-Za-z0-9_.\-]{1,12}", fullmatch=True)
secret_values = st.text(
    st.characters(blacklist_characters="{}<>*", blacklist_categories=("Cs",)), min_size=4, max_size=20
)


@st.composite
def templated_strings(draw: st.DrawFn, names: list[str]) -> tuple[list[Any], bool]:
    """A string as parts: plain text, or ("ref", name, style)."""
    parts: list[Any] = []
    for _ in range(draw(st.integers(0, 4))):
        parts.append(draw(plain_text))
        if names and draw(st.booleans()):
            name = draw(st.sampled_from(names))
            style = draw(st.sampled_from(["{{secrets.%s}}", "{{ secrets.%s }}", "<<secrets.%s>>", "<< secrets.%s >>"]))
            parts.append(("ref", name, style))
    return parts, any(isinstance(p, tuple) for p in parts)


def _render(parts: list[Any], values: dict[str, str] | None) -> str:
    out = []
    for part in parts:
        if isinstance(part, tuple):
            _, name, style = part
            out.append(style % name if values is None else values[name])
        else:
            out.append(part)
    return "".join(out)


@FAST
@given(data=st.data(), secrets=st.dictionaries(secret_names, secret_values, min_size=1, max_size=4))
def test_resolving_replaces_every_placeholder_of_a_known_secret(data: st.DataObject, secrets: dict[str, str]) -> None:
    names = sorted(secrets)
    strings = data.draw(st.lists(templated_strings(names), min_size=1, max_size=5))
    layout = data.draw(st.sampled_from(["list", "dict", "nested"]))
    raw = [_render(parts, None) for parts, _ in strings]
    expected = [_render(parts, secrets) for parts, _ in strings]
    if layout == "dict":
        raw_data: Any = {f"k{i}": s for i, s in enumerate(raw)}
        expected_data: Any = {f"k{i}": s for i, s in enumerate(expected)}
    elif layout == "nested":
        raw_data = {"a": {"b": [raw, 1, None]}, "c": True}
        expected_data = {"a": {"b": [expected, 1, None]}, "c": True}
    else:
        raw_data, expected_data = raw, expected
    masker = Masker()
    resolver = SecretResolver([EnvironmentSecrets(environ={f"SECRET_{k}": v for k, v in secrets.items()})], masker)
    resolved = resolver.resolve(raw_data)
    assert resolved == expected_data
    for text in expected:
        assert not any(m.group("curly") in secrets or m.group("angle") in secrets for m in PLACEHOLDER.finditer(text))
    for name, value in secrets.items():
        if any(("ref", name) == p[:2] for parts, _ in strings for p in parts if isinstance(p, tuple)):
            assert value not in masker.mask(f"echo: {value}")  # every value resolved is masked from then on


@FAST
@given(known=st.dictionaries(secret_names, secret_values, max_size=3), missing=secret_names, before=plain_text)
def test_an_unknown_secret_is_always_reported_by_name(known: dict[str, str], missing: str, before: str) -> None:
    assume(missing not in known)
    resolver = SecretResolver([EnvironmentSecrets(environ={f"SECRET_{k}": v for k, v in known.items()})], Masker())
    with pytest.raises(MissingSecretError) as caught:
        resolver.resolve({"x": [f"{before}{{{{secrets.{missing}}}}}"]})
    assert caught.value.secret_name == missing


# --- masking ----------------------------------------------------------------------------------------

any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
mask_secrets = st.lists(
    st.text(st.characters(blacklist_characters="*", blacklist_categories=("Cs",)), min_size=4, max_size=16),
    min_size=1,
    max_size=3,
)


def _forms(secret: str) -> set[str]:
    return {secret, json.dumps(secret)[1:-1]}


@FAST
@given(secrets=mask_secrets, data=st.data())
def test_masking_removes_every_secret_from_any_text_and_its_json_echo(secrets: list[str], data: st.DataObject) -> None:
    pieces = data.draw(st.lists(st.one_of(any_text, st.sampled_from(secrets)), max_size=8))
    text = "".join(pieces)
    masker = Masker(secrets)
    for rendering in (text, json.dumps({"echo": text, "list": [text, pieces]}), repr(text)):
        masked = masker.mask(rendering)
        for secret in secrets:
            for form in _forms(secret):
                assert form not in masked


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), any_text
)


@FAST
@given(secrets=mask_secrets, data=st.data())
def test_masking_data_removes_every_secret_from_keys_and_values(secrets: list[str], data: st.DataObject) -> None:
    with_secrets = st.one_of(
        any_text,
        st.sampled_from(secrets),
        st.builds(lambda a, s, b: a + s + b, any_text, st.sampled_from(secrets), any_text),
    )
    leaves = st.one_of(json_leaf, with_secrets)
    tree = data.draw(
        st.recursive(
            leaves,
            lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(with_secrets, kids, max_size=4)),
            max_leaves=15,
        )
    )
    masked = Masker(secrets).mask_data(tree)
    for text in _strings(masked):
        for secret in secrets:
            for form in _forms(secret):
                assert form not in text
    # Masking never changes anything but strings: the shape survives.
    assert _shape(masked) == _shape(tree)


def _strings(value: Any) -> list[str]:
    """Every string of JSON-like data, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value.keys(), *(s for v in value.values() for s in _strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return "dict"  # masked keys may collide ({"a***": 1, "b***": 2}), so only the kind is compared
    if isinstance(value, list | tuple):
        return [_shape(v) for v in value]
    if isinstance(value, str):
        return "str"
    return value


# --- request building -------------------------------------------------------------------------------

model_ids = st.from_regex(MODEL_ID, fullmatch=True).map(str.strip).filter(lambda m: ".." not in m and m != "")


def _job(**variables: Any) -> JobVariables:
    try:
        return JobVariables.model_validate(variables)
    except ValidationError:
        assume(False)
        raise


@FAST
@given(model=model_ids, operation=st.sampled_from(["inference", "embeddings"]))
def test_any_valid_model_id_stays_one_path_segment_under_the_router(model: str, operation: str) -> None:
    assume(MODEL_ID.match(model))
    job = _job(operation=operation, model=model, input="some text")
    if ":" in model:
        with pytest.raises(InvalidInputError):
            build_call(job, DEFAULTS)
        return
    url = build_call(job, DEFAULTS).request.url
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == ROUTER
    assert ".." not in url
    segments = parts.path.split("/")
    suffix = ["pipeline", "feature-extraction"] if operation == "embeddings" else []
    assert segments == ["", "hf-inference", "models", *model.split("/"), *suffix]
    # What goes on the wire, after httpx's normalisation, is the same path on the same host.
    wire = httpx.URL(url)
    assert wire.host == "router.huggingface.co"
    assert wire.path == parts.path


@FAST
@given(model=model_ids)
def test_any_valid_chat_model_goes_to_the_router_chat_route_as_it_is(model: str) -> None:
    job = _job(operation="chat", model=model, prompt="hi")
    call = build_call(job, DEFAULTS)
    assert call.request.url == f"{ROUTER}/v1/chat/completions"
    assert json.loads(call.request.content or b"")["model"] == model


json_keys = st.text(max_size=8).filter(lambda k: k not in {"data", "options"})
json_values = st.recursive(
    json_leaf.filter(lambda v: not (isinstance(v, str) and v.startswith("data:"))),
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(json_keys, kids, max_size=4)),
    max_leaves=20,
)


@FAST
@given(inputs=json_values, parameters=st.dictionaries(json_keys, json_values, max_size=3), wrap=st.booleans())
def test_any_json_input_round_trips_into_the_request_body(inputs: Any, parameters: dict[str, Any], wrap: bool) -> None:
    if wrap:
        value: Any = {"inputs": inputs, "parameters": parameters}
    else:
        assume(not isinstance(inputs, str) and inputs is not None)
        value = inputs
    call = build_call(_job(model="org/model", input=value), DEFAULTS)
    assert call.request.headers["content-type"] == "application/json"
    assert _same(json.loads(call.request.content or b""), value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=0, abs_tol=0)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# --- the expression sandbox -------------------------------------------------------------------------

TOKENS = [
    "__class__",
    "__globals__",
    "__subclasses__()",
    "__init__",
    "__mro__",
    "__bases__",
    "__builtins__",
    "__import__",
    "__dict__",
    "__code__",
    "func_globals",
    "gi_frame",
    "f_back",
    "os",
    "sys",
    "self",
    "lipsum",
    "cycler",
    "joiner",
    "namespace",
    "bpmnError",
    "jobError",
    "ignoreError",
    "body",
    "response",
    "error",
    "range",
    "dict",
    ".",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    ",",
    ":",
    "|",
    "'",
    '"',
    "~",
    "+",
    "-",
    "/",
    "//",
    "%",
    " if ",
    " else ",
    " not ",
    " and ",
    " or ",
    " in ",
    " is ",
    " for ",
    "attr",
    "map",
    "select",
    "format",
    "items",
    "upper",
    "join",
    "1",
    "0",
    "7",
    "none",
    "true",
    "=",
    "==",
    "<",
    ">",
    "!",
    " ",
    "\\",
    "\n",
]
# No '*': huge repetitions and powers have their own tests; a fuzz must not hang the suite.
fuzz_text = st.text(st.characters(blacklist_characters="*", blacklist_categories=("Cs",)), max_size=6)
expressions = st.lists(st.one_of(st.sampled_from(TOKENS), fuzz_text), max_size=14).map("".join)
DANGEROUS = {id(getattr(builtins, name)) for name in ("eval", "exec", "open", "compile", "__import__", "getattr")}


def _context() -> dict[str, Any]:
    response = {"status": 503, "headers": {"x-request-id": "r"}, "body": {"error": "loading", "estimated_time": 2}}
    return {
        "response": response,
        "body": response["body"],
        "error": {"code": "503", "message": "loading", "variables": {"response": response}},
        "job": {"retries": 3, "key": 1, "elementId": "Task"},
    }


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=expressions)
def test_random_expressions_only_ever_raise_expression_error_and_stay_in_the_sandbox(source: str) -> None:
    context = _context()
    before = copy.deepcopy(context)
    try:
        value = evaluate(source, "fuzzed expression", context)
    except ExpressionError:
        value = None
    assert context == before  # nothing outside the expression was changed
    assert not isinstance(value, types.ModuleType | types.FrameType | types.CodeType | types.TracebackType)
    assert id(value) not in DANGEROUS
    assert value is not builtins.__dict__
    if isinstance(value, types.FunctionType | types.BuiltinFunctionType):
        # Only the sandbox's own helpers and harmless built-in methods (e.g. "".join) can come back.
        assert (value.__module__ or "builtins").split(".")[0] in {"worker", "jinja2", "builtins"}


@pytest.mark.parametrize("opener", ["(", "[", "-", "not ", "x."])
def test_deeply_nested_expressions_raise_expression_error(opener: str) -> None:
    # The fuzz above stays shallow; this is its deep corner, kept as a plain test because it is slow to shrink.
    depth = 400
    closer = {"(": ")", "[": "]"}.get(opener, "")
    source = opener * depth + ("y" if opener == "x." else "1") + closer * depth
    with pytest.raises(ExpressionError):
        evaluate(source, "result expression", {"x": {}})
