"""Baseline 3: Camunda's own connector runtime (Java) running Camunda's Hugging Face task shape.

Camunda's Hugging Face connector is a template over the REST connector: job type ``io.camunda:http-json:1``,
bearer authentication, ``POST`` of the input to the model's URL.

The runtime is what Camunda documents as a custom connector runtime and what its
``connector-runtime-application`` is (that artifact is not on Maven Central): a Spring Boot application
with ``io.camunda.connector:spring-boot-starter-camunda-connectors`` and the REST connector
``io.camunda.connector:connector-http-json`` on its class path, both from Maven Central. The Maven
project is ``bench/camunda-runtime`` (a pom and a main class); it is built once per version with
``mvn package`` into ``~/.cache/hf-connector/camunda-connectors/<version>/build`` (classes and the
runtime class path in ``lib/``, never into git; rebuilt only when the project changes) and started as
``java -cp '<build>/classes:<build>/lib/*' io.hfconnector.bench.CamundaRuntime`` with the Java of
``JAVA_HOME``, else the newest Java 21+ under ``/usr/lib/jvm``, else the one on ``PATH`` (the connectors
8.6 jars are Java 21 class files). Maven resolves from Maven Central only (``settings.xml`` mirrors
every repository the POMs name), and every artifact on the class path is under an OSI licence: the
POM's exclusions say which were left out and why.

Configuration is by environment only. Connectors 8.6 run on Spring Zeebe 8.5 (``io.camunda.spring``),
so the client reads ``zeebe.client.*`` (Camunda's 8.6 connector docs for a local installation) or
``camunda.client.zeebe.*`` with ``gateway-url``/``base-url`` (not the ``grpc-address`` of the 8.6 Java
SDK); the names below are the documented ``zeebe.client.*`` ones, each checked in the client
configuration the runtime logs at start. Secrets come from the environment secret provider, on by
default with no prefix, so ``HF_BENCH_TOKEN`` serves ``{{secrets.HF_BENCH_TOKEN}}``. Outbound only: no
polling of inbound connectors (which would need Operate), no webhooks.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.subjects import MODEL, RESULT_VARIABLE, TOKEN_SECRET, TOKEN_VALUE, Subject, _clean_env
from tests.support.bpmn import connector_process

DEFAULT_VERSION = os.environ.get("HF_BENCH_CONNECTORS_VERSION", "").strip() or "8.6.10"
PROJECT = Path(__file__).resolve().parent / "camunda-runtime"
MAIN_CLASS = "io.hfconnector.bench.CamundaRuntime"
MIN_JAVA = 21
JVM_DIR = Path("/usr/lib/jvm")
JOB_TYPE = "io.camunda:http-json:1"
BUILD_TIMEOUT_S = 1200
START_TIMEOUT_S = 120


class CamundaUnavailableError(RuntimeError):
    """The runtime could not be built or started here; the message's first line says why."""


def cache_dir(version: str) -> Path:
    base = os.environ.get("HF_CONNECTOR_CACHE_ROOT", "").strip()
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "hf-connector"
    return root / "camunda-connectors" / version


