"""The benchmark itself: the engine, the stand-in, the subjects, the load, the numbers.

``run_benchmark(config)`` returns a JSON-ready dict (see ``bench.report`` for the table). Everything runs
on one development engine (devkit/engine, what ``make run`` starts), whose own CPU per instance is
reported beside the subjects'. Scenarios, one after the other:

1. 100 ms: our worker, the bare pyzeebe worker and, when it can be had, Camunda's runtime, side by
   side, each with its own job type, 64 jobs in flight each. Each is warmed up, then measured
   ``repeat`` times, the subjects taking turns round by round so that a change of background load on
   the machine hits them alike;
2. LLM: a 5 s model and 1000 jobs in flight in one process, our worker next to the bare worker
   (holding each job for the model's latency) and Camunda's runtime given the same 1000; besides
   throughput and memory, the time each job was held beyond the model's latency, from the engine's
   records (``bench.records``);
3. scale-out, when asked: 2, 4, ... processes of our worker at 100 ms, one after the other.
"""

from __future__ import annotations

import asyncio
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
from bench.load import Instances, LoadResult, SteadyLoad, drive, mean_sd
from bench.procstat import MachineCpu, cpu_seconds, is_running, machine_description
from bench.records import Window, hold_times
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
class LlmConfig:
    """The scenario that looks like LLM traffic: a slow model and many jobs in flight in one process."""

    latency: float = 5.0
    max_jobs: int = 1000
    round_s: float = 20.0
    """Length of a measured round: the load runs without pause, and a round is a window of time in it."""
    repeat: int = 2
    settle_s: float = 15.0
    """Time the load runs before the first round: the ramp (one latency) and two jobs per slot."""
    concurrency_factor: float = 1.0
    """Instances in flight = factor x max jobs: exactly as many instances as jobs the subject may have in
    flight, so that no job ever waits for a slot and the time a job is held beyond the model's latency
    is the subject's own; throughput then shows any time lost between one job and the next."""


@dataclass
class BenchConfig:
    n: int = 2000
    """Process instances per measured round."""
    warmup: int = 200
    repeat: int = 3
    latency_probe: int = 200
    """Instances run at ``latency_probe_concurrency`` after the rounds: the latency of a worker that is
    not saturated, i.e. what the connector adds to the model's own latency."""
    latency_probe_concurrency: int = 4
    max_jobs: int = 64
    """HF_CONNECTOR_MAX_JOBS of our worker (its own default is 32), and the same for the bare worker
    and Camunda's runtime: clear of the concurrency bound (640 jobs/s at 100 ms), so that the machine,
    not the slots, is the limit."""
    latency: float = 0.1
    concurrency_factor: float = 6.0
    """Instances in flight = factor x the subject's max jobs in flight (x processes). Enough that the
    machine, not the load, is the limit: between two jobs an instance spends time in the engine and the
    load generator, and at 2 x half of a worker's slots sat idle."""
    log_levels: list[str] = field(default_factory=lambda: ["INFO"])
    stream_enabled: bool = False
    """Our worker's HF_CONNECTOR_STREAM_ENABLED; the bare worker always streams (see BareWorker)."""
    bare: bool = True
    camunda: bool = True
    camunda_version: str | None = None
    llm: LlmConfig | None = field(default_factory=LlmConfig)
    """None: no LLM scenario."""
    scale: list[int] = field(default_factory=list)
    zeebe_address: str | None = None
    instance_timeout_s: float = 120.0
    worker_env: dict[str, str] = field(default_factory=dict)
    """Extra environment for our worker (for experiments: HF_CONNECTOR_* settings)."""
    variants: dict[str, dict[str, str]] = field(default_factory=dict)
    """More single-process subjects of our worker, ``ours-NAME``, each with extra environment: an A/B
    comparison measured in the same rounds (e.g. HF_CONNECTOR_STREAM_ENABLED=false)."""

    def max_in_flight(self) -> int:
        """Requests the engine must take at once: every instance in flight waits in a call for its result."""
        llm = math.ceil(self.llm.concurrency_factor * self.llm.max_jobs) if self.llm else 0
        single = math.ceil(self.concurrency_factor * self.max_jobs * max([1, *self.scale]))
        return 2 * max(llm, single) + 1000


