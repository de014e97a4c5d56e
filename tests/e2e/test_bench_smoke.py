"""The benchmark's core on a tiny load: it runs end to end and its numbers are sane (no timing thresholds)."""

from __future__ import annotations

import pytest

from bench.core import BenchConfig, run_benchmark
from bench.report import render, targets

pytestmark = pytest.mark.e2e


async def test_quick_benchmark_core_reports_zero_errors_and_a_positive_throughput(zeebe_address: str) -> None:
    config = BenchConfig(
        n=30,
        warmup=5,
        latency_probe=4,
        broker_warmup=20,
        broker_warmup_chunk=10,
        broker_warmup_max=40,
        repeat=1,
        log_levels=["INFO"],
        camunda=False,
        scale=[1],
        zeebe_address=zeebe_address,
        instance_timeout_s=30.0,
    )

    report = await run_benchmark(config)

    for name in ("ours-info", "bare"):
        entry = report["subjects"][name]
        assert entry["summary"]["errors"] == 0, entry["rounds"]
        assert entry["summary"]["completed"] == 30
        assert entry["unloaded"]["errors"] == 0 and entry["unloaded"]["p50_ms"] > 0
        assert entry["summary"]["throughput"]["mean"] > 0
        assert entry["summary"]["cpu_s_per_1000"]["mean"] > 0
        assert entry["peak_rss_mb"] > 0
    # Three flat chunks are needed to stop early, and four chunks are the ceiling here.
    assert report["broker"]["warmup"]["instances"] == 40
    assert len(report["broker"]["warmup"]["jobs_per_s_by_chunk"]) == 4
    assert report["broker"]["warmup"]["errors"] == 0
    assert report["subjects"]["ours-info"]["job_outcomes"] == {"completed": 40.0}
    assert report["standin"]["outcomes"].get("200") == 40
    report["targets"] = targets(report)
    assert report["targets"]["zero errors"]["met"] is True
    assert "bare pyzeebe worker" in render(report)
