"""The Hugging Face stand-in misbehaves: slow, hanging, reset, truncated, broken, oversized, endless answers,
5xx and 429 in all their forms. Each fault must end in the right Zeebe state, read from Zeebe's own
records: a JOB FAILED with retries - 1 and the expected retryBackoff (then the retry completes), or an
INCIDENT whose message tells the modeller or the operator what to do. Meanwhile the worker keeps serving.

Cases run concurrently inside a test (each instance has its own model id, so the stand-in's scripts and
recordings never mix); backoffs are kept at 0-2 s except where the 10 s default itself is the point.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyzeebe import ZeebeClient

from devkit.hf_standin import Fault, HfStandin, Oversized, Reply, Scripted
from tests.support.bpmn import connector_process, feel_string, unique_process_id
from tests.support.connector import Connector
from tests.support.records import Record, ZeebeRecords
from tests.support.zeebe_helpers import deploy_xml, run_to_end

pytestmark = pytest.mark.e2e

RETRIES = 3
OVERLOAD_DEFAULT_MS = 10_000  # HF_CONNECTOR_OVERLOAD_BACKOFF_SECONDS' default: a hint-less 429 or 503
SMALL_RESPONSE_LIMIT = 64 * 1024


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def unique_model(case: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
    return f"fault-tests/{slug}-{uuid.uuid4().hex[:8]}"


def task_inputs(
    model: str, *, read_timeout: float | None = None, connect_timeout: float | None = None
) -> dict[str, str]:
    inputs = {
        "authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}",
        "model": feel_string(model),
        "input": '={inputs: "The tower is 324 metres tall."}',
    }
    if read_timeout is not None:
        inputs["readTimeoutInSeconds"] = f"={read_timeout:g}"
    if connect_timeout is not None:
        inputs["connectionTimeoutInSeconds"] = f"={connect_timeout:g}"
    return inputs


async def start_instance(
    zeebe: ZeebeClient,
    bpmn_dir: Path,
    job_type: str,
    inputs: dict[str, str],
    *,
    headers: dict[str, str] | None = None,
    retries: int = RETRIES,
) -> int:
    process_id = unique_process_id("faults")
    xml = connector_process(process_id, job_type, inputs=inputs, headers=headers, retries=retries)
    await deploy_xml(zeebe, xml, bpmn_dir, process_id)
    return (await zeebe.run_process(process_id)).process_instance_key


async def until(probe: Callable[[], list[Record]], what: str, timeout: float = 20.0, count: int = 1) -> list[Record]:
    """Polls Zeebe's records without blocking the event loop (other cases run meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {len(found)} record(s) within {timeout}s, expected {count}")
        await asyncio.sleep(0.1)


def failures(records: ZeebeRecords, pik: int) -> Callable[[], list[Record]]:
    return lambda: records.matching("JOB", "FAILED", processInstanceKey=pik)


def completion(records: ZeebeRecords, pik: int) -> Callable[[], list[Record]]:
    return lambda: records.matching(
        "PROCESS_INSTANCE", "ELEMENT_COMPLETED", processInstanceKey=pik, bpmnElementType="PROCESS"
    )


def incidents(records: ZeebeRecords, pik: int) -> Callable[[], list[Record]]:
    return lambda: records.matching("INCIDENT", "CREATED", processInstanceKey=pik)


def missing_words(message: str, words: tuple[str, ...]) -> list[str]:
    return [word for word in words if word.lower() not in message.lower()]


@pytest.fixture
def small_response_connector(
    zeebe_address: str, hf: HfStandin, tmp_path: Path, worker_id_suffix: str
) -> Iterator[Connector]:
    """A worker of its own that accepts responses of at most 64 KiB."""
    worker = Connector(
        zeebe_address=zeebe_address,
        hf_url=hf.url,
        job_type=f"hf-faults-small-{worker_id_suffix}-{uuid.uuid4().hex[:6]}",
        log_path=tmp_path / "small-response-worker.log",
        env={
            "SECRET_HUGGING_FACE_TOKEN": "hf_smallResponseToken_0a1b",
            "HF_CONNECTOR_MAX_RESPONSE_BYTES": str(SMALL_RESPONSE_LIMIT),
        },
    ).start()
    yield worker
    worker.stop()


