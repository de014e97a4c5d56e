"""Result and error expressions: what a modeller writes, what they get, and what the sandbox refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hf_connector.expressions import (
    BpmnError,
    ExpressionError,
    IgnoreError,
    JobError,
    compile_expression,
    evaluate,
    evaluate_error_expression,
    evaluate_result_expression,
)

RESPONSE = {"status": 200, "headers": {"x-request-id": "r1"}, "body": [{"summary_text": "Short."}]}
RESULT_CONTEXT = {"response": RESPONSE, **RESPONSE}


def _error_context(code: str = "404", message: str = "Model not found", retries: int = 3) -> dict[str, Any]:
    response = {"status": int(code) if code.isdigit() else None, "headers": {}, "body": {"error": message}}
    return {
        "error": {"code": code, "message": message, "variables": {"response": response}},
        "response": response,
        "job": {"retries": retries, "key": 1, "elementId": "Summarize"},
    }


# --- result expressions -----------------------------------------------------------------------------


def test_a_result_expression_maps_the_body() -> None:
    assert evaluate_result_expression('{"summary": body[0].summary_text}', RESULT_CONTEXT) == {"summary": "Short."}


def test_a_leading_equals_sign_is_tolerated() -> None:
    assert evaluate_result_expression('= {"status": response.status}', RESULT_CONTEXT) == {"status": 200}


def test_headers_and_filters_are_available() -> None:
    source = '{"id": headers["x-request-id"], "upper": body[0].summary_text | upper, "n": body | length}'
    assert evaluate_result_expression(source, RESULT_CONTEXT) == {"id": "r1", "upper": "SHORT.", "n": 1}


def test_feel_style_literals_work() -> None:
    assert evaluate_result_expression('{"a": null, "b": true, "c": false}', {}) == {"a": None, "b": True, "c": False}


def test_an_empty_result_maps_nothing() -> None:
    assert evaluate_result_expression("none", RESULT_CONTEXT) == {}


@pytest.mark.parametrize("source", ["body[0].summary_text", "[1, 2]", "{1: 2}"])
def test_a_result_expression_must_return_a_mapping_of_names(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_result_expression(source, RESULT_CONTEXT)
    assert "mapping" in str(caught.value)


def test_a_missing_value_inside_the_result_is_null_or_a_clear_error() -> None:
    try:
        value = evaluate_result_expression('{"summary": body[0].summary_txt}', RESULT_CONTEXT)
    except ExpressionError as exc:
        assert "summary_txt" in str(exc)
        return
    assert json.loads(json.dumps(value)) == {"summary": None}


def test_a_syntax_error_names_the_purpose_and_the_text() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression('{"summary": body[0].}', "result expression")
    message = str(caught.value)
    assert message.startswith("The result expression is not a valid expression")
    assert '{"summary": body[0].}' in message


def test_a_runtime_error_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate("1 / 0", "result expression", {})
    assert "ZeroDivisionError" in str(caught.value)


def test_calling_something_missing_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate("nothing.here()", "result expression", {})
    assert "result expression" in str(caught.value)


# --- error expressions ------------------------------------------------------------------------------


def test_bpmn_error_when_the_condition_holds() -> None:
    source = 'bpmnError("MODEL_NOT_FOUND", error.message, {"status": response.status}) if error.code == "404"'
    assert evaluate_error_expression(source, _error_context("404")) == BpmnError(
        "MODEL_NOT_FOUND", "Model not found", {"status": 404}
    )
    assert evaluate_error_expression(source, _error_context("503")) is None


def test_job_error_with_retries_and_backoff() -> None:
    source = 'jobError("try later: " ~ error.message, {"seen": true}, job.retries - 2, "PT1M")'
    assert evaluate_error_expression(source, _error_context("503", "loading", retries=5)) == JobError(
        "try later: loading", {"seen": True}, 3, "PT1M"
    )


def test_job_error_with_keyword_arguments() -> None:
    decision = evaluate_error_expression('jobError(error.message, retryBackoff="PT5S")', _error_context())
    assert decision == JobError("Model not found", {}, None, "PT5S")


def test_ignore_error_completes_with_variables() -> None:
    decision = evaluate_error_expression('ignoreError({"fallback": "n/a"})', _error_context())
    assert decision == IgnoreError({"fallback": "n/a"})
    assert evaluate_error_expression("ignoreError()", _error_context()) == IgnoreError({})


@pytest.mark.parametrize("source", ["none", '""', 'bpmnError("X") if false'])
def test_returning_nothing_means_no_decision(source: str) -> None:
    assert evaluate_error_expression(source, _error_context()) is None


@pytest.mark.parametrize("source", ['error.code == "404"', "error", '"just text"'])
def test_an_error_expression_must_return_a_decision(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate_error_expression(source, _error_context())
    assert "bpmnError" in str(caught.value)


def test_non_numeric_retries_are_an_expression_error() -> None:
    with pytest.raises(ExpressionError):
        evaluate_error_expression('jobError("x", {}, "many")', _error_context())


# --- the sandbox ------------------------------------------------------------------------------------


def _refused_or_harmless(source: str, context: dict[str, Any] | None = None) -> None:
    """The sandbox either raises ExpressionError or yields nothing dangerous (no class, function or module)."""
    try:
        value = evaluate(source, "result expression", context or {"body": {}, "x": 1})
    except ExpressionError:
        return
    # Jinja2 turns an unsafe attribute into an undefined value, which the evaluator returns as None.
    assert value is None or (isinstance(value, str) and "<class" not in value), repr(value)


@pytest.mark.parametrize(
    "source",
    [
        '"".__class__',
        '"".__class__.__mro__[1].__subclasses__()',
        "x.__class__.__base__.__subclasses__()",
        "bpmnError.__globals__",
        "bpmnError.__globals__['__builtins__']['__import__']('os')",
        "lipsum.__globals__.os",
        "cycler.__init__.__globals__.os",
        "joiner.__init__.__globals__",
        '__import__("os").system("id")',
        "self.__init__.__globals__",
        "body.__class__.__init__.__globals__",
        "().__class__.__bases__[0].__subclasses__()",
        '"{0.__class__}".format(x)',
        "body.update({'a': 1}) or body",
    ],
)
def test_escapes_are_refused(source: str) -> None:
    _refused_or_harmless(source)


def test_the_sandbox_is_immutable() -> None:
    body: dict[str, Any] = {"a": 1}
    with pytest.raises(ExpressionError) as caught:
        evaluate("body.update({'b': 2})", "result expression", {"body": body})
    assert "sandbox" in str(caught.value)
    assert body == {"a": 1}


@pytest.mark.parametrize(
    "source",
    ['"a" * 1000000', "[0] * 200000", "200000 * [0]", '"ab" * 60000', "2 ** 1001", "range(1000000) | list"],
)
def test_huge_repetitions_powers_and_ranges_are_refused(source: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(source, "result expression", {})


def test_reasonable_arithmetic_still_works() -> None:
    assert evaluate('"ab" * 3', "x", {}) == "ababab"
    assert evaluate("2 ** 10", "x", {}) == 1024
    assert evaluate("3 * 4", "x", {}) == 12


@pytest.mark.parametrize("source", ['"%05000000d" % 1', '"{:>5000000}".format(1)', '"x" | center(5000000)'])
def test_huge_strings_from_formatting_are_refused(source: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(source, "result expression", {})


def test_chained_powers_are_refused() -> None:
    # One step of the chain: 10**1_000_000 already has a million digits; the next one would hang.
    with pytest.raises(ExpressionError):
        evaluate("(10 ** 1000) ** 1000", "result expression", {})
