"""Result and error expressions: sandboxed Jinja2 expressions, as a modeller writes them in the template.

`{"summary": body[0].summary_text}` maps a result; `bpmnError("NOT_FOUND", error.message) if
error.code == "404"` decides what an error becomes. A leading `=` (FEEL habit) is tolerated. The
sandbox is immutable, refuses private attributes, and caps ranges, repetitions and powers so that an
expression cannot exhaust the worker.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from jinja2 import TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.filters import FILTERS as _FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment

_MAX_SEQUENCE = 100_000
_MAX_EXPONENT = 1_000
_MAX_RESULT_BITS = 100_000
# A width or precision in a format spec (`%0500d`, `{:>500}`) with more digits than a sane one.
_HUGE_WIDTH = re.compile(r"\d{6,}")


class ExpressionError(Exception):
    """An expression that does not compile, raises, or returns the wrong kind of value."""


@dataclass(frozen=True, slots=True)
class BpmnError:
    code: str
    message: str = ""
    variables: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobError:
    message: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    retries: int | None = None
    retry_backoff: str | None = None


@dataclass(frozen=True, slots=True)
class IgnoreError:
    variables: Mapping[str, Any] = field(default_factory=dict)


ErrorDecision = BpmnError | JobError | IgnoreError


def _refuse_unsafe(value: Any) -> None:
    """The sandbox answers a forbidden attribute with an Undefined that only raises when used; use it."""
    if isinstance(value, Undefined) and getattr(value, "_undefined_exception", None) is SecurityError:
        value._fail_with_undefined_error()  # "access to attribute '__class__' of 'dict' object is unsafe."


def _text(value: Any) -> str:
    _refuse_unsafe(value)
    return str(value)


def _bpmn_error(code: Any, message: Any = "", variables: Mapping[str, Any] | None = None) -> BpmnError:
    return BpmnError(_text(code), _text(message), dict(variables or {}))


def _job_error(
    message: Any,
    variables: Mapping[str, Any] | None = None,
    retries: int | None = None,
    retryBackoff: Any = None,
) -> JobError:
    backoff = None if retryBackoff is None else _text(retryBackoff)
    return JobError(_text(message), dict(variables or {}), None if retries is None else int(retries), backoff)


def _ignore_error(variables: Mapping[str, Any] | None = None) -> IgnoreError:
    return IgnoreError(dict(variables or {}))


def _refuse_huge_widths(format_text: Any) -> None:
    if isinstance(format_text, str) and _HUGE_WIDTH.search(format_text):
        raise SecurityError("a format width or precision that large is not allowed")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """Every way to build a huge value from a short expression is refused before it is built."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            return _bounded_power(left, right)
        if operator_name == "%":
            _refuse_huge_widths(left)
            return operator.mod(left, right)
        for sequence, count in ((left, right), (right, left)):
            if (
                isinstance(sequence, str | list | tuple)
                and isinstance(count, int)
                and len(sequence) * count > _MAX_SEQUENCE
            ):
                raise SecurityError(f"the repetition would be longer than {_MAX_SEQUENCE} items")
        return operator.mul(left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        format_text = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> str:
            _refuse_huge_widths(format_text)
            return wrapped(*args, **kwargs)

        return bounded


def _bounded_power(base: Any, exponent: Any) -> Any:
    if isinstance(exponent, int | float) and abs(exponent) > _MAX_EXPONENT:
        raise SecurityError(f"the exponent {exponent} is larger than {_MAX_EXPONENT}")
    if isinstance(base, int) and isinstance(exponent, int) and base.bit_length() * exponent > _MAX_RESULT_BITS:
        raise SecurityError("the power would be too large a number")
    return operator.pow(base, exponent)


def _bounded_width_filter(name: str) -> Callable[..., Any]:
    original = _FILTERS[name]

    def bounded(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        if isinstance(width, int) and width > _MAX_SEQUENCE:
            raise SecurityError(f"a {name} width larger than {_MAX_SEQUENCE} is not allowed")
        return original(value, width, *args, **kwargs)

    return bounded


def _bounded_format_filter(value: Any, *args: Any, **kwargs: Any) -> Any:
    _refuse_huge_widths(value)
    return _FILTERS["format"](value, *args, **kwargs)


_ENVIRONMENT = _BoundedSandbox()
_ENVIRONMENT.filters.update(
    center=_bounded_width_filter("center"),
    indent=_bounded_width_filter("indent"),
    format=_bounded_format_filter,
)
_ENVIRONMENT.globals.update(
    bpmnError=_bpmn_error,
    jobError=_job_error,
    ignoreError=_ignore_error,
    null=None,
    true=True,
    false=False,
)


@functools.lru_cache(maxsize=512)
def compile_expression(source: str, purpose: str) -> Callable[..., Any]:
    """Compiles once per distinct source; raises ExpressionError naming the purpose and the fault."""
    text = source.strip()
    if text.startswith("="):
        text = text[1:].strip()
    try:
        # Undefined is turned into None by `_defined`, which also tells the sandbox's refusals apart.
        return _ENVIRONMENT.compile_expression(text, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"The {purpose} is not a valid expression: {exc.message} (in: {text[:200]})") from None
    except RecursionError:
        raise ExpressionError(f"The {purpose} is nested too deeply to compile") from None


def evaluate(source: str, purpose: str, context: Mapping[str, Any]) -> Any:
    expression = compile_expression(source, purpose)
    try:
        return _defined(expression(**context))
    except SecurityError as exc:
        raise ExpressionError(f"The {purpose} tried something the sandbox forbids: {exc}") from None
    except UndefinedError as exc:
        raise ExpressionError(f"The {purpose} refers to something that does not exist: {exc}") from None
    except _NotStorableError as exc:
        raise ExpressionError(
            f"The {purpose} returned {exc}, which cannot be stored as a process variable: return text, numbers, "
            "booleans, lists or mappings (a filter such as map or select needs |list)"
        ) from None
    except Exception as exc:
        raise ExpressionError(f"The {purpose} failed: {type(exc).__name__}: {exc}") from None


class _NotStorableError(Exception):
    """A value Zeebe cannot store as JSON (a function, a template object, ...)."""


_JSON_SCALARS = (str, int, float, bool, type(None))
_LAZY_SEQUENCES: tuple[type, ...] = (
    list,
    tuple,
    range,
    set,
    frozenset,
    type({}.keys()),
    type({}.values()),
    type({}.items()),
    Iterator,
)


def _defined(value: Any) -> Any:
    """A JSON-storable copy: Undefined becomes None at any depth, lazy sequences (a filter's generator,
    range, dict views) become lists; the sandbox's refusals raise, and so does anything else."""
    if isinstance(value, Undefined):
        _refuse_unsafe(value)
        return None
    if isinstance(value, str):
        return str(value)  # Markup too
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, Mapping):
        return {_storable_key(key): _defined(item) for key, item in value.items()}
    if isinstance(value, _LAZY_SEQUENCES):
        return [_defined(item) for item in cast(Iterable[Any], value)]
    if isinstance(value, BpmnError | JobError | IgnoreError):
        return dataclasses.replace(value, variables=_defined(dict(value.variables)))
    raise _NotStorableError(f"a {type(value).__name__}")


def _storable_key(key: Any) -> Any:
    if isinstance(key, _JSON_SCALARS):
        return str(key) if isinstance(key, str) else key
    raise _NotStorableError(f"a mapping with a {type(key).__name__} as a key")


def evaluate_result_expression(source: str, context: Mapping[str, Any]) -> dict[str, Any]:
    value = evaluate(source, "result expression", context)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ExpressionError(
            f"The result expression must return a mapping of variable names to values, e.g. "
            f'{{"summary": body[0].summary_text}}; it returned {type(value).__name__}'
        )
    return dict(value)


def evaluate_error_expression(source: str, context: Mapping[str, Any]) -> ErrorDecision | None:
    value = evaluate(source, "error expression", context)
    if value is None or value == "" or isinstance(value, ErrorDecision):
        return value or None
    raise ExpressionError(
        "The error expression must return bpmnError(code, message), jobError(message), ignoreError() "
        f"or nothing; it returned {type(value).__name__}"
    )
