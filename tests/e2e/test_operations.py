"""What an operator sees of a running worker: probes and metrics over HTTP, graceful shutdown with a job
in flight, probes when Zeebe is away, and JSON logs, all against the real worker process and Zeebe."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pyzeebe import ZeebeClient

from devkit.hf_standin import HfStandin, Reply
from hf_connector.logs import CONTEXT_FIELDS
from tests.support.bpmn import connector_process, feel_string, unique_process_id
from tests.support.connector import Connector, free_port
from tests.support.records import ZeebeRecords
from tests.support.zeebe_helpers import deploy_xml, run_to_end

pytestmark = pytest.mark.e2e

TOKEN_INPUT = "{{secrets.HUGGING_FACE_TOKEN}}"
SUITE_TOKEN = "hf_suiteSecretToken_7f3a9c1e"  # the value tests/conftest.py gives that secret
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 20.0, what: str = "condition") -> T:
    """Polls `probe` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s (last: {value!r})")
        time.sleep(0.05)


def unique_model() -> str:
    return f"acme/ops-{uuid.uuid4().hex[:10]}"


async def deploy_task(
    zeebe: ZeebeClient, bpmn_dir: Path, job_type: str, model: str, *, retries: int = 3, token: str = TOKEN_INPUT
) -> str:
    process_id = unique_process_id("hf-ops")
    xml = connector_process(
        process_id,
        job_type,
        inputs={"authentication.token": token, "model": feel_string(model), "input": '={inputs: "hello"}'},
        headers={"resultVariable": "result"},
        retries=retries,
    )
    await deploy_xml(zeebe, xml, bpmn_dir, process_id)
    return process_id


# --- the shared worker: probes and metrics ------------------------------------------------------


def test_probes_answer_over_http(connector: Connector) -> None:
    status, body = connector.health("ready")
    assert (status, body) == (200, {"status": "UP", "polling": True, "zeebe": "ok"})
    status, body = connector.health("live")
    assert status == 200
    assert body["status"] == "UP" and body["eventLoopResponsive"] is True
    assert body["secondsSinceZeebeContact"] < 15


async def test_metrics_after_a_completed_instance(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path
) -> None:
    model = unique_model()
    hf.script(model, Reply(json=[{"generated_text": "hi"}]))
    process_id = await deploy_task(zeebe, bpmn_dir, connector.job_type, model)
    completed = connector.metric("hf_connector_jobs_total", {"outcome": "completed"})

    variables = await run_to_end(zeebe, process_id)

    assert variables["result"]["status"] == 200
    eventually(lambda: connector.metric("hf_connector_jobs_total", {"outcome": "completed"}) > completed)
    duration = {"model": model, "status": "200"}
    assert connector.metric("hf_connector_call_duration_seconds_count", duration) == 1
    assert connector.metric("hf_connector_call_duration_seconds_sum", duration) > 0
    assert connector.metric("hf_connector_call_duration_seconds_bucket", {**duration, "le": "+Inf"}) == 1
    eventually(lambda: connector.metric("hf_connector_jobs_in_flight") == 0, what="no job in flight")
    status, text = connector.get("/metrics")
    assert status == 200
    assert "# TYPE hf_connector_jobs_total counter" in text


async def test_metrics_after_a_failing_job(
    zeebe: ZeebeClient, connector: Connector, hf: HfStandin, bpmn_dir: Path, records: ZeebeRecords
) -> None:
    model = unique_model()
    hf.script(model, Reply.error(500, "Internal error"), Reply.error(500, "Internal error"))
    process_id = await deploy_task(zeebe, bpmn_dir, connector.job_type, model, retries=2)
    before = {
        outcome: connector.metric("hf_connector_jobs_total", {"outcome": outcome}) for outcome in ("failed", "incident")
    }
    retries = connector.metric("hf_connector_job_retries_total", {"code": "500"})

    instance = await zeebe.run_process(process_id)

    incident = records.incident(instance.process_instance_key)
    assert incident["errorType"] == "JOB_NO_RETRIES"
    # The worker is shared with other tests whose jobs may still be retrying: counters only go up.
    eventually(lambda: connector.metric("hf_connector_jobs_total", {"outcome": "incident"}) >= before["incident"] + 1)
    assert connector.metric("hf_connector_jobs_total", {"outcome": "failed"}) >= before["failed"] + 1
    assert connector.metric("hf_connector_job_retries_total", {"code": "500"}) >= retries + 1
    assert connector.metric("hf_connector_call_duration_seconds_count", {"model": model, "status": "500"}) == 2
    eventually(lambda: connector.metric("hf_connector_jobs_in_flight") == 0, what="no job in flight")


