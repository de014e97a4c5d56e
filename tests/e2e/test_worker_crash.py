"""A worker that dies in the middle of a call loses nothing; one that is asked to stop finishes its jobs.

Every test runs an engine of its own (tests/e2e/conftest.py), so its records hold only its jobs.

SIGKILL: a job is a lease of one job timeout, extended every third of it while the call runs
(hf_connector/zeebe.py). A killed worker's jobs therefore return to the engine within one job timeout and
another worker completes them: 20 calls in flight are all done within twice the job timeout. A live
worker's call may run three times as long as the job timeout without the job ever being handed to
another worker meanwhile.

SIGTERM: no new jobs are activated, the jobs in flight finish and are completed, the worker exits 0
within its grace period. Jobs held but still waiting for a free slot (HF_CONNECTOR_MAX_JOBS_ACTIVE >
HF_CONNECTOR_MAX_JOBS) are handed back at once with their retries unchanged, and one that waited past
its job timeout is left to Zeebe, which offers it again: neither costs a Hugging Face call nor a retry.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyzeebe import ZeebeClient

from devkit.engine.process import EngineProcess
from devkit.hf_standin import HfStandin, Reply
from tests.conftest import SUITE_SECRETS
from tests.support.bpmn import connector_process, feel_string, unique_process_id
from tests.support.connector import Connector
from tests.support.records import Record, ZeebeRecords
from tests.support.zeebe_helpers import deploy_xml

pytestmark = pytest.mark.e2e

JOB_TIMEOUT = 10
LEASE = 5  # the smallest job timeout allowed
CONNECT_TIMEOUT, READ_TIMEOUT = 1, 3
SHUTDOWN_GRACE = 10
IN_FLIGHT = 20


async def until(probe: Callable[[], Any], what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout}s")
        await asyncio.sleep(0.05)
    return found


def job_records(records: ZeebeRecords, intent: str, pik: int) -> list[Record]:
    return records.matching("JOB", intent, processInstanceKey=pik)


def completion(records: ZeebeRecords, pik: int) -> Callable[[], list[Record]]:
    return lambda: records.matching(
        "PROCESS_INSTANCE", "ELEMENT_COMPLETED", processInstanceKey=pik, bpmnElementType="PROCESS"
    )


@pytest.fixture
def zeebe_address(own_engine: EngineProcess) -> str:
    return own_engine.address


@pytest.fixture
def records(own_engine: EngineProcess) -> ZeebeRecords:
    return ZeebeRecords(own_engine.records_path)


@pytest.fixture
def make_worker(zeebe_address: str, hf: HfStandin, tmp_path: Path) -> Iterator[Callable[..., Connector]]:
    """Starts workers of one job type of their own; whatever is still running at the end is stopped."""
    job_type = f"hf-crash-{uuid.uuid4().hex[:8]}"
    started: list[Connector] = []

    def make(name: str, **env: str) -> Connector:
        worker = Connector(
            zeebe_address=zeebe_address,
            hf_url=hf.url,
            job_type=job_type,
            log_path=tmp_path / f"{name}.log",
            env={
                **{f"SECRET_{key}": value for key, value in SUITE_SECRETS.items()},
                "HF_CONNECTOR_WORKER_NAME": name,
                "HF_CONNECTOR_REQUESTS_PER_MINUTE": "0",
                **env,
            },
        )
        started.append(worker)
        return worker.start()

    yield make
    for worker in started:
        worker.stop()


def activated_piks(records: ZeebeRecords, worker: str) -> set[int]:
    """The process instances whose jobs `worker` activated, by poll or stream."""
    return {
        job["processInstanceKey"]
        for batch in records.matching("JOB_BATCH", "ACTIVATED", worker=worker)
        for job in batch["value"]["jobs"]
    }


async def deploy(
    zeebe: ZeebeClient, bpmn_dir: Path, job_type: str, model: str, read_timeout: int = READ_TIMEOUT
) -> str:
    process_id = unique_process_id("crash")
    inputs = {
        "authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}",
        "model": feel_string(model),
        "input": "={inputs: text}",
        "connectionTimeoutInSeconds": f"={CONNECT_TIMEOUT}",
        "readTimeoutInSeconds": f"={read_timeout}",
    }
    xml = connector_process(process_id, job_type, inputs=inputs, headers={"resultVariable": "r"})
    await deploy_xml(zeebe, xml, bpmn_dir, process_id)
    return process_id


async def test_the_jobs_of_a_killed_worker_are_done_by_another_within_twice_the_job_timeout(
    zeebe: ZeebeClient,
    make_worker: Callable[..., Connector],
    hf: HfStandin,
    bpmn_dir: Path,
    records: ZeebeRecords,
) -> None:
    first = make_worker("crash-first", HF_CONNECTOR_JOB_TIMEOUT_SECONDS=str(LEASE), HF_CONNECTOR_MAX_JOBS="20")
    model = f"crash/killed-mid-call-{uuid.uuid4().hex[:8]}"
    never = [Reply(json=[{"generated_text": "never delivered"}], delay=60) for _ in range(IN_FLIGHT)]
    hf.script(model, *never, *[Reply(json=[{"generated_text": f"done {i}"}]) for i in range(IN_FLIGHT)])
    process_id = await deploy(zeebe, bpmn_dir, first.job_type, model, read_timeout=120)
    piks = [(await zeebe.run_process(process_id, {"text": f"job {i}"})).process_instance_key for i in range(IN_FLIGHT)]
    await until(lambda: len(hf.requests_for(model)) == IN_FLIGHT, "20 calls in flight", timeout=20)
    make_worker("crash-second", HF_CONNECTOR_JOB_TIMEOUT_SECONDS=str(LEASE), HF_CONNECTOR_MAX_JOBS="20")

    assert first.process is not None
    first.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    assert first.wait_exit(10) == -signal.SIGKILL
    for pik in piks:
        await until(completion(records, pik), f"completion of {pik}", timeout=2 * LEASE - (time.monotonic() - killed))
    print(
        f"\n{IN_FLIGHT} jobs of a killed worker done {time.monotonic() - killed:.1f}s after the kill (lease {LEASE}s)"
    )

    for pik in piks:
        (completed,) = job_records(records, "COMPLETED", pik)
        assert completed["value"]["worker"] == "crash-second"
        assert job_records(records, "TIMED_OUT", pik), "the first worker's lease ran out"
        assert not job_records(records, "FAILED", pik), "no retry spent"
    assert len(hf.requests_for(model)) == 2 * IN_FLIGHT, "one call by each worker"


async def test_a_call_three_times_longer_than_the_job_timeout_completes_once_and_stays_with_its_worker(
    zeebe: ZeebeClient,
    make_worker: Callable[..., Connector],
    hf: HfStandin,
    bpmn_dir: Path,
    records: ZeebeRecords,
) -> None:
    worker = make_worker("long-call", HF_CONNECTOR_JOB_TIMEOUT_SECONDS=str(LEASE))
    model = f"crash/long-call-{uuid.uuid4().hex[:8]}"
    hf.script(model, *[Reply(json=[{"generated_text": f"long answer {i}"}], delay=3 * LEASE) for i in range(2)])
    process_id = await deploy(zeebe, bpmn_dir, worker.job_type, model, read_timeout=60)
    pik = (await zeebe.run_process(process_id, {"text": "take your time"})).process_instance_key
    await until(lambda: hf.requests_for(model), "the long call", timeout=20)
    other = make_worker("long-call-other", HF_CONNECTOR_JOB_TIMEOUT_SECONDS=str(LEASE))  # would take a lost job

    await until(completion(records, pik), "completion of the long call", timeout=3 * LEASE + 15)

    (completed,) = job_records(records, "COMPLETED", pik)
    assert completed["value"]["worker"] == "long-call"
    assert activated_piks(records, "long-call-other") == set(), "never handed to another worker"
    assert [pik] == [
        job["processInstanceKey"]
        for batch in records.matching("JOB_BATCH", "ACTIVATED")
        for job in batch["value"]["jobs"]
    ], "activated once"
    assert not job_records(records, "TIMED_OUT", pik)
    assert len(job_records(records, "TIMEOUT_UPDATED", pik)) >= 6, "extended every third of the job timeout"
    assert len(hf.requests_for(model)) == 1
    assert other.health()[0] == 200


async def test_sigterm_lets_jobs_in_flight_finish_and_exits_0_within_the_grace_period(
    zeebe: ZeebeClient,
    make_worker: Callable[..., Connector],
    hf: HfStandin,
    bpmn_dir: Path,
    records: ZeebeRecords,
) -> None:
    worker = make_worker("graceful", HF_CONNECTOR_SHUTDOWN_GRACE_SECONDS=str(SHUTDOWN_GRACE))
    model = f"crash/in-flight-{uuid.uuid4().hex[:8]}"
    call_seconds = 2.5
    hf.script(model, *[Reply(json=[{"generated_text": f"done {i}"}], delay=call_seconds) for i in range(3)])
    process_id = await deploy(zeebe, bpmn_dir, worker.job_type, model)
    piks = [(await zeebe.run_process(process_id, {"text": f"job {i}"})).process_instance_key for i in range(3)]
    await until(lambda: len(hf.requests_for(model)) == 3, "three calls in flight", timeout=20)

    worker.signal(signal.SIGTERM)
    stopping = time.monotonic()
    exit_code = await asyncio.to_thread(worker.wait_exit, SHUTDOWN_GRACE + 5)
    stopped_after = time.monotonic() - stopping

    assert exit_code == 0
    assert stopped_after < SHUTDOWN_GRACE, stopped_after
    for pik in piks:
        await until(completion(records, pik), f"completion of {pik}", timeout=5)
        (completed,) = job_records(records, "COMPLETED", pik)
        assert completed["value"]["worker"] == "graceful"
    assert len(hf.requests_for(model)) == 3
    log = worker.log_text()
    assert "Stopping: no new jobs" in log and "hf-connector stopped (exit code 0)" in log


async def test_no_job_is_activated_after_sigterm(
    zeebe: ZeebeClient,
    make_worker: Callable[..., Connector],
    hf: HfStandin,
    bpmn_dir: Path,
    records: ZeebeRecords,
) -> None:
    worker = make_worker("graceful-late", HF_CONNECTOR_SHUTDOWN_GRACE_SECONDS=str(SHUTDOWN_GRACE))
    model, late_model = f"crash/in-flight-{uuid.uuid4().hex[:8]}", f"crash/late-{uuid.uuid4().hex[:8]}"
    hf.script(model, Reply(json=[{"generated_text": "done"}], delay=2.5))
    process_id = await deploy(zeebe, bpmn_dir, worker.job_type, model)
    late_process = await deploy(zeebe, bpmn_dir, worker.job_type, late_model)
    pik = (await zeebe.run_process(process_id, {"text": "in flight"})).process_instance_key
    await until(lambda: hf.requests_for(model), "the call in flight", timeout=20)

    worker.signal(signal.SIGTERM)
    late_pik = (await zeebe.run_process(late_process, {"text": "too late"})).process_instance_key
    try:
        assert await asyncio.to_thread(worker.wait_exit, SHUTDOWN_GRACE + 5) == 0
        await until(completion(records, pik), "completion of the job in flight", timeout=5)
        assert hf.requests_for(late_model) == [], "a job was activated after SIGTERM"
        assert not job_records(records, "COMPLETED", late_pik)
    finally:
        await zeebe.cancel_process_instance(late_pik)


async def test_sigterm_hands_back_jobs_waiting_for_a_slot_untouched_and_another_worker_completes_them(
    zeebe: ZeebeClient,
    make_worker: Callable[..., Connector],
    hf: HfStandin,
    bpmn_dir: Path,
    records: ZeebeRecords,
) -> None:
    worker = make_worker(
        "holding",
        HF_CONNECTOR_MAX_JOBS="1",
        HF_CONNECTOR_MAX_JOBS_ACTIVE="3",
        HF_CONNECTOR_SHUTDOWN_GRACE_SECONDS=str(SHUTDOWN_GRACE),
    )
    model = f"crash/held-{uuid.uuid4().hex[:8]}"
    hf.script(model, *[Reply(json=[{"generated_text": f"done {i}"}], delay=2.5) for i in range(3)])
    process_id = await deploy(zeebe, bpmn_dir, worker.job_type, model)
    piks = [(await zeebe.run_process(process_id, {"text": f"job {i}"})).process_instance_key for i in range(3)]
    await until(lambda: activated_piks(records, "holding") >= set(piks), "all three jobs held", timeout=20)
    await until(lambda: hf.requests_for(model), "the call in flight", timeout=20)

    worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait_exit, SHUTDOWN_GRACE + 5) == 0
    assert len(hf.requests_for(model)) == 1, "only the job in its slot called Hugging Face"
    handed_back = [failed for pik in piks for failed in job_records(records, "FAILED", pik)]
    # The poll still open at SIGTERM may take a handed-back job once more; it is handed back again.
    first_hand_back: dict[int, int] = {}
    for failed in sorted(handed_back, key=lambda record: record["timestamp"]):
        first_hand_back.setdefault(failed["value"]["processInstanceKey"], failed["timestamp"])
    assert len(first_hand_back) == 2, "both waiting jobs were handed back"
    (in_flight,) = [done for pik in piks for done in job_records(records, "COMPLETED", pik)]
    assert max(first_hand_back.values()) < in_flight["timestamp"], "at once, not after the call in flight"
    for failed in handed_back:
        (created,) = job_records(records, "CREATED", failed["value"]["processInstanceKey"])
        assert failed["value"]["retries"] == created["value"]["retries"], "a hand-back spends no retry"
        assert failed["value"]["retryBackoff"] == 0
        assert failed["value"]["errorMessage"].startswith("The worker is shutting down")

    make_worker("holding-second")
    for pik in piks:
        await until(completion(records, pik), f"completion of {pik}", timeout=20)
    assert len(hf.requests_for(model)) == 3
    assert not records.matching("INCIDENT", "CREATED", processInstanceKey=piks[1])


async def test_a_job_that_waited_past_its_timeout_is_left_to_zeebe_and_completed_once_offered_again(
    zeebe: ZeebeClient,
    make_worker: Callable[..., Connector],
    hf: HfStandin,
    bpmn_dir: Path,
    records: ZeebeRecords,
) -> None:
    worker = make_worker(
        "waiting-long",
        HF_CONNECTOR_MAX_JOBS="1",
        HF_CONNECTOR_MAX_JOBS_ACTIVE="2",
        HF_CONNECTOR_JOB_TIMEOUT_SECONDS=str(JOB_TIMEOUT),
    )
    slow, quick = f"crash/slow-{uuid.uuid4().hex[:8]}", f"crash/quick-{uuid.uuid4().hex[:8]}"
    hf.script(slow, Reply(json=[{"generated_text": "slow"}], delay=JOB_TIMEOUT + 1.5))
    slow_pik = (
        await zeebe.run_process(await deploy(zeebe, bpmn_dir, worker.job_type, slow, read_timeout=30), {"text": "a"})
    ).process_instance_key
    await until(lambda: hf.requests_for(slow), "the slow call", timeout=20)
    quick_pik = (
        await zeebe.run_process(await deploy(zeebe, bpmn_dir, worker.job_type, quick), {"text": "b"})
    ).process_instance_key
    await until(lambda: quick_pik in activated_piks(records, "waiting-long"), "the quick job held", timeout=20)

    await until(completion(records, quick_pik), "completion of the job that waited", timeout=3 * JOB_TIMEOUT)
    assert job_records(records, "TIMED_OUT", quick_pik), "Zeebe took the job back at its timeout"
    assert len(hf.requests_for(quick)) == 1, "the expired hold never called Hugging Face"
    assert not job_records(records, "FAILED", quick_pik), "no retry spent"
    await until(completion(records, slow_pik), "completion of the slow job", timeout=10)
    assert "timed out while waiting for a free slot" in worker.log_text()
