"""Baseline 3: Camunda's own connector runtime (Java) running Camunda's Hugging Face task shape.

Camunda's Hugging Face connector is a template over the REST connector: job type ``io.camunda:http-json:1``,
bearer authentication, ``POST`` of the input to the model's URL. The runtime is
``io.camunda.connector:connector-runtime-application`` with ``io.camunda.connector:connector-http-json``
on its class path, both ``-with-dependencies`` jars from Maven Central, fetched with ``mvn
dependency:copy`` into ``~/.cache/hf-connector/camunda-connectors/<version>`` (never into git), and
started as ``java -cp '<dir>/*' io.camunda.connector.runtime.app.ConnectorRuntimeApplication`` with a
Java 21+ (the one ``worker.broker.find_java`` picks, e.g. Temurin 25).

Configuration is by environment only: the 8.6 names (``CAMUNDA_CLIENT_ZEEBE_*``) and the older Spring
Zeebe names (``ZEEBE_CLIENT_*``) side by side; Operate, polling and webhooks off (outbound only).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.subjects import MODEL, RESULT_VARIABLE, TOKEN_SECRET, TOKEN_VALUE, Subject, _clean_env, free_port
from tests.support.bpmn import connector_process
from worker.broker import find_java

DEFAULT_VERSION = os.environ.get("HF_BENCH_CONNECTORS_VERSION", "8.6.0")
GROUP = "io.camunda.connector"
ARTIFACTS = ("connector-runtime-application", "connector-http-json")
MAIN_CLASS = "io.camunda.connector.runtime.app.ConnectorRuntimeApplication"
JOB_TYPE = "io.camunda:http-json:1"


class CamundaUnavailableError(RuntimeError):
    """The runtime could not be fetched or started here; the message says why."""


def cache_dir(version: str) -> Path:
    base = os.environ.get("HF_CONNECTOR_CACHE_ROOT", "").strip()
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "hf-connector"
    return root / "camunda-connectors" / version


def fetch(version: str = DEFAULT_VERSION) -> Path:
    """The directory holding both jars, fetched with Maven on first use."""
    target = cache_dir(version)
    target.mkdir(parents=True, exist_ok=True)
    for artifact in ARTIFACTS:
        if any(target.glob(f"{artifact}-{version}*.jar")):
            continue
        coordinate = f"{GROUP}:{artifact}:{version}:jar:with-dependencies"
        try:
            done = subprocess.run(
                ["mvn", "-B", "-q", "dependency:copy", f"-Dartifact={coordinate}", f"-DoutputDirectory={target}"],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CamundaUnavailableError(f"mvn could not fetch {coordinate}: {exc}") from None
        if done.returncode != 0:
            text = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # Maven's colours
            lines = [line for line in text.splitlines() if "ERROR" in line]
            reason = lines[0] if lines else f"mvn exited with {done.returncode}"
            raise CamundaUnavailableError(f"mvn could not fetch {coordinate}: {reason.strip()[:400]}")
    return target


def camunda_process(process_id: str, hf_url: str) -> str:
    """Camunda's Hugging Face template as the REST connector receives it, aimed at the stand-in."""
    return connector_process(
        process_id,
        JOB_TYPE,
        inputs={
            "authentication.type": "bearer",
            "authentication.token": f"{{{{secrets.{TOKEN_SECRET}}}}}",
            "method": "POST",
            "url": f"{hf_url}/hf-inference/models/{MODEL}",
            "headers": '={"Content-Type": "application/json"}',
            "body": "={inputs: text}",
            "connectionTimeoutInSeconds": "30",
        },
        headers={"resultVariable": RESULT_VARIABLE},
    )


@dataclass
class CamundaRuntime(Subject):
    version: str = DEFAULT_VERSION
    hf_url: str = ""
    threads: int = 32

    def __post_init__(self) -> None:
        # Camunda's runtime registers its fixed job type; it must be the only one on the broker.
        self.job_type = JOB_TYPE

    def process_xml(self, process_id: str) -> str:
        return camunda_process(process_id, self.hf_url)

    def start(self, zeebe_address: str, hf_url: str) -> None:
        self.hf_url = hf_url
        jars = fetch(self.version)
        java = find_java(install=False) / "bin" / "java"
        grpc = f"http://{zeebe_address}"
        env = _clean_env() | {
            # secrets: the default environment provider
            TOKEN_SECRET: TOKEN_VALUE,
            # Zeebe, 8.6 names
            "CAMUNDA_CLIENT_ZEEBE_ENABLED": "true",
            "CAMUNDA_CLIENT_ZEEBE_GRPCADDRESS": grpc,
            "CAMUNDA_CLIENT_ZEEBE_PREFERRESTOVERGRPC": "false",
            "CAMUNDA_CLIENT_ZEEBE_DEFAULTS_MAXJOBSACTIVE": str(self.max_jobs),
            "CAMUNDA_CLIENT_ZEEBE_DEFAULTS_STREAMENABLED": "true",
            "CAMUNDA_CLIENT_ZEEBE_EXECUTIONTHREADS": str(self.threads),
            # Zeebe, Spring Zeebe names (8.5 and before; still read by the 8.6 compatibility layer)
            "ZEEBE_CLIENT_BROKER_GATEWAY-ADDRESS": zeebe_address,
            "ZEEBE_CLIENT_SECURITY_PLAINTEXT": "true",
            "ZEEBE_CLIENT_WORKER_MAX-JOBS-ACTIVE": str(self.max_jobs),
            "ZEEBE_CLIENT_WORKER_THREADS": str(self.threads),
            "ZEEBE_CLIENT_DEFAULT-JOB-WORKER-STREAM-ENABLED": "true",
            # outbound only: no Operate, no polling of inbound connectors, no webhooks
            "CAMUNDA_CONNECTOR_POLLING_ENABLED": "false",
            "CAMUNDA_CONNECTOR_WEBHOOK_ENABLED": "false",
            "CAMUNDA_OPERATE_CLIENT_ENABLED": "false",
            "CAMUNDA_CLIENT_OPERATE_ENABLED": "false",
            "OPERATE_CLIENT_ENABLED": "false",
            "SERVER_PORT": str(free_port()),
            "SERVER_ADDRESS": "127.0.0.1",
            "JAVA_TOOL_OPTIONS": "",
        }
        self._spawn([str(java), "-cp", f"{jars}/*", MAIN_CLASS], env, "camunda.log")
        # Started when the log says so; whether it takes jobs is what the warm-up finds out.
        deadline = time.monotonic() + 120
        while "Started ConnectorRuntimeApplication" not in (self.log_dir / "camunda.log").read_text(errors="replace"):
            if any(p.poll() is not None for p in self.processes):
                raise CamundaUnavailableError(f"the runtime exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise CamundaUnavailableError(f"the runtime did not start within 120 s:\n{self.log_tail()}")
            time.sleep(0.2)