async def test_a_missing_secret_is_counted(
    zeebe: ZeebeClient, connector: Connector, bpmn_dir: Path, records: ZeebeRecords
) -> None:
    name = f"NOT_THERE_{uuid.uuid4().hex[:6].upper()}"
    process_id = await deploy_task(
        zeebe, bpmn_dir, connector.job_type, unique_model(), token="{{secrets." + name + "}}"
    )
    failures = connector.metric("hf_connector_secret_failures_total")

    instance = await zeebe.run_process(process_id)

    incident = records.incident(instance.process_instance_key)
    assert f"Secret with name '{name}' is not available" in incident["errorMessage"]
    eventually(lambda: connector.metric("hf_connector_secret_failures_total") >= failures + 1)


# --- own workers: shutdown, Zeebe away, JSON logs -----------------------------------------------


class _UnreadyConnector(Connector):
    """Started without waiting for readiness (Zeebe may be away): only for the ops server to answer."""

    def wait_ready(self, timeout: float) -> None:
        def answers() -> bool:
            self._raise_if_exited()
            try:
                self.get("/health/live")
            except OSError:
                return False
            return True

        eventually(answers, timeout, "the ops server answering")


@pytest.fixture
def own_connector(tmp_path: Path, hf: HfStandin) -> Iterator[Callable[..., Connector]]:
    """Starts workers of this test alone (own job type), stopped at the end whatever happens."""
    started: list[Connector] = []

    def start(zeebe_address: str, *, wait_ready: bool = True, **env: str) -> Connector:
        kind = Connector if wait_ready else _UnreadyConnector
        connector = kind(
            zeebe_address=zeebe_address,
            hf_url=hf.url,
            job_type=f"hf-ops-{uuid.uuid4().hex[:8]}",
            log_path=tmp_path / f"worker-{len(started)}.log",
            env={"SECRET_HUGGING_FACE_TOKEN": SUITE_TOKEN, **env},
        )
        started.append(connector)
        return connector.start()

    yield start
    for connector in started:
        connector.stop()


async def test_graceful_shutdown_lets_the_job_in_flight_finish(
    zeebe: ZeebeClient,
    zeebe_address: str,
    hf: HfStandin,
    bpmn_dir: Path,
    records: ZeebeRecords,
    own_connector: Callable[..., Connector],
) -> None:
    worker = own_connector(zeebe_address)
    model = unique_model()
    hf.script(model, Reply(json=[{"generated_text": "finished"}], delay=2.0))
    process_id = await deploy_task(zeebe, bpmn_dir, worker.job_type, model)
    instance = await zeebe.run_process(process_id)
    eventually(lambda: hf.requests_for(model), what="the call in flight")

    worker.signal(signal.SIGTERM)

    # no longer ready (it takes no new jobs) while the job in flight still runs
    eventually(lambda: worker.health("ready")[0] == 503, timeout=1.5, what="readiness DOWN during shutdown")
    assert worker.wait_exit(timeout=30) == 0
    eventually(lambda: records.completed(instance.process_instance_key), what="the instance completed")
    log = worker.log_text()
    assert "Stopping: no new jobs" in log
    assert "completed [job_key=" in log
    assert log.rstrip().endswith("hf-connector stopped (exit code 0)")
    assert "Traceback" not in log