# --------------------------------------------------------------------------------------------------
# Transient faults: one JOB FAILED with retries - 1 and the right backoff, then the retry completes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transient:
    name: str
    fault: Scripted
    backoff_ms: int
    words: tuple[str, ...]
    retry_backoff: str = "PT0S"
    read_timeout: float | None = None
    connect_timeout: float | None = None
    retry_completes: bool = True  # False: the backoff is too long to wait for; the instance is cancelled


TRANSIENT = [
    Transient(
        "slower than the read timeout",
        Reply(json=[{"generated_text": "too late"}], delay=3),
        0,
        ("did not answer in time", "no response within 1 s", "Raise readTimeoutInSeconds"),
        read_timeout=1,
    ),
    Transient("hang", Fault.HANG, 0, ("did not answer in time", "readTimeoutInSeconds"), read_timeout=1),
    Transient(
        "body that never ends",
        Fault.NEVER_ENDS,
        0,
        ("did not answer in time", "no complete response within 2 s", "readTimeoutInSeconds"),
        read_timeout=1,
        connect_timeout=1,
    ),
    Transient("connection reset", Fault.RESET, 0, ("call to Hugging Face failed", "connection")),
    Transient(
        "truncated body", Fault.TRUNCATED, 0, ("call to Hugging Face failed", "closed the connection", "complete")
    ),
    Transient("invalid JSON", Fault.INVALID_JSON, 0, ("invalid response", "not valid JSON")),
    Transient("500", Reply.error(500, "CUDA out of memory"), 1000, ("500", "CUDA out of memory"), "PT1S"),
    Transient("502", Reply.error(502, "Bad gateway"), 1000, ("502", "Bad gateway"), "PT1S"),
    Transient("504", Reply.error(504, "upstream timed out"), 0, ("504", "upstream timed out", "retried")),
    Transient("503 loading, estimated_time", Reply.loading(estimated_time=1), 1000, ("503", "currently loading")),
    Transient(
        "503 without a hint",
        Reply.error(503, "Service overloaded"),
        OVERLOAD_DEFAULT_MS,
        ("503", "overloaded", "retried after a pause"),
        retry_completes=False,
    ),
    Transient("429 Retry-After", Reply.rate_limited(retry_after=1), 1000, ("429", "Rate limit")),
    Transient("429 RateLimit header", Reply.rate_limited(retry_after=1, ratelimit_header=True), 1000, ("429",)),
    Transient(
        "429 Retry-After below retryBackoff",
        Reply.rate_limited(retry_after=1),
        2000,
        ("429",),
        retry_backoff="PT2S",
    ),
    Transient(
        "429 without a hint",
        Reply.rate_limited(),
        OVERLOAD_DEFAULT_MS,
        ("429", "Rate limit"),
        retry_completes=False,
    ),
]


async def _run_transient(
    case: Transient, zeebe: ZeebeClient, bpmn_dir: Path, connector: Connector, hf: HfStandin, records: ZeebeRecords
) -> list[str]:
    model = unique_model(case.name)
    hf.script(model, case.fault)
    inputs = task_inputs(model, read_timeout=case.read_timeout, connect_timeout=case.connect_timeout)
    pik = await start_instance(
        zeebe, bpmn_dir, connector.job_type, inputs, headers={"retryBackoff": case.retry_backoff}
    )
    failure = (await until(failures(records, pik), f"{case.name}: JOB FAILED"))[0]["value"]
    problems = []
    if failure["retries"] != RETRIES - 1:
        problems.append(f"retries {failure['retries']}, expected {RETRIES - 1}")
    if failure["retryBackoff"] != case.backoff_ms:
        problems.append(f"retryBackoff {failure['retryBackoff']} ms, expected {case.backoff_ms}")
    if missing := missing_words(failure["errorMessage"], case.words):
        problems.append(f"errorMessage {failure['errorMessage']!r} lacks {missing}")
    if case.retry_completes:
        await until(completion(records, pik), f"{case.name}: completion after the retry", timeout=20)
        calls = len(hf.requests_for(model))
        if calls != 2:
            problems.append(f"{calls} Hugging Face calls, expected 2 (the fault, then the retry)")
        if records.matching("INCIDENT", "CREATED", processInstanceKey=pik):
            problems.append("an incident was raised")
    else:
        await zeebe.cancel_process_instance(pik)
    return [f"{case.name}: {problem}" for problem in problems]


