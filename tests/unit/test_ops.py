"""Health logic, the ops HTTP server, the Zeebe monitor, and the worker's exit when Zeebe refuses it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pyzeebe.errors import UnknownGrpcStatusCodeError, ZeebeGatewayUnavailableError

from hf_connector import app, metrics
from hf_connector.ops import Health, OpsServer
from hf_connector.zeebe import describe_zeebe_error


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("hf_connector.ops.time.monotonic", fake)
    return fake


def _health(clock: Clock, grace: float = 60) -> Health:
    return Health(liveness_grace_seconds=grace, started_at=clock.now, last_heartbeat=clock.now)


# --- Health -------------------------------------------------------------------------------------


def test_not_ready_until_polling_and_zeebe_answered(clock: Clock) -> None:
    health = _health(clock)
    assert health.ready() == (False, {"status": "DOWN", "polling": False, "zeebe": "starting"})
    health.polling = True
    assert health.ready()[0] is False
    health.zeebe_seen()
    assert health.ready() == (True, {"status": "UP", "polling": True, "zeebe": "ok"})


def test_not_ready_when_zeebe_is_lost_or_polling_stopped(clock: Clock) -> None:
    health = _health(clock)
    health.polling = True
    health.zeebe_seen()
    health.zeebe_lost("Zeebe not reachable: UNAVAILABLE")
    assert health.ready() == (False, {"status": "DOWN", "polling": True, "zeebe": "Zeebe not reachable: UNAVAILABLE"})
    health.zeebe_seen()
    health.polling = False
    assert health.ready()[1]["status"] == "DOWN"


def test_live_within_the_grace_period_even_if_zeebe_never_answered(clock: Clock) -> None:
    health = _health(clock)
    clock.now += 59
    health.beat()
    ok, body = health.live()
    assert ok and body == {"status": "UP", "secondsSinceZeebeContact": 59.0, "eventLoopResponsive": True}


def test_liveness_fails_after_the_grace_period_without_zeebe_contact(clock: Clock) -> None:
    health = _health(clock)
    clock.now += 30
    health.zeebe_seen()
    for _ in range(7):  # the heartbeat goes on, Zeebe stays away
        clock.now += 10
        health.beat()
        health.zeebe_lost("Zeebe not reachable: UNAVAILABLE")
    ok, body = health.live()
    assert not ok
    assert body == {"status": "DOWN", "secondsSinceZeebeContact": 70.0, "eventLoopResponsive": True}
    health.zeebe_seen()
    assert health.live()[0] is True


def test_liveness_fails_when_the_heartbeat_stops(clock: Clock) -> None:
    health = _health(clock)
    health.zeebe_seen()
    clock.now += 61
    health.last_zeebe_contact = clock.now  # Zeebe is fine; the event loop is what is stuck
    ok, body = health.live()
    assert not ok
    assert body["eventLoopResponsive"] is False
    health.beat()
    assert health.live()[0] is True


async def test_readiness_follows_the_pyzeebe_task() -> None:
    health = Health(liveness_grace_seconds=60)
    release = asyncio.Event()

    async def pyzeebe_work() -> None:
        await release.wait()

    work = asyncio.create_task(pyzeebe_work())
    app.follow_worker_task(work, health)
    assert health.polling is True
    release.set()
    await work
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert health.polling is False


async def test_readiness_follows_a_crashed_pyzeebe_task() -> None:
    health = Health(liveness_grace_seconds=60)

    async def crash() -> None:
        raise RuntimeError("poller died")

    work = asyncio.create_task(crash())
    app.follow_worker_task(work, health)
    with pytest.raises(RuntimeError):
        await work
    await asyncio.sleep(0)
    assert health.polling is False


# --- the Zeebe monitor and heartbeat ------------------------------------------------------------


class _Topology:
    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.calls = 0

    async def topology(self) -> object:
        self.calls += 1
        if self.behaviour == "hang":
            await asyncio.Event().wait()
        if self.behaviour == "unavailable":
            raise ZeebeGatewayUnavailableError(_rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused"))
        return object()


async def _wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
def fast_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "_MONITOR_TIMEOUT_SECONDS", 0.05)
    monkeypatch.setattr(app, "_MONITOR_INTERVAL_SECONDS", 0.02)
    monkeypatch.setattr(app, "_HEARTBEAT_SECONDS", 0.01)


@pytest.mark.usefixtures("fast_monitor")
async def test_monitor_gives_up_on_a_gateway_that_never_answers_and_cancels_at_once() -> None:
    health = Health(liveness_grace_seconds=60)
    client = _Topology("hang")
    monitor = asyncio.create_task(app._monitor(client, health))  # type: ignore[arg-type]
    await _wait_until(lambda: client.calls >= 2)
    assert health.zeebe_reachable is False
    assert health.detail == "Zeebe not reachable: no answer in time"
    started = time.monotonic()
    monitor.cancel()
    await asyncio.gather(monitor, return_exceptions=True)
    assert time.monotonic() - started < 0.5


@pytest.mark.usefixtures("fast_monitor")
async def test_monitor_reports_zeebe_lost_and_found(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hf_connector")
    health = Health(liveness_grace_seconds=60)
    client = _Topology("unavailable")
    monitor = asyncio.create_task(app._monitor(client, health))  # type: ignore[arg-type]
    await _wait_until(lambda: client.calls >= 3)
    assert health.detail == "Zeebe not reachable: UNAVAILABLE: connection refused"
    client.behaviour = "ok"
    await _wait_until(lambda: health.zeebe_reachable)
    monitor.cancel()
    await asyncio.gather(monitor, return_exceptions=True)
    messages = [r.getMessage() for r in caplog.records if r.name == "hf_connector"]
    # one line per change of state, not one per round
    assert messages == [
        "Zeebe is not reachable (UNAVAILABLE: connection refused); not ready until it answers",
        "Zeebe is reachable again",
    ]


@pytest.mark.usefixtures("fast_monitor")
async def test_heartbeat_keeps_the_loop_marked_responsive() -> None:
    health = Health(liveness_grace_seconds=60)
    health.last_heartbeat = 0.0
    beat = asyncio.create_task(app._heartbeat(health))
    await _wait_until(lambda: health.last_heartbeat > 0)
    beat.cancel()
    await asyncio.gather(beat, return_exceptions=True)
    assert health.live()[1]["eventLoopResponsive"] is True


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def test_zeebe_errors_are_described_in_one_line() -> None:
    unauthenticated = UnknownGrpcStatusCodeError(_rpc_error(grpc.StatusCode.UNAUTHENTICATED, "token expired"))
    group = ExceptionGroup("unhandled errors in a TaskGroup", [unauthenticated, unauthenticated])
    assert describe_zeebe_error(group) == "UNAUTHENTICATED: token expired"
    assert describe_zeebe_error(TimeoutError()) == "no answer in time"
    assert describe_zeebe_error(ValueError("x" * 1000)).endswith("...")
    assert len(describe_zeebe_error(ValueError("x" * 1000))) == 300


# --- the ops HTTP server ------------------------------------------------------------------------


@pytest.fixture
def ops() -> Iterator[tuple[OpsServer, Health]]:
    health = Health(liveness_grace_seconds=60)
    server = OpsServer(health, "127.0.0.1", 0)
    server.start()
    yield server, health
    server.stop()


def _get(port: int, path: str, accept: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["content-type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["content-type"], error.read().decode()


def test_metrics_are_served_in_the_prometheus_text_format(ops: tuple[OpsServer, Health]) -> None:
    server, _ = ops
    metrics.JOBS.labels("completed").inc(0)
    status, content_type, text = _get(server.port, "/metrics")
    assert status == 200
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert {
        "hf_connector_jobs",
        "hf_connector_call_duration_seconds",
        "hf_connector_job_retries",
        "hf_connector_jobs_in_flight",
        "hf_connector_secret_failures",
    } <= families.keys()
    assert families["hf_connector_jobs"].type == "counter"
    assert families["hf_connector_call_duration_seconds"].type == "histogram"
    assert families["hf_connector_jobs_in_flight"].type == "gauge"


def test_metrics_in_openmetrics_format_when_asked(ops: tuple[OpsServer, Health]) -> None:
    server, _ = ops
    status, content_type, text = _get(server.port, "/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")


def test_health_endpoints_answer_with_status_codes_and_json(ops: tuple[OpsServer, Health]) -> None:
    server, health = ops
    status, content_type, body = _get(server.port, "/health/ready")
    assert (status, content_type, json.loads(body)["status"]) == (503, "application/json", "DOWN")
    health.polling = True
    health.zeebe_seen()
    for path in ("/health/ready", "/health/ready/", "/health/ready?probe=k8s", "/health"):
        status, _, body = _get(server.port, path)
        assert (status, json.loads(body)["status"]) == (200, "UP"), path
    status, _, body = _get(server.port, "/health/live")
    assert (status, json.loads(body)["status"]) == (200, "UP")
    assert _get(server.port, "/nothing-here")[0] == 404


# --- the whole worker against a gateway that refuses it -----------------------------------------


async def test_a_worker_refused_by_zeebe_exits_1_with_one_clear_line(caplog: pytest.LogCaptureFixture) -> None:
    """pyzeebe's work() raises on UNAUTHENTICATED; the worker must say why and ask to be restarted.

    A real broker cannot be made to revoke credentials on demand here, so the pyzeebe task's failure
    is what is reproduced, not a gateway.
    """

    async def refused() -> None:
        raise UnknownGrpcStatusCodeError(_rpc_error(grpc.StatusCode.UNAUTHENTICATED, "token is not valid"))

    work = asyncio.create_task(refused())
    with pytest.raises(UnknownGrpcStatusCodeError):
        await work
    with caplog.at_level(logging.ERROR, logger="hf_connector"):
        assert app._crash_code(work) == 1
    crash = [record.getMessage() for record in caplog.records if "stopped on its own" in record.getMessage()]
    assert len(crash) == 1
    assert "UNAUTHENTICATED: token is not valid" in crash[0]
    assert "exiting with code 1" in crash[0]
    assert "CAMUNDA_CLIENT_ID" in crash[0]
