"""Which engine ``make run``, ``make demo`` and the tests talk to.

1. ``ZEEBE_ADDRESS`` is set: that Camunda 8 (SaaS or self-managed), started by nobody here; its REST API is
   at ``CAMUNDA_REST_ADDRESS`` when given.
2. ``ENGINE=camunda``: Camunda's own image in Docker (devkit/camunda.py), only ever on request.
3. Otherwise (``ENGINE`` unset or ``devkit``): the project's development engine, as a child process.

Only the development engine writes records (``records.jsonl``) and can be killed and restarted by a test.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from devkit.camunda import CamundaContainer, CamundaUnavailableError

if TYPE_CHECKING:
    from devkit.engine.process import EngineProcess

ENGINE_ENV = "ENGINE"
REST_ADDRESS_ENV = "CAMUNDA_REST_ADDRESS"
DEFAULT_REST_URL = "http://127.0.0.1:8080"
CHOICES = ("devkit", "camunda")


class EngineUnavailableError(RuntimeError):
    """No engine could be had; the message says why and what to do."""


@dataclass
class Engine:
    """A reachable engine; ``stop()`` ends it when it was started here (idempotent)."""

    address: str
    """gRPC gateway as ``host:port``, the form ``ZEEBE_ADDRESS`` takes."""
    rest_url: str | None
    """Base URL of the Orchestration Cluster REST API (``/v2/...``), when known."""
    description: str
    process: EngineProcess | None = None
    """The development engine's process, when that is what runs: the only engine with records."""
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def records_path(self) -> Path | None:
        return self.process.records_path if self.process is not None else None

    def stop(self) -> None:
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


def choice() -> str:
    wanted = os.environ.get(ENGINE_ENV, "").strip().lower() or "devkit"
    if wanted not in CHOICES:
        raise EngineUnavailableError(f"{ENGINE_ENV}={wanted!r}: use devkit (the default) or camunda")
    return wanted


def start_engine(data_dir: Path, *, fixed_ports: bool, grpc_port: int = 26500, rest_port: int = 8080) -> Engine:
    """A ready engine by the rules above; ``fixed_ports`` binds the ports clients expect, else free ones."""
    address = os.environ.get("ZEEBE_ADDRESS", "").strip()
    if address:
        rest_url = os.environ.get(REST_ADDRESS_ENV, "").strip() or None
        return Engine(address, rest_url, f"Camunda at ZEEBE_ADDRESS={address} (nothing started)")
    if choice() == "camunda":
        try:
            container = CamundaContainer.start(fixed_ports=fixed_ports)
        except CamundaUnavailableError as error:
            raise EngineUnavailableError(str(error)) from error
        return Engine(
            container.address,
            container.rest_url,
            f"{container.image} in Docker at {container.address}",
            None,
            container.stop,
        )
    # Loaded only when it is the engine in use: the other two need none of its dependencies.
    from devkit.engine.process import EngineProcess

    try:
        process = EngineProcess.start(
            data_dir, port=grpc_port if fixed_ports else 0, rest_port=rest_port if fixed_ports else 0
        )
    except Exception as error:
        raise EngineUnavailableError(f"the development engine did not start: {error}") from error
    return Engine(
        process.address,
        process.rest_url,
        f"development engine at {process.address} (REST {process.rest_url}, data {data_dir})",
        process,
        process.stop,
    )


def rest_url() -> str:
    """The REST API the example runner talks to when no engine was started in the same process."""
    return os.environ.get(REST_ADDRESS_ENV, "").strip() or DEFAULT_REST_URL
