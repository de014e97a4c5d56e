"""The development engine's FEEL: values and null semantics as Camunda's FEEL gives them, errors that name the
expression, and every FEEL expression the repository's processes, template and tests write."""

from __future__ import annotations

import ast
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from devkit.engine.feel import FeelError, evaluate, parse_expression
from tests.support.bpmn import feel_string

ROOT = Path(__file__).resolve().parents[2]

# (expression, variables, expected result); results compare as JSON so that 1, 1.0 and true stay apart.
CASES: list[tuple[str, dict[str, Any], Any]] = [
    # literals
    ("=1", {}, 1),
    ("=1.5", {}, 1.5),
    ("=.5", {}, 0.5),
    ("=-5", {}, -5),
    ("=true", {}, True),
    ("=false", {}, False),
    ("=null", {}, None),
    ('="plain"', {}, "plain"),
    ('="say \\"hi\\""', {}, 'say "hi"'),
    ('="a\\\\b"', {}, "a\\b"),
    ('="line\\nnext\\ttab"', {}, "line\nnext\ttab"),
    ('="caf\\u00e9"', {}, "café"),
    ('="{{secrets.TOKEN}} stays as written"', {}, "{{secrets.TOKEN}} stays as written"),
    ("  = 1 + 1  ", {}, 2),
    ("=1 + /* two */ 2 // and a comment", {}, 3),
    # a source without "=" is a static string
    ("plain text", {}, "plain text"),
    ("3", {}, "3"),
    ("", {}, ""),
    # arithmetic on decimals
    ("=1 + 1", {}, 2),
    ("=7 / 2", {}, 3.5),
    ("=6 / 3", {}, 2),
    ("=1 / 3", {}, 0.3333333333333333),
    ("=0.1 + 0.2", {}, 0.3),
    ("=2 * 3.5", {}, 7),
    ("=10 - 2.5", {}, 7.5),
    ("=2 ** 10", {}, 1024),
    ("=2 ** 0.5", {}, 1.4142135623730951),
    ("=1 - 2 * 3", {}, -5),
    ("=(1 - 2) * 3", {}, -3),
    ("=2 * 3 ** 2", {}, 18),
    ("=-x", {"x": 3}, -3),
    ("=- -x", {"x": 3}, 3),
    ("=x * 2", {"x": 1.5}, 3),
    ("=x + 0", {"x": 2.0}, 2),
    ("=x + 0.1", {"x": 0.2}, 0.3),
    ("=12345678901234567890 + 1", {}, 12345678901234567891),
    ('="ab" + "cd"', {}, "abcd"),
    ('="Hello " + name + "!"', {"name": "Ada"}, "Hello Ada!"),
    # arithmetic: null and nonsense give null
    ("=1 / 0", {}, None),
    ("=1 + null", {}, None),
    ("=x + 1", {}, None),
    ('="a" + 1', {}, None),
    ("=true + 1", {}, None),
    ("=[1] + [2]", {}, None),
    ('=-"a"', {}, None),
    ("=10 ** 10000", {}, None),
    ("=(-8) ** 0.5", {}, None),
    # comparisons
    ("=1 = 1", {}, True),
    ("=1 = 1.0", {}, True),
    ("=x = 0.3", {"x": 0.3}, True),
    ("=1 != 2", {}, True),
    ('="a" = "a"', {}, True),
    ('="a" != "a"', {}, False),
    ("=true = true", {}, True),
    ("=null = null", {}, True),
    ("=x = null", {}, True),
    ("=x = null", {"x": None}, True),
    ("=x != null", {"x": 0}, True),
    ("=1 = null", {}, False),
    ("=1 != null", {}, True),
    ('=1 = "1"', {}, None),
    ("=true = 1", {}, None),
    ("=[1, 2] = [1, 2]", {}, True),
    ("=[1, 2] = [2, 1]", {}, False),
    ("={a: 1, b: [true]} = {b: [true], a: 1.0}", {}, True),
    ("={a: 1} = {a: 2}", {}, False),
    ("=1 < 2", {}, True),
    ("=2 <= 2", {}, True),
    ("=2 > 3", {}, False),
    ("=2 >= 3", {}, False),
    ('="apple" < "banana"', {}, True),
    ("=null < 1", {}, None),
    ("=x > 1", {}, None),
    ('=1 < "2"', {}, None),
    ("=true < false", {}, None),
    ("=x between 1 and 3", {"x": 2}, True),
    ("=x between 1 and 3", {"x": 3}, True),
    ("=5 between 1 and 3", {}, False),
    ("=x between 1 and 3", {}, None),
    ("=2 in [1, 2]", {}, True),
    ("=3 in [1, 2]", {}, False),
    ('=role in ["user", "tool"]', {"role": "tool"}, True),
    ("=2 in 2", {}, True),
    # three-valued and/or, not()
    ("=true and true", {}, True),
    ("=true and false", {}, False),
    ("=true and null", {}, None),
    ("=false and null", {}, False),
    ("=null and false", {}, False),
    ("=true and 1", {}, None),
    ("=true or false", {}, True),
    ("=null or true", {}, True),
    ("=false or null", {}, None),
    ("=false or false", {}, False),
    ("=1 > 0 and 2 > 1 or false", {}, True),
    ("=false and true or true", {}, True),
    ("=not(true)", {}, False),
    ("=not(false)", {}, True),
    ("=not(null)", {}, None),
    ("=not(x = 1)", {"x": 2}, True),
    # if-then-else: anything but true takes the else branch
    ("=if x then 1 else 2", {"x": True}, 1),
    ("=if x then 1 else 2", {"x": False}, 2),
    ("=if x then 1 else 2", {"x": None}, 2),
    ("=if x then 1 else 2", {}, 2),
    ("=if x then 1 else 2", {"x": "yes"}, 2),
    ("=if a > 1 then if a > 2 then 3 else 2 else 1", {"a": 3}, 3),
    ("=if is defined(round) then round + 1 else 1", {}, 1),
    ("=if is defined(round) then round + 1 else 1", {"round": 2}, 3),
    ("=if is defined(round) then round + 1 else 1", {"round": None}, None),
    # context and list literals
    ('={a: 1, "b c": 2, nested: {x: y}}', {"y": 5}, {"a": 1, "b c": 2, "nested": {"x": 5}}),
    ("={a: 1, b: a + 1}", {}, {"a": 1, "b": 2}),
    ("={a: 1, b: {c: a}}", {}, {"a": 1, "b": {"c": 1}}),
    ("={a: x, b: a}", {"x": 7}, {"a": 7, "b": 7}),
    ("={a: missing}", {}, {"a": None}),
    ("={}", {}, {}),
    ('=[1, a, "x"]', {"a": True}, [1, True, "x"]),
    ("=[]", {}, []),
    ("=[[1], {k: [2]}]", {}, [[1], {"k": [2]}]),
    # names and paths: missing is null, a path on a list maps over it
    ("=a", {"a": {"deep": [1]}}, {"deep": [1]}),
    ("=a.b.c", {"a": {"b": {"c": 1}}}, 1),
    ("=a.b.c", {}, None),
    ("=a.x", {"a": {}}, None),
    ("=a.b", {"a": 1}, None),
    ("=a.b", {"a": None}, None),
    ("=items.name", {"items": [{"name": "x"}, {"name": "y"}, {}]}, ["x", "y", None]),
    ("=`my var` + 1", {"my var": 1}, 2),
    ("=a.`content-type`", {"a": {"content-type": "text/plain"}}, "text/plain"),
    ("=$x", {"$x": 1}, 1),
    ("=_a1", {"_a1": 1}, 1),
    ("=größe", {"größe": 1}, 1),
    ("=index + 1", {"index": 1}, 2),
    ("=notes", {"notes": "n"}, "n"),
    ("=iffy", {"iffy": 1}, 1),
    ("=nullable", {"nullable": 1}, 1),
    ("=orders.andrew", {"orders": {"andrew": 1}}, 1),
    ("={inputs: text}", {"text": "t"}, {"inputs": "t"}),
    # index and filter
    ("=xs[1]", {"xs": [10, 20, 30]}, 10),
    ("=xs[-1]", {"xs": [10, 20, 30]}, 30),
    ("=xs[-3]", {"xs": [10, 20, 30]}, 10),
    ("=xs[0]", {"xs": [10, 20, 30]}, None),
    ("=xs[4]", {"xs": [10, 20, 30]}, None),
    ("=xs[-4]", {"xs": [10, 20, 30]}, None),
    ("=xs[1.5]", {"xs": [10, 20, 30]}, None),
    ("=xs[n]", {"xs": [10, 20, 30], "n": 2}, 20),
    ("=xs[1]", {}, None),
    ("=[]", {}, []),
    ("=body[1].summary_text", {"body": [{"summary_text": "s"}]}, "s"),
    ("=xs[item > 15]", {"xs": [10, 20, 30]}, [20, 30]),
    ("=xs[item > 15][1]", {"xs": [10, 20, 30]}, 20),
    ("=xs[x > 1]", {"xs": [{"x": 1}, {"x": 2}, {"y": 3}]}, [{"x": 2}]),
    ("=xs[x > limit].x", {"xs": [{"x": 1}, {"x": 5}], "limit": 2}, [5]),
    ("=xs[x > 1]", {"xs": [{"x": 2}], "x": 0}, [{"x": 2}]),
    ('=calls[type = "function"].id', {"calls": [{"type": "function", "id": "a"}, {"type": "x"}]}, ["a"]),
    ("=xs[item > 1]", {"xs": []}, []),
    ("=[1, 2, 3][item != 2]", {}, [1, 3]),
    # count, append, string, number, is defined
    ("=count(xs)", {"xs": [1, 2]}, 2),
    ("=count([])", {}, 0),
    ("=count(xs)", {}, None),
    ("=count(toolCalls) > 0", {"toolCalls": [{"id": "c"}]}, True),
    ("=count(toolCalls) > 0", {"toolCalls": []}, False),
    ("=append(xs, 3)", {"xs": [1, 2]}, [1, 2, 3]),
    ("=append(xs, 3, [4])", {"xs": []}, [3, [4]]),
    ("=append(xs, null)", {"xs": [1]}, [1, None]),
    ("=append(xs, 1)", {}, None),
    (
        '=append(messages, {role: "tool", tool_call_id: call.id, content: summary})',
        {"messages": [{"role": "user", "content": "q"}], "call": {"id": "c1"}, "summary": "s"},
        [{"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "c1", "content": "s"}],
    ),
    ("=string(1)", {}, "1"),
    ("=string(1.5)", {}, "1.5"),
    ("=string(1.50)", {}, "1.5"),
    ("=string(x)", {"x": 2.0}, "2"),
    ("=string(x)", {"x": 0.1}, "0.1"),
    ("=string(1 / 4)", {}, "0.25"),
    ("=string(true)", {}, "true"),
    ('=string("a")', {}, "a"),
    ("=string(null)", {}, None),
    ('=string([1, "a", null])', {}, '[1, "a", null]'),
    ('=string({a: 1, b: "x"})', {}, '{a:1, b:"x"}'),
    ('="round " + string(round)', {"round": 3}, "round 3"),
    ('=number("12")', {}, 12),
    ('=number("-1.5")', {}, -1.5),
    ('=number("1e3")', {}, 1000),
    ('=number("x")', {}, None),
    ('=number("")', {}, None),
    ('=number("1.000,5", ".", ",")', {}, 1000.5),
    ("=is defined(x)", {}, False),
    ("=is defined(x)", {"x": None}, True),
    ("=is defined(x)", {"x": 0}, True),
    ("=is defined(x.y)", {"x": {}}, False),
    ("=is defined(x.y)", {"x": {"y": None}}, True),
    ("=is defined(x.y)", {}, False),
    ("=is  defined (x)", {"x": 1}, True),
    ("=not(is defined(x))", {}, True),
    # string functions
    ('=string length("héllo")', {}, 5),
    ('=upper case("abc")', {}, "ABC"),
    ('=lower case("ABC")', {}, "abc"),
    ('=trim("  a b  ")', {}, "a b"),
    ('=contains("haystack", "st")', {}, True),
    ('=contains("haystack", "x")', {}, False),
    ('=starts with("haystack", "hay")', {}, True),
    ('=ends with("haystack", "hay")', {}, False),
    ('=substring("foobar", 3)', {}, "obar"),
    ('=substring("foobar", 3, 3)', {}, "oba"),
    ('=substring("foobar", -2, 1)', {}, "a"),
    ('=substring before("foo/bar", "/")', {}, "foo"),
    ('=substring after("foo/bar", "/")', {}, "bar"),
    ('=string join(["a", "b"], ", ")', {}, "a, b"),
    ('=string join(["a", null, "b"])', {}, "ab"),
    ('=string join(["a", "b"], "-", "[", "]")', {}, "[a-b]"),
    ("=upper case(x)", {}, None),
    # list functions
    ("=sum([1, 2, 3.5])", {}, 6.5),
    ("=sum(1, 2)", {}, 3),
    ("=sum([0.1, 0.2])", {}, 0.3),
    ("=mean([1, 2])", {}, 1.5),
    ("=mean([])", {}, None),
    ("=min([3, 1, 2])", {}, 1),
    ("=max(3, 1, 2)", {}, 3),
    ('=max(["a", "c", "b"])', {}, "c"),
    ("=min([])", {}, None),
    ("=distinct values([1, 2, 1, 1.0, [1], [1]])", {}, [1, 2, [1]]),
    ("=list contains([1, 2], 2)", {}, True),
    ("=list contains([1, null], null)", {}, True),
    ("=list contains([1, 2], 3)", {}, False),
    ("=is empty([])", {}, True),
    ("=is empty([1])", {}, False),
    ("=reverse([1, 2, 3])", {}, [3, 2, 1]),
    ("=flatten([1, [2, [3]]])", {}, [1, 2, 3]),
    ("=sublist([1, 2, 3], 2)", {}, [2, 3]),
    ("=sublist([1, 2, 3], 1, 2)", {}, [1, 2]),
    ("=index of([1, 2, 1], 1)", {}, [1, 3]),
    ("=concatenate([1], [], [2, 3])", {}, [1, 2, 3]),
    # context functions
    ('=get value({a: 1}, "a")', {}, 1),
    ('=get value({a: 1}, "b")', {}, None),
    ('=get value(headers, "x-inference-provider")', {"headers": {"x-inference-provider": "p"}}, "p"),
    ("=get entries({a: 1})", {}, [{"key": "a", "value": 1}]),
    ('=context put({a: 1}, "b", 2)', {}, {"a": 1, "b": 2}),
    ('=context put({a: 1}, "a", null)', {}, {"a": None}),
    ("=context merge([{a: 1}, {b: 2}, {a: 3}])", {}, {"a": 3, "b": 2}),
    # number functions
    ("=abs(-1.5)", {}, 1.5),
    ("=floor(1.5)", {}, 1),
    ("=floor(-1.5)", {}, -2),
    ("=ceiling(1.2)", {}, 2),
    ("=decimal(1 / 3, 2)", {}, 0.33),
    ("=decimal(2.5, 0)", {}, 2),
    ("=modulo(12, 5)", {}, 2),
    ("=modulo(-12, 5)", {}, 3),
    ("=modulo(12, -5)", {}, -3),
    ("=modulo(1, 0)", {}, None),
    ("=decimal(1, 100)", {}, None),
    ("=decimal(1, -7000)", {}, None),
    ("=abs(x)", {"x": -12345678901234567890123456789012}, 12345678901234567890123456789012),
]


def _as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@pytest.mark.parametrize(("source", "variables", "expected"), CASES, ids=[case[0] for case in CASES])
def test_value(source: str, variables: dict[str, Any], expected: Any) -> None:
    assert _as_json(evaluate(source, variables)) == _as_json(expected)


# (expression, what the reason says)
ERRORS: list[tuple[str, str]] = [
    ("=foo(1)", "unknown function 'foo'"),
    ('=date("2024-01-01")', "unknown function 'date'"),
    ("=x(1)", "unknown function 'x'"),
    ("=is defined(a, b)", "function 'is defined' expects 1 argument"),
    ("=count(1, 2)", "function 'count' expects 1 argument(s), got 2"),
    ("=append()", "function 'append' expects at least 1 argument(s), got 0"),
    ("=substring()", "function 'substring' expects 2 to 3 argument(s), got 0"),
    ('=count("abc")', "function 'count' expects a list as argument 1, not a string"),
    ('=append("abc", 1)', "function 'append' expects a list as argument 1, not a string"),
    ("=upper case(1)", "function 'upper case' expects a string as argument 1, not a number"),
    ("=get value({a: 1}, 1)", "function 'get value' expects a string as argument 2, not a number"),
    ('=get value([1], "a")', "function 'get value' expects a context as argument 1, not a list"),
    ('=sum([1, "a"])', "function 'sum' expects numbers"),
    ('=min([1, "a"])', "function 'min' expects numbers or strings of one kind"),
    ("=max([true])", "function 'max' expects numbers or strings of one kind"),
    ('=substring("abc", 1.5)', "function 'substring' expects a whole number as argument 2"),
    ("=for x in xs return x", "unexpected 'x' at position 5"),
    ("=some x in xs satisfies x > 1", "unexpected 'x' at position 6"),
    ("=x instance of number", "unexpected 'instance' at position 3"),
    ("=function(a) a + 1", "unexpected"),
    ("=[1..3]", "unexpected"),
    ("=1 +", "unexpected end of expression"),
    ("=a b", "unexpected 'b' at position 3"),
    ("=a andb", "unexpected 'andb' at position 3"),
    ("=x inx", "unexpected 'inx' at position 3"),
    ("=a == b", "unexpected '=' at position 4"),
    ('="unterminated', "unexpected character '\"' at position 1"),
    ("=a & b", "unexpected character '&' at position 3"),
    ("=first name", "unexpected 'name' at position 7"),
    ("=", "the expression is empty"),
    ("=   ", "the expression is empty"),
]


@pytest.mark.parametrize(("source", "reason"), ERRORS, ids=[case[0] for case in ERRORS])
def test_error_names_the_expression(source: str, reason: str) -> None:
    feel = source.strip()[1:].strip()
    with pytest.raises(FeelError) as caught:
        evaluate(source, {"xs": [1], "a": 1, "b": 2})
    assert caught.value.expression == feel
    assert reason in caught.value.reason
    assert str(caught.value) == f"failed to evaluate expression '{feel}': {caught.value.reason}"


def test_outside_subset_fails_when_parsed_not_when_first_evaluated() -> None:
    """The engine can check a process's expressions when it is deployed."""
    with pytest.raises(FeelError, match="unknown function 'lenght'"):
        parse_expression("=if false then lenght(x) else 1")


def test_parses_are_cached_and_keep_the_source() -> None:
    expression = parse_expression("=count(xs) + 1")
    assert parse_expression("=count(xs) + 1") is expression
    assert expression.source == "=count(xs) + 1"
    assert expression.evaluate({"xs": [1]}) == 2
    assert expression.evaluate({"xs": [1, 2]}) == 3


def test_evaluation_leaves_the_variables_untouched() -> None:
    variables = {"xs": [1], "ctx": {"a": 1}}
    assert evaluate("=append(xs, 2)", variables) == [1, 2]
    assert evaluate('=context put(ctx, "b", 2)', variables) == {"a": 1, "b": 2}
    assert variables == {"xs": [1], "ctx": {"a": 1}}


@pytest.mark.parametrize("text", ["plain", 'with "quotes"', "back\\slash", "{{secrets.X}}", "ünïcode", ""])
def test_feel_string_helper_round_trips(text: str) -> None:
    """tests/support/bpmn.py writes model ids and inputs as FEEL strings; the engine must read them back."""
    assert evaluate(feel_string(text), {}) == text


class _AnyVariable(Mapping[str, Any]):
    """Every name is a variable whose value names it, so an expression's every reference resolves."""

    def __getitem__(self, key: str) -> Any:
        return f"<{key}>"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


# Keys whose values the worker evaluates itself (Jinja), not the engine.
_WORKER_EXPRESSIONS = {"resultExpression", "errorExpression"}


def _bpmn_expressions() -> Iterator[tuple[str, str]]:
    for path in sorted((ROOT / "bpmn-examples").rglob("*.bpmn")):
        for element in ET.parse(path).iter():
            if element.tag.endswith("conditionExpression") and element.text:
                yield path.name, element.text.strip()
            for name, value in element.attrib.items():
                if value.strip().startswith("=") and name not in _WORKER_EXPRESSIONS:
                    yield path.name, value


def _template_expressions() -> Iterator[tuple[str, str]]:
    def walk(value: Any) -> Iterator[str]:
        if isinstance(value, Mapping):
            for item in value.values():
                yield from walk(item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)
        elif isinstance(value, str) and value.startswith("=") and not value.startswith("={{"):
            yield value

    for path in sorted((ROOT / "element-templates").rglob("*.json")):
        for text in walk(json.loads(path.read_text(encoding="utf-8"))):
            yield path.name, text


def _test_expressions() -> Iterator[tuple[str, str]]:
    """Input mappings the end-to-end tests write as whole string literals in a dict."""
    for path in sorted((ROOT / "tests" / "e2e").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in _WORKER_EXPRESSIONS:
                    continue
                if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value.startswith("="):
                    yield path.name, value.value


REPOSITORY_EXPRESSIONS = sorted({*_bpmn_expressions(), *_template_expressions(), *_test_expressions()})


def test_repository_expressions_are_found() -> None:
    """Guards the loaders: a renamed folder or attribute would otherwise leave the next test with nothing to do."""
    files = {file for file, _ in REPOSITORY_EXPRESSIONS}
    assert {"summarization.bpmn", "hugging-face-connector.json", "test_hf_operations.py"} <= files
    assert len(REPOSITORY_EXPRESSIONS) >= 30


@pytest.mark.parametrize(
    ("file", "source"), REPOSITORY_EXPRESSIONS, ids=[f"{f}:{s[:60]}" for f, s in REPOSITORY_EXPRESSIONS]
)
def test_repository_expression_evaluates(file: str, source: str) -> None:
    result = evaluate(source, _AnyVariable())
    json.dumps(result)  # JSON-like all the way down
    assert result is not None


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        (
            "={inputs: text, parameters: {max_length: 75}}",
            {"text": "t"},
            {"inputs": "t", "parameters": {"max_length": 75}},
        ),
        (
            '=[{role: "system", content: "Be brief."}, {role: "user", content: question}]',
            {"question": "q"},
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}],
        ),
        (
            '={inputs: {data: image, contentType: "image/png"}, parameters: {max_new_tokens: 20}}',
            {"image": "aGk="},
            {"inputs": {"data": "aGk=", "contentType": "image/png"}, "parameters": {"max_new_tokens": 20}},
        ),
        ("=0.2", {}, 0.2),
        ("=-5", {}, -5),
        ('=["###"]', {}, ["###"]),
        ("={inputs: text}", {}, {"inputs": None}),
    ],
)
def test_repository_shapes(source: str, variables: dict[str, Any], expected: Any) -> None:
    """The request bodies the examples build arrive as the worker expects them."""
    assert _as_json(evaluate(source, variables)) == _as_json(expected)


def test_summarization_example_input_evaluates_to_its_text() -> None:
    inputs = [source for file, source in REPOSITORY_EXPRESSIONS if file == "summarization.bpmn" and "Java" in source]
    assert len(inputs) == 1
    body = evaluate(inputs[0], {})
    assert body["inputs"].startswith("Java is a high-level")
    assert body["parameters"] == {"max_length": 75}
