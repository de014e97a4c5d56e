"""Fixtures for unit tests of the worker's gRPC side."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hf_connector import metrics
from tests.support.gateway_double import GatewayDouble


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayDouble]:
    double = await GatewayDouble().start()
    yield double
    await double.stop()


def counted(name: str, **labels: str) -> float:
    """A counter's value as /metrics shows it (0 before its first increment)."""
    return metrics.REGISTRY.get_sample_value(f"{name}_total", labels) or 0.0