async def _problems_of(cases: Sequence[Any], run: Callable[[Any], Awaitable[list[str]]]) -> list[str]:
    """Runs every case at once; a case that raises is a problem too, named after its case."""
    results = await asyncio.gather(*(run(case) for case in cases), return_exceptions=True)
    return [
        f"{case.name}: {result!r}" if isinstance(result, BaseException) else line
        for case, result in zip(cases, results, strict=True)
        for line in ([result] if isinstance(result, BaseException) else result)
    ]


async def test_transient_faults_fail_the_job_with_one_retry_less_and_the_right_backoff_then_complete(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path, records: ZeebeRecords
) -> None:
    problems = await _problems_of(TRANSIENT, lambda case: _run_transient(case, zeebe, bpmn_dir, connector, hf, records))
    assert not problems, "\n".join(problems)
    assert connector.health()[0] == 200


# --------------------------------------------------------------------------------------------------
# Incidents: retries used up, or a fault no retry can cure
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Terminal:
    name: str
    fault: Scripted
    words: tuple[str, ...]
    retries: int = 1
    read_timeout: float | None = None
    calls: int = 1


TERMINAL = [
    Terminal("500 on the last retry", Reply.error(500, "CUDA out of memory"), ("500", "CUDA out of memory")),
    Terminal("503 on the last retry", Reply.loading(estimated_time=1), ("503", "currently loading")),
    Terminal("429 on the last retry", Reply.rate_limited(retry_after=1), ("429", "Rate limit")),
    Terminal("reset on the last retry", Fault.RESET, ("call to Hugging Face failed",)),
    Terminal(
        "hang on the last retry", Fault.HANG, ("did not answer in time", "Raise readTimeoutInSeconds"), read_timeout=1
    ),
    # Permanent answers raise the incident at once, whatever retries are left.
    Terminal(
        "401 with retries left",
        Reply.error(401, "Invalid credentials in Authorization header"),
        ("401", "Invalid credentials", "authentication.token"),
        retries=3,
    ),
    Terminal(
        "404 with retries left",
        Reply.error(404, "Model not found"),
        ("404", "check the model id"),
        retries=3,
    ),
]


async def _run_terminal(
    case: Terminal, zeebe: ZeebeClient, bpmn_dir: Path, connector: Connector, hf: HfStandin, records: ZeebeRecords
) -> list[str]:
    model = unique_model(case.name)
    hf.script(model, case.fault)
    inputs = task_inputs(model, read_timeout=case.read_timeout)
    headers = {"retryBackoff": "PT0S"}
    pik = await start_instance(zeebe, bpmn_dir, connector.job_type, inputs, headers=headers, retries=case.retries)
    incident = (await until(incidents(records, pik), f"{case.name}: INCIDENT"))[0]["value"]
    problems = []
    if incident["errorType"] != "JOB_NO_RETRIES":
        problems.append(f"errorType {incident['errorType']}")
    if missing := missing_words(incident["errorMessage"], case.words):
        problems.append(f"errorMessage {incident['errorMessage']!r} lacks {missing}")
    failed = records.matching("JOB", "FAILED", processInstanceKey=pik)
    if [record["value"]["retries"] for record in failed] != [0]:
        problems.append(f"job failures with retries {[r['value']['retries'] for r in failed]}, expected [0]")
    if (calls := len(hf.requests_for(model))) != case.calls:
        problems.append(f"{calls} Hugging Face calls, expected {case.calls}")
    return [f"{case.name}: {problem}" for problem in problems]


async def test_a_fault_on_the_last_retry_or_a_permanent_error_raises_an_actionable_incident(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path, records: ZeebeRecords
) -> None:
    problems = await _problems_of(TERMINAL, lambda case: _run_terminal(case, zeebe, bpmn_dir, connector, hf, records))
    assert not problems, "\n".join(problems)


