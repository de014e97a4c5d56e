"""The part of FEEL that this project's processes use, for input/output mappings and sequence-flow conditions.

Semantics follow Camunda's FEEL engine (feel-scala) where the subset reaches: numbers are decimals (so
`0.1 + 0.2 = 0.3`), a missing variable or key is null, operators and comparisons with null give null,
`and`/`or` use three-valued logic, and lists index from 1. Results leave as JSON-like values: an integral
number as `int`, any other as `float`. A source without a leading `=` is a static string, as in Zeebe.

Anything outside the subset - syntax this grammar lacks, a function it does not know, a function given
the wrong kind of argument - raises `FeelError`, whose message names the expression so that the engine
can raise it as an incident a modeller can act on.
"""

from __future__ import annotations

import decimal
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, NoReturn

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

__all__ = ["Expression", "FeelError", "evaluate", "parse_expression"]


class FeelError(Exception):
    """An expression outside the subset, or one that cannot be evaluated; `str(error)` is the incident text."""

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"failed to evaluate expression '{expression}': {reason}")
        self.expression = expression
        self.reason = reason


class _Failure(Exception):
    """Raised inside parsing and evaluation; `Expression` turns it into a `FeelError` naming the expression."""


# Spaced names exist only for these built-ins; a variable name is a single identifier (or `backticked`).
_SPACED_FUNCTIONS: Final = (
    "is defined",
    "string length",
    "upper case",
    "lower case",
    "starts with",
    "ends with",
    "substring before",
    "substring after",
    "string join",
    "distinct values",
    "list contains",
    "is empty",
    "index of",
    "get value",
    "get entries",
    "context put",
    "context merge",
)

_GRAMMAR: Final = r"""
?start: expr

?expr: "if" expr "then" expr "else" expr -> if_
     | disjunction

?disjunction: conjunction
     | disjunction "or" conjunction -> or_
?conjunction: comparison
     | conjunction "and" comparison -> and_
?comparison: sum
     | sum "=" sum -> eq
     | sum "!=" sum -> ne
     | sum "<" sum -> lt
     | sum "<=" sum -> le
     | sum ">" sum -> gt
     | sum ">=" sum -> ge
     | sum "between" sum "and" sum -> between
     | sum "in" sum -> in_
?sum: product
     | sum "+" product -> add
     | sum "-" product -> sub
?product: power
     | product "*" power -> mul
     | product "/" power -> div
?power: unary
     | power "**" unary -> pow
?unary: postfix
     | "-" unary -> neg
?postfix: primary
     | postfix "." name -> path
     | postfix "[" expr "]" -> filter
?primary: NUMBER -> number
     | STRING -> string
     | "true" -> true
     | "false" -> false
     | "null" -> null
     | name -> var
     | function_name "(" [arguments] ")" -> call
     | "(" expr ")"
     | "[" [expr ("," expr)*] "]" -> list_
     | "{" [entry ("," entry)*] "}" -> context
entry: (name | STRING) ":" expr
arguments: expr ("," expr)*
name: NAME | BACKTICK_NAME
function_name: NAME | SPACED_FUNCTION

SPACED_FUNCTION.2: /(?:@SPACED@)(?=\s*\()/
NAME: /(?!\d)[\w$]+/
BACKTICK_NAME: /`[^`]+`/
NUMBER: /\d+(?:\.\d+)?|\.\d+/
STRING: /"(?:[^"\\]|\\.)*"/s
COMMENT: /\/\/[^\n]*|\/\*(?:.|\n)*?\*\//

%import common.WS
%ignore WS
%ignore COMMENT
""".replace("@SPACED@", "|".join(name.replace(" ", r"\s+") for name in _SPACED_FUNCTIONS))

# The basic lexer reads a whole name before it looks for keywords, so `index` or `instance` never splits into
# the keyword `in` and a rest, as a lexer that knows which tokens may come next would split them.
_PARSER: Final = Lark(_GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=True)


# -- values -------------------------------------------------------------------------------------------------

_MISSING: Final = object()
"""What a name or path resolves to when nothing is there; `is defined` tells it from an existing null."""

