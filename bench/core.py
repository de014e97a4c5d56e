"""The benchmark itself: a broker, the stand-in, the subjects, the load, the numbers.

``run_benchmark(config)`` returns a JSON-ready dict (see ``bench.report`` for the table). Phases:

1. single process: our worker (log level INFO, and WARNING when asked), the bare pyzeebe worker and,
   when it can be had, Camunda's runtime run side by side on one broker, each with its own job type.
   Each is warmed up, then measured ``repeat`` times, the subjects taking turns round by round so that
   a change of background load on the machine hits them alike;
2. scale-out: 2, 4, ... processes of our worker on the same broker, one after the other.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyzeebe import ZeebeClient, create_insecure_channel

from bench.camunda import CamundaRuntime, CamundaUnavailableError
from bench.load import LoadResult, drive, mean_sd
from bench.procstat import MachineCpu, cpu_seconds, machine_description
from bench.standin import StandinProcess
from bench.subjects import (
    INSTANCE_VARIABLES,
    RESULT_VARIABLE,
    BareWorker,
    OurWorker,
    Subject,
    bare_check,
    check_result,
)
from devkit.engine.process import EngineProcess
from tests.support.bpmn import unique_process_id


@dataclass
class BenchConfig:
    n: int = 2000
    """Process instances per measured round."""
    warmup: int = 200
    broker_warmup: int = 12000
    """Instances run before anything is measured, through the cheapest subject, so that the broker's
    JIT has compiled its hot paths: at least this many, in chunks of ``broker_warmup_chunk``, and more
    until the chunks stop getting faster (see ``stopped_getting_faster``). A fresh broker needs about
    twice the CPU per instance and kept getting faster for 10000-15000 instances: after a fixed 4000,
    whichever subject came first in round 1 measured 15-25 % slow."""
    broker_warmup_max: int = 24000
    broker_warmup_chunk: int = 1000
    repeat: int = 3
    latency_probe: int = 200
    """Instances run at ``latency_probe_concurrency`` after the rounds: the latency of a worker that is
    not saturated, i.e. what the connector adds to the model's own latency."""
    latency_probe_concurrency: int = 4
    max_jobs: int = 64
    """HF_CONNECTOR_MAX_JOBS of our worker (its own default is 32), and the same for the bare worker
    and Camunda's runtime. At 32 and 100 ms our worker ran at 78-88 % of its concurrency bound (320
    jobs/s) and spent 0.91-1.23 ms of CPU per job; at 64, clear of the bound, 0.72-0.81 ms."""
    latency: float = 0.1
    concurrency_factor: float = 6.0
    """Instances in flight = factor x the subject's max jobs in flight (x processes). Enough that the
    machine, not the load, is the limit: at 2 x, our worker (which holds twice its slots) had half its
    slots idle, because an instance spends about 300 ms in the broker between two jobs here."""
    log_levels: list[str] = field(default_factory=lambda: ["INFO", "WARNING"])
    stream_enabled: bool = False
    """Our worker's HF_CONNECTOR_STREAM_ENABLED; the bare worker always streams (see BareWorker)."""
    bare: bool = True
    camunda: bool = True
    camunda_version: str | None = None
    scale: list[int] = field(default_factory=lambda: [1, 2, 4])
    zeebe_address: str | None = None
    instance_timeout_s: float = 120.0
    worker_env: dict[str, str] = field(default_factory=dict)
    """Extra environment for our worker (for experiments: HF_CONNECTOR_* settings)."""
    variants: dict[str, dict[str, str]] = field(default_factory=dict)
    """More single-process subjects of our worker, ``ours-NAME``, each with extra environment: an A/B
    comparison measured in the same rounds (e.g. HF_CONNECTOR_STREAM_ENABLED=false)."""


