"""The pyzeebe side: the gRPC channel, the task registration and turning outcomes into Zeebe commands.

pyzeebe completes a job with whatever the task returns; failures and BPMN errors travel as an
`_OutcomeSignal` exception to our exception handler, which calls the gateway directly. That is how a
job fails with retries 0 (an incident at once) and an explicit backoff, which `JobController` cannot do.
"""

# No `from __future__ import annotations` here: pyzeebe finds the job parameter by comparing the
# annotation with the `Job` class itself, which a string annotation never equals.

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from pyzeebe import (
    Job,
    JobController,
    ZeebeWorker,
    create_camunda_cloud_channel,
    create_insecure_channel,
    create_oauth2_client_credentials_channel,
    create_secure_channel,
)
from pyzeebe.errors import JobAlreadyDeactivatedError, JobNotFoundError

from worker import metrics
from worker.config import Settings
from worker.huggingface.contract import fetched_variable_names
from worker.jobs import Complete, Fail, JobContext, JobHandler, Outcome, Report, ThrowBpmnError

logger = logging.getLogger(__name__)
_DEADLINE_MARGIN_SECONDS = 30.0


def create_channel(settings: Settings) -> grpc.aio.Channel:
    """A channel for self-managed plaintext or TLS, OAuth client credentials, or Camunda SaaS."""
    credentials = _tls_credentials(settings.zeebe_ca_certificate)
    secret = settings.camunda_client_secret.get_secret_value() if settings.camunda_client_secret else None
    if settings.camunda_client_id and secret and settings.camunda_cluster_id and not settings.zeebe_address:
        return create_camunda_cloud_channel(
            client_id=settings.camunda_client_id,
            client_secret=secret,
            cluster_id=settings.camunda_cluster_id,
            region=settings.camunda_cluster_region or "bru-2",
            authorization_server=settings.camunda_oauth_url or "https://login.cloud.camunda.io/oauth/token",
            audience=settings.camunda_token_audience or "zeebe.camunda.io",
        )
    address = settings.zeebe_address or "localhost:26500"
    if settings.camunda_client_id and secret:
        return create_oauth2_client_credentials_channel(
            grpc_address=address,
            client_id=settings.camunda_client_id,
            client_secret=secret,
            authorization_server=settings.camunda_oauth_url or "",
            audience=settings.camunda_token_audience or "zeebe-api",
            channel_credentials=credentials,
        )
    if settings.zeebe_tls or settings.zeebe_ca_certificate:
        return create_secure_channel(grpc_address=address, channel_credentials=credentials)
    return create_insecure_channel(grpc_address=address)


def _tls_credentials(ca_certificate: Path | None) -> grpc.ChannelCredentials | None:
    if ca_certificate is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=ca_certificate.read_bytes())


class _OutcomeSignal(Exception):
    def __init__(self, outcome: Fail | ThrowBpmnError) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


OnReport = Callable[[JobContext, Report, float], None]


def build_worker(
    settings: Settings, channel: grpc.aio.Channel, handler: JobHandler, on_report: OnReport
) -> ZeebeWorker:
    # -1: retry the gateway forever; pyzeebe never resets its retry counter, so a finite limit would
    # eventually stop the pollers for good after enough broker restarts (REFERENCE.md section 3).
    worker = ZeebeWorker(
        channel,
        name=settings.worker_name,
        max_connection_retries=-1,
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
        max_jobs_to_activate=settings.max_jobs,
        max_running_jobs=settings.max_jobs,
    )
    async def hugging_face(job: Job, **_fetched: Any) -> dict[str, Any]:
        # pyzeebe also passes the fetched variables as keywords; the handler reads them from the job.
        return await _handle(worker, handler, job, on_report)

    return worker


async def _handle(worker: ZeebeWorker, handler: JobHandler, job: Job, on_report: OnReport) -> dict[str, Any]:
    context = JobContext(
        key=job.key,
        retries=job.retries,
        variables=job.variables,
        headers=job.custom_headers,
        element_id=job.element_id,
        process_instance_key=job.process_instance_key,
        bpmn_process_id=job.bpmn_process_id,
    )
    started = time.perf_counter()
    metrics.IN_FLIGHT.inc()
    try:
        report = await handler.handle(context, _deadline_extender(worker, job))
    finally:
        metrics.IN_FLIGHT.dec()
    on_report(context, report, time.perf_counter() - started)
    return _unwrap(report.outcome)


def _unwrap(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, Complete):
        return outcome.variables
    raise _OutcomeSignal(outcome)


def _deadline_extender(worker: ZeebeWorker, job: Job) -> Callable[[float], Awaitable[None]]:
    """Keeps a long call from outliving the job's deadline, so it is never handed to a second worker."""

    async def extend(worst_case_seconds: float) -> None:
        needed = worst_case_seconds + _DEADLINE_MARGIN_SECONDS
        remaining = job.deadline / 1000 - time.time()
        if remaining < needed:
            await worker.zeebe_adapter.update_job_timeout(job.key, int(needed * 1000))

    return extend


async def _apply_failure(worker: ZeebeWorker, error: Exception, job: Job) -> None:
    adapter = worker.zeebe_adapter
    try:
        if isinstance(error, _OutcomeSignal) and isinstance(error.outcome, ThrowBpmnError):
            outcome = error.outcome
            await adapter.throw_error(job.key, outcome.message, outcome.variables, outcome.code)
        elif isinstance(error, _OutcomeSignal) and isinstance(error.outcome, Fail):
            fail = error.outcome
            await adapter.fail_job(
                job.key, fail.retries, fail.message, int(fail.backoff_seconds * 1000), fail.variables
            )
        else:
            # A bug of ours: the job is retried rather than lost; the message names no input.
            logger.error("Unexpected error while handling job %s", job.key, exc_info=error)
            await adapter.fail_job(
                job.key, max(job.retries - 1, 0), f"Internal worker error: {type(error).__name__}", 0, {}
            )
    except (JobAlreadyDeactivatedError, JobNotFoundError):
        logger.warning("Job %s was no longer active when its outcome was reported", job.key)