async def test_an_oversized_body_raises_an_incident_naming_the_limit_whether_announced_or_streamed(
    zeebe: ZeebeClient,
    small_response_connector: Connector,
    hf: HfStandin,
    bpmn_dir: Path,
    records: ZeebeRecords,
) -> None:
    cases: dict[str, Oversized] = {
        "content-length": Oversized(size=4 * SMALL_RESPONSE_LIMIT),
        "chunked": Oversized(size=4 * SMALL_RESPONSE_LIMIT, chunked=True),
        "binary chunked": Oversized(size=4 * SMALL_RESPONSE_LIMIT, content_type="image/png", chunked=True),
    }
    models = {name: unique_model("oversized") for name in cases}
    for name, spec in cases.items():
        hf.script(models[name], spec)
    piks = await asyncio.gather(
        *(
            start_instance(zeebe, bpmn_dir, small_response_connector.job_type, task_inputs(model))
            for model in models.values()
        )
    )
    for (name, model), pik in zip(models.items(), piks, strict=True):
        incident = (await until(incidents(records, pik), f"{name}: INCIDENT"))[0]["value"]
        message = incident["errorMessage"]
        assert not missing_words(
            message, ("too large", str(SMALL_RESPONSE_LIMIT), "HF_CONNECTOR_MAX_RESPONSE_BYTES")
        ), (
            name,
            message,
        )
        # Not retried: a bigger answer will not shrink on the next try.
        assert [r["value"]["retries"] for r in records.matching("JOB", "FAILED", processInstanceKey=pik)] == [0]
        assert len(hf.requests_for(model)) == 1, name
    assert small_response_connector.health()[0] == 200


async def test_a_body_of_the_wrong_content_type_is_kept_as_text_not_a_crash(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    """A proxy's HTML error page with status 200 is a successful HTTP answer: the modeller sees it as text."""
    model = unique_model("html")
    hf.script(model, Fault.WRONG_CONTENT_TYPE)
    process_id = unique_process_id("faults")
    xml = connector_process(process_id, connector.job_type, inputs=task_inputs(model), headers={"resultVariable": "r"})
    await deploy_xml(zeebe, xml, bpmn_dir, process_id)

    variables = await run_to_end(zeebe, process_id)

    assert variables["r"]["status"] == 200
    assert variables["r"]["headers"]["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in variables["r"]["body"]


# --------------------------------------------------------------------------------------------------
# The worker keeps serving while calls hang
# --------------------------------------------------------------------------------------------------


async def test_the_worker_completes_other_jobs_while_calls_hang_or_never_end(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path, records: ZeebeRecords
) -> None:
    stuck_for = 6.0
    hanging, endless = unique_model("hang"), unique_model("never-ends")
    hf.script(hanging, Fault.HANG)
    hf.script(endless, Fault.NEVER_ENDS)
    started = time.monotonic()
    stuck = await asyncio.gather(
        start_instance(zeebe, bpmn_dir, connector.job_type, task_inputs(hanging, read_timeout=stuck_for), retries=1),
        start_instance(
            zeebe,
            bpmn_dir,
            connector.job_type,
            task_inputs(endless, connect_timeout=1, read_timeout=stuck_for - 1),
            retries=1,
        ),
    )
    deadline = time.monotonic() + 10
    while not (hf.requests_for(hanging) and hf.requests_for(endless)):
        assert time.monotonic() < deadline, "the stuck calls never reached the stand-in"
        await asyncio.sleep(0.05)

    normal = unique_model("normal")
    process_id = unique_process_id("faults")
    xml = connector_process(process_id, connector.job_type, inputs=task_inputs(normal), headers={"resultVariable": "r"})
    await deploy_xml(zeebe, xml, bpmn_dir, process_id)
    variables = await run_to_end(zeebe, process_id, timeout_s=stuck_for)

    assert variables["r"]["status"] == 200
    assert time.monotonic() - started < stuck_for, "the normal instance had to wait for the stuck calls"
    for pik in stuck:
        assert not records.matching("JOB", "FAILED", processInstanceKey=pik), "a stuck call ended too early"
    # ... and the stuck calls end on their own timeouts, each with an incident that says so.
    for pik in stuck:
        incident = (await until(incidents(records, pik), "INCIDENT of a stuck call", timeout=20))[0]["value"]
        assert "did not answer in time" in incident["errorMessage"]
    assert connector.health()[0] == 200
