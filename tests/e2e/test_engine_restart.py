"""The engine crashes under load and comes back: no instance is lost, none ends with two results, and
answers already paid for are not thrown away.

An engine of this test's own (not the session's) runs on free ports with its records in its data
directory. A worker serves it while 200 instances of a hugging-face process are created, 20 at a time.
When about a third of them have completed, the engine is killed (SIGKILL) and started again at once on
the same ports and data directory (about 1-2 s). The worker process must never exit. Afterwards every
instance has completed, exactly once, and its result is one of the answers the stand-in gave for that
instance (each answer carries a call number, so a second call for an instance is told apart). Every
instance is done within 60 s of the restart, and at most 5 % of the Hugging Face calls were repeats: the
worker sends outcomes again until the engine takes them (hf_connector/zeebe.py), so only a job whose
activation was lost with the engine (it waits out its job timeout, 10 s here) is called twice.

A second test cuts the worker off Zeebe for about a minute (a forwarder in front of the session's
broker, cut and restored): the worker stays alive, its liveness holds, and it serves again afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pyzeebe import ZeebeClient, create_insecure_channel

from devkit.engine.process import EngineProcess
from devkit.hf_standin import HfStandin, RecordedRequest, Reply
from tests.conftest import SUITE_SECRETS
from tests.support.bpmn import connector_process, feel_string, unique_process_id
from tests.support.connector import Connector
from tests.support.records import ZeebeRecords
from tests.support.zeebe_helpers import deploy_xml, run_to_end

pytestmark = pytest.mark.e2e

INSTANCES = 200
CONCURRENCY = 20
KILL_AFTER_COMPLETED = 70
JOB_TIMEOUT = 10
DONE_AFTER_RESTART = 60.0  # seconds
MAX_REPEATED_CALLS = INSTANCES * 5 // 100
CALL_SECONDS = 1.0
OUTAGE_SECONDS = 0.6


class Progress:
    """What the broker recorded so far, read incrementally from its log: completions and result values."""

    def __init__(self, records: ZeebeRecords) -> None:
        self.records = records
        self.completed: set[int] = set()
        self.answers: dict[int, set[str]] = defaultdict(set)
        self.job_completions: dict[int, set[int]] = defaultdict(set)
        self._trail: dict[int, list[str]] = defaultdict(list)
        self._seen = 0

    def history(self, pik: int) -> list[str]:
        """Zeebe's records of one instance, briefly (for a failure message)."""
        return self._trail[pik]

    def refresh(self) -> None:
        every = self.records.all()
        for record in every[self._seen :]:
            self._note(record)
        self._seen = len(every)

    def _note(self, record: dict[str, Any]) -> None:
        value, kind, intent = record["value"], record["valueType"], record["intent"]
        if record.get("recordType") != "EVENT":
            return
        pik = value.get("processInstanceKey")
        if kind in ("JOB", "INCIDENT") or (kind == "PROCESS_INSTANCE" and value.get("bpmnElementType") == "PROCESS"):
            self._trail[pik].append(f"{kind} {intent} @{record.get('timestamp')}")
        if kind == "PROCESS_INSTANCE" and intent == "ELEMENT_COMPLETED" and value["bpmnElementType"] == "PROCESS":
            self.completed.add(pik)
        elif kind == "VARIABLE" and value.get("name") == "answer":
            self.answers[pik].add(value["value"])
        elif kind == "JOB" and intent == "COMPLETED":
            self.job_completions[pik].add(record["key"])


async def poll_until(check: Callable[[], bool], what: str, deadline: float, interval: float = 0.25) -> None:
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached in time")
        await asyncio.sleep(interval)


async def retrying(call: Callable[[], Awaitable[Any]], deadline: float) -> Any:
    """A gateway call, retried while the broker is away (it answers UNAVAILABLE meanwhile)."""
    while True:
        try:
            return await call()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def ready_status(worker: Connector) -> int | None:
    try:
        return worker.health("ready")[0]
    except OSError:
        return None


