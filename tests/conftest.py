"""Shared fixtures: one engine per test session (see tests/support/engine_fixture.py), and per
xdist worker one Hugging Face stand-in and one worker process with its own job type, so that parallel
test processes never take each other's jobs."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pyzeebe import ZeebeClient, create_insecure_channel

from devkit.hf_standin import HfStandin
from tests.support.connector import Connector
from tests.support.records import ZeebeRecords

pytest_plugins = ["tests.support.engine_fixture"]

# Secret values used by the suite; tests/e2e/test_secret_masking.py scans every sink for them.
SUITE_SECRETS = {
    "HUGGING_FACE_TOKEN": "hf_suiteSecretToken_7f3a9c1e",
    "OTHER_TOKEN": "hf_otherSecret_b51d2e88",
}


@pytest.fixture(scope="session")
def worker_id_suffix(request: pytest.FixtureRequest) -> str:
    return str(getattr(request.config, "workerinput", {}).get("workerid", "main"))


@pytest.fixture(scope="session")
def hf() -> Iterator[HfStandin]:
    with HfStandin() as standin:
        yield standin


@pytest.fixture(scope="session")
def connector(
    zeebe_address: str, hf: HfStandin, worker_id_suffix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Connector]:
    log_dir = tmp_path_factory.mktemp("connector")
    worker = Connector(
        zeebe_address=zeebe_address,
        hf_url=hf.url,
        job_type=f"hugging-face-e2e-{worker_id_suffix}",
        log_path=log_dir / "worker.log",
        env={f"SECRET_{name}": value for name, value in SUITE_SECRETS.items()},
    ).start()
    yield worker
    worker.stop()


@pytest.fixture
async def zeebe(zeebe_address: str) -> AsyncIterator[ZeebeClient]:
    channel = create_insecure_channel(grpc_address=zeebe_address)
    yield ZeebeClient(channel)
    await channel.close()


@pytest.fixture(scope="session")
def records() -> ZeebeRecords:
    """The session engine's own records (incidents, job failures, completions), read incrementally by one
    reader per test process."""
    return ZeebeRecords.of_session()


@pytest.fixture
def bpmn_dir(tmp_path: Path) -> Path:
    os.makedirs(tmp_path / "bpmn", exist_ok=True)
    return tmp_path / "bpmn"
