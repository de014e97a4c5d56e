"""``python -m bench [--quick] [--n N] [--no-llm] ...``: see docs/benchmark.md."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench.core import BenchConfig, LlmConfig, run_benchmark
from bench.report import render, save, targets


def _levels(text: str) -> list[str]:
    return [level.strip().upper() for level in text.split(",") if level.strip()]


def _counts(text: str) -> list[int]:
    return [int(c) for c in text.split(",") if c.strip()]


def parse_args(argv: list[str] | None) -> tuple[BenchConfig, bool]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, one round, no Camunda (about a minute): a smoke run"
    )
    parser.add_argument("--n", type=int, help="instances per measured round at 100 ms (default 2000; quick 300)")
    parser.add_argument("--warmup", type=int, help="instances per subject before measuring (default 200; quick 60)")
    parser.add_argument("--repeat", type=int, help="measured rounds per subject (default 3; quick 1)")
    parser.add_argument(
        "--latency-probe", type=int, help="instances at 4 in flight for the unloaded latency (200; quick 40; 0: skip)"
    )
    parser.add_argument(
        "--max-jobs", type=int, default=64, help="jobs in flight for every subject: HF_CONNECTOR_MAX_JOBS (default 64)"
    )
    parser.add_argument("--latency", type=float, default=0.1, help="stand-in latency in seconds (default 0.1)")
    parser.add_argument(
        "--concurrency-factor",
        type=float,
        default=6.0,
        help="instances in flight per job slot of the subject (default 6: the machine is the limit)",
    )
    parser.add_argument("--no-llm", action="store_true", help="skip the LLM scenario (5 s, 1000 jobs in flight)")
    parser.add_argument("--llm-latency", type=float, help="LLM scenario: stand-in latency in seconds (default 5)")
    parser.add_argument("--llm-max-jobs", type=int, help="LLM scenario: jobs in flight per subject (default 1000)")
    parser.add_argument("--llm-round", type=float, help="LLM scenario: seconds per measured round (default 20)")
    parser.add_argument("--llm-repeat", type=int, help="LLM scenario: measured rounds per subject (default 2)")
    parser.add_argument("--llm-settle", type=float, help="LLM scenario: seconds of load before the first round (15)")
    parser.add_argument("--log-levels", type=_levels, help="our worker's log levels to run (default INFO)")
    parser.add_argument(
        "--stream", action="store_true", help="our worker with job streaming (HF_CONNECTOR_STREAM_ENABLED=true)"
    )
    parser.add_argument("--no-bare", action="store_true", help="skip the bare pyzeebe baseline")
    parser.add_argument("--no-camunda", action="store_true", help="skip Camunda's connector runtime")
    parser.add_argument("--camunda-version", help="connectors version from Maven Central (default 8.6.10)")
    parser.add_argument("--scale", type=_counts, help="worker process counts for a scale-out at 100 ms (e.g. 1,2,4)")
    parser.add_argument("--zeebe-address", help="use this engine instead of starting the development engine")
    parser.add_argument(
        "--worker-env", action="append", default=[], metavar="NAME=VALUE", help="extra env for our worker"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE[,VAR=VALUE]",
        help="one more subject at 100 ms, ours-NAME, with extra env for our worker (A/B in the same rounds)",
    )
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    args = parser.parse_args(argv)
    quick = args.quick
    llm = LlmConfig(
        latency=args.llm_latency or (1.0 if quick else 5.0),
        max_jobs=args.llm_max_jobs or (200 if quick else 1000),
        round_s=args.llm_round or (5.0 if quick else 20.0),
        repeat=args.llm_repeat or (1 if quick else 2),
        settle_s=args.llm_settle if args.llm_settle is not None else (3.0 if quick else 15.0),
    )
    config = BenchConfig(
        n=args.n or (300 if quick else 2000),
        warmup=args.warmup if args.warmup is not None else (60 if quick else 200),
        repeat=args.repeat or (1 if quick else 3),
        latency_probe=args.latency_probe if args.latency_probe is not None else (40 if quick else 200),
        max_jobs=args.max_jobs,
        latency=args.latency,
        concurrency_factor=args.concurrency_factor,
        log_levels=args.log_levels or ["INFO"],
        stream_enabled=args.stream,
        bare=not args.no_bare,
        camunda=not (args.no_camunda or quick),
        camunda_version=args.camunda_version,
        llm=None if args.no_llm else llm,
        scale=args.scale or [],
        zeebe_address=args.zeebe_address,
        worker_env=dict(item.split("=", 1) for item in args.worker_env),
        variants={
            name: dict(pair.split("=", 1) for pair in assignments.split(",") if pair)
            for name, _, assignments in (item.partition(":") for item in args.variant)
        },
    )
    return config, not args.no_save


def main(argv: list[str] | None = None) -> int:
    config, keep = parse_args(argv)
    report = asyncio.run(run_benchmark(config))
    report["targets"] = targets(report)
    print(render(report), flush=True)
    if keep:
        print(f"results: {save(report)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
