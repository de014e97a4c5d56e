"""Prometheus metrics an operator alerts on: outcomes, Hugging Face latency, retries, load, secrets, leases."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

JOBS = Counter(
    "hf_connector_jobs",
    "Jobs handled, by outcome (completed, failed, incident, bpmn_error).",
    ["outcome"],
    registry=REGISTRY,
)
CALL_SECONDS = Histogram(
    "hf_connector_call_duration_seconds",
    "Duration of Hugging Face calls, by model and HTTP status (or error code).",
    ["model", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
RETRIES = Counter(
    "hf_connector_job_retries",
    "Jobs failed with retries left (they will be tried again), by error code.",
    ["code"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge("hf_connector_jobs_in_flight", "Jobs being handled right now.", registry=REGISTRY)
SECRET_FAILURES = Counter(
    "hf_connector_secret_failures", "Jobs failed because a secret was not available.", registry=REGISTRY
)
OUTCOME_RETRIES = Counter(
    "hf_connector_outcome_retries",
    "Outcomes (complete, fail, throw_error) sent again because the engine was unreachable or overloaded.",
    ["command"],
    registry=REGISTRY,
)
LEASE_EXTENSIONS = Counter(
    "hf_connector_lease_extensions",
    "Job deadlines extended by the job timeout while a call ran.",
    registry=REGISTRY,
)
LEASES_LOST = Counter(
    "hf_connector_leases_lost",
    "Jobs the engine no longer held for this worker, by when it was found (call: the call was cancelled; "
    "outcome: the outcome was refused or the engine stayed unreachable until the deadline).",
    ["when"],
    registry=REGISTRY,
)
