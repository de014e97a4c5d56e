"""Bad input from a process model: each case raises an incident at once whose message names what to fix,
costs no Hugging Face call (checked in the stand-in's recording), and leaves the worker ready.

Expressions are the exception to "no call": a result or error expression is compiled before the call (a
syntax error costs nothing) but can only fail on the answer it maps, so those cases make exactly one call.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyzeebe import ZeebeClient

from devkit.hf_standin import HfStandin, RecordedRequest, Reply
from tests.conftest import SUITE_SECRETS
from tests.support.bpmn import connector_process, feel_string, unique_process_id
from tests.support.connector import Connector
from tests.support.records import Record, ZeebeRecords
from tests.support.zeebe_helpers import deploy_xml, run_to_end

pytestmark = pytest.mark.e2e

SMALL_INPUT_LIMIT = 1024
MODEL = "{model}"  # in a case's inputs: replaced by the case's own, valid, unique model id
MARKER = "{marker}"  # replaced by a text unique to the case, to find any request it caused


@dataclass(frozen=True)
class Bad:
    name: str
    words: tuple[str, ...]
    inputs: Mapping[str, str | None] = field(default_factory=dict)  # over the defaults; None removes one
    headers: Mapping[str, str] = field(default_factory=dict)
    calls: int = 0
    reply: Reply | None = None


def default_inputs() -> dict[str, str]:
    return {
        "authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}",
        "model": feel_string(MODEL),
        "input": '={inputs: "' + MARKER + '"}',
    }


CASES = [
    Bad("missing model", ("model", "Field required"), {"model": None}),
    Bad("empty model", ("model is empty", "give a model id"), {"model": feel_string("")}),
    Bad("blank model", ("model is empty",), {"model": feel_string("   ")}),
    Bad("path traversal", ("'../x' is not a model id", "org/name"), {"model": feel_string("../x")}),
    Bad(
        "path traversal inside",
        ("is not a model id",),
        {"model": feel_string("facebook/../../admin")},
    ),
    Bad(
        "spaces in the model",
        ("'facebook/bart large' is not a model id",),
        {"model": feel_string("facebook/bart large")},
    ),
    Bad("whitespace in a model URL", ("model URL contains whitespace",), {"model": feel_string("http://x y/")}),
    Bad(
        "input that looks like JSON but is not",
        ("input", "looks like JSON but does not parse"),
        {"input": feel_string('{"inputs": "' + MARKER + '", "parameters": {')},
    ),
    Bad("no input", ("input is empty", "={inputs: text}"), {"input": None}),
    Bad(
        "unknown operation",
        ("operation", "'inference', 'chat' or 'embeddings'"),
        {"operation": feel_string("translate")},
    ),
    Bad("chat without messages", ("chat needs messages or a prompt",), {"operation": feel_string("chat")}),
    Bad(
        "timeout that is not a number",
        ("connectionTimeoutInSeconds", "valid number"),
        {"connectionTimeoutInSeconds": feel_string("soon")},
    ),
    Bad("negative timeout", ("readTimeoutInSeconds", "greater than 0"), {"readTimeoutInSeconds": "=-5"}),
    Bad(
        "retryBackoff that is not a duration",
        ("task header", "retryBackoff", "'soon' is not an ISO-8601 duration", "PT30S"),
        headers={"retryBackoff": "soon"},
    ),
    Bad(
        "provider suffix outside chat",
        ("':provider' suffix only applies to the chat",),
        {"model": feel_string("a/b:x")},
    ),
    Bad(
        "task name that is not one", ("task", "is not a Hugging Face task name"), {"task": feel_string("text to image")}
    ),
    Bad(
        "result expression with a syntax error",
        ("result expression is not a valid expression", "body[0].summary_text"),
        headers={"resultExpression": '{"summary": body[0].summary_text'},
    ),
    Bad(
        "error expression with a syntax error",
        ("error expression is not a valid expression",),
        headers={"errorExpression": 'bpmnError("X", error.message'},
    ),
    Bad(
        "result expression that raises",
        ("result expression failed", "ZeroDivisionError"),
        headers={"resultExpression": '{"x": 1 / 0}'},
        calls=1,
    ),
    Bad(
        "result expression that reads what is not there",
        ("result expression refers to something that does not exist", "no element 5"),
        headers={"resultExpression": '{"x": body[5].generated_text}'},
        calls=1,
    ),
    Bad(
        "result expression that returns no mapping",
        ("result expression must return a mapping", "list"),
        headers={"resultExpression": "body"},
        calls=1,
    ),
    Bad(
        "sandbox: __class__",
        ("result expression tried something the sandbox forbids", "__class__"),
        headers={"resultExpression": '{"x": body.__class__.__mro__[1].__subclasses__()}'},
        calls=1,
    ),
    Bad(
        "sandbox: bare __class__",
        ("sandbox forbids", "__class__"),
        headers={"resultExpression": '{"x": body.__class__}'},
        calls=1,
    ),
    Bad(
        "sandbox: cycler.__init__.__globals__",
        ("sandbox forbids", "__init__"),
        headers={"resultExpression": '{"x": cycler.__init__.__globals__.os.popen("id").read()}'},
        calls=1,
    ),
    Bad(
        "sandbox: import",
        ("does not exist", "'__import__' is undefined"),
        headers={"resultExpression": '{"x": __import__("os").system("id")}'},
        calls=1,
    ),
    Bad(
        "sandbox: open",
        ("does not exist", "'open' is undefined"),
        headers={"resultExpression": '{"x": open("/etc/passwd").read()}'},
        calls=1,
    ),
    Bad(
        "sandbox: template internals",
        ("result expression", "cannot be stored as a process variable"),
        headers={"resultExpression": '{"x": self}'},
        calls=1,
    ),
    Bad(
        "sandbox: error expression",
        ("error expression tried something the sandbox forbids", "__class__"),
        headers={"errorExpression": "bpmnError(error.__class__.__mro__)"},
        calls=1,
        reply=Reply.error(400, "bad request"),
    ),
    Bad(
        "unknown secret",
        ("Secret with name 'NO_SUCH_SECRET' is not available", "SECRET_NO_SUCH_SECRET"),
        {"authentication.token": "{{secrets.NO_SUCH_SECRET}}"},
    ),
    Bad(
        "unknown secret in a header",
        ("Secret with name 'NO_SUCH_HEADER_SECRET' is not available",),
        headers={"resultVariable": "{{secrets.NO_SUCH_HEADER_SECRET}}"},
    ),
    Bad(
        "unknown secret in a nested list",
        ("Secret with name 'NO_SUCH_NESTED_SECRET' is not available",),
        {"input": '={inputs: ["' + MARKER + '", ["deep", "{{secrets.NO_SUCH_NESTED_SECRET}}"]]}'},
    ),
    Bad(
        "unknown secret in a key name",
        ("Secret with name 'NO_SUCH_KEY_SECRET' is not available",),
        {"input": '={inputs: "' + MARKER + '", parameters: {"{{secrets.NO_SUCH_KEY_SECRET}}": 1}}'},
    ),
    Bad(
        "unknown secret, angle syntax",
        ("Secret with name 'NO_SUCH_ANGLE_SECRET' is not available",),
        {"authentication.token": "<<secrets.NO_SUCH_ANGLE_SECRET>>"},
    ),
    Bad(
        "unknown secret among known ones, both syntaxes",
        ("Secret with name 'NO_SUCH_MIXED_SECRET' is not available",),
        {"input": '={inputs: "' + MARKER + ' {{secrets.OTHER_TOKEN}} <<secrets.NO_SUCH_MIXED_SECRET>>"}'},
    ),
]


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def unique_model(case: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
    return f"bad-input/{slug}-{uuid.uuid4().hex[:8]}"


def filled(template: str, model: str, marker: str) -> str:
    return template.replace(MODEL, model).replace(MARKER, marker)


async def until(probe: Callable[[], list[Record]], what: str, timeout: float = 20.0) -> list[Record]:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout}s")
        await asyncio.sleep(0.1)
    return found


def requests_of(hf: HfStandin, model: str, marker: str) -> list[RecordedRequest]:
    """Requests a case caused: to its model, or carrying its marker (whatever the model became)."""
    return [req for req in hf.requests if req.matches(model) or marker in req.text or marker in req.path]


async def run_case(
    case: Bad, zeebe: ZeebeClient, bpmn_dir: Path, job_type: str, hf: HfStandin, records: ZeebeRecords
) -> list[str]:
    model, marker = unique_model(case.name), f"marker-{uuid.uuid4().hex}"
    if case.reply is not None:
        hf.script(model, case.reply)
    inputs = {
        target: filled(source, model, marker)
        for target, source in {**default_inputs(), **case.inputs}.items()
        if source is not None
    }
    process_id = unique_process_id("bad-input")
    xml = connector_process(process_id, job_type, inputs=inputs, headers=dict(case.headers), retries=3)
    await deploy_xml(zeebe, xml, bpmn_dir, process_id)
    pik = (await zeebe.run_process(process_id)).process_instance_key
    found = await until(lambda: records.matching("INCIDENT", "CREATED", processInstanceKey=pik), "incident")
    message = found[0]["value"]["errorMessage"]
    problems = []
    if missing := [word for word in case.words if word.lower() not in message.lower()]:
        problems.append(f"the incident says {message!r}, without {missing}")
    retries = [r["value"]["retries"] for r in records.matching("JOB", "FAILED", processInstanceKey=pik)]
    if retries != [0]:
        problems.append(f"job failures with retries {retries}: expected one, with retries 0 (incident at once)")
    calls = len(requests_of(hf, model, marker))
    if calls != case.calls:
        problems.append(f"{calls} Hugging Face call(s), expected {case.calls}")
    return [f"{case.name}: {problem}" for problem in problems]


async def run_cases(
    cases: list[Bad], zeebe: ZeebeClient, bpmn_dir: Path, job_type: str, hf: HfStandin, records: ZeebeRecords
) -> list[str]:
    results = await asyncio.gather(
        *(run_case(case, zeebe, bpmn_dir, job_type, hf, records) for case in cases), return_exceptions=True
    )
    problems: list[str] = []
    for case, result in zip(cases, results, strict=True):
        problems.extend([f"{case.name}: {result!r}"] if isinstance(result, BaseException) else result)
    return problems


async def assert_still_serving(zeebe: ZeebeClient, bpmn_dir: Path, worker: Connector) -> None:
    assert worker.process is not None and worker.process.poll() is None, "the worker exited"
    assert worker.health()[0] == 200
    process_id = unique_process_id("bad-input-after")
    inputs = {k: filled(v, unique_model("after"), "still serving") for k, v in default_inputs().items()}
    xml = connector_process(process_id, worker.job_type, inputs=inputs, headers={"resultVariable": "r"})
    await deploy_xml(zeebe, xml, bpmn_dir, process_id)
    assert (await run_to_end(zeebe, process_id))["r"]["status"] == 200


@pytest.fixture
def small_input_connector(
    zeebe_address: str, hf: HfStandin, tmp_path: Path, worker_id_suffix: str
) -> Iterator[Connector]:
    worker = Connector(
        zeebe_address=zeebe_address,
        hf_url=hf.url,
        job_type=f"hf-bad-input-small-{worker_id_suffix}-{uuid.uuid4().hex[:6]}",
        log_path=tmp_path / "small-input-worker.log",
        env={
            **{f"SECRET_{name}": value for name, value in SUITE_SECRETS.items()},
            "HF_CONNECTOR_MAX_INPUT_BYTES": str(SMALL_INPUT_LIMIT),
        },
    ).start()
    yield worker
    worker.stop()


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


async def test_bad_input_raises_an_incident_that_says_what_to_fix_and_calls_nothing(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path, records: ZeebeRecords
) -> None:
    problems = await run_cases(CASES, zeebe, bpmn_dir, connector.job_type, hf, records)
    assert not problems, "\n".join(problems)
    await assert_still_serving(zeebe, bpmn_dir, connector)


async def test_a_missing_start_variable_names_the_input_mapping_and_the_log_line_names_the_model(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path, records: ZeebeRecords
) -> None:
    missing = Bad(
        "missing start variable",
        ("input mapping produced nothing", "FEEL expression of the Input field", "start variable"),
        {"input": "=image"},  # the process is started without `image`
    )
    problems = await run_cases([missing], zeebe, bpmn_dir, connector.job_type, hf, records)
    assert not problems, "\n".join(problems)
    lines = [line for line in connector.log_text().splitlines() if "input mapping produced nothing" in line]
    assert len(lines) == 1, connector.log_tail()
    assert "model=bad-input/missing-start-variable-" in lines[0]
    assert "bpmn_process_id=bad-input-" in lines[0]


async def test_input_over_the_size_limit_raises_an_incident_naming_the_setting(
    zeebe: ZeebeClient, small_input_connector: Connector, hf: HfStandin, bpmn_dir: Path, records: ZeebeRecords
) -> None:
    too_big = Bad(
        "input over the limit",
        ("over the limit of 1024", "HF_CONNECTOR_MAX_INPUT_BYTES"),
        {"input": '={inputs: "' + MARKER + " " + "x" * 3 * SMALL_INPUT_LIMIT + '"}'},
    )
    problems = await run_cases([too_big], zeebe, bpmn_dir, small_input_connector.job_type, hf, records)
    assert not problems, "\n".join(problems)
    await assert_still_serving(zeebe, bpmn_dir, small_input_connector)


async def test_placeholders_are_resolved_wherever_they_stand_and_masked_on_the_way_back(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    """Known secrets in a header, a nested list, a key name, with either syntax: resolved before the call,
    masked in what comes back. A malformed placeholder is text, not a secret reference: it travels as it is."""
    token, other = SUITE_SECRETS["HUGGING_FACE_TOKEN"], SUITE_SECRETS["OTHER_TOKEN"]
    model = unique_model("odd-places")
    hf.script(model, Reply.echo())
    process_id = unique_process_id("bad-input-odd")
    xml = connector_process(
        process_id,
        connector.job_type,
        inputs={
            "authentication.token": "<<secrets.HUGGING_FACE_TOKEN>>",
            "model": feel_string(model),
            "input": '={inputs: ["plain", ["deep {{secrets.OTHER_TOKEN}}"]], '
            'parameters: {"{{ secrets.OTHER_TOKEN }}": "key", malformed: "{{secrets.}} <<secrets.>>"}}',
        },
        headers={"resultVariable": "r", "resultExpression": '{"fromHeader": "<<secrets.OTHER_TOKEN>>"}'},
    )
    await deploy_xml(zeebe, xml, bpmn_dir, process_id)

    variables = await run_to_end(zeebe, process_id)

    sent = hf.requests_for(model)[-1]
    assert sent.headers["authorization"] == f"Bearer {token}"
    assert sent.json == {
        "inputs": ["plain", [f"deep {other}"]],
        "parameters": {other: "key", "malformed": "{{secrets.}} <<secrets.>>"},
    }
    assert variables["fromHeader"] == "***"
    echoed = str(variables["r"])
    assert token not in echoed and other not in echoed
    assert "Bearer ***" in echoed and "deep ***" in echoed