@dataclass(frozen=True)
class Scenario:
    """What one group of subjects is measured under."""

    name: str
    latency: float
    max_jobs: int
    n: int
    repeat: int
    warmup: int
    concurrency_factor: float
    latency_probe: int
    jit_warmup: bool
    """Whether a JVM subject gets its longer warm-up (``Subject.warmup_factor``)."""
    round_s: float = 0.0
    """Non-zero: a steady load (``SteadyLoad``) measured in rounds of this many seconds, after
    ``settle_s``; zero: rounds of ``n`` instances from a standing start."""
    settle_s: float = 0.0

    @property
    def bound(self) -> float | None:
        """Jobs per second that max jobs in flight allow at this latency."""
        return round(self.max_jobs / self.latency, 1) if self.latency > 0 else None


def standard_scenario(config: BenchConfig) -> Scenario:
    return Scenario(
        name="100ms",
        latency=config.latency,
        max_jobs=config.max_jobs,
        n=config.n,
        repeat=config.repeat,
        warmup=config.warmup,
        concurrency_factor=config.concurrency_factor,
        latency_probe=config.latency_probe,
        jit_warmup=True,
    )


def llm_scenario(llm: LlmConfig) -> Scenario:
    # The settling time is the warm-up: at 1000 jobs per 5 s, thousands of jobs go through it.
    return Scenario(
        name="llm",
        latency=llm.latency,
        max_jobs=llm.max_jobs,
        n=0,
        repeat=llm.repeat,
        warmup=0,
        concurrency_factor=llm.concurrency_factor,
        latency_probe=0,
        jit_warmup=False,
        round_s=llm.round_s,
        settle_s=llm.settle_s,
    )


@contextlib.contextmanager
def _engine(address: str | None, max_in_flight: int) -> Iterator[tuple[str, EngineProcess | None]]:
    """The engine at ``address``, else the development engine started here (data in a temporary directory)."""
    if address:
        yield address, None
        return
    with tempfile.TemporaryDirectory(prefix="hf-bench-engine-") as data:
        engine = EngineProcess.start(Path(data), extra_args=["--max-in-flight", str(max_in_flight)])
        try:
            yield engine.address, engine
        finally:
            engine.stop()


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class _Snapshot:
    """The counters at the start of a round."""

    cpu: float
    others: dict[str, float]
    machine: MachineCpu
    wall_ms: int
    started: float
    """``time.perf_counter()``, the load's clock."""