def _project_digest(version: str) -> str:
    """What the build depends on: the version and every file of the Maven project."""
    digest = hashlib.sha256(version.encode())
    for path in sorted(p for p in PROJECT.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(PROJECT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path``, so that concurrent benchmarks build the runtime once."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_java() -> Path:
    """``JAVA_HOME/bin/java``, else the newest Java {MIN_JAVA}+ under ``/usr/lib/jvm``, else ``java`` on ``PATH``:
    Debian's default Java may be older than the connectors need, with a newer one installed beside it."""
    home = os.environ.get("JAVA_HOME", "").strip()
    java = Path(home) / "bin" / "java" if home else None
    if java is not None and java.is_file():
        return java
    installed = sorted(
        ((version, path) for path in JVM_DIR.glob("*/bin/java") if (version := _java_version(path)) >= MIN_JAVA),
        reverse=True,
    )
    if installed:
        return installed[0][1]
    found = shutil.which("java")
    if found is None:
        raise CamundaUnavailableError(
            f"no Java {MIN_JAVA}+ for the connectors runtime: set JAVA_HOME or put java on PATH"
        )
    return Path(found)


def _java_version(java: Path) -> int:
    """The feature version from the ``release`` file of the JDK that holds ``java`` (0 when unknown)."""
    try:
        text = (java.resolve().parents[1] / "release").read_text()
    except OSError:
        return 0
    found = re.search(r'^JAVA_VERSION="(?:1\.)?(\d+)', text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def fetch(version: str = DEFAULT_VERSION) -> Path:
    """The build directory (``classes/`` and ``lib/``), built with Maven on first use, under a file lock."""
    target = cache_dir(version)
    target.mkdir(parents=True, exist_ok=True)
    build, marker, digest = target / "build", target / "build" / ".built", _project_digest(version)
    if marker.is_file() and marker.read_text().strip() == digest:
        return build
    with file_lock(target / ".build.lock"):
        if not (marker.is_file() and marker.read_text().strip() == digest):
            _build(version, build, target / "mvn.log")
            marker.write_text(digest + "\n")
    return build


def _build(version: str, build: Path, log: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise CamundaUnavailableError("Maven (mvn) is not on PATH: it builds bench/camunda-runtime")
    shutil.rmtree(build, ignore_errors=True)
    command = [
        mvn,
        "-B",
        "-q",
        "-s",
        str(PROJECT / "settings.xml"),
        "-f",
        str(PROJECT / "pom.xml"),
        "package",
        f"-Dconnectors.version={version}",
        f"-Dhf.build.directory={build}",
    ]
    try:
        # Maven compiles with the Java that runs the runtime: the connectors' class files need Java 21+.
        env = os.environ | {"JAVA_HOME": str(find_java().resolve().parents[1])}
        done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CamundaUnavailableError(f"mvn could not build connectors {version}: {exc}") from None
    text = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # Maven's colours
    log.write_text(text)
    if done.returncode != 0 or not (build / "lib").is_dir():
        errors = [re.sub(r"^(\[ERROR\]\s*)+", "", line).strip() for line in text.splitlines() if "[ERROR]" in line]
        errors = [line for line in errors if line]
        telling = [line for line in errors if re.search(r"Could not|Non-resolvable|Failed to|COMPILATION", line)]
        reason = (telling or errors or [f"mvn exited with {done.returncode}"])[0]
        raise CamundaUnavailableError(f"mvn could not build connectors {version}: {reason[:400]} (see {log})")


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
    # Its CPU per 1000 jobs fell from 24.5 to 12.8 s over its first 1000 jobs (the JIT compiling).
    warmup_factor: int = 10

    def __post_init__(self) -> None:
        # Camunda's runtime registers its fixed job type; it must be the only one on the broker.
        self.job_type = JOB_TYPE

    def process_xml(self, process_id: str) -> str:
        return camunda_process(process_id, self.hf_url)

    def environment(self, zeebe_address: str) -> dict[str, str]:
        env = {k: v for k, v in _clean_env().items() if k not in ("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS")}
        return env | {
            # {{secrets.HF_BENCH_TOKEN}}: the environment secret provider, on by default, no prefix
            TOKEN_SECRET: TOKEN_VALUE,
            # Zeebe over plaintext gRPC (Spring Zeebe 8.5 names, as Camunda's 8.6 connector docs give them)
            "ZEEBE_CLIENT_BROKER_GATEWAY-ADDRESS": zeebe_address,
            "ZEEBE_CLIENT_SECURITY_PLAINTEXT": "true",
            # the job worker: jobs in flight, and as many threads to run them, since the REST connector
            # blocks its thread for the whole call; streaming
            "ZEEBE_CLIENT_WORKER_MAX-JOBS-ACTIVE": str(self.max_jobs),
            "ZEEBE_CLIENT_WORKER_THREADS": str(self.max_jobs),
            "ZEEBE_CLIENT_DEFAULT-JOB-WORKER-STREAM-ENABLED": "true",
            # outbound only: no polling for inbound connectors (so no Operate client), no webhooks
            "CAMUNDA_CONNECTOR_POLLING_ENABLED": "false",
            "CAMUNDA_CONNECTOR_WEBHOOK_ENABLED": "false",
            # the runtime's own HTTP server (health, metrics) on a free loopback port
            "SERVER_ADDRESS": "127.0.0.1",
            "SERVER_PORT": "0",
        }

    def start(self, zeebe_address: str, hf_url: str) -> None:
        self.hf_url = hf_url
        build = fetch(self.version)
        java = find_java()
        class_path = f"{build / 'classes'}{os.pathsep}{build / 'lib'}/*"
        self._spawn([str(java), "-cp", class_path, MAIN_CLASS], self.environment(zeebe_address), "camunda.log")
        # Started when Spring says so (the worker is open by then); whether it takes jobs is what the
        # warm-up finds out.
        log, deadline = self.log_dir / "camunda.log", time.monotonic() + START_TIMEOUT_S
        while "Started CamundaRuntime in" not in (text := log.read_text(errors="replace")):
            if any(p.poll() is not None for p in self.processes):
                raise CamundaUnavailableError(f"the runtime exited at start{_first_error(text)}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise CamundaUnavailableError(
                    f"the runtime did not start within {START_TIMEOUT_S} s{_first_error(text)}\n{self.log_tail()}"
                )
            time.sleep(0.2)


def _first_error(log: str) -> str:
    """``: <the root cause in the runtime's log>`` for the one-line reason (the last ``Caused by``, else
    the last error line but Spring Zeebe's harmless "Unable to determine authentication", logged at every
    start without ``camunda.client.mode``), or nothing."""
    lines = log.splitlines()
    causes = [line for line in lines if line.startswith(("Caused by", "Error", "Exception"))]
    errors = [line.split(" : ", 1)[-1] for line in lines if " ERROR " in line and "authentication" not in line]
    found = (causes or errors or [""])[-1].strip()
    return f": {found[:300]}" if found else ""
