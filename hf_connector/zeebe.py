"""The pyzeebe side: the gRPC channel, the task registration and turning outcomes into Zeebe commands.

pyzeebe completes a job with whatever the task returns; failures and BPMN errors travel as an
`_OutcomeSignal` exception to our exception handler, which calls the gateway directly. That is how a
job fails with retries 0 (an incident at once) and an explicit backoff, which `JobController` cannot do.
"""

# No `from __future__ import annotations` here: pyzeebe finds the job parameter by comparing the
# annotation with the `Job` class itself, which a string annotation never equals.

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from pyzeebe import (
    Job,
    JobController,
    ZeebeClient,
    ZeebeWorker,
    create_insecure_channel,
    create_oauth2_client_credentials_channel,
    create_secure_channel,
)
from pyzeebe.errors import (
    JobAlreadyDeactivatedError,
    JobNotFoundError,
    StreamActivateJobsRequestInvalidError,
    ZeebeBackPressureError,
    ZeebeDeadlineExceeded,
    ZeebeGatewayUnavailableError,
    ZeebeInternalError,
)
from pyzeebe.grpc_internals.types import CompleteJobResponse, FailJobResponse, ThrowErrorResponse
from pyzeebe.grpc_internals.zeebe_adapter import ZeebeAdapter
from pyzeebe.types import Variables
from pyzeebe.worker.job_executor import JobExecutor
from pyzeebe.worker.job_poller import JobPoller, JobStreamer
from pyzeebe.worker.task_state import TaskState
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential,
    wait_random,
)

from hf_connector import metrics
from hf_connector.config import Settings
from hf_connector.huggingface.contract import fetched_variable_names
from hf_connector.jobs import Complete, Fail, JobContext, JobHandler, Outcome, Report, ThrowBpmnError
from hf_connector.lease import Lease, LeaseLost
from hf_connector.logs import RepeatedWarnings

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
# The engine is away or overloaded: sending again later may succeed. Anything else will not.
_TRANSIENT = (ZeebeGatewayUnavailableError, ZeebeDeadlineExceeded, ZeebeBackPressureError)
# The job is no longer this worker's: it timed out and was (or will be) handed out again.
_GONE = (JobNotFoundError, JobAlreadyDeactivatedError)
# The pause after an outcome's first refusal, before the backoff of the retries takes over.
_FIRST_RETRY_SECONDS = 0.2


# The warnings that repeat every few seconds while the gateway is unreachable.
_gateway_log = logging.getLogger(f"{__name__}.gateway")
_REASON_CHARS = 300
HANDED_BACK = "The worker is shutting down; the job was handed back untouched for another worker"


def create_channel(settings: Settings) -> grpc.aio.Channel:
    """A channel for `settings.zeebe_connection`: self-managed plaintext or TLS, OAuth, or Camunda SaaS."""
    connection = settings.zeebe_connection
    credentials = _tls_credentials(connection.ca_certificate)
    if connection.oauth is not None:
        assert settings.camunda_client_secret is not None  # Settings requires it with a client id
        return create_oauth2_client_credentials_channel(
            grpc_address=connection.address,
            client_id=connection.oauth.client_id,
            client_secret=settings.camunda_client_secret.get_secret_value(),
            authorization_server=connection.oauth.token_url,
            audience=connection.oauth.audience,
            channel_credentials=credentials,
        )
    if connection.kind == "tls":
        return create_secure_channel(grpc_address=connection.address, channel_credentials=credentials)
    return create_insecure_channel(grpc_address=connection.address)


def _tls_credentials(ca_certificate: Path | None) -> grpc.ChannelCredentials | None:
    if ca_certificate is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=ca_certificate.read_bytes())