# FEEL numbers are 128-bit decimals; an overflow or an invalid operation makes the result null.
_DECIMALS: Final = decimal.Context(
    prec=34,
    Emax=6144,
    Emin=-6143,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

Scope = tuple[Mapping[str, Any], ...]
"""Name lookup frames, innermost first: context entries or a filtered element before the variables."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a context"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _plain(value: Any) -> Any:
    """A value as it leaves the engine: decimals become `int` when integral, else `float`."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _format_number(value: Any) -> str:
    number = _decimal(value)
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def _text(value: Any, nested: bool = False) -> str:
    """FEEL's `string()` form; strings inside lists and contexts keep their quotes."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return _format_number(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' if nested else value
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}:{_text(item, True)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_text(item, True) for item in value) + "]"
    return str(value)


def _equal(left: Any, right: Any) -> bool | None:
    """FEEL `=`: null equals only null; values of different kinds are not comparable (null)."""
    if left is None or right is None:
        return left is None and right is None
    if _is_number(left) and _is_number(right):
        return _decimal(left) == _decimal(right)
    if isinstance(left, bool) or isinstance(right, bool):
        return left == right if isinstance(left, bool) and isinstance(right, bool) else None
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(_equal(a, b) is True for a, b in zip(left, right, strict=True))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_equal(left[key], right[key]) is True for key in left)
    return None


def _order(left: Any, right: Any) -> int | None:
    """-1, 0 or 1 for two numbers or two strings; None (FEEL null) for anything else."""
    if _is_number(left) and _is_number(right):
        a: Any = _decimal(left)
        b: Any = _decimal(right)
    elif isinstance(left, str) and isinstance(right, str):
        a, b = left, right
    else:
        return None
    return int(a > b) - int(a < b)


def _arithmetic(operation: Callable[[Decimal, Decimal], Decimal], left: Any, right: Any) -> Decimal | None:
    if not (_is_number(left) and _is_number(right)):
        return None
    try:
        return operation(_decimal(left), _decimal(right))
    except decimal.DecimalException:
        return None


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, str) and isinstance(right, str):
        return left + right
    return _arithmetic(_DECIMALS.add, left, right)


def _truth(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


# -- syntax tree --------------------------------------------------------------------------------------------


def _lookup(scope: Scope, name: str) -> Any:
    for frame in scope:
        if name in frame:
            return frame[name]
    return _MISSING


class Node:
    """One syntax-tree node; `resolve` may answer `_MISSING`, `value` turns that into null."""

    __slots__ = ()

    def resolve(self, scope: Scope) -> Any:
        raise NotImplementedError

    def value(self, scope: Scope) -> Any:
        result = self.resolve(scope)
        return None if result is _MISSING else result


class Literal(Node):
    __slots__ = ("constant",)

    def __init__(self, constant: Any) -> None:
        self.constant = constant

    def resolve(self, scope: Scope) -> Any:
        return self.constant


class Name(Node):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def resolve(self, scope: Scope) -> Any:
        return _lookup(scope, self.name)


def _member(base: Any, key: str) -> Any:
    if isinstance(base, Mapping):
        return base.get(key, _MISSING)
    if isinstance(base, list | tuple):
        return [None if (item := _member(element, key)) is _MISSING else item for element in base]
    return _MISSING


class Path(Node):
    """`a.b`: a key of a context, or that key of every element of a list."""

    __slots__ = ("base", "key")

    def __init__(self, base: Node, key: str) -> None:
        self.base = base
        self.key = key

    def resolve(self, scope: Scope) -> Any:
        return _member(self.base.resolve(scope), self.key)


class Filter(Node):
    """`xs[2]` picks an element (from 1, negative from the end); `xs[price > 10]` keeps the elements for which
    the condition is true, with `item` and the element's own entries in scope."""

    __slots__ = ("base", "condition")

    def __init__(self, base: Node, condition: Node) -> None:
        self.base = base
        self.condition = condition

    def resolve(self, scope: Scope) -> Any:
        base = self.base.value(scope)
        if base is None:
            return None
        elements = list(base) if isinstance(base, list | tuple) else [base]
        # A number picks by position; whether the condition is one shows on the first element.
        index = self.condition.value(self._frames(elements[0]) + scope if elements else scope)
        if _is_number(index):
            position = _decimal(index)
            if position != position.to_integral_value():
                return None
            at = int(position)
            if 0 < at <= len(elements):
                return elements[at - 1]
            if -len(elements) <= at < 0:
                return elements[at]
            return None
        return [element for element in elements if self.condition.value(self._frames(element) + scope) is True]

    @staticmethod
    def _frames(element: Any) -> Scope:
        return (element, {"item": element}) if isinstance(element, Mapping) else ({"item": element},)


class ListLiteral(Node):
    __slots__ = ("items",)

    def __init__(self, items: Sequence[Node]) -> None:
        self.items = tuple(items)

    def resolve(self, scope: Scope) -> Any:
        return [item.value(scope) for item in self.items]


class ContextLiteral(Node):
    """`{a: 1, b: a + 1}`: each entry sees the entries before it."""

    __slots__ = ("entries",)

    def __init__(self, entries: Sequence[tuple[str, Node]]) -> None:
        self.entries = tuple(entries)

    def resolve(self, scope: Scope) -> Any:
        context: dict[str, Any] = {}
        inner = (context, *scope)
        for key, node in self.entries:
            context[key] = node.value(inner)
        return context


class Operator(Node):
    __slots__ = ("apply", "left", "right")

    def __init__(self, apply: Callable[[Any, Any], Any], left: Node, right: Node) -> None:
        self.apply = apply
        self.left = left
        self.right = right

    def resolve(self, scope: Scope) -> Any:
        return self.apply(self.left.value(scope), self.right.value(scope))


class Negation(Node):
    __slots__ = ("operand",)

    def __init__(self, operand: Node) -> None:
        self.operand = operand

    def resolve(self, scope: Scope) -> Any:
        operand = self.operand.value(scope)
        return _DECIMALS.minus(_decimal(operand)) if _is_number(operand) else None


class Conjunction(Node):
    """Three-valued `and`: false wins over null, null over true."""

    __slots__ = ("left", "right")

    def __init__(self, left: Node, right: Node) -> None:
        self.left = left
        self.right = right

    def resolve(self, scope: Scope) -> Any:
        left = _truth(self.left.value(scope))
        if left is False:
            return False
        right = _truth(self.right.value(scope))
        if right is False:
            return False
        return True if left and right else None


class Disjunction(Node):
    """Three-valued `or`: true wins over null, null over false."""

    __slots__ = ("left", "right")

    def __init__(self, left: Node, right: Node) -> None:
        self.left = left
        self.right = right

    def resolve(self, scope: Scope) -> Any:
        left = _truth(self.left.value(scope))
        if left is True:
            return True
        right = _truth(self.right.value(scope))
        if right is True:
            return True
        return False if left is False and right is False else None


class Conditional(Node):
    """`if c then a else b`: anything but true for `c` takes the else branch."""

    __slots__ = ("condition", "otherwise", "then")

    def __init__(self, condition: Node, then: Node, otherwise: Node) -> None:
        self.condition = condition
        self.then = then
        self.otherwise = otherwise

    def resolve(self, scope: Scope) -> Any:
        branch = self.then if self.condition.value(scope) is True else self.otherwise
        return branch.value(scope)


class Between(Node):
    __slots__ = ("high", "low", "subject")

    def __init__(self, subject: Node, low: Node, high: Node) -> None:
        self.subject = subject
        self.low = low
        self.high = high

    def resolve(self, scope: Scope) -> Any:
        subject = self.subject.value(scope)
        above = _order(subject, self.low.value(scope))
        below = _order(subject, self.high.value(scope))
        return None if above is None or below is None else above >= 0 and below <= 0


def _in(subject: Any, candidates: Any) -> bool | None:
    if isinstance(candidates, list | tuple):
        return any(_equal(subject, candidate) is True for candidate in candidates)
    return _equal(subject, candidates)


class IsDefined(Node):
    """`is defined(x.y)`: false when the path leads nowhere, true for any value there, null included."""

    __slots__ = ("operand",)

    def __init__(self, operand: Node) -> None:
        self.operand = operand

    def resolve(self, scope: Scope) -> Any:
        return self.operand.resolve(scope) is not _MISSING


class Call(Node):
    __slots__ = ("arguments", "function")

    def __init__(self, function: _Function, arguments: Sequence[Node]) -> None:
        self.function = function
        self.arguments = tuple(arguments)

    def resolve(self, scope: Scope) -> Any:
        arguments = [argument.value(scope) for argument in self.arguments]
        if any(argument is None for argument in arguments[: self.function.required]):
            return None
        try:
            return self.function.body(self.function.name, arguments)
        except decimal.DecimalException:
            return None  # as with operators: a result beyond FEEL's decimals is null


# -- built-in functions -------------------------------------------------------------------------------------

Body = Callable[[str, list[Any]], Any]


@dataclass(frozen=True, slots=True)
class _Function:
    name: str
    body: Body
    least: int
    most: int | None  # None: any number of arguments
    required: int | None  # how many leading arguments make the result null when null; None: all of them


def _wrong(function: str, position: int, expected: str, got: Any) -> NoReturn:
    raise _Failure(f"function '{function}' expects {expected} as argument {position}, not {_kind(got)}")


def _list(function: str, arguments: list[Any], position: int = 1) -> list[Any]:
    value = arguments[position - 1]
    if not isinstance(value, list | tuple):
        _wrong(function, position, "a list", value)
    return list(value)


def _string(function: str, arguments: list[Any], position: int = 1) -> str:
    value = arguments[position - 1]
    if not isinstance(value, str):
        _wrong(function, position, "a string", value)
    return value


def _number(function: str, arguments: list[Any], position: int = 1) -> Decimal:
    value = arguments[position - 1]
    if not _is_number(value):
        _wrong(function, position, "a number", value)
    return _decimal(value)


def _integer(function: str, arguments: list[Any], position: int) -> int:
    value = _number(function, arguments, position)
    if value != value.to_integral_value():
        _wrong(function, position, "a whole number", value)
    return int(value)


def _context(function: str, arguments: list[Any], position: int = 1) -> Mapping[str, Any]:
    value = arguments[position - 1]
    if not isinstance(value, Mapping):
        _wrong(function, position, "a context", value)
    return value


def _items(arguments: list[Any]) -> list[Any]:
    """`sum([1, 2])` and `sum(1, 2)` mean the same; likewise `min`, `max`, `mean`."""
    if len(arguments) == 1 and isinstance(arguments[0], list | tuple):
        return list(arguments[0])
    return arguments


def _numbers(function: str, arguments: list[Any]) -> list[Decimal]:
    items = _items(arguments)
    if not all(_is_number(item) for item in items):
        raise _Failure(f"function '{function}' expects numbers, not {', '.join(sorted({_kind(i) for i in items}))}")
    return [_decimal(item) for item in items]


def _extreme(sign: int) -> Body:
    def body(function: str, arguments: list[Any]) -> Any:
        items = _items(arguments)
        if not items:
            return None
        best = items[0]
        for item in items:
            order = _order(item, best)
            if order is None:
                raise _Failure(f"function '{function}' expects numbers or strings of one kind")
            if order == sign:
                best = item
        return best

    return body


def _sum(function: str, arguments: list[Any]) -> Any:
    total = Decimal(0)
    for number in _numbers(function, arguments):
        total = _DECIMALS.add(total, number)
    return total


def _mean(function: str, arguments: list[Any]) -> Any:
    numbers = _numbers(function, arguments)
    return _DECIMALS.divide(_sum(function, arguments), Decimal(len(numbers))) if numbers else None


def _distinct(items: list[Any]) -> list[Any]:
    kept: list[Any] = []
    for item in items:
        if not any(_equal(item, seen) is True for seen in kept):
            kept.append(item)
    return kept


def _flatten(items: Sequence[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in items:
        flat.extend(_flatten(item) if isinstance(item, list | tuple) else [item])
    return flat


def _concatenate(function: str, arguments: list[Any]) -> list[Any]:
    joined: list[Any] = []
    for position in range(1, len(arguments) + 1):
        joined.extend(_list(function, arguments, position))
    return joined


_NUMBER_TEXT: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _to_number(function: str, arguments: list[Any]) -> Any:
    text = _string(function, arguments)
    if len(arguments) == 3:
        grouping, separator = (_string(function, arguments, 2), _string(function, arguments, 3))
        text = text.replace(grouping, "").replace(separator, ".")
    return Decimal(text) if _NUMBER_TEXT.fullmatch(text) else None


def _substring(function: str, arguments: list[Any]) -> str:
    text = _string(function, arguments)
    start = _integer(function, arguments, 2)
    begin = max(start - 1 if start > 0 else len(text) + start, 0)
    if len(arguments) == 3:
        return text[begin : begin + max(_integer(function, arguments, 3), 0)]
    return text[begin:]


def _sublist(function: str, arguments: list[Any]) -> list[Any]:
    items = _list(function, arguments)
    start = _integer(function, arguments, 2)
    begin = max(start - 1 if start > 0 else len(items) + start, 0)
    if len(arguments) == 3:
        return items[begin : begin + max(_integer(function, arguments, 3), 0)]
    return items[begin:]


def _join(function: str, arguments: list[Any]) -> str:
    items = [item for item in _list(function, arguments) if item is not None]
    if not all(isinstance(item, str) for item in items):
        _wrong(function, 1, "a list of strings", arguments[0])
    delimiter, prefix, suffix = (*arguments[1:], "", "", "")[:3]
    for position, part in enumerate((delimiter, prefix, suffix), start=2):
        if part is not None and not isinstance(part, str):
            _wrong(function, position, "a string", part)
    return (prefix or "") + (delimiter or "").join(items) + (suffix or "")


def _modulo(function: str, arguments: list[Any]) -> Any:
    dividend, divisor = _number(function, arguments, 1), _number(function, arguments, 2)
    if divisor == 0:
        return None
    quotient = _DECIMALS.divide(dividend, divisor).to_integral_value(rounding=decimal.ROUND_FLOOR)
    return _DECIMALS.subtract(dividend, _DECIMALS.multiply(divisor, quotient))


def _round(rounding: str) -> Body:
    def body(function: str, arguments: list[Any]) -> Any:
        return _number(function, arguments).to_integral_value(rounding=rounding)

    return body


def _decimal_places(function: str, arguments: list[Any]) -> Any:
    places = _integer(function, arguments, 2)
    return _number(function, arguments).quantize(Decimal(1).scaleb(-places), decimal.ROUND_HALF_EVEN, _DECIMALS)


def _not(function: str, arguments: list[Any]) -> Any:
    value = arguments[0]
    return (not value) if isinstance(value, bool) else None


def _put(function: str, arguments: list[Any]) -> dict[str, Any]:
    return {**_context(function, arguments), _string(function, arguments, 2): arguments[2]}


def _merge(function: str, arguments: list[Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for context in _items(arguments):
        if not isinstance(context, Mapping):
            _wrong(function, 1, "a list of contexts", context)
        merged.update(context)
    return merged


def _function(name: str, least: int, most: int | None, body: Body, required: int | None = None) -> _Function:
    return _Function(name, body, least, most, required)


_FUNCTIONS: Final = {
    function.name: function
    for function in (
        _function("not", 1, 1, _not),
        _function("string", 1, 1, lambda f, a: _text(a[0])),
        _function("number", 1, 3, _to_number),
        _function("string length", 1, 1, lambda f, a: len(_string(f, a))),
        _function("upper case", 1, 1, lambda f, a: _string(f, a).upper()),
        _function("lower case", 1, 1, lambda f, a: _string(f, a).lower()),
        _function("trim", 1, 1, lambda f, a: _string(f, a).strip()),
        _function("contains", 2, 2, lambda f, a: _string(f, a, 2) in _string(f, a)),
        _function("starts with", 2, 2, lambda f, a: _string(f, a).startswith(_string(f, a, 2))),
        _function("ends with", 2, 2, lambda f, a: _string(f, a).endswith(_string(f, a, 2))),
        _function("substring", 2, 3, _substring),
        _function("substring before", 2, 2, lambda f, a: _string(f, a).partition(_string(f, a, 2))[0]),
        _function("substring after", 2, 2, lambda f, a: _string(f, a).partition(_string(f, a, 2))[2]),
        _function("string join", 1, 4, _join, required=1),
        _function("count", 1, 1, lambda f, a: len(_list(f, a))),
        _function("append", 1, None, lambda f, a: [*_list(f, a), *a[1:]], required=1),
        _function("concatenate", 0, None, _concatenate),
        _function("distinct values", 1, 1, lambda f, a: _distinct(_list(f, a))),
        _function("list contains", 2, 2, lambda f, a: _in(a[1], _list(f, a)), required=1),
        _function("is empty", 1, 1, lambda f, a: not _list(f, a)),
        _function("reverse", 1, 1, lambda f, a: _list(f, a)[::-1]),
        _function("flatten", 1, 1, lambda f, a: _flatten(_list(f, a))),
        _function("sublist", 2, 3, _sublist),
        _function("index of", 2, 2, lambda f, a: [i for i, x in enumerate(_list(f, a), 1) if _equal(x, a[1])]),
        _function("sum", 0, None, _sum),
        _function("mean", 0, None, _mean),
        _function("min", 0, None, _extreme(-1)),
        _function("max", 0, None, _extreme(1)),
        _function("abs", 1, 1, lambda f, a: _DECIMALS.abs(_number(f, a))),
        _function("floor", 1, 1, _round(decimal.ROUND_FLOOR)),
        _function("ceiling", 1, 1, _round(decimal.ROUND_CEILING)),
        _function("decimal", 2, 2, _decimal_places),
        _function("modulo", 2, 2, _modulo),
        _function("get value", 2, 2, lambda f, a: _context(f, a).get(_string(f, a, 2))),
        _function("get entries", 1, 1, lambda f, a: [{"key": k, "value": v} for k, v in _context(f, a).items()]),
        _function("context put", 3, 3, _put, required=2),
        _function("context merge", 1, None, _merge),
    )
}


# -- parsing ------------------------------------------------------------------------------------------------

_ESCAPES: Final = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "/": "/"}
_ESCAPE: Final = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)


def _unescape(literal: str) -> str:
    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code.startswith("u") and len(code) == 5:
            return chr(int(code[1:], 16))
        return _ESCAPES.get(code, match.group(0))

    return _ESCAPE.sub(replace, literal[1:-1])


def _compare(test: Callable[[int], bool]) -> Callable[[Any, Any], Any]:
    def apply(left: Any, right: Any) -> Any:
        order = _order(left, right)
        return None if order is None else test(order)

    return apply


def _not_equal(left: Any, right: Any) -> Any:
    equal = _equal(left, right)
    return None if equal is None else not equal


_OPERATORS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "eq": _equal,
    "ne": _not_equal,
    "lt": _compare(lambda order: order < 0),
    "le": _compare(lambda order: order <= 0),
    "gt": _compare(lambda order: order > 0),
    "ge": _compare(lambda order: order >= 0),
    "in_": _in,
    "add": _add,
    "sub": lambda left, right: _arithmetic(_DECIMALS.subtract, left, right),
    "mul": lambda left, right: _arithmetic(_DECIMALS.multiply, left, right),
    "div": lambda left, right: _arithmetic(_DECIMALS.divide, left, right),
    "pow": lambda left, right: _arithmetic(_DECIMALS.power, left, right),
}


@v_args(inline=True)
class _Build(Transformer[Token, Node]):
    """Turns lark's parse tree into evaluable nodes, checking function names and argument counts on the way."""

    def __default__(self, data: str, children: list[Any], meta: Any) -> Any:
        apply = _OPERATORS.get(data)
        if apply is None:
            return super().__default__(data, children, meta)  # type: ignore[no-untyped-call]
        return Operator(apply, *children)

    def number(self, token: Token) -> Node:
        return Literal(Decimal(str(token)))

    def string(self, token: Token) -> Node:
        return Literal(_unescape(str(token)))

    def true(self) -> Node:
        return Literal(True)

    def false(self) -> Node:
        return Literal(False)

    def null(self) -> Node:
        return Literal(None)

    def name(self, token: Token) -> str:
        text = str(token)
        return text[1:-1] if token.type == "BACKTICK_NAME" else text

    def function_name(self, token: Token) -> str:
        return " ".join(str(token).split())

    def var(self, name: str) -> Node:
        return Name(name)

    def path(self, base: Node, key: str) -> Node:
        return Path(base, key)

    def filter(self, base: Node, condition: Node) -> Node:
        return Filter(base, condition)

    def neg(self, operand: Node) -> Node:
        return Negation(operand)

    def and_(self, left: Node, right: Node) -> Node:
        return Conjunction(left, right)

    def or_(self, left: Node, right: Node) -> Node:
        return Disjunction(left, right)

    def if_(self, condition: Node, then: Node, otherwise: Node) -> Node:
        return Conditional(condition, then, otherwise)

    def between(self, subject: Node, low: Node, high: Node) -> Node:
        return Between(subject, low, high)

    def list_(self, *items: Node | None) -> Node:
        return ListLiteral([item for item in items if item is not None])

    def entry(self, key: str | Token, node: Node) -> tuple[str, Node]:
        return (_unescape(str(key)) if isinstance(key, Token) else key), node

    def context(self, *entries: tuple[str, Node] | None) -> Node:
        return ContextLiteral([entry for entry in entries if entry is not None])

    def arguments(self, *nodes: Node) -> list[Node]:
        return list(nodes)

    def call(self, name: str, arguments: list[Node] | None) -> Node:
        arguments = arguments or []
        if name == "is defined":
            if len(arguments) != 1:
                raise _Failure(f"function 'is defined' expects 1 argument, got {len(arguments)}")
            return IsDefined(arguments[0])
        function = _FUNCTIONS.get(name)
        if function is None:
            raise _Failure(f"unknown function '{name}'")
        least, most = function.least, function.most
        if len(arguments) < least or (most is not None and len(arguments) > most):
            expected = f"at least {least}" if most is None else str(least) if least == most else f"{least} to {most}"
            raise _Failure(f"function '{name}' expects {expected} argument(s), got {len(arguments)}")
        return Call(function, arguments)


def _syntax_error(error: UnexpectedInput) -> str:
    if isinstance(error, UnexpectedEOF) or (isinstance(error, UnexpectedToken) and error.token.type == "$END"):
        return "unexpected end of expression"
    if isinstance(error, UnexpectedToken):
        found = f"'{error.token}'"
    elif isinstance(error, UnexpectedCharacters):
        found = f"character '{error.char}'"
    else:
        found = "input"
    return f"unexpected {found} at position {error.column} (not FEEL, or FEEL the development engine lacks)"


# -- public surface -----------------------------------------------------------------------------------------


class Expression:
    """A parsed mapping or condition; `source` is the text as written in the BPMN (with its `=`)."""

    __slots__ = ("_root", "_text", "source")

    def __init__(self, source: str, text: str, root: Node | None) -> None:
        self.source = source
        self._text = text
        self._root = root

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        if self._root is None:
            return self.source
        try:
            return _plain(self._root.value((variables,)))
        except _Failure as failure:
            raise FeelError(self._text, str(failure)) from None
        except RecursionError:
            raise FeelError(self._text, "the value is nested too deeply") from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


@functools.lru_cache(maxsize=1024)
def parse_expression(source: str) -> Expression:
    """`=...` is FEEL; any other text is a static string value, as Zeebe treats it."""
    stripped = source.strip()
    if not stripped.startswith("="):
        return Expression(source, source, None)
    text = stripped[1:].strip()
    if not text:
        raise FeelError(text, "the expression is empty")
    try:
        return Expression(source, text, _Build().transform(_PARSER.parse(text)))
    except UnexpectedInput as error:
        raise FeelError(text, _syntax_error(error)) from None
    except VisitError as error:
        if isinstance(error.orig_exc, _Failure):
            raise FeelError(text, str(error.orig_exc)) from None
        raise
    except RecursionError:
        raise FeelError(text, "the expression is nested too deeply") from None


def evaluate(source: str, variables: Mapping[str, Any]) -> Any:
    return parse_expression(source).evaluate(variables)
