"""Pytest plugin: one engine per test session, shared by every pytest-xdist worker.

The controller process (the only process without ``config.workerinput``) starts the engine in
``pytest_configure``, before xdist spawns its workers, and exports ``ZEEBE_ADDRESS``,
``CAMUNDA_REST_ADDRESS`` and (for the development engine) the path of its records, so the workers inherit
them. It stops the engine in ``pytest_unconfigure``. Which engine follows devkit/engines.py: the
development engine on free ports with its data in a temporary directory; ``ENGINE=camunda`` for Camunda in
Docker; a ``ZEEBE_ADDRESS`` set beforehand is used as it is. ``--no-engine`` (or its old name
``--no-zeebe-broker``) starts nothing, for unit-only runs; tests that ask for ``zeebe_address`` then fail,
they are never skipped.

Register with ``pytest_plugins = ["tests.support.engine_fixture"]`` in the root ``conftest.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.engines import REST_ADDRESS_ENV, Engine, EngineUnavailableError, start_engine
from tests.support.records import RECORDS_ENV, GatewayRecords

_ENGINE = pytest.StashKey[Engine]()
_STARTED = pytest.StashKey[str]()
_ERROR = pytest.StashKey[str]()
_SAVED_ENV = pytest.StashKey[dict[str, str | None]]()
_WORKERINPUT_ERROR = "engine_error"
_EXPORTED = ("ZEEBE_ADDRESS", REST_ADDRESS_ENV, RECORDS_ENV)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-engine",
        "--no-zeebe-broker",
        dest="no_engine",
        action="store_true",
        default=False,
        help="do not start an engine for the session (tests using zeebe_address fail)",
    )


def _wants_engine(config: pytest.Config) -> bool:
    option = config.option
    return not (
        getattr(option, "no_engine", False)
        or getattr(option, "help", False)
        or getattr(option, "version", False)
        or getattr(option, "collectonly", False)
    )


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not _wants_engine(config):
        return
    config.stash[_SAVED_ENV] = {name: os.environ.get(name) for name in _EXPORTED}
    data_dir = Path(tempfile.mkdtemp(prefix="hf-test-engine-"))
    began = time.monotonic()
    try:
        engine = start_engine(data_dir, fixed_ports=False)
    except EngineUnavailableError as error:
        shutil.rmtree(data_dir, ignore_errors=True)
        config.stash[_ERROR] = f"no engine for this test session: {error}"
        return
    config.stash[_ENGINE] = engine
    config.stash[_STARTED] = f"{engine.description}, ready in {time.monotonic() - began:.1f} s"
    os.environ["ZEEBE_ADDRESS"] = engine.address
    if engine.rest_url:
        os.environ[REST_ADDRESS_ENV] = engine.rest_url
    if engine.records_path is not None:
        os.environ[RECORDS_ENV] = str(engine.records_path)
    else:
        shutil.rmtree(data_dir, ignore_errors=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    engine = config.stash.get(_ENGINE, None)
    if engine is None:
        return
    del config.stash[_ENGINE]
    engine.stop()
    if engine.records_path is not None:
        shutil.rmtree(engine.records_path.parent, ignore_errors=True)
    for name, value in config.stash[_SAVED_ENV].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    """xdist (controller side): hand a start failure to each worker, which cannot see the stash."""
    config: pytest.Config = node.config  # type: ignore[attr-defined]
    error = config.stash.get(_ERROR, None)
    if error is not None:
        node.workerinput[_WORKERINPUT_ERROR] = error  # type: ignore[attr-defined]


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput"):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    if _ERROR in config.stash:
        reporter.write_line(config.stash[_ERROR], red=True, bold=True)
    elif _STARTED in config.stash:
        reporter.write_line(f"Engine: {config.stash[_STARTED]}")


def _start_error(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    if isinstance(workerinput, dict) and _WORKERINPUT_ERROR in workerinput:
        return str(workerinput[_WORKERINPUT_ERROR])
    if _ERROR in config.stash:
        return config.stash[_ERROR]
    return "no engine for this test session: ZEEBE_ADDRESS is not set (was --no-engine given?)"


@pytest.fixture(scope="session")
def zeebe_address(pytestconfig: pytest.Config) -> str:
    """``host:port`` of the session engine's gRPC gateway; fails (never skips) when there is none."""
    address = os.environ.get("ZEEBE_ADDRESS", "").strip()
    if not address:
        pytest.fail(_start_error(pytestconfig), pytrace=False)
    return address


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test that asked for records this session's Camunda does not have is skipped, even where its own
    code caught the skip (e.g. to report several cases at once) and failed on it instead."""
    GatewayRecords.needed.clear()
    try:
        return (yield)
    except BaseException:
        if GatewayRecords.needed:
            pytest.skip(GatewayRecords.needed[0])
        raise