class _PatientAdapter(ZeebeAdapter):
    """Sends a job's outcome until the engine takes it or the job's lease runs out.

    pyzeebe sends each outcome once, so an engine restart would throw away an answer already paid for
    and the job would be handed out again for a second model call. UNAVAILABLE, DEADLINE_EXCEEDED and
    RESOURCE_EXHAUSTED are retried with a capped exponential backoff until the job's deadline; NOT_FOUND
    or FAILED_PRECONDITION means the job was handed out again, which one log line reports.
    """

    def __init__(self, channel: grpc.aio.Channel, max_connection_retries: int, lease_seconds: float) -> None:
        super().__init__(channel, max_connection_retries)
        self.lease_seconds = lease_seconds
        self.expiries: dict[int, float] = {}  # job key -> time.monotonic() its lease ends, once its work is done

    async def complete_job(self, job_key: int, variables: Variables) -> CompleteJobResponse:
        send = functools.partial(super().complete_job, job_key, variables)
        return await self._patiently(job_key, "complete", send, CompleteJobResponse())

    async def fail_job(
        self, job_key: int, retries: int, message: str, retry_back_off_ms: int, variables: Variables
    ) -> FailJobResponse:
        send = functools.partial(super().fail_job, job_key, retries, message, retry_back_off_ms, variables)
        return await self._patiently(job_key, "fail", send, FailJobResponse())

    async def throw_error(
        self, job_key: int, message: str, variables: Variables, error_code: str = ""
    ) -> ThrowErrorResponse:
        send = functools.partial(super().throw_error, job_key, message, variables, error_code)
        return await self._patiently(job_key, "throw_error", send, ThrowErrorResponse())

    def lease(self, job_key: int, granted_at: float) -> Lease:
        """A lease on the job, renewed by the job timeout from now (UpdateJobTimeout) while its work runs."""

        async def renew() -> None:
            try:
                await self.update_job_timeout(job_key, int(self.lease_seconds * 1000))
            except _GONE:
                raise LeaseLost() from None
            metrics.LEASE_EXTENSIONS.inc()

        return Lease(renew, self.lease_seconds, granted_at)

    async def _patiently(self, job_key: int, command: str, send: Callable[[], Awaitable[_T]], dropped: _T) -> _T:
        expires = self.expiries.pop(job_key, None) or time.monotonic() + self.lease_seconds
        try:
            try:
                return await send()  # nearly every outcome is taken at once: no retry machinery for those
            except _TRANSIENT:
                metrics.OUTCOME_RETRIES.labels(command).inc()
                await asyncio.sleep(_FIRST_RETRY_SECONDS)

            def count_retry(_: RetryCallState) -> None:
                metrics.OUTCOME_RETRIES.labels(command).inc()

            retrying = AsyncRetrying(
                retry=retry_if_exception_type(_TRANSIENT),
                wait=wait_exponential(multiplier=0.2, max=5) + wait_random(0, 0.2),
                stop=stop_before_delay(max(0.0, expires - time.monotonic())),
                before_sleep=count_retry,
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    return await send()
        except _GONE:
            metrics.LEASES_LOST.labels("outcome").inc()
            logger.warning("Job %s was handed out again before its outcome (%s) reached Zeebe", job_key, command)
        except _TRANSIENT as exc:
            metrics.LEASES_LOST.labels("outcome").inc()
            logger.warning(
                "Job %s: Zeebe stayed unreachable (%s) until the job's deadline; its outcome (%s) is dropped "
                "and Zeebe hands the job out again",
                job_key,
                type(exc).__name__,
                command,
            )
        return dropped


@dataclass(frozen=True, slots=True)
class Topology:
    brokers: int
    gateway_version: str


class TopologyProbe:
    """Asks the gateway for Zeebe's topology: the readiness monitor's and `hf-connector check`'s question."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        # -1: pyzeebe's default (10 errors, never reset) would close the shared channel after ~50 s without
        # Zeebe, and the worker with it.
        self._client = ZeebeClient(channel, max_connection_retries=-1)

    async def topology(self) -> Topology:
        answer = await self._client.topology()
        return Topology(len(answer.brokers), answer.gateway_version)


def limit_repeated_gateway_warnings() -> None:
    """While Zeebe is unreachable, pyzeebe's poller and the streamer warn every 5 s: the first warning is
    logged, then one a minute with the count."""
    for name in (JobPoller.__module__, _gateway_log.name):
        gateway_logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatedWarnings) for f in gateway_logger.filters):
            gateway_logger.addFilter(RepeatedWarnings())


def describe_zeebe_error(error: BaseException) -> str:
    """One line for a gRPC failure (pyzeebe wraps them): `UNAUTHENTICATED: details`, never a traceback."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(describe_zeebe_error(inner) for inner in error.exceptions))
    grpc_error = getattr(error, "grpc_error", error)
    if isinstance(grpc_error, grpc.aio.AioRpcError):
        details = (grpc_error.details() or "").strip()
        text = f"{grpc_error.code().name}: {details}" if details else grpc_error.code().name
    elif isinstance(error, TimeoutError):
        text = "no answer in time"
    else:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


class _Expired(Exception):
    """The job's timeout passed while it waited for a slot: Zeebe has made it available again."""


class _OutcomeSignal(Exception):
    def __init__(self, outcome: Fail | ThrowBpmnError) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


OnReport = Callable[[JobContext, Report, float], None]


@dataclass(frozen=True)
class JobLimits:
    """How many jobs the worker handles at once, holds at once, and takes per poll at least."""

    handled: int
    held: int

    @property
    def poll_batch(self) -> int:
        # Polling for every single freed slot costs a Zeebe round trip per job; waiting until about a
        # third of the handled jobs' worth is free makes polls carry ~10 jobs (Zeebe's Java client
        # waits for 70 %). The jobs held beyond `handled` keep the slots busy meanwhile.
        return min(self.held, max(1, round(self.handled * 0.3)))


class _Slots(TaskState):
    """The jobs of a task this worker holds, and the slots in which they are handled.

    At most `limits.handled` jobs are handled at once (Hugging Face calls in flight); up to
    `limits.held` are activated and held, the rest waiting in memory for a free slot. Under load a poll
    takes Zeebe tens of milliseconds: without jobs waiting, the slots freed meanwhile would sit idle.
    A job stops counting when its handler is done, while its outcome is being sent: Zeebe's
    acknowledgement is not waited for, as with the Java client and Spring Zeebe, which send completions
    asynchronously.
    """

    def __init__(self, limits: JobLimits) -> None:
        super().__init__()
        self.limits = limits
        self.handling = asyncio.Semaphore(limits.handled)
        self._changed = asyncio.Event()
        self._handled: set[int] = set()
        self._received: dict[int, float] = {}

    def add(self, job: Job) -> None:
        super().add(job)
        self._received[job.key] = time.monotonic()

    def seconds_held(self, job: Job) -> float:
        """Measured here rather than from the job's deadline, which a skewed clock would misread."""
        return time.monotonic() - self._received.get(job.key, time.monotonic())

    def count_active(self) -> int:
        """Jobs held and not yet handled."""
        return super().count_active() - len(self._handled)

    def room(self) -> int:
        # Outcomes still being sent (the engine may be away for a while) count once there are more
        # of them than jobs held: the worker's memory stays bounded however long an outage lasts.
        pending_outcomes = len(self._handled)
        return self.limits.held - self.count_active() - max(0, pending_outcomes - self.limits.held)

    def handled(self, job: Job) -> None:
        self._handled.add(job.key)
        self._changed.set()

    def remove(self, job: Job) -> None:
        super().remove(job)
        self._handled.discard(job.key)
        self._received.pop(job.key, None)
        self._changed.set()

    async def wait_for_room(self, at_least: int = 1) -> None:
        while self.room() < at_least:
            self._changed.clear()
            await self._changed.wait()

    def release_waiting(self) -> None:
        """Lets every job waiting for a slot through at once, to be handed back: only after intake closed,
        when the count of free slots no longer matters."""
        for _ in range(self.limits.held):
            self.handling.release()


class _BoundedPoller(JobPoller):
    """Polls for a batch as soon as there is room for one. pyzeebe's poller instead polls for whatever
    room there is (often a single job) and sleeps `poll_retry_delay` whole seconds whenever it is full
    (logging a warning each time), which leaves slots idle."""

    task_state: _Slots

    async def activate_max_jobs(self) -> None:
        await self.task_state.wait_for_room(self.task_state.limits.poll_batch)
        await self.poll_once()

    def calculate_max_jobs_to_activate(self) -> int:
        return max(0, min(self.task_state.room(), self.task.config.max_jobs_to_activate))


class _BoundedStreamer(JobStreamer):
    """Takes the next pushed job only when there is room for it. pyzeebe takes every pushed job at
    once, so streaming had no bound at all: jobs piled up in the worker instead of staying with Zeebe.
    Unread, the stream applies gRPC flow control and the gateway hands the jobs it cannot push back to
    Zeebe for polling or for another worker."""

    task_state: _Slots

    async def activate_stream(self) -> None:
        # pyzeebe's JobStreamer.activate_stream, with the wait for room before each job.
        try:
            jobs = self.zeebe_adapter.stream_activate_jobs(
                task_type=self.task.type,
                worker=self.worker_name,
                timeout=self.task.config.timeout_ms,
                variables_to_fetch=self.task.config.variables_to_fetch or [],
                stream_request_timeout=self.stream_request_timeout,
                tenant_ids=self.tenant_ids,
            )
            while True:
                await self.task_state.wait_for_room()
                job = await anext(jobs, None)
                if job is None:
                    return
                self.task_state.add(job)
                await self.queue.put(job)
        except StreamActivateJobsRequestInvalidError:
            logger.warning("Stream job requests was invalid for task %s", self.task.type)
            raise
        except (ZeebeBackPressureError, ZeebeGatewayUnavailableError, ZeebeInternalError, ZeebeDeadlineExceeded) as e:
            _gateway_log.warning("Failed to stream jobs from the gateway. Exception: %r. Retrying in 5 seconds...", e)
            await asyncio.sleep(5)


class BoundedWorker(ZeebeWorker):
    """A ZeebeWorker whose polling and streaming respect `_Slots` (pyzeebe 4.7's do not, see above), and
    that can stop taking on work before pyzeebe's pollers and stream have wound down."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        limits: JobLimits,
        lease_seconds: float,
        max_connection_retries: int = -1,
        **kwargs: Any,
    ) -> None:
        # -1: retry the gateway forever; pyzeebe never resets its retry counter, so a finite limit would
        # eventually stop the pollers for good after enough engine restarts.
        super().__init__(channel, max_connection_retries=max_connection_retries, **kwargs)
        self.adapter = _PatientAdapter(channel, max_connection_retries, lease_seconds)
        self.zeebe_adapter = self.adapter
        self.limits = limits
        self.slots: dict[str, _Slots] = {}
        self.accepting = True

    def close_intake(self) -> None:
        """From now on a job that is waiting for a slot, or still arrives (an open long poll or stream
        delivers it after stop()), is handed back untouched: failed with its retries unchanged and no
        backoff, so another worker takes it at once and no retry is spent."""
        self.accepting = False
        for slots in self.slots.values():
            slots.release_waiting()

    def _init_tasks(self) -> None:
        # pyzeebe's ZeebeWorker._init_tasks with the bounded poller and streamer.
        self._job_executors, self._job_pollers, self._job_streamers = [], [], []
        self.slots = {}
        for task in self.tasks:
            jobs_queue = asyncio.Queue[Job]()
            slots = self.slots[task.type] = _Slots(self.limits)
            self._job_pollers.append(
                _BoundedPoller(
                    zeebe_adapter=self.zeebe_adapter,
                    task=task,
                    queue=jobs_queue,
                    worker_name=self.name,
                    request_timeout=self.request_timeout,
                    task_state=slots,
                    poll_retry_delay=self.poll_retry_delay,
                    tenant_ids=self.tenant_ids,
                )
            )
            self._job_executors.append(JobExecutor(task, jobs_queue, slots, self.zeebe_adapter))
            if self._stream_enabled:
                self._job_streamers.append(
                    _BoundedStreamer(
                        zeebe_adapter=self.zeebe_adapter,
                        task=task,
                        queue=jobs_queue,
                        worker_name=self.name,
                        stream_request_timeout=self._stream_request_timeout,
                        task_state=slots,
                        tenant_ids=self.tenant_ids,
                    )
                )


def build_worker(
    settings: Settings, channel: grpc.aio.Channel, handler: JobHandler, on_report: OnReport
) -> BoundedWorker:
    limits = JobLimits(handled=settings.max_jobs, held=settings.jobs_held)
    worker = BoundedWorker(
        channel,
        limits=limits,
        lease_seconds=settings.job_timeout_seconds,
        name=settings.worker_name,
        poll_retry_delay=1,
        stream_enabled=settings.stream_enabled,
    )

    async def apply_outcome(error: Exception, job: Job, controller: JobController) -> None:
        await _apply_failure(worker, error, job)

    @worker.task(  # type: ignore[arg-type]  # pyzeebe's ParamSpec typing rejects a Job-only task
        settings.job_type,
        exception_handler=apply_outcome,
        variables_to_fetch=fetched_variable_names(),
        timeout_ms=int(settings.job_timeout_seconds * 1000),
        max_jobs_to_activate=limits.held,
        max_running_jobs=limits.held,
    )
    async def hugging_face(job: Job, **_fetched: Any) -> dict[str, Any]:
        # pyzeebe also passes the fetched variables as keywords; the handler reads them from the job.
        slots = worker.slots[job.type]
        try:
            async with slots.handling:
                if not worker.accepting:
                    raise _OutcomeSignal(Fail(HANDED_BACK, retries=job.retries))
                if slots.seconds_held(job) >= settings.job_timeout_seconds:
                    raise _Expired()
                return await _handle(worker, handler, job, on_report, slots.seconds_held(job))
        finally:
            slots.handled(job)  # the next job may start while pyzeebe reports this one's outcome

    return worker


async def _handle(
    worker: BoundedWorker, handler: JobHandler, job: Job, on_report: OnReport, held_seconds: float
) -> dict[str, Any]:
    context = JobContext(
        key=job.key,
        retries=job.retries,
        variables=job.variables,
        headers=job.custom_headers,
        element_id=job.element_id,
        process_instance_key=job.process_instance_key,
        bpmn_process_id=job.bpmn_process_id,
    )
    lease = worker.adapter.lease(job.key, granted_at=time.monotonic() - held_seconds)
    started = time.perf_counter()
    metrics.IN_FLIGHT.inc()
    try:
        report = await lease.hold(handler.handle(context))
    except LeaseLost:
        metrics.LEASES_LOST.labels("call").inc()
        logger.warning("Job %s is no longer this worker's (timed out or cancelled); its call was cancelled", job.key)
        raise
    finally:
        metrics.IN_FLIGHT.dec()
    worker.adapter.expiries[job.key] = lease.expires
    on_report(context, report, time.perf_counter() - started)
    return _unwrap(report.outcome)


def _unwrap(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, Complete):
        return outcome.variables
    raise _OutcomeSignal(outcome)


async def _apply_failure(worker: ZeebeWorker, error: Exception, job: Job) -> None:
    adapter = worker.zeebe_adapter
    if isinstance(error, LeaseLost):
        return  # nothing to report: the job is someone else's now
    if isinstance(error, _Expired):
        logger.warning(
            "Job %s timed out while waiting for a free slot and was left to Zeebe, which offers it again; "
            "raise HF_CONNECTOR_JOB_TIMEOUT_SECONDS or lower HF_CONNECTOR_MAX_JOBS_ACTIVE",
            job.key,
        )
        return
    if isinstance(error, _OutcomeSignal) and isinstance(error.outcome, ThrowBpmnError):
        outcome = error.outcome
        await adapter.throw_error(job.key, outcome.message, outcome.variables, outcome.code)
    elif isinstance(error, _OutcomeSignal) and isinstance(error.outcome, Fail):
        fail = error.outcome
        await adapter.fail_job(job.key, fail.retries, fail.message, int(fail.backoff_seconds * 1000), fail.variables)
    else:
        # A bug of ours: the job is retried rather than lost; the message names no input.
        logger.error("Unexpected error while handling job %s", job.key, exc_info=error)
        await adapter.fail_job(
            job.key, max(job.retries - 1, 0), f"Internal worker error: {type(error).__name__}", 0, {}
        )