class Runner:
    def __init__(
        self, config: BenchConfig, address: str, client: ZeebeClient, bpmn_dir: Path, records: Path | None
    ) -> None:
        self.config = config
        self.address = address
        self.client = client
        self.bpmn_dir = bpmn_dir
        self.records = records
        """The engine's record log, when the engine was started here."""
        self.engine_pid: int | None = None
        self.process_ids: dict[str, str] = {}
        # CPU of everything else on the machine that takes part, for the cost of one instance end to end.
        self.other_cpu: dict[str, Callable[[], float]] = {"load generator": time.process_time}

    def watch_process(self, name: str, pid: int | None) -> None:
        if pid is not None:
            self.other_cpu[name] = lambda: cpu_seconds(pid)

    @staticmethod
    def concurrency(subject: Subject, scenario: Scenario) -> int:
        return max(1, math.ceil(scenario.concurrency_factor * subject.in_flight_bound))

    async def deploy(self, subject: Subject) -> None:
        process_id = unique_process_id("bench")
        path = self.bpmn_dir / f"{process_id}.bpmn"
        path.write_text(subject.process_xml(process_id), encoding="utf-8")
        await self.client.deploy_resource(str(path))
        self.process_ids[subject.name] = process_id

    def instances(self, subject: Subject) -> Instances:
        return Instances(
            self.client,
            self.process_ids[subject.name],
            variables=INSTANCE_VARIABLES,
            fetch=[RESULT_VARIABLE],
            check=bare_check if isinstance(subject, BareWorker) else check_result,
            timeout_s=self.config.instance_timeout_s,
        )

    async def load(self, subject: Subject, n: int, concurrency: int) -> LoadResult:
        return await drive(self.instances(subject), n=n, concurrency=concurrency)

    async def warm_up(self, subject: Subject, scenario: Scenario) -> dict[str, Any]:
        # The first instance may wait for a stream or a poll to open; then a burst at full concurrency.
        first = await self.load(subject, 1, 1)
        if first.errors:
            raise RuntimeError(f"{subject.name}: the first instance failed: {first.error_samples}")
        warmup = scenario.warmup * (subject.warmup_factor if scenario.jit_warmup else 1)
        burst = await self.load(subject, warmup, self.concurrency(subject, scenario)) if warmup else LoadResult()
        return {"first_instance_s": round(first.wall_seconds, 3), "instances": warmup, "errors": burst.errors}

    async def probe_latency(self, subject: Subject, scenario: Scenario) -> dict[str, Any]:
        result = await self.load(subject, scenario.latency_probe, self.config.latency_probe_concurrency)
        return {
            "instances": result.completed,
            "concurrency": self.config.latency_probe_concurrency,
            "errors": result.errors,
            "p50_ms": round(result.percentile(50) * 1000, 1),
            "p99_ms": round(result.percentile(99) * 1000, 1),
            "mean_ms": round(sum(result.latencies) / len(result.latencies) * 1000, 1) if result.latencies else 0.0,
        }

    async def measure(self, subject: Subject, scenario: Scenario) -> dict[str, Any]:
        """One round of ``scenario.n`` instances from a standing start."""
        before = self._snapshot(subject)
        result = await self.load(subject, scenario.n, self.concurrency(subject, scenario))
        return self._round(subject, before, result)

    async def measure_steady(self, subject: Subject, load: SteadyLoad, seconds: float) -> dict[str, Any]:
        """One round: what ``load`` completed during the next ``seconds``."""
        before = self._snapshot(subject)
        await asyncio.sleep(seconds)
        return self._round(subject, before, load.window(before.started, time.perf_counter()))

    def steady_load(self, subject: Subject, scenario: Scenario) -> SteadyLoad:
        return SteadyLoad(
            self.instances(subject), concurrency=self.concurrency(subject, scenario), ramp_s=scenario.latency
        )

    def _snapshot(self, subject: Subject) -> _Snapshot:
        subject.alive_or_raise()
        if self.engine_pid is not None and not is_running(self.engine_pid):
            raise RuntimeError(f"the engine (pid {self.engine_pid}) has exited")
        return _Snapshot(subject.cpu_seconds(), self._others(), MachineCpu.read(), _now_ms(), time.perf_counter())

    def _round(self, subject: Subject, before: _Snapshot, result: LoadResult) -> dict[str, Any]:
        window = (before.wall_ms, _now_ms())
        cpu = subject.cpu_seconds() - before.cpu
        busy = MachineCpu.read().busy_fraction_since(before.machine)
        others = {name: value - before.others.get(name, 0.0) for name, value in self._others().items()}
        return {
            "completed": result.completed,
            "errors": result.errors,
            "error_samples": result.error_samples,
            "backpressure_retries": result.backpressure_retries,
            "wall_s": round(result.wall_seconds, 3),
            "window_ms": window,
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

    def records_offset(self) -> int:
        return self.records.stat().st_size if self.records is not None and self.records.exists() else 0

    def added_times(
        self, subject: Subject, windows: list[Window], latency: float, offset: int
    ) -> dict[str, float | int] | None:
        """Time each job was held beyond the model's latency, from the engine's records (None without them)."""
        if self.records is None:
            return None
        held = hold_times(self.records, subject.job_type, windows, offset)
        return held.added(latency * 1000 if subject.calls_model else 0.0)

    def _others(self) -> dict[str, float]:
        values = {}
        for name, read in self.other_cpu.items():
            with contextlib.suppress(OSError):  # the process is gone
                values[name] = read()
        return values


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


async def _run_group(runner: Runner, subjects: list[Subject], scenario: Scenario) -> dict[str, dict[str, Any]]:
    """Measures ``subjects`` under ``scenario`` (see ``_rounds`` and ``_steady_rounds``); stops them all at
    the end."""
    results: dict[str, dict[str, Any]] = {}
    offset = runner.records_offset()
    try:
        for subject in subjects:
            await runner.deploy(subject)
        if scenario.round_s:
            await _steady_rounds(runner, subjects, scenario, results)
        else:
            await _rounds(runner, subjects, scenario, results)
        for subject in subjects:
            _finish(runner, subject, scenario, results[subject.name], offset)
    finally:
        for subject in subjects:
            subject.stop()
    for subject in subjects:
        subject.remove_logs()
    return results


async def _rounds(
    runner: Runner, subjects: list[Subject], scenario: Scenario, results: dict[str, dict[str, Any]]
) -> None:
    """Warm up every subject, then ``repeat`` rounds of ``n`` instances in turn, then the unloaded probe."""
    for subject in subjects:
        results[subject.name] = {"warmup": await runner.warm_up(subject, scenario), "rounds": []}
        _log(f"{scenario.name} {subject.name}: warmed up ({results[subject.name]['warmup']})")
    for round_index in range(scenario.repeat):
        # Each round starts with another subject, so that none is always first (or last).
        shift = round_index % len(subjects)
        for subject in subjects[shift:] + subjects[:shift]:
            measured = await runner.measure(subject, scenario)
            results[subject.name]["rounds"].append(measured)
            _log_round(scenario, subject, round_index, measured)
    if scenario.latency_probe:
        for subject in subjects:
            probe = results[subject.name]["unloaded"] = await runner.probe_latency(subject, scenario)
            _log(f"{scenario.name} {subject.name} unloaded: p50 {probe['p50_ms']} ms, p99 {probe['p99_ms']} ms")


async def _steady_rounds(
    runner: Runner, subjects: list[Subject], scenario: Scenario, results: dict[str, dict[str, Any]]
) -> None:
    """One subject after the other: a steady load, ``settle_s`` to settle, then ``repeat`` rounds of
    ``round_s`` seconds, then the load drains."""
    for subject in subjects:
        first = await runner.load(subject, 1, 1)  # the first job may wait for a stream or a poll to open
        if first.errors:
            raise RuntimeError(f"{subject.name}: the first instance failed: {first.error_samples}")
        load = runner.steady_load(subject, scenario)
        load.start()
        try:
            await asyncio.sleep(scenario.settle_s)
            rounds = []
            for round_index in range(scenario.repeat):
                rounds.append(await runner.measure_steady(subject, load, scenario.round_s))
                _log_round(scenario, subject, round_index, rounds[-1])
        finally:
            await load.stop(runner.config.instance_timeout_s)
        results[subject.name] = {
            "warmup": {"first_instance_s": round(first.wall_seconds, 3), "settle_s": scenario.settle_s},
            "rounds": rounds,
            # Failures outside the rounds (settling, draining) count as much as those inside.
            "errors_outside_rounds": len(load.failures) - sum(r["errors"] for r in rounds),
            "error_samples": [message for _, message in load.failures[:5]],
        }


def _log_round(scenario: Scenario, subject: Subject, round_index: int, measured: dict[str, Any]) -> None:
    _log(
        f"{scenario.name} {subject.name} round {round_index + 1}: {measured['throughput']} jobs/s, "
        f"p50 {measured['p50_ms']} ms, p99 {measured['p99_ms']} ms, "
        f"CPU {measured['cpu_s_per_1000']} s/1000, errors {measured['errors']}"
    )


def _finish(runner: Runner, subject: Subject, scenario: Scenario, entry: dict[str, Any], offset: int) -> None:
    """The summary over the rounds and what the subject itself tells once they are over."""
    entry["summary"] = _summary(entry["rounds"])
    entry["summary"]["errors"] += entry.get("unloaded", {}).get("errors", 0) + entry.get("errors_outside_rounds", 0)
    windows = [(r["window_ms"][0], r["window_ms"][1]) for r in entry["rounds"]]
    entry["added"] = runner.added_times(subject, windows, scenario.latency, offset)
    entry["peak_rss_mb"] = round(subject.peak_rss_bytes() / 1024 / 1024, 1)
    entry["worker_reported_errors"] = subject.worker_errors()
    entry["summary"]["errors"] += entry["worker_reported_errors"]
    entry["processes"] = subject.process_count
    entry["max_jobs"] = subject.max_jobs
    entry["concurrency"] = runner.concurrency(subject, scenario)
    entry["log_lines"] = subject.log_lines()
    warnings = subject.log_warnings()
    entry["log_warnings"] = len(warnings)
    entry["log_warning_samples"] = sorted(set(w.split("] ")[-1][:160] for w in warnings))[:5]
    if isinstance(subject, OurWorker):
        entry["log_level"] = subject.log_level
        entry["job_outcomes"] = subject.job_outcomes()


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
        "aiohttp": version("aiohttp"),
        "httpx": version("httpx"),
        "engine": "development engine (devkit)" if engine is not None else "as found at ZEEBE_ADDRESS",
    }