async def test_an_engine_killed_under_load_loses_no_instance_gives_none_two_results_and_few_repeats(
    own_engine: EngineProcess, hf: HfStandin, tmp_path: Path
) -> None:
    deadline = time.monotonic() + 60 + DONE_AFTER_RESTART  # until the restart below sets the real one
    progress = Progress(ZeebeRecords(own_engine.records_path))
    model = f"restart/echo-{uuid.uuid4().hex[:8]}"
    call_numbers = itertools.count(1)

    def numbered_answer(req: RecordedRequest) -> Any:
        return [{"generated_text": f"{req.json['inputs']}#{next(call_numbers)}"}]

    # Calls take a while, so that about 20 are in flight at the kill: their answers meet a dead engine.
    hf.script(model, *[Reply(json_fn=numbered_answer, delay=CALL_SECONDS) for _ in range(3 * INSTANCES)])

    def hf_calls(iid: str) -> list[RecordedRequest]:
        return [req for req in hf.requests_for(model) if req.json["inputs"] == iid]

    worker = Connector(
        zeebe_address=own_engine.address,
        hf_url=hf.url,
        job_type=f"hf-restart-{uuid.uuid4().hex[:8]}",
        log_path=tmp_path / "worker.log",
        env={
            "SECRET_HUGGING_FACE_TOKEN": SUITE_SECRETS["HUGGING_FACE_TOKEN"],
            "HF_CONNECTOR_JOB_TIMEOUT_SECONDS": str(JOB_TIMEOUT),
            "HF_CONNECTOR_REQUESTS_PER_MINUTE": "0",
        },
    ).start()
    channel = create_insecure_channel(grpc_address=own_engine.address)
    zeebe = ZeebeClient(channel, max_connection_retries=-1)  # the default gives up after 10 errors
    try:
        process_id = unique_process_id("restart")
        xml = connector_process(
            process_id,
            worker.job_type,
            inputs={
                "authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}",
                "model": feel_string(model),
                "input": "={inputs: iid}",
                "connectionTimeoutInSeconds": "=1",
                "readTimeoutInSeconds": "=5",
            },
            headers={"resultExpression": '{"answer": body[0].generated_text}', "retryBackoff": "PT0S"},
            retries=5,
        )
        bpmn = tmp_path / f"{process_id}.bpmn"
        bpmn.write_text(xml, encoding="utf-8")
        await zeebe.deploy_resource(bpmn)

        slots = asyncio.Semaphore(CONCURRENCY)
        instances: dict[str, int] = {}

        async def one(index: int) -> None:
            iid = f"iid-{index:03d}-{uuid.uuid4().hex[:6]}"
            async with slots:
                created = await retrying(lambda: zeebe.run_process(process_id, {"iid": iid}), deadline)
                instances[iid] = pik = created.process_instance_key
                with contextlib.suppress(TimeoutError):  # reported below, with what Zeebe recorded for it
                    await poll_until(lambda: pik in progress.completed, f"completion of {iid}", deadline)

        async def follow_records() -> None:
            while True:
                progress.refresh()
                await asyncio.sleep(0.2)

        observed: dict[str, Any] = {}

        async def crash_and_recover() -> None:
            nonlocal deadline
            await poll_until(lambda: len(progress.completed) >= KILL_AFTER_COMPLETED, "load before the kill", deadline)
            observed["completed before the kill"] = len(progress.completed)
            started = time.monotonic()
            await asyncio.to_thread(own_engine.kill)
            # Down long enough for the worker's channel to fail calls at once (UNAVAILABLE) rather than
            # queue them while it reconnects, and still back within 2 s.
            await asyncio.sleep(OUTAGE_SECONDS)
            await asyncio.to_thread(own_engine.restart)  # the same ports and data directory
            restarted = time.monotonic()
            deadline = restarted + DONE_AFTER_RESTART
            observed["engine down for seconds"] = round(restarted - started, 1)
            await poll_until(lambda: len(progress.completed) >= INSTANCES, "all instances done", deadline)
            observed["all done seconds after the restart"] = round(time.monotonic() - restarted, 1)

        follower = asyncio.create_task(follow_records())
        try:
            await asyncio.gather(crash_and_recover(), *(one(index) for index in range(INSTANCES)))
        finally:
            follower.cancel()
        progress.refresh()

        assert worker.process is not None and worker.process.poll() is None, "the worker exited"
        assert len(instances) == INSTANCES
        lost = {iid: pik for iid, pik in instances.items() if pik not in progress.completed}
        assert not lost, f"{len(lost)} instances never completed:\n" + "\n".join(
            f"{iid} ({pik}): {len(hf_calls(iid))} call(s); records {progress.history(pik)}" for iid, pik in lost.items()
        )

        calls = Counter(req.json["inputs"] for req in hf.requests_for(model))
        problems = []
        for iid, pik in instances.items():
            answers = progress.answers[pik]
            if len(answers) != 1:
                problems.append(f"{iid}: {len(answers)} results {sorted(answers)}")
            elif not next(iter(answers)).strip('"').startswith(f"{iid}#"):
                problems.append(f"{iid}: a result that is not its own: {answers}")
            if len(progress.job_completions[pik]) != 1:
                problems.append(f"{iid}: {len(progress.job_completions[pik])} job completions")
            if calls[iid] < 1:
                problems.append(f"{iid}: completed without a Hugging Face call")
        assert not problems, "\n".join(problems)
        duplicates = sum(count - 1 for iid, count in calls.items() if iid in instances)
        observed |= {
            "instances": len(instances),
            "Hugging Face calls": calls.total(),
            "duplicate calls": duplicates,
            "outcome retries": worker.metric("hf_connector_outcome_retries_total", {"command": "complete"}),
            "leases lost": sum(
                worker.metric("hf_connector_leases_lost_total", {"when": when}) for when in ("call", "outcome")
            ),
        }
        print(f"\nengine restart under load: {observed}")
        assert duplicates <= MAX_REPEATED_CALLS, f"too many Hugging Face calls repeated: {observed}"
    finally:
        await channel.close()
        worker.stop()


