"""The running worker: wires configuration, secrets, HTTP core, job handler, pyzeebe and the ops server,
and owns the life cycle (start, monitor Zeebe, graceful shutdown on SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
from dataclasses import dataclass

from hf_connector import metrics
from hf_connector.config import Settings
from hf_connector.destinations import DestinationGuard
from hf_connector.documents import ClientCredentials, DocumentClient, store_address
from hf_connector.http_core import HttpCore
from hf_connector.huggingface.ratelimit import RateLimiter
from hf_connector.huggingface.requests import HfDefaults
from hf_connector.jobs import SECRET_MISSING, Complete, Fail, JobContext, JobHandler, Report
from hf_connector.logs import configure_logging
from hf_connector.ops import Health, OpsServer
from hf_connector.secrets import Masker, SecretResolver, build_providers
from hf_connector.zeebe import (
    BoundedWorker,
    TopologyProbe,
    build_worker,
    create_channel,
    describe_zeebe_error,
    limit_repeated_gateway_warnings,
)

logger = logging.getLogger("hf_connector")
# Zeebe's topology is asked for every few seconds, each call bounded by a short timeout so that a
# gateway that accepts connections but never answers cannot hold the monitor (or shutdown) up.
_MONITOR_INTERVAL_SECONDS = 5.0
_MONITOR_TIMEOUT_SECONDS = 3.0
# The event-loop heartbeat the liveness probe checks; much shorter than any sensible liveness grace.
_HEARTBEAT_SECONDS = 1.0
# Allocations before a young collection, and young/middle collections before an older one: young ones
# often and small, the oldest almost never (see tune_garbage_collection).
_GC_THRESHOLDS = (700, 2, 1000)


@dataclass
class Parts:
    masker: Masker
    http: HttpCore
    handler: JobHandler
    documents: DocumentClient | None = None

    async def aclose(self) -> None:
        await self.http.aclose()
        if self.documents is not None:
            await self.documents.aclose()


def build_parts(settings: Settings) -> Parts:
    """Everything a job needs, without Zeebe: shared by `run` and `hf-connector call`."""
    masker = Masker(settings.credential_values())
    resolver = SecretResolver(
        build_providers(settings.secret_env_prefix, settings.secrets_dir, settings.secrets_dotenv), masker
    )
    http = HttpCore(
        max_response_bytes=settings.max_response_bytes,
        guard=DestinationGuard(settings.allowed_hosts, settings.blocked_hosts),
        follow_redirects=settings.follow_redirects,
        max_connections=max(settings.max_jobs, 10),
        ca_bundle=settings.ca_bundle,
    )
    defaults = HfDefaults(
        router_url=settings.router_url,
        default_token=settings.hf_token.get_secret_value() if settings.hf_token else None,
        read_timeout=settings.default_read_timeout_seconds,
        max_input_bytes=settings.max_input_bytes,
    )
    documents = build_document_client(settings)
    handler = JobHandler(
        http=http,
        secrets=resolver,
        masker=masker,
        defaults=defaults,
        limiter=RateLimiter(settings.requests_per_minute),
        max_message_chars=settings.max_message_chars,
        max_retry_after_seconds=settings.max_retry_after_seconds,
        overload_backoff_seconds=settings.overload_backoff_seconds,
        documents=documents,
    )
    return Parts(masker, http, handler, documents)


def build_document_client(settings: Settings) -> DocumentClient | None:
    """Camunda's document store at CAMUNDA_REST_ADDRESS (or Camunda SaaS's), with the gRPC channel's OAuth
    client credentials; None, and documents off, without an address."""
    address = store_address(settings.camunda_rest_address, settings.camunda_cluster_id, settings.camunda_cluster_region)
    if address is None:
        return None
    oauth = settings.zeebe_connection.oauth
    credentials = None
    if oauth is not None and settings.camunda_client_secret is not None:
        # The REST API takes the same client credentials and token as the gRPC gateway.
        credentials = ClientCredentials(
            client_id=oauth.client_id,
            client_secret=settings.camunda_client_secret.get_secret_value(),
            token_url=oauth.token_url,
            audience=oauth.audience,
        )
    return DocumentClient(address, credentials=credentials)


# A metric's child for a label set, looked up once: prometheus_client validates and locks on every
# `labels()` call. Bounded like the metrics' own label sets (outcomes; models by status).
_jobs = functools.lru_cache(maxsize=16)(metrics.JOBS.labels)
_call_seconds = functools.lru_cache(maxsize=1024)(metrics.CALL_SECONDS.labels)


def record(job: JobContext, report: Report, seconds: float) -> None:
    """One log line and the metrics for a handled job."""
    outcome = report.outcome
    if isinstance(outcome, Complete):
        label, level = "completed", logging.INFO
    elif isinstance(outcome, Fail):
        label, level = ("incident" if outcome.retries == 0 else "failed"), logging.WARNING
        if outcome.retries > 0:
            metrics.RETRIES.labels(outcome.code or "unknown").inc()
        if outcome.code == SECRET_MISSING:
            metrics.SECRET_FAILURES.inc()
    else:
        label, level = "bpmn_error", logging.INFO
    _jobs(label).inc()
    if report.call_seconds is not None:
        status = str(report.status) if report.status is not None else getattr(outcome, "code", "") or "error"
        _call_seconds(report.model, status).observe(report.call_seconds)
    message = getattr(outcome, "message", "")
    logger.log(
        level,
        "job %s %s%s",
        job.key,
        label,
        f": {message}" if message else "",
        extra={
            "job_key": job.key,
            "process_instance_key": job.process_instance_key,
            "bpmn_process_id": job.bpmn_process_id,
            "element_id": job.element_id,
            "model": report.model,
            "status": report.status,
            "duration_ms": round(seconds * 1000, 1),
            "outcome": label,
        },
    )


def tune_garbage_collection() -> None:
    """With hundreds of jobs in flight, a collection that walks every object they hold stalls all of them
    for a noticeable fraction of a second. A finished job leaves no cycle behind (it is freed at once), so
    the collector has little to find: what start-up created leaves its view, the jobs' objects pass the
    young collections (small, since few objects are young at any moment) into the oldest generation,
    and that one is walked only after a thousand middle collections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


