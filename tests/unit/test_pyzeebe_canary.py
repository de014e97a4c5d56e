"""hf_connector/zeebe.py copies or overrides pyzeebe internals that carry no compatibility promise.

Each entry below is a pyzeebe function or class that the adapter copies, overrides or relies on the exact
behaviour of, with a hash of its source as recorded when the adapter was last checked against it. When a
pyzeebe upgrade changes one, this test names it and what to re-check (docs/development.md, "Why the Zeebe
adapter subclasses pyzeebe"); after re-checking, record the new hash printed in the failure.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Watched:
    target: str  # "module:qualified.name"
    digest: str  # the first 16 hex digits of the SHA-256 of its source
    recheck: str


WATCHED = [
    Watched(
        "pyzeebe.worker.job_poller:JobPoller.activate_max_jobs",
        "6e27b2947b9abe96",
        "_BoundedPoller.activate_max_jobs replaces it: it must still be the only caller of poll_once per round",
    ),
    Watched(
        "pyzeebe.worker.job_poller:JobPoller.poll_once",
        "5f2ba44e2f24f000",
        "_BoundedPoller relies on it asking calculate_max_jobs_to_activate and calling task_state.add per job",
    ),
    Watched(
        "pyzeebe.worker.job_poller:JobPoller.calculate_max_jobs_to_activate",
        "0da16a7fbe80d16c",
        "_BoundedPoller.calculate_max_jobs_to_activate replaces it with the room in _Slots",
    ),
    Watched(
        "pyzeebe.worker.job_poller:JobStreamer.activate_stream",
        "27e34307cc59503e",
        "_BoundedStreamer.activate_stream is a copy of it with a wait for room before each job: port the change",
    ),
    Watched(
        "pyzeebe.worker.worker:ZeebeWorker._init_tasks",
        "6ab1e8a9c5d83f53",
        "BoundedWorker._init_tasks is a copy of it with the bounded poller and streamer: port the change",
    ),
    Watched(
        "pyzeebe.worker.task_state:TaskState",
        "af480a8a4f0fb735",
        "_Slots subclasses it and overrides add, remove and count_active",
    ),
    Watched(
        "pyzeebe.worker.job_executor:JobExecutor.execute_one_job",
        "a59cc0096b5e2622",
        "the hugging_face task and apply_outcome rely on one job handler call per activated job",
    ),
    Watched(
        "pyzeebe.worker.job_executor:create_job_callback",
        "34e983ea524cad55",
        "_Slots frees a held job when this callback calls task_state.remove after the outcome is sent",
    ),
    Watched(
        "pyzeebe.task.task_builder:run_original_task_function",
        "e696e9eb0178443c",
        "outcomes other than Complete reach Zeebe through the exception handler this calls (_OutcomeSignal)",
    ),
    Watched(
        "pyzeebe.grpc_internals.zeebe_adapter_base:ZeebeAdapterBase._handle_grpc_error",
        "1f8c714214281339",
        "build_worker and the Zeebe monitor pass max_connection_retries=-1 because this counter never resets",
    ),
]


def _source_digest(target: str) -> str:
    module_name, _, qualified_name = target.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in qualified_name.split("."):
        obj = getattr(obj, part)
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]  # type: ignore[arg-type]


@pytest.mark.parametrize("watched", WATCHED, ids=[w.target.partition(":")[2] for w in WATCHED])
def test_pyzeebe_internals_the_adapter_depends_on_are_unchanged(watched: Watched) -> None:
    digest = _source_digest(watched.target)
    assert digest == watched.digest, (
        f"pyzeebe's {watched.target} changed (source hash {digest}, recorded {watched.digest}). "
        f"Re-check hf_connector/zeebe.py: {watched.recheck}. Then record the new hash here."
    )