class SwitchableLink:
    """A loopback TCP forwarder in front of the Zeebe gateway that can be cut (connections reset, new ones
    refused) and restored on the same port: a Zeebe outage without stopping the session's broker."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="zeebe-link", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> SwitchableLink:
        self._thread.start()
        self.restore()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def cut(self) -> None:
        asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(5)

    def restore(self) -> None:
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(5)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


LONG_OUTAGE = 56.0  # pyzeebe's default client gives up after 10 errors: 10 topology checks, 5 s apart


async def test_the_worker_outlives_a_zeebe_outage_of_about_a_minute_and_serves_again(
    zeebe_address: str, zeebe: ZeebeClient, hf: HfStandin, bpmn_dir: Path, tmp_path: Path
) -> None:
    with SwitchableLink(zeebe_address) as link:
        worker = Connector(
            zeebe_address=link.address,
            hf_url=hf.url,
            job_type=f"hf-outage-{uuid.uuid4().hex[:8]}",
            log_path=tmp_path / "worker.log",
            env={"SECRET_HUGGING_FACE_TOKEN": SUITE_SECRETS["HUGGING_FACE_TOKEN"]},
        ).start()
        try:
            link.cut()
            gone = time.monotonic()
            deadline = gone + LONG_OUTAGE + 60
            await poll_until(lambda: ready_status(worker) == 503, "readiness DOWN", deadline, interval=0.5)
            while time.monotonic() - gone < LONG_OUTAGE:
                assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
                assert worker.health("live")[0] == 200, "liveness must hold within its grace period"
                await asyncio.sleep(2)
            link.restore()
            await poll_until(lambda: ready_status(worker) == 200, "readiness UP again", deadline, interval=0.5)

            process_id = unique_process_id("outage")
            xml = connector_process(
                process_id,
                worker.job_type,
                inputs={
                    "authentication.token": "{{secrets.HUGGING_FACE_TOKEN}}",
                    "model": feel_string(f"restart/after-outage-{uuid.uuid4().hex[:8]}"),
                    "input": '={inputs: "back again"}',
                },
                headers={"resultVariable": "r"},
            )
            await deploy_xml(zeebe, xml, bpmn_dir, process_id)
            variables = await run_to_end(zeebe, process_id)
            assert variables["r"]["status"] == 200
            assert worker.process is not None and worker.process.poll() is None
        finally:
            worker.stop()
