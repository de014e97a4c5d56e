"""The time a job is held beyond the model's latency, as the benchmark reads it from the engine's records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.records import hold_times


def _record(value_type: str, intent: str, key: int, timestamp: int, value: dict[str, Any]) -> str:
    return json.dumps(
        {"key": key, "timestamp": timestamp, "valueType": value_type, "intent": intent, "value": value},
        separators=(",", ":"),
    )


def _activated(timestamp: int, job_type: str, *keys: int) -> str:
    return _record("JOB_BATCH", "ACTIVATED", 1, timestamp, {"type": job_type, "jobKeys": list(keys)})


def _job(intent: str, key: int, timestamp: int, job_type: str) -> str:
    return _record("JOB", intent, key, timestamp, {"type": job_type})


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_each_job_is_held_from_its_activation_to_its_completion(tmp_path: Path) -> None:
    records = _write(
        tmp_path,
        _activated(1000, "llm", 11, 12),
        _job("COMPLETED", 11, 6010, "llm"),
        _activated(1500, "llm", 13),
        _job("COMPLETED", 12, 6040, "llm"),
        _job("COMPLETED", 13, 6530, "llm"),
    )

    held = hold_times(records, "llm", [(0, 10_000)])

    assert sorted(held.held_ms) == [5010, 5030, 5040]
    added = held.added(5000.0)
    assert added["jobs"] == 3
    assert added["p50_ms"] == 30.0
    assert added["max_ms"] == 40.0


def test_other_job_types_failures_and_jobs_activated_outside_the_rounds_are_left_out(tmp_path: Path) -> None:
    records = _write(
        tmp_path,
        _activated(500, "llm", 1),  # before the round
        _job("COMPLETED", 1, 5600, "llm"),
        _activated(1000, "other", 2),
        _job("COMPLETED", 2, 1100, "other"),
        _activated(1000, "llm", 3),
        _job("FAILED", 3, 1200, "llm"),
        _activated(1300, "llm", 3),  # activated again after the failure: held from here
        _job("COMPLETED", 3, 6400, "llm"),
    )

    held = hold_times(records, "llm", [(1000, 2000)])

    assert held.held_ms == [5100]


def test_reading_starts_at_the_offset_given(tmp_path: Path) -> None:
    earlier = _activated(1000, "llm", 1) + "\n" + _job("COMPLETED", 1, 6000, "llm") + "\n"
    records = _write(tmp_path, earlier.rstrip("\n"), _activated(7000, "llm", 2), _job("COMPLETED", 2, 12_020, "llm"))

    held = hold_times(records, "llm", [(0, 20_000)], offset=len(earlier.encode()))

    assert held.held_ms == [5020]


def test_no_jobs_gives_zeros_rather_than_an_error(tmp_path: Path) -> None:
    added = hold_times(_write(tmp_path, _activated(1000, "x", 1)), "llm", [(0, 5000)]).added(5000.0)

    assert added == {"jobs": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