@pytest.mark.parametrize("stream", ["true", "false"], ids=["streaming-and-polling", "polling-only"])
async def test_a_burst_beyond_the_slots_completes_with_streaming_on_or_off(
    zeebe: ZeebeClient,
    zeebe_address: str,
    hf: HfStandin,
    bpmn_dir: Path,
    own_connector: Callable[..., Connector],
    stream: str,
) -> None:
    # Three times as many instances as the worker may hold: jobs must keep arriving as slots free,
    # by the stream or, with streaming off, by polling alone.
    worker = own_connector(zeebe_address, HF_CONNECTOR_STREAM_ENABLED=stream, HF_CONNECTOR_MAX_JOBS="2")
    model = unique_model()
    hf.script(model, *[Reply(json=[{"generated_text": "done"}], delay=0.2)] * 12)
    process_id = await deploy_task(zeebe, bpmn_dir, worker.job_type, model)

    results = await asyncio.gather(*(run_to_end(zeebe, process_id) for _ in range(12)))

    assert [r["result"]["body"] for r in results] == [[{"generated_text": "done"}]] * 12
    assert worker.metric("hf_connector_jobs_total", {"outcome": "completed"}) == 12


def test_readiness_is_down_while_zeebe_is_unreachable_but_liveness_holds(
    own_connector: Callable[..., Connector],
) -> None:
    worker = own_connector(f"127.0.0.1:{free_port()}", wait_ready=False)

    def zeebe_detail() -> str:
        status, body = worker.health("ready")
        assert (status, body["status"]) == (503, "DOWN")
        return str(body["zeebe"]) if body["zeebe"] != "starting" else ""

    assert eventually(zeebe_detail, what="a Zeebe check").startswith("Zeebe not reachable: UNAVAILABLE")
    status, body = worker.health("live")
    assert (status, body["status"]) == (200, "UP")
    assert "Zeebe is not reachable (UNAVAILABLE" in worker.log_text()
    assert worker.stop() == 0


def test_liveness_fails_after_the_grace_period_without_zeebe(own_connector: Callable[..., Connector]) -> None:
    worker = own_connector(f"127.0.0.1:{free_port()}", wait_ready=False, HF_CONNECTOR_LIVENESS_GRACE_SECONDS="2")

    def liveness_down() -> dict[str, Any] | None:
        status, body = worker.health("live")
        return body if status == 503 else None

    body = eventually(liveness_down, timeout=15, what="liveness DOWN")
    assert body["status"] == "DOWN"
    assert body["secondsSinceZeebeContact"] >= 2
    assert body["eventLoopResponsive"] is True
    assert worker.health("ready")[0] == 503
    assert worker.stop() == 0


async def test_json_logs_on_request(
    zeebe: ZeebeClient, zeebe_address: str, hf: HfStandin, bpmn_dir: Path, own_connector: Callable[..., Connector]
) -> None:
    worker = own_connector(zeebe_address, HF_CONNECTOR_LOG_FORMAT="json")
    model = unique_model()
    hf.script(model, Reply(json=[{"generated_text": "hi"}]))
    process_id = await deploy_task(zeebe, bpmn_dir, worker.job_type, model)

    response = await zeebe.run_process_with_result(process_id, timeout=30_000)
    assert worker.stop() == 0

    lines = [json.loads(line) for line in worker.log_text().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    [job_line] = [line for line in lines if line.get("outcome")]
    assert {name: job_line[name] for name in ("process_instance_key", "element_id", "model", "status", "outcome")} == {
        "process_instance_key": response.process_instance_key,
        "element_id": "task",
        "model": model,
        "status": 200,
        "outcome": "completed",
    }
    assert set(CONTEXT_FIELDS) <= job_line.keys()
    assert isinstance(job_line["job_key"], int) and job_line["duration_ms"] > 0
    assert lines[-1]["message"] == "hf-connector stopped (exit code 0)"
    assert SUITE_TOKEN not in worker.log_text()
