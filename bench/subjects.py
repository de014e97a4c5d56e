"""What is measured: our worker (one or more processes), the bare pyzeebe worker, Camunda's runtime.

Every subject runs as child processes of the benchmark, each in its own session, with its own job
type so that subjects sharing one broker never take each other's jobs. CPU seconds and peak RSS are
read from /proc for each of its processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bare_worker import CANNED_RESULT
from bench.procstat import cpu_seconds, peak_rss_bytes
from devkit.processes import die_with_parent
from hf_connector.huggingface.contract import fetched_variable_names
from tests.support.bpmn import connector_process

REPO = Path(__file__).resolve().parents[1]
MODEL = "facebook/bart-large-cnn"
TOKEN_SECRET = "HF_BENCH_TOKEN"
TOKEN_VALUE = "hf_benchToken_0123456789abcdef"
TEXT = (
    "Java is a high-level, class-based, object-oriented programming language that is designed to have as few "
    "implementation dependencies as possible. It is a general-purpose programming language intended to let "
    "programmers write once, run anywhere, meaning that compiled Java code can run on all platforms that "
    "support Java without the need to recompile."
)
INSTANCE_VARIABLES = {"text": TEXT}
RESULT_VARIABLE = "result"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_result(variables: dict[str, Any]) -> str | None:
    """An instance is right when its result variable holds a 200 answer with a summary."""
    result = variables.get(RESULT_VARIABLE)
    if not isinstance(result, dict) or result.get("status") != 200:
        return f"unexpected result variable: {json.dumps(result)[:200]}"
    body = result.get("body")
    if not (isinstance(body, list) and body and isinstance(body[0], dict) and "summary_text" in body[0]):
        return f"unexpected body: {json.dumps(body)[:200]}"
    return None


def hf_task_process(process_id: str, job_type: str) -> str:
    """Camunda's documented Hugging Face scenario as this connector's template writes it."""
    return connector_process(
        process_id,
        job_type,
        inputs={
            "authentication.token": f"{{{{secrets.{TOKEN_SECRET}}}}}",
            "model": f'="{MODEL}"',
            "input": "={inputs: text}",
        },
        headers={"resultVariable": RESULT_VARIABLE},
    )


@dataclass
class Subject:
    """One thing under test; ``start`` launches its processes, ``stop`` ends them."""

    name: str
    max_jobs: int = 32
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    job_type: str = ""
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hf-bench-")))
    process_count: int = 1
    warmup_factor: int = 1
    """Warm-up instances = this x the configured warm-up (a JVM subject needs thousands to compile)."""
    calls_model: bool = True
    """Whether its jobs wait for the model; the time it adds to a job is measured beyond that latency."""

    def __post_init__(self) -> None:
        self.job_type = self.job_type or f"bench-{self.name.replace(' ', '-')}-{uuid.uuid4().hex[:8]}"

    @property
    def in_flight_bound(self) -> int:
        """Jobs the subject may have in flight at once (all its processes)."""
        return self.max_jobs * self.process_count

    def process_xml(self, process_id: str) -> str:
        return hf_task_process(process_id, self.job_type)

    def start(self, zeebe_address: str, hf_url: str) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.poll() is None]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def peak_rss_bytes(self) -> int:
        """The largest peak RSS among the subject's processes."""
        return max((peak_rss_bytes(pid) for pid in self.pids()), default=0)

    def worker_errors(self) -> int:
        """Jobs the subject itself reported as not completed (0 when it cannot tell)."""
        return 0

    def alive_or_raise(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{self.name}: process exited with {process.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        tails = []
        for path in sorted(self.log_dir.glob("*.log")):
            tails.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(tails)

    def log_lines(self) -> int:
        return sum(len(p.read_text(errors="replace").splitlines()) for p in self.log_dir.glob("*.log"))

    def log_warnings(self) -> list[str]:
        found: list[str] = []
        for path in self.log_dir.glob("*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if " WARNING " in line or " ERROR " in line or "Traceback" in line:
                    found.append(line[:300])
        return found

    def _spawn(self, argv: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / log_name).open("ab") as log:
            process = subprocess.Popen(
                argv,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # A benchmark killed outright must not leave workers polling a broker behind it.
                preexec_fn=die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )
        self.processes.append(process)
        return process

    def remove_logs(self) -> None:
        """After a run that went through: the logs were scanned, nothing to keep."""
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def stop(self, timeout: float = 30.0) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SECRET_", "HF_", "CAMUNDA_", "ZEEBE_"))}


@dataclass
class OurWorker(Subject):
    """``hf-connector run``, as an operator starts it, configured by environment variables."""

    log_level: str = "INFO"
    stream_enabled: bool = False
    requests_per_minute: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)
    http_ports: list[int] = field(default_factory=list)

    def command(self) -> list[str]:
        script = Path(sys.executable).with_name("hf-connector")
        return [str(script), "run"] if script.exists() else [sys.executable, "-m", "hf_connector", "run"]

    def start(self, zeebe_address: str, hf_url: str) -> None:
        for index in range(self.process_count):
            port = free_port()
            env = _clean_env() | {
                "ZEEBE_ADDRESS": zeebe_address,
                "HF_INFERENCE_ENDPOINT": hf_url,
                "HF_CONNECTOR_JOB_TYPE": self.job_type,
                "HF_CONNECTOR_WORKER_NAME": f"bench-{index}",
                "HF_CONNECTOR_MAX_JOBS": str(self.max_jobs),
                "HF_CONNECTOR_STREAM_ENABLED": str(self.stream_enabled).lower(),
                "HF_CONNECTOR_LOG_LEVEL": self.log_level,
                "HF_CONNECTOR_HTTP_HOST": "127.0.0.1",
                "HF_CONNECTOR_HTTP_PORT": str(port),
                "HF_CONNECTOR_REQUESTS_PER_MINUTE": str(self.requests_per_minute),
                "HF_CONNECTOR_SECRETS_DIR": "",
                f"SECRET_{TOKEN_SECRET}": TOKEN_VALUE,
                **self.extra_env,
            }
            self._spawn(self.command(), env, f"worker-{index}.log")
            self.http_ports.append(port)
        deadline = time.monotonic() + 60
        for port in self.http_ports:
            while not self._ready(port):
                self.alive_or_raise()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name}: not ready within 60 s:\n{self.log_tail()}")
                time.sleep(0.1)

    @staticmethod
    def _get(port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""

    def _ready(self, port: int) -> bool:
        try:
            return self._get(port, "/health/ready")[0] == 200
        except OSError:
            return False

    def job_outcomes(self) -> dict[str, float]:
        """``hf_connector_jobs_total`` by outcome, summed over the processes."""
        totals: dict[str, float] = {}
        for port in self.http_ports:
            try:
                _, text = self._get(port, "/metrics")
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("hf_connector_jobs_total{"):
                    labels, _, value = line.rpartition(" ")
                    outcome = labels.split('outcome="', 1)[1].split('"', 1)[0]
                    totals[outcome] = totals.get(outcome, 0.0) + float(value)
        return totals

    def worker_errors(self) -> int:
        return int(sum(v for k, v in self.job_outcomes().items() if k != "completed"))


@dataclass
class BareWorker(Subject):
    """Baseline 1 (bench/bare_worker.py). Always streaming: pyzeebe's own poller sleeps a whole second
    whenever it is full, which holds a bare worker to about 32 jobs/s here, far below what it can do."""

    stream_enabled: bool = True
    hold_s: float = 0.0
    """Seconds each job is held, as if a model answered after that long (the LLM scenario's latency)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.calls_model = self.hold_s > 0

    def start(self, zeebe_address: str, hf_url: str) -> None:
        env = _clean_env() | {
            "ZEEBE_ADDRESS": zeebe_address,
            "BARE_JOB_TYPE": self.job_type,
            "BARE_MAX_JOBS": str(self.max_jobs),
            "BARE_STREAM_ENABLED": str(self.stream_enabled).lower(),
            "BARE_FETCH_VARIABLES": json.dumps(fetched_variable_names()),
            "BARE_HOLD_S": str(self.hold_s),
        }
        for index in range(self.process_count):
            self._spawn([sys.executable, "-m", "bench.bare_worker"], env, f"bare-{index}.log")
        deadline = time.monotonic() + 30
        for index in range(self.process_count):
            while "ready" not in (self.log_dir / f"bare-{index}.log").read_text(errors="replace"):
                self.alive_or_raise()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name}: not ready within 30 s:\n{self.log_tail()}")
                time.sleep(0.05)


def bare_check(variables: dict[str, Any]) -> str | None:
    return None if variables.get(RESULT_VARIABLE) == CANNED_RESULT[RESULT_VARIABLE] else "result variable missing"
