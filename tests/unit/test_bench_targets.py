"""The benchmark judges issue 16's targets as ratios measured in one run."""

from __future__ import annotations

from typing import Any

from bench.report import render, targets


def _entry(jobs_per_s: float, cpu_s_per_1000: float, errors: int = 0, **extra: Any) -> dict[str, Any]:
    stat = {"sd": 0.0, "min": 0.0, "max": 0.0}
    return {
        "summary": {
            "throughput": {"mean": jobs_per_s, **stat},
            "p50_ms": {"mean": 100.0, **stat},
            "p99_ms": {"mean": 200.0, **stat},
            "cpu_s_per_1000": {"mean": cpu_s_per_1000, **stat},
            "machine_busy": {"mean": 0.5, **stat},
            "other_cpu_s_per_1000": {"engine": 1.5},
            "errors": errors,
        },
        "peak_rss_mb": 80.0,
        **extra,
    }


def _report(ours: float = 300.0, ours_errors: int = 0, llm_jobs_per_s: float = 190.0) -> dict[str, Any]:
    return {
        "config": {
            "n": 2000,
            "repeat": 3,
            "max_jobs": 64,
            "stream_enabled": False,
            "latency": 0.1,
            "llm": {"repeat": 2, "round_s": 20.0, "settle_s": 15.0},
        },
        "machine": {"cores": 2, "cpu_model": "test", "memory_gib": 24, "load_average_at_start": [0.1, 0.1, 0.1]},
        "versions": {"engine": "development engine (devkit)", "python": "3.11", "pyzeebe": "4"},
        "subjects": {
            "ours-info": _entry(ours, 0.9, ours_errors),
            "bare": _entry(320.0, 0.7),
            "camunda": _entry(150.0, 8.0),
        },
        "bound_jobs_per_s": 640.0,
        "llm": {
            "latency": 5.0,
            "max_jobs": 1000,
            "bound_jobs_per_s": 200.0,
            "subjects": {
                "ours": _entry(llm_jobs_per_s, 1.0, added={"jobs": 7000, "p50_ms": 4.0, "p99_ms": 31.0}),
                "camunda": _entry(120.0, 9.0),
            },
        },
    }


def test_a_run_within_every_target_meets_them_all() -> None:
    judged = targets(_report())

    assert {name: result["met"] for name, result in judged.items()} == dict.fromkeys(judged, True)
    assert judged["100 ms: jobs/s >= 0.9 x bare"]["value"] == 0.938
    assert judged["100 ms: jobs/s >= 1.5 x Camunda"]["value"] == 2.0
    assert judged["5 s: jobs/s >= 0.9 x bound"]["value"] == 0.95
    assert judged["5 s: p99 added <= 50 ms"]["value"] == 31.0


def test_a_worker_below_the_bare_worker_or_the_bound_misses_those_targets() -> None:
    judged = targets(_report(ours=280.0, llm_jobs_per_s=170.0))

    assert judged["100 ms: jobs/s >= 0.9 x bare"]["met"] is False
    assert judged["5 s: jobs/s >= 0.9 x bound"]["met"] is False
    assert judged["100 ms: jobs/s >= 1.5 x Camunda"]["met"] is True


def test_one_error_anywhere_in_our_worker_misses_the_zero_errors_target() -> None:
    assert targets(_report(ours_errors=1))["zero errors, every scenario"]["met"] is False


def test_without_camunda_or_the_llm_scenario_those_targets_are_not_judged() -> None:
    report = _report()
    del report["subjects"]["camunda"], report["llm"]

    judged = targets(report)

    assert judged["100 ms: jobs/s >= 1.5 x Camunda"]["met"] is None
    assert judged["5 s: p99 added <= 50 ms"]["met"] is None
    assert judged["100 ms: jobs/s >= 0.9 x bare"]["met"] is True


def test_the_table_prints_both_scenarios_and_every_verdict() -> None:
    report = _report(ours=280.0)
    report["targets"] = targets(report)

    text = render(report)

    assert "LLM: stand-in latency 5.0 s, 1000 jobs in flight" in text
    assert "Camunda runtime 8.6" in text
    assert "4.0 / 31.0" in text  # our worker's added time at 5 s, p50 / p99
    assert "100 ms: jobs/s >= 0.9 x bare         NOT met" in text
