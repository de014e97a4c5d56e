"""The benchmark on a tiny load, on a development engine of its own as `make bench` runs it: both scenarios
run end to end and their numbers are sane (no timing thresholds)."""

from __future__ import annotations

import pytest

from bench.core import BenchConfig, LlmConfig, run_benchmark
from bench.report import render, targets

pytestmark = pytest.mark.e2e


async def test_quick_benchmark_reports_zero_errors_and_what_the_engine_recorded() -> None:
    config = BenchConfig(
        n=30,
        warmup=5,
        latency_probe=4,
        repeat=1,
        camunda=False,
        llm=LlmConfig(latency=0.3, max_jobs=8, round_s=1.5, repeat=1, settle_s=0.6),
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
        assert entry["summary"]["other_cpu_s_per_1000"]["engine"] > 0
        assert entry["peak_rss_mb"] > 0
        assert entry["added"]["jobs"] == 30
    # 1 first instance + 5 warm-up + 30 measured + 4 unloaded
    assert report["subjects"]["ours-info"]["job_outcomes"] == {"completed": 40.0}
    assert report["standin"]["outcomes"].get("200") == 40

    llm = report["llm"]["subjects"]["ours"]
    assert llm["summary"]["errors"] == 0, llm
    assert llm["summary"]["completed"] > 0
    assert llm["concurrency"] == 8
    assert report["llm"]["standin"]["peak_in_flight"] == 8
    # Every job measured was held at least the stand-in's latency: nothing is added below zero.
    assert llm["added"]["jobs"] > 0 and llm["added"]["p50_ms"] >= 0
    assert report["llm"]["bound_jobs_per_s"] == pytest.approx(8 / 0.3, abs=0.1)

    report["targets"] = targets(report)
    assert report["targets"]["zero errors, every scenario"]["met"] is True
    text = render(report)
    assert "bare pyzeebe worker" in text and "LLM: stand-in latency 0.3 s, 8 jobs in flight" in text
