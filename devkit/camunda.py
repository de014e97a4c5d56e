"""Real Camunda 8 in Docker, for those who ask for it with ``ENGINE=camunda``.

The ``camunda/camunda`` image is not open source, so nothing here runs unless asked: the development
engine is the default everywhere. testcontainers runs the image (``CAMUNDA_IMAGE`` overrides the tag) as a
single node with an in-memory H2 secondary storage, so that the search endpoints of the Orchestration Cluster
API (incidents, variables, process instances) answer as they do on a full installation.
"""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_IMAGE = "camunda/camunda:8.10.0"
GATEWAY_PORT = 26500
REST_PORT = 8080
START_TIMEOUT_S = 240.0

SETTINGS = {
    "ZEEBE_BROKER_CLUSTER_PARTITIONSCOUNT": "1",
    "ZEEBE_BROKER_CLUSTER_CLUSTERSIZE": "1",
    "ZEEBE_BROKER_CLUSTER_REPLICATIONFACTOR": "1",
    "CAMUNDA_SECURITY_AUTHENTICATION_UNPROTECTEDAPI": "true",
    "CAMUNDA_SECURITY_AUTHORIZATIONS_ENABLED": "false",
    "CAMUNDA_DATA_SECONDARYSTORAGE_TYPE": "rdbms",
    "CAMUNDA_DATA_SECONDARYSTORAGE_RDBMS_URL": "jdbc:h2:mem:camunda;DB_CLOSE_DELAY=-1",
    "CAMUNDA_DATA_SECONDARYSTORAGE_RDBMS_USERNAME": "sa",
    "CAMUNDA_DATA_SECONDARYSTORAGE_RDBMS_PASSWORD": "",
    # Search results appear within a second of the change, as the example runner and the tests expect.
    "CAMUNDA_DATA_SECONDARYSTORAGE_RDBMS_FLUSHINTERVAL": "PT0.5S",
    "JAVA_TOOL_OPTIONS": "-Xmx1g",
}


class CamundaUnavailableError(RuntimeError):
    """Camunda could not be started in Docker; the message says why and what to do."""


def image() -> str:
    return os.environ.get("CAMUNDA_IMAGE", "").strip() or DEFAULT_IMAGE


@dataclass
class CamundaContainer:
    """A started ``camunda/camunda`` container; ``stop()`` removes it."""

    address: str
    rest_url: str
    image: str
    _container: Any

    @classmethod
    def start(cls, *, fixed_ports: bool, timeout: float = START_TIMEOUT_S) -> CamundaContainer:
        try:
            containers: Any = importlib.import_module("testcontainers.core.container")
        except ImportError as error:
            raise CamundaUnavailableError(
                "ENGINE=camunda needs testcontainers (pip install -e '.[test]') and a Docker engine"
            ) from error
        name = image()
        try:  # the client asks the Docker engine for its version as soon as it is made
            container: Any = containers.DockerContainer(name)
            for key, value in SETTINGS.items():
                container.with_env(key, value)
            if fixed_ports:
                container.with_bind_ports(GATEWAY_PORT, GATEWAY_PORT).with_bind_ports(REST_PORT, REST_PORT)
            else:
                container.with_exposed_ports(GATEWAY_PORT, REST_PORT)
            container.start()
        except Exception as error:
            raise CamundaUnavailableError(
                f"ENGINE=camunda: Docker could not run {name} ({type(error).__name__}: {error}); "
                "is a Docker engine running? Unset ENGINE for the development engine"
            ) from error
        try:
            host = container.get_container_host_ip()
            started = cls(
                address=f"{host}:{container.get_exposed_port(GATEWAY_PORT)}",
                rest_url=f"http://{host}:{container.get_exposed_port(REST_PORT)}",
                image=name,
                _container=container,
            )
            started._wait_ready(time.monotonic() + timeout)
        except BaseException:
            container.stop()
            raise
        return started

    def _wait_ready(self, deadline: float) -> None:
        """Ready once the REST topology shows a leader for partition 1 (the gateway serves gRPC by then)."""
        last = "no answer yet"
        while time.monotonic() < deadline:
            try:
                topology = httpx.get(f"{self.rest_url}/v2/topology", timeout=5).json()
                roles = [p.get("role") for b in topology.get("brokers", []) for p in b.get("partitions", [])]
                if "leader" in roles:
                    return
                last = f"topology without a leader: {topology}"
            except (httpx.HTTPError, ValueError) as error:
                last = str(error)
            time.sleep(1.0)
        raise CamundaUnavailableError(f"{self.image} was not ready in time ({self.rest_url}/v2/topology: {last})")

    def stop(self) -> None:
        self._container.stop()
