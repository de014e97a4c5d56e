"""How long a subject held each job, from the development engine's own records.

The engine writes a ``JOB_BATCH ACTIVATED`` record when it hands jobs to a worker and a ``JOB COMPLETED``
record when the completion arrives, both stamped with the engine's clock. Their difference, less the
model's latency, is what the worker adds to the model's time: receiving the job, resolving its inputs,
the HTTP exchange, writing the result. It is an upper bound, since the gRPC hops and the engine's own
queueing sit inside it too; the end-to-end latency of an instance adds the engine's work before and
after the job, and, under a closed loop, the wait for a free slot.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.load import percentile

Window = tuple[int, int]
"""Milliseconds since the epoch (the engine's record clock): first and last instant of a measured round."""

_ACTIVATED = b'"valueType":"JOB_BATCH"'
_COMPLETED = b'"valueType":"JOB"'


@dataclass(frozen=True)
class HoldTimes:
    """Activation-to-completion times (ms) of the jobs of one type activated inside the windows."""

    held_ms: list[int]

    def added(self, latency_ms: float) -> dict[str, float | int]:
        """Percentiles of the time added over ``latency_ms`` (the model's own latency; 0 for a subject
        that calls no model)."""
        values = [held - latency_ms for held in self.held_ms]
        return {
            "jobs": len(values),
            "p50_ms": round(percentile(values, 50), 1),
            "p99_ms": round(percentile(values, 99), 1),
            "max_ms": round(max(values), 1) if values else 0.0,
        }


def hold_times(records: Path, job_type: str, windows: Iterable[Window], offset: int = 0) -> HoldTimes:
    """The hold times of ``job_type``'s jobs activated inside one of ``windows``, reading ``records``
    from byte ``offset`` on (so that a long run's earlier records are not parsed again)."""
    spans = list(windows)
    activated: dict[int, int] = {}
    held: list[int] = []
    with records.open("rb") as lines:
        lines.seek(offset)
        for line in lines:
            if _ACTIVATED in line:
                record = json.loads(line)
                if record["intent"] == "ACTIVATED" and record["value"]["type"] == job_type:
                    activated.update(dict.fromkeys(record["value"]["jobKeys"], record["timestamp"]))
            elif _COMPLETED in line:
                record = json.loads(line)
                if record["intent"] != "COMPLETED" or record["value"]["type"] != job_type:
                    continue
                start = activated.pop(record["key"], None)
                if start is not None and any(first <= start <= last for first, last in spans):
                    held.append(record["timestamp"] - start)
    return HoldTimes(held)