@contextlib.contextmanager
def _standin(latency: float, runner: Runner, report: dict[str, Any]) -> Iterator[str]:
    """A stand-in with ``latency`` for one scenario; its summary goes to ``report['standin']``."""
    standin = StandinProcess(latency).start()
    runner.watch_process("stand-in", standin.pid)
    try:
        yield standin.url
    finally:
        report["standin"] = standin.stop()


async def run_benchmark(config: BenchConfig) -> dict[str, Any]:
    report: dict[str, Any] = {
        "config": asdict(config),
        "machine": machine_description(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    began = time.monotonic()
    standard = standard_scenario(config)
    with (
        _engine(config.zeebe_address, config.max_in_flight()) as (address, engine),
        tempfile.TemporaryDirectory(prefix="hf-bench-bpmn-") as tmp,
    ):
        _log(f"Engine at {address}" + (" (started here)" if engine is not None else ""))
        report["versions"] = _versions(engine)
        report["engine"] = {"address": address, "started_here": engine is not None}
        channel = create_insecure_channel(grpc_address=address)
        try:
            runner = Runner(config, address, ZeebeClient(channel), Path(tmp), engine.records_path if engine else None)
            if engine is not None:
                runner.watch_process("engine", engine.pid)
                runner.engine_pid = engine.pid
            with _standin(standard.latency, runner, report) as hf_url:
                report["subjects"] = await _single_process_phase(runner, config, standard, hf_url, report)
                report["scale_out"] = await _scale_out_phase(runner, config, standard, hf_url, report["subjects"])
            if config.llm is not None:
                llm = llm_scenario(config.llm)
                scenario_report: dict[str, Any] = {"latency": llm.latency, "max_jobs": llm.max_jobs}
                with _standin(llm.latency, runner, scenario_report) as hf_url:
                    scenario_report["subjects"] = await _llm_phase(runner, config, llm, hf_url, scenario_report)
                scenario_report["bound_jobs_per_s"] = llm.bound
                report["llm"] = scenario_report
        finally:
            await channel.close()
    report["bound_jobs_per_s"] = standard.bound
    report["duration_s"] = round(time.monotonic() - began, 1)
    return report


def _our_name(level: str) -> str:
    return f"ours-{level.lower()}"


def _camunda(runner: Runner, config: BenchConfig, max_jobs: int, hf_url: str, report: dict[str, Any]) -> list[Subject]:
    """Camunda's runtime started, in a list; an empty list, and the reason in the report, when it cannot be."""
    if not config.camunda:
        return []
    kwargs: dict[str, Any] = {"version": config.camunda_version} if config.camunda_version else {}
    camunda = CamundaRuntime(name="camunda", max_jobs=max_jobs, **kwargs)
    try:
        camunda.start(runner.address, hf_url)
    except (CamundaUnavailableError, OSError) as exc:
        camunda.stop()
        report["camunda_unavailable"] = str(exc)
        _log(f"Camunda runtime unavailable: {str(exc).splitlines()[0]}")
        return []
    return [camunda]


async def _single_process_phase(
    runner: Runner, config: BenchConfig, scenario: Scenario, hf_url: str, report: dict[str, Any]
) -> dict[str, Any]:
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
    return await _with_camunda(runner, config, subjects, scenario, hf_url, report)


async def _llm_phase(
    runner: Runner, config: BenchConfig, scenario: Scenario, hf_url: str, report: dict[str, Any]
) -> dict[str, Any]:
    ours = OurWorker(
        name="ours",
        max_jobs=scenario.max_jobs,
        log_level=config.log_levels[0] if config.log_levels else "INFO",
        stream_enabled=config.stream_enabled,
        extra_env=config.worker_env,
    )
    subjects: list[Subject] = [ours]
    if config.bare:
        # Held for the model's latency: the engine's own share of "added" at this load, in the same run.
        subjects.append(BareWorker(name="bare", max_jobs=scenario.max_jobs, hold_s=scenario.latency))
    return await _with_camunda(runner, config, subjects, scenario, hf_url, report)


async def _with_camunda(
    runner: Runner,
    config: BenchConfig,
    subjects: list[Subject],
    scenario: Scenario,
    hf_url: str,
    report: dict[str, Any],
) -> dict[str, Any]:
    """Adds Camunda's runtime (unless left out), starts every subject not yet running, and measures them."""
    subjects = subjects + _camunda(runner, config, scenario.max_jobs, hf_url, report)
    for subject in subjects:
        if not subject.processes:
            subject.start(runner.address, hf_url)
    return await _run_group(runner, subjects, scenario)


async def _scale_out_phase(
    runner: Runner, config: BenchConfig, scenario: Scenario, hf_url: str, single: dict[str, Any]
) -> dict[str, Any]:
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
        subject.start(runner.address, hf_url)
        results[str(count)] = (await _run_group(runner, [subject], scenario))[subject.name]
    return results