@contextlib.contextmanager
def _engine(address: str | None) -> Iterator[tuple[str, EngineProcess | None]]:
    """The engine at ``address``, else the development engine started here (data in a temporary directory)."""
    if address:
        yield address, None
        return
    with tempfile.TemporaryDirectory(prefix="hf-bench-engine-") as data:
        engine = EngineProcess.start(Path(data))
        try:
            yield engine.address, engine
        finally:
            engine.stop()


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Runner:
    def __init__(self, config: BenchConfig, address: str, client: ZeebeClient, hf_url: str, bpmn_dir: Path) -> None:
        self.config = config
        self.address = address
        self.client = client
        self.hf_url = hf_url
        self.bpmn_dir = bpmn_dir
        self.process_ids: dict[str, str] = {}
        self.broker_warmup: dict[str, Any] = {}
        # CPU of everything else on the machine that takes part, for the cost of one instance end to end.
        self.other_cpu: dict[str, Callable[[], float]] = {"load generator": time.process_time}

    def watch_process(self, name: str, pid: int | None) -> None:
        if pid is not None:
            self.other_cpu[name] = lambda: cpu_seconds(pid)

    def concurrency(self, subject: Subject) -> int:
        return max(1, math.ceil(self.config.concurrency_factor * subject.in_flight_bound))

    async def deploy(self, subject: Subject) -> None:
        process_id = unique_process_id("bench")
        path = self.bpmn_dir / f"{process_id}.bpmn"
        path.write_text(subject.process_xml(process_id), encoding="utf-8")
        await self.client.deploy_resource(str(path))
        self.process_ids[subject.name] = process_id

    async def load(self, subject: Subject, n: int) -> LoadResult:
        return await drive(
            self.client,
            self.process_ids[subject.name],
            n=n,
            concurrency=self.concurrency(subject),
            variables=INSTANCE_VARIABLES,
            fetch=[RESULT_VARIABLE],
            check=bare_check if isinstance(subject, BareWorker) else check_result,
            instance_timeout_s=self.config.instance_timeout_s,
        )

    async def warm_broker(self, subject: Subject, minimum: int) -> None:
        """Runs chunks through ``subject`` until ``minimum`` instances have run and the chunks stopped
        getting faster (``stopped_getting_faster``), or ``broker_warmup_max`` instances have run."""
        chunk = max(1, min(self.config.broker_warmup_chunk, minimum))
        rates: list[float] = []
        errors = 0
        while len(rates) * chunk < max(minimum, self.config.broker_warmup_max):
            result = await self.load(subject, chunk)
            errors += result.errors
            rates.append(round(result.throughput, 1))
            if len(rates) * chunk >= minimum and stopped_getting_faster(rates):
                break
        self.broker_warmup = {"instances": len(rates) * chunk, "jobs_per_s_by_chunk": rates, "errors": errors}
        _log(f"broker warmed up through {subject.name}: {self.broker_warmup}")

    async def warm_up(self, subject: Subject) -> dict[str, Any]:
        # The first instance may wait for a stream or a poll to open; then a short burst.
        first = await self.load(subject, 1)
        if first.errors:
            raise RuntimeError(f"{subject.name}: the first instance failed: {first.error_samples}")
        warmup = self.config.warmup * subject.warmup_factor
        burst = await self.load(subject, warmup) if warmup else LoadResult()
        return {"first_instance_s": round(first.wall_seconds, 3), "errors": burst.errors}

    async def probe_latency(self, subject: Subject) -> dict[str, Any]:
        result = await drive(
            self.client,
            self.process_ids[subject.name],
            n=self.config.latency_probe,
            concurrency=self.config.latency_probe_concurrency,
            variables=INSTANCE_VARIABLES,
            fetch=[RESULT_VARIABLE],
            check=bare_check if isinstance(subject, BareWorker) else check_result,
            instance_timeout_s=self.config.instance_timeout_s,
        )
        return {
            "instances": result.completed,
            "concurrency": self.config.latency_probe_concurrency,
            "errors": result.errors,
            "p50_ms": round(result.percentile(50) * 1000, 1),
            "p99_ms": round(result.percentile(99) * 1000, 1),
            "mean_ms": round(sum(result.latencies) / len(result.latencies) * 1000, 1) if result.latencies else 0.0,
        }

    async def measure(self, subject: Subject) -> dict[str, Any]:
        subject.alive_or_raise()
        others_before = self._others()
        cpu_before, machine_before = subject.cpu_seconds(), MachineCpu.read()
        result = await self.load(subject, self.config.n)
        cpu = subject.cpu_seconds() - cpu_before
        busy = MachineCpu.read().busy_fraction_since(machine_before)
        others = {name: value - others_before.get(name, 0.0) for name, value in self._others().items()}
        return {
            "completed": result.completed,
            "errors": result.errors,
            "error_samples": result.error_samples,
            "backpressure_retries": result.backpressure_retries,
            "wall_s": round(result.wall_seconds, 3),
            "throughput": round(result.throughput, 1),
            "p50_ms": round(result.percentile(50) * 1000, 1),
            "p99_ms": round(result.percentile(99) * 1000, 1),
            "cpu_s": round(cpu, 2),
            "cpu_s_per_1000": round(cpu / result.completed * 1000, 3) if result.completed else None,
            "machine_busy": round(busy, 3),
            "other_cpu_s_per_1000": {
                name: round(value / result.completed * 1000, 3) if result.completed else None
                for name, value in others.items()
            },
        }

    def _others(self) -> dict[str, float]:
        values = {}
        for name, read in self.other_cpu.items():
            with contextlib.suppress(OSError):  # the process is gone
                values[name] = read()
        return values


