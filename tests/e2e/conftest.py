"""Fixtures for end-to-end tests that need an engine of their own, to kill it or to read only its records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.engine.process import EngineProcess


@pytest.fixture
def own_engine(tmp_path: Path) -> Iterator[EngineProcess]:
    """A development engine on free ports with a data directory (and records) of this test's own."""
    engine = EngineProcess.start(tmp_path / "engine")
    yield engine
    engine.stop()