async def run(settings: Settings) -> int:
    """Runs until SIGTERM/SIGINT; returns the process exit code.

    0 after a requested stop; 1 when the worker cannot start or pyzeebe's worker stops on its own
    (e.g. Zeebe answers UNAUTHENTICATED), logged as one clear line, so that an orchestrator restarts it.
    """
    parts = build_parts(settings)
    configure_logging(settings.log_level, settings.log_format, parts.masker)
    limit_repeated_gateway_warnings()
    tune_garbage_collection()
    health = Health(settings.liveness_grace_seconds)
    try:
        channel = create_channel(settings)
    except OSError as exc:
        logger.error("hf-connector cannot start: ZEEBE_CA_CERTIFICATE_PATH cannot be read (%s)", exc)
        await parts.aclose()
        return 1
    try:
        ops = OpsServer(health, settings.http_host, settings.http_port)
    except OSError as exc:
        logger.error(
            "hf-connector cannot start: the health and metrics server cannot listen on %s:%s (%s); "
            "set HF_CONNECTOR_HTTP_HOST / HF_CONNECTOR_HTTP_PORT",
            settings.http_host,
            settings.http_port,
            exc.strerror or exc,
        )
        await parts.aclose()
        await channel.close()
        return 1
    ops.start()
    worker = build_worker(settings, channel, parts.handler, record)
    stop = asyncio.Event()

    def request_stop(sig: signal.Signals) -> None:
        if not stop.is_set():
            logger.info("%s received", sig.name)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop, sig)

    logger.info(
        "hf-connector polling job type '%s' at %s (Hugging Face: %s, health and metrics on port %s)",
        settings.job_type,
        settings.zeebe_connection.describe(),
        settings.router_url,
        ops.port,
    )
    work = asyncio.create_task(worker.work(), name="pyzeebe-worker")
    follow_worker_task(work, health)
    helpers = [
        asyncio.create_task(_monitor(TopologyProbe(channel), health), name="zeebe-monitor"),
        asyncio.create_task(_heartbeat(health), name="heartbeat"),
    ]
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    exit_code = 0 if stop.is_set() else _crash_code(work)
    health.polling = False
    await _shutdown(worker, work, settings.shutdown_grace_seconds)
    for task in (*helpers, stopper):
        task.cancel()
    await asyncio.gather(*helpers, stopper, return_exceptions=True)
    await parts.aclose()
    await channel.close()
    ops.stop()
    logger.info("hf-connector stopped (exit code %s)", exit_code)
    return exit_code


def follow_worker_task(work: asyncio.Task[None], health: Health) -> None:
    """Readiness follows pyzeebe's own task: the moment it ends, this worker no longer takes jobs."""
    health.polling = not work.done()
    work.add_done_callback(lambda _: setattr(health, "polling", False))


async def _monitor(probe: TopologyProbe, health: Health) -> None:
    """Zeebe's topology, every few seconds, for readiness and liveness; logs each change of state."""
    reachable: bool | None = None
    while True:
        try:
            async with asyncio.timeout(_MONITOR_TIMEOUT_SECONDS):
                await probe.topology()
        except Exception as exc:  # any failure means "not reachable now"; the next round tries again
            reason = describe_zeebe_error(exc)
            health.zeebe_lost(f"Zeebe not reachable: {reason}")
            if reachable is not False:
                logger.warning("Zeebe is not reachable (%s); not ready until it answers", reason)
            reachable = False
        else:
            health.zeebe_seen()
            if reachable is False:
                logger.info("Zeebe is reachable again")
            reachable = True
        await asyncio.sleep(_MONITOR_INTERVAL_SECONDS)


async def _heartbeat(health: Health) -> None:
    """Proves the event loop still runs; liveness fails when these beats stop for the grace period."""
    while True:
        health.beat()
        await asyncio.sleep(_HEARTBEAT_SECONDS)


def _crash_code(work: asyncio.Task[None]) -> int:
    error = work.exception() if not work.cancelled() else None
    reason = describe_zeebe_error(error) if error is not None else "it returned without being asked to stop"
    hint = ""
    if "UNAUTHENTICATED" in reason or "PERMISSION_DENIED" in reason:
        hint = " Check the Zeebe credentials (CAMUNDA_CLIENT_ID, CAMUNDA_CLIENT_SECRET, CAMUNDA_OAUTH_URL)."
    logger.error(
        "The Zeebe worker stopped on its own (%s); exiting with code 1 so that it is restarted.%s", reason, hint
    )
    return 1


async def _shutdown(worker: BoundedWorker, work: asyncio.Task[None], grace_seconds: float) -> None:
    """Stop activating jobs, let jobs in flight finish within the grace period, then leave.

    A job still running after the grace period is not lost: its deadline passes and Zeebe hands it
    to another worker.
    """
    logger.info("Stopping: no new jobs; waiting up to %ss for jobs in flight", grace_seconds)
    worker.close_intake()
    try:
        async with asyncio.timeout(grace_seconds):
            await worker.stop()
    except TimeoutError:
        logger.warning("Jobs still running after %ss; they will be handed out again after their timeout", grace_seconds)
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await work