def stopped_getting_faster(rates: list[float], margin: float = 0.05, patience: int = 3) -> bool:
    """None of the last ``patience`` rates is more than ``margin`` above the best before them. A warming
    broker has plateaus: chunks of 1000 went 164, 150, 207, ..., 231, 284, 258, 251 jobs/s, and a
    warm-up that stopped at 6000 after [..., 166, 154, 152] left the bare worker 20 % below its speed
    on a broker warmed for 15000."""
    if len(rates) <= patience:
        return False
    return max(rates[-patience:]) <= (1 + margin) * max(rates[:-patience])


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("throughput", "p50_ms", "p99_ms", "cpu_s_per_1000", "machine_busy"):
        values = [r[key] for r in rounds if r.get(key) is not None]
        mean, sd = mean_sd(values)
        out[key] = {
            "mean": round(mean, 3),
            "sd": round(sd, 3),
            "min": round(min(values), 3) if values else 0,
            "max": round(max(values), 3) if values else 0,
        }
    names = {name for r in rounds for name in r.get("other_cpu_s_per_1000", {})}
    out["other_cpu_s_per_1000"] = {
        name: round(
            mean_sd([r["other_cpu_s_per_1000"][name] for r in rounds if r["other_cpu_s_per_1000"].get(name)])[0], 3
        )
        for name in sorted(names)
    }
    out["errors"] = sum(r["errors"] for r in rounds)
    out["completed"] = sum(r["completed"] for r in rounds)
    return out


async def _run_group(
    runner: Runner, subjects: list[Subject], config: BenchConfig, broker_warmup: int = 0
) -> dict[str, dict[str, Any]]:
    """Warm up every subject, then ``repeat`` rounds in turn; stops them all at the end."""
    results: dict[str, dict[str, Any]] = {}
    try:
        for subject in subjects:
            await runner.deploy(subject)
        if broker_warmup and subjects:
            cheapest = next((s for s in subjects if isinstance(s, BareWorker)), subjects[0])
            await runner.warm_broker(cheapest, broker_warmup)
        for subject in subjects:
            results[subject.name] = {"warmup": await runner.warm_up(subject), "rounds": []}
            _log(f"{subject.name}: warmed up ({results[subject.name]['warmup']})")
        for round_index in range(config.repeat):
            # Each round starts with another subject, so that none is always first (or last).
            shift = round_index % len(subjects)
            for subject in subjects[shift:] + subjects[:shift]:
                measured = await runner.measure(subject)
                results[subject.name]["rounds"].append(measured)
                _log(
                    f"{subject.name} round {round_index + 1}: {measured['throughput']} jobs/s, "
                    f"p50 {measured['p50_ms']} ms, p99 {measured['p99_ms']} ms, "
                    f"CPU {measured['cpu_s_per_1000']} s/1000, errors {measured['errors']}"
                )
        if config.latency_probe:
            for subject in subjects:
                probe = results[subject.name]["unloaded"] = await runner.probe_latency(subject)
                _log(f"{subject.name} unloaded: p50 {probe['p50_ms']} ms, p99 {probe['p99_ms']} ms")
        for subject in subjects:
            entry = results[subject.name]
            entry["summary"] = _summary(entry["rounds"])
            entry["summary"]["errors"] += entry.get("unloaded", {}).get("errors", 0)
            entry["peak_rss_mb"] = round(subject.peak_rss_bytes() / 1024 / 1024, 1)
            entry["worker_reported_errors"] = subject.worker_errors()
            entry["summary"]["errors"] += entry["worker_reported_errors"]
            entry["processes"] = subject.process_count
            entry["max_jobs"] = subject.max_jobs
            entry["concurrency"] = runner.concurrency(subject)
            entry["log_lines"] = subject.log_lines()
            warnings = subject.log_warnings()
            entry["log_warnings"] = len(warnings)
            entry["log_warning_samples"] = sorted(set(w.split("] ")[-1][:160] for w in warnings))[:5]
            if isinstance(subject, OurWorker):
                entry["log_level"] = subject.log_level
                entry["job_outcomes"] = subject.job_outcomes()
    finally:
        for subject in subjects:
            subject.stop()
    for subject in subjects:
        subject.remove_logs()
    return results


