"""``python -m bench [--quick] [--n N] ...``: see docs/benchmark.md."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench.core import BenchConfig, run_benchmark
from bench.report import render, save, targets


def _levels(text: str) -> list[str]:
    return [level.strip().upper() for level in text.split(",") if level.strip()]


def _counts(text: str) -> list[int]:
    return [int(c) for c in text.split(",") if c.strip()]


def parse_args(argv: list[str] | None) -> tuple[BenchConfig, bool]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small N, one round, no Camunda, no scale-out (< 90 s)")
    parser.add_argument("--n", type=int, help="process instances per measured round (default 2000; quick 300)")
    parser.add_argument("--warmup", type=int, help="instances per subject before measuring (default 200; quick 60)")
    parser.add_argument(
        "--broker-warmup",
        type=int,
        help="instances at least before any measurement, to warm the broker up, then more until it stops "
        "getting faster (12000, at most 24000; quick: 600 exactly)",
    )
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
    parser.add_argument("--log-levels", type=_levels, help="our worker's log levels to run (default INFO,WARNING)")
    parser.add_argument(
        "--stream", action="store_true", help="our worker with job streaming (HF_CONNECTOR_STREAM_ENABLED=true)"
    )
    parser.add_argument("--no-bare", action="store_true", help="skip the bare pyzeebe baseline")
    parser.add_argument("--no-camunda", action="store_true", help="skip Camunda's connector runtime")
    parser.add_argument("--camunda-version", help="connectors version from Maven Central (default 8.6.10)")
    parser.add_argument("--scale", type=_counts, help="worker process counts for scale-out (default 1,2,4)")
    parser.add_argument("--zeebe-address", help="use this broker instead of starting one")
    parser.add_argument(
        "--worker-env", action="append", default=[], metavar="NAME=VALUE", help="extra env for our worker"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE[,VAR=VALUE]",
        help="one more subject, ours-NAME, with extra env for our worker (A/B in the same rounds)",
    )
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    args = parser.parse_args(argv)
    quick = args.quick
    config = BenchConfig(
        n=args.n or (300 if quick else 2000),
        warmup=args.warmup if args.warmup is not None else (60 if quick else 200),
        broker_warmup=args.broker_warmup if args.broker_warmup is not None else (600 if quick else 12000),
        broker_warmup_max=600 if quick else 24000,
        repeat=args.repeat or (1 if quick else 3),
        latency_probe=args.latency_probe if args.latency_probe is not None else (40 if quick else 200),
        max_jobs=args.max_jobs,
        latency=args.latency,
        concurrency_factor=args.concurrency_factor,
        log_levels=args.log_levels or (["INFO"] if quick else ["INFO", "WARNING"]),
        stream_enabled=args.stream,
        bare=not args.no_bare,
        camunda=not (args.no_camunda or quick),
        camunda_version=args.camunda_version,
        scale=args.scale if args.scale is not None else ([1] if quick else [1, 2, 4]),
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