def _versions(engine: EngineProcess | None) -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    return {
        "python": platform.python_version(),
        "pyzeebe": version("pyzeebe"),
        "grpcio": version("grpcio"),
        "httpx": version("httpx"),
        "engine": "development engine (devkit)" if engine is not None else "as found at ZEEBE_ADDRESS",
    }


async def run_benchmark(config: BenchConfig) -> dict[str, Any]:
    report: dict[str, Any] = {
        "config": asdict(config),
        "machine": machine_description(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    began = time.monotonic()
    with (
        _engine(config.zeebe_address) as (address, engine),
        tempfile.TemporaryDirectory(prefix="hf-bench-bpmn-") as tmp,
    ):
        _log(f"Engine at {address}" + (" (started here)" if engine is not None else ""))
        report["versions"] = _versions(engine)
        report["broker"] = {"address": address, "started_here": engine is not None}
        standin = StandinProcess(config.latency).start()
        channel = create_insecure_channel(grpc_address=address)
        try:
            runner = Runner(config, address, ZeebeClient(channel), standin.url, Path(tmp))
            if engine is not None:
                runner.watch_process("broker", engine.pid)
            runner.watch_process("stand-in", standin.pid)
            report["subjects"] = await _single_process_phase(runner, config, report)
            report["broker"]["warmup"] = runner.broker_warmup
            report["scale_out"] = await _scale_out_phase(runner, config, report["subjects"])
        finally:
            await channel.close()
            report["standin"] = standin.stop()
    report["bound_jobs_per_s"] = round(config.max_jobs / config.latency, 1) if config.latency > 0 else None
    report["duration_s"] = round(time.monotonic() - began, 1)
    return report


def _our_name(level: str) -> str:
    return f"ours-{level.lower()}"


async def _single_process_phase(runner: Runner, config: BenchConfig, report: dict[str, Any]) -> dict[str, Any]:
    subjects: list[Subject] = [
        OurWorker(
            name=_our_name(level),
            max_jobs=config.max_jobs,
            log_level=level,
            stream_enabled=config.stream_enabled,
            extra_env=config.worker_env,
        )
        for level in config.log_levels
    ]
    level = config.log_levels[0] if config.log_levels else "INFO"
    for name, env in config.variants.items():
        subjects.append(
            OurWorker(
                name=f"ours-{name}",
                max_jobs=config.max_jobs,
                log_level=level,
                stream_enabled=config.stream_enabled,
                extra_env=config.worker_env | env,
            )
        )
    if config.bare:
        subjects.append(BareWorker(name="bare", max_jobs=config.max_jobs))
    if config.camunda:
        camunda = CamundaRuntime(name="camunda", max_jobs=config.max_jobs, **_camunda_kwargs(config))
        try:
            camunda.start(runner.address, runner.hf_url)
            subjects.append(camunda)
        except (CamundaUnavailableError, OSError) as exc:
            camunda.stop()
            report["camunda_unavailable"] = str(exc)
            _log(f"Camunda runtime unavailable: {str(exc).splitlines()[0]}")
    for subject in subjects:
        if not subject.processes:
            subject.start(runner.address, runner.hf_url)
    return await _run_group(runner, subjects, config, broker_warmup=config.broker_warmup)


def _camunda_kwargs(config: BenchConfig) -> dict[str, Any]:
    return {"version": config.camunda_version} if config.camunda_version else {}


async def _scale_out_phase(runner: Runner, config: BenchConfig, single: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    level = config.log_levels[0] if config.log_levels else "INFO"
    for count in config.scale:
        if count == 1 and _our_name(level) in single:
            results["1"] = single[_our_name(level)]
            continue
        subject = OurWorker(
            name=f"ours-x{count}",
            max_jobs=config.max_jobs,
            process_count=count,
            log_level=level,
            stream_enabled=config.stream_enabled,
            extra_env=config.worker_env,
        )
        subject.start(runner.address, runner.hf_url)
        results[str(count)] = (await _run_group(runner, [subject], config))[subject.name]
    return results
